"""The sweeps of a command line (`a=1,2`, `interval(...)`, `range(...)`), checked before Hydra runs it: each is
composed with one of its values (the keys are what is checked; each job composes its own values later), Hydra's
own hydra.* keys are swept by nothing, and a sweep runs with -m."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.override_parser.types import Override
from omegaconf import DictConfig

from src.config.names import PARAMS
from src.errors import UserError, shorten


def refuse_hydra_sweeps(sweeps: list[tuple[Override, str]]) -> None:
    for override, text in sweeps:
        refuse_hydra_sweep(override, text)


def refuse_hydra_sweep(override: Override, text: str) -> None:
    """Hydra sweeps no `hydra.*` key; a search expression for the sweeper's params is a search of that key."""
    if not (override.is_sweep_override() and override.is_hydra_override()):
        return
    key = override.get_key_element().lstrip("+~")
    if key.startswith(PARAMS):
        searched = f"{key.removeprefix(PARAMS)}={text.split('=', 1)[1]}"
        raise UserError(f"{shorten(text)}: Hydra takes no search expression for its own hydra.* keys; search "
                        f"{key.removeprefix(PARAMS)} with {shorten(searched)} (with -m or an hparams_search config).")
    raise UserError(f"{shorten(text)}: Hydra cannot sweep its own hydra.* settings; give {key} one value.")


def require_multirun(args: Sequence[str], cfg: DictConfig, sweeps: list[tuple[Override, str]]) -> None:
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


def one_value(override: Override, text: str) -> str | None:
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
