"""A command line's overrides composed once, before Hydra runs the entry point, so that a key Hydra
cannot set stops in one sentence naming the nearest key (exit code 2) instead of Hydra's report of
several lines and exit code 1:

    optimizer.lrr=0.1       -> optimizer.lrr is not a setting of optimizer=adam; did you mean optimizer.lr?
    ~classifiers.svm        -> ~classifiers.svm removes nothing: ... classifiers holds hist_gradient_boosting, ...
    +optimizer.lr=0.1       -> optimizer.lr is a setting already; set it without the +: optimizer.lr=0.1
    hydra/launcher=joblb    -> hydra/launcher=joblb names no config; did you mean joblib? ...

A sweep (`a=1,2`, `interval(...)`, `range(...)`) is composed with one of its values: the keys are what is
checked, each job composes its own values later. Hydra's own settings of the project's Optuna sweeper
are checked against its schema (src/sweeps/settings.py). Only Hydra and
OmegaConf are used: a refused command ends in a fraction of a second, before torch loads.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from src.config.names import CONF, SWEEPER_TARGET

# Options that change which config is composed or that compose nothing: those command lines are left to Hydra.
HYDRA_OWN_OPTIONS = ("-h", "--help", "--hydra-help", "--info", "-i", "--shell-completion", "-sc", "-cp",
                     "--config-path", "-cn", "--config-name", "-cd", "--config-dir")


def entry_config_name() -> str | None:
    """The config of the running entry point: `python -m src.train` composes conf/train.yaml (each entry point's
    `@hydra.main` names the config after its module)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = spec.name.rpartition(".")[2] if spec is not None and spec.name.startswith("src.") else None
    return name if name and (CONF / f"{name}.yaml").is_file() else None


def check_composition(args: Sequence[str], config_name: str | None = None) -> None:
    """Raise a UserError for an override Hydra would refuse while composing `config_name` (default: the
    running entry point's config), and for a setting of the project's Optuna sweeper it does not take."""
    config_name = config_name or entry_config_name()
    if config_name is None or any(a.split("=", 1)[0] in HYDRA_OWN_OPTIONS for a in args):
        return
    overrides = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    if not overrides:
        return
    parsed = OverridesParser.create().parse_overrides(overrides)  # readable: check_overrides ran first
    sweeps = [(o, t) for o, t in zip(parsed, overrides) if o.is_sweep_override()]
    texts = overrides
    if sweeps:  # each composed with one of its values (src/config/sweep_overrides.py)
        from src.config import sweep_overrides

        sweep_overrides.refuse_hydra_sweeps(sweeps)
        texts = [sweep_overrides.one_value(o, t) if o.is_sweep_override() else t for o, t in zip(parsed, overrides)]
    cfg, failure = compose_overrides(config_name, [t for t in texts if t is not None])
    if failure is not None:
        from src.config.mistakes import explain_composition_error  # (only when Hydra refused the command line)

        error = explain_composition_error(failure, config_name, texts, compose_overrides)
        if error is None:
            return  # a failure of another kind: Hydra reports it when it composes
        raise error
    if sweeps:
        sweep_overrides.require_multirun(args, cfg, sweeps)
    sweeper = cfg.hydra.get("sweeper") if cfg is not None else None
    if isinstance(sweeper, Mapping) and sweeper.get("_target_") == SWEEPER_TARGET:
        from src.sweeps.settings import check_settings

        check_settings(sweeper)


def compose_overrides(config_name: str, overrides: list[str]) -> tuple[DictConfig | None, Exception | None]:
    """(the config `config_name` composed with `overrides`, None) or (None, the exception composing raised)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=True), None
    except Exception as exc:  # (explained where known; Hydra reports the rest itself)
        return None, exc
    finally:
        GlobalHydra.instance().clear()
