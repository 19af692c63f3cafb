"""A command line's overrides composed once, before Hydra runs the entry point, so that a key Hydra
cannot set stops in one sentence naming the nearest key (exit code 2) instead of Hydra's report of
several lines and exit code 1:

    optimizer.lrr=0.1       -> optimizer.lrr is not a setting of optimizer=adam; did you mean optimizer.lr?
    ~classifiers.svm        -> ~classifiers.svm removes nothing: ... classifiers holds hist_gradient_boosting, ...
    +optimizer.lr=0.1       -> optimizer.lr is a setting already; set it without the +: optimizer.lr=0.1
    hydra/launcher=joblb    -> hydra/launcher=joblb names no config; did you mean joblib? ...

A sweep (`a=1,2`, `interval(...)`, `range(...)`) is composed with one of its values: the keys are what is
checked, each job composes its own values later. Hydra's own settings of the project's Optuna sweeper
are checked against its schema (hydra_plugins/classify_optuna_sweeper/settings.py). Only Hydra and
OmegaConf are used: a refused command ends in a fraction of a second, before torch loads.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from src.config.names import CONF
from src.errors import UserError, shorten

# Options that change which config is composed or that compose nothing: those command lines are left to Hydra.
HYDRA_OWN_OPTIONS = ("-h", "--help", "--hydra-help", "--info", "-i", "--shell-completion", "-sc", "-cp",
                     "--config-path", "-cn", "--config-name", "-cd", "--config-dir")
SWEEPER_TARGET = "hydra_plugins.classify_optuna_sweeper.optuna_sweeper.OptunaSweeper"
PARAMS = "hydra.sweeper.params."
_COULD_NOT = (
    ("override", re.compile(r"Could not override '([^']+)'")),
    ("delete", re.compile(r"Could not delete from config\. '([^']+)' does not exist")),
    ("append", re.compile(r"Could not append to config\. An item is already at '([^']+)'")),
)


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
    for override, text in zip(parsed, overrides):
        _refuse_hydra_sweep(override, text)
    texts = [_one_value(o, t) for o, t in zip(parsed, overrides)]
    cfg, failure = _compose(config_name, [t for t in texts if t is not None])
    if failure is not None:
        error = _explain(failure, config_name, texts)
        if error is None:
            return  # a failure of another kind: Hydra reports it when it composes
        raise error
    _require_multirun(args, cfg, [(o, t) for o, t in zip(parsed, overrides) if o.is_sweep_override()])
    sweeper = cfg.hydra.get("sweeper") if cfg is not None else None
    if isinstance(sweeper, Mapping) and sweeper.get("_target_") == SWEEPER_TARGET:
        from hydra_plugins.classify_optuna_sweeper.settings import check_settings

        check_settings(sweeper)


def _refuse_hydra_sweep(override: Override, text: str) -> None:
    """Hydra sweeps no `hydra.*` key; a search expression for the sweeper's params is a search of that key."""
    if not (override.is_sweep_override() and override.is_hydra_override()):
        return
    key = override.get_key_element().lstrip("+~")
    if key.startswith(PARAMS):
        searched = f"{key.removeprefix(PARAMS)}={text.split('=', 1)[1]}"
        raise UserError(f"{shorten(text)}: Hydra takes no search expression for its own hydra.* keys; search "
                        f"{key.removeprefix(PARAMS)} with {shorten(searched)} (with -m or an hparams_search config).")
    raise UserError(f"{shorten(text)}: Hydra cannot sweep its own hydra.* settings; give {key} one value.")


def _require_multirun(args: Sequence[str], cfg: DictConfig, sweeps: list[tuple[Override, str]]) -> None:
    """A sweep runs with -m (or a config that sets hydra.mode: MULTIRUN, such as an hparams_search one, when
    it is not only printed with --cfg)."""
    if not sweeps or "-m" in args or "--multirun" in args:
        return
    printing = any(a in ("-c", "--cfg", "-i", "--info") for a in args)
    mode = cfg.hydra.get("mode")
    if getattr(mode, "name", mode) == "MULTIRUN" and not printing:  # a RunMode, or its name
        return
    text = shorten(sweeps[0][1], 100)
    if printing:
        raise UserError(f"{text} is a sweep, and --cfg / --info show the config of one job: give it one value.")
    raise UserError(f"{text} is a sweep: add -m to run one job per value, or give one value.")


def _one_value(override: Override, text: str) -> str | None:
    """The override with a sweep replaced by one of its values (None: no single value to try, left out)."""
    if not override.is_sweep_override():
        return text
    prefix = text[:len(text) - len(text.lstrip("+~"))]
    key = f"{prefix}{override.get_key_element().lstrip('+~')}"
    try:
        if override.is_interval_sweep():
            return f"{key}={override.value().start}"
        return f"{key}={next(iter(override.sweep_string_iterator()))}"
    except Exception:  # (e.g. a glob, resolved against a group only by the sweeper)
        return None


def _compose(config_name: str, overrides: list[str]) -> tuple[DictConfig | None, Exception | None]:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=True), None
    except Exception as exc:  # (explained where known; Hydra reports the rest itself)
        return None, exc
    finally:
        GlobalHydra.instance().clear()


def _explain(exc: Exception, config_name: str, texts: list[str | None]) -> UserError | None:
    """The UserError for Hydra's composition error `exc`; None where it is not one of the known kinds."""
    message = str(exc)
    if isinstance(exc, MissingConfigException):
        group, _, name = str(exc.missing_cfg_file or "").rpartition("/")
        if not group or not exc.options:
            return None
        close = difflib.get_close_matches(name, exc.options, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        return UserError(f"{group}={name} names no config; {hint}the choices are {shorten(', '.join(exc.options))}.")
    other = re.search(r"Could not delete from config\. The value of '([^']+)' is (.*) and not (.*)\.$", message)
    if other:
        key, value, typed = other.groups()
        return UserError(f"~{key}={shorten(typed, 60)} removes nothing: {key} is {shorten(value, 60)}; write ~{key} to "
                         "remove it whatever its value.")
    found = next(((kind, m) for kind, pattern in _COULD_NOT if (m := pattern.search(message))), None)
    if not isinstance(exc, ConfigCompositionException) or found is None:
        return None
    kind, key = found[0], found[1].group(1)
    value = next((t.split("=", 1)[1] for t in texts if t and _key_of(t) == key and "=" in t), "...")
    if kind == "append":
        return UserError(f"{key} is a setting already; set it without the +: {key}={shorten(value)}.")
    cfg = _compose(config_name, [t for t in texts if t is not None and _key_of(t) != key])[0]
    if cfg is None:  # another override fails too: Hydra's report names it
        return None
    if "No match in the defaults list" in message:  # a group this entry point's config does not choose
        chosen = sorted(g for g, c in cfg.hydra.runtime.choices.items() if c and "/" not in g and g != "hydra")
        why = "it rebuilds data and model from the checkpoint's own config" if "ckpt_path" in cfg.keys() else \
            f"drop it (or add the group with +{key}=NAME)"
        return UserError(f"{key}=... chooses nothing here: the {config_name} config chooses only "
                         f"{', '.join(chosen)} (conf/{config_name}.yaml); {why}.")
    where = _owner(cfg, key, config_name)
    if kind == "override" and key.startswith("hydra.sweeper."):
        refused = _sweeper_setting(cfg, key, where, value)
        if refused:
            return UserError(refused)
    hint = _nearest(cfg, key)
    if kind == "delete":
        return UserError(f"~{key} removes nothing: {key} is not a setting of {where}; {hint}")
    return UserError(f"{key} is not a setting of {where}; {hint}")


def _sweeper_setting(cfg: DictConfig, key: str, where: str, value: str) -> str | None:
    """Why `hydra.sweeper.<key>` is refused, read from the Optuna sweeper's schema (None: the nearest key says it)."""
    from hydra_plugins.classify_optuna_sweeper.settings import SETTINGS, pruner_argument_problem, setting_hint

    parts = key.split(".")[2:]
    if cfg.hydra.sweeper.get("_target_") != SWEEPER_TARGET:
        if parts[0] in SETTINGS and parts[0] != "params":
            return (f"{key} is a setting of the Optuna sweeper, not of {where}; choose that sweeper with "
                    "hparams_search=NAME or hydra/sweeper=optuna.")
        return None
    if parts[0] not in SETTINGS:
        return f"{key} is not a setting of the Optuna sweeper; {setting_hint(parts[0])}"
    if parts[0] == "params":  # its names hold dots (optimizer.lr: ...), which an override path cannot name
        name = ".".join(parts[1:])
        return (f"{key}: an override cannot name a search entry inside hydra.sweeper.params (their names hold "
                f"dots); give it on the command line as {name}={shorten(value.strip(chr(39) + chr(34)), 60)}, "
                "which also replaces a config's entry of that name.")
    if parts[0] == "pruner_args" and len(parts) == 2:
        pruner = str(cfg.hydra.sweeper.get("pruner") or "none")
        return pruner_argument_problem(pruner, parts[1]) or (
            f"the config sets no {key} (an argument of the {pruner} pruner); add it with +{key}=VALUE.")
    return None


def _key_of(text: str) -> str:
    return text.split("=", 1)[0].lstrip("+~")


def _owner(cfg: DictConfig, key: str, config_name: str) -> str:
    """`optimizer=adam` for optimizer.lrr: the config-group choice the key belongs to (else the entry config)."""
    choices = cfg.hydra.runtime.choices
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        choice = choices.get("/".join(parts[:i]))
        if choice is not None:
            return f"{'/'.join(parts[:i])}={choice}"
    return "Hydra's settings" if parts[0] == "hydra" else f"the {config_name} config (conf/{config_name}.yaml)"


def _nearest(cfg: DictConfig, key: str) -> str:
    """`did you mean a.b?` for the nearest existing key, else the keys of the deepest node it reaches."""
    tree = OmegaConf.to_container(cfg, resolve=False)  # unresolved: ${hydra:...} needs a running job
    if not key.startswith("hydra."):
        tree.pop("hydra", None)
    parts, node, depth = key.split("."), tree, 0
    while depth < len(parts) and isinstance(node, Mapping) and parts[depth] in node:
        node, depth = node[parts[depth]], depth + 1
    reached = ".".join(parts[:depth])
    if not isinstance(node, Mapping):
        return f"{reached} holds a value ({shorten(repr(node), 60)}), not settings."
    names = [str(k) for k in node.keys() if not str(k).startswith("_")]
    if depth < len(parts):
        if 0 < depth == len(parts) - 1 and parts[depth] in tree:  # data.steps_per_call: a training setting
            return f"did you mean the top-level setting {parts[depth]}?"
        close = difflib.get_close_matches(parts[depth], names, n=1)
        if close:
            return f"did you mean {'.'.join([*parts[:depth], close[0], *parts[depth + 1:]])}?"
        if depth == 0 and len(parts) == 1:  # a bare name: the same name further down (lr -> optimizer.lr)
            below = [p for p in _paths(tree) if p.rsplit(".", 1)[-1] == parts[0]]
            if below:
                return f"did you mean {' or '.join(below[:3])}?"
    there = f"{reached} holds" if reached else "its top-level keys are"
    # A node built from a `_target_` takes no other key (src/config/schema.py); a plain node takes new keys.
    addable = "_target_" not in node and not key.startswith("hydra.")
    return f"{there} {shorten(', '.join(names) or 'nothing', 160)}" + (
        f" (+{key}=VALUE adds a new key)." if addable else ".")


def _paths(node: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(node, Mapping):
        for k, v in node.items():
            out.append(f"{prefix}{k}")
            out += _paths(v, f"{prefix}{k}.")
    return out

