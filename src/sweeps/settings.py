"""The schema of `hydra.sweeper` for the project's Optuna sweeper (conf/hydra/sweeper/optuna.yaml): the
settings it takes, and for `pruner_args` the arguments of the chosen pruner's constructor (read from
Optuna's own signature). A setting it does not take (`+hydra.sweeper.n_trial=2`) stops the command with
one sentence naming the nearest one, instead of a search that silently ignores it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

# Every key of conf/hydra/sweeper/optuna.yaml (its comments say what each does).
SETTINGS = ("study_name", "storage", "n_trials", "n_jobs", "direction", "metrics", "sampler", "seed", "pruner",
            "pruner_args", "heartbeat_s", "max_failed_trials", "params")
HYDRA_KEYS = ("_target_", "_recursive_")
# hydra.sweeper.pruner -> the optuna.pruners class it builds.
PRUNER_CLASSES = {"median": "MedianPruner", "percentile": "PercentilePruner",
                  "successive_halving": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner",
                  "none": "NopPruner"}


def pruner_arguments(pruner: str) -> list[str]:
    """The keyword arguments of the pruner's constructor."""
    import optuna.pruners  # here: only a search that sets pruner_args needs Optuna

    init = getattr(optuna.pruners, PRUNER_CLASSES[pruner]).__init__
    return [n for n, p in inspect.signature(init).parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def setting_hint(key: str) -> str:
    """`did you mean hydra.sweeper.n_trials?` for a misspelt top-level setting `key`, else the settings."""
    close = difflib.get_close_matches(key, SETTINGS, n=1)
    return f"did you mean hydra.sweeper.{close[0]}?" if close else f"it takes {', '.join(SETTINGS)}."


def pruner_argument_problem(pruner: str, name: str) -> str | None:
    """Why `hydra.sweeper.pruner_args.<name>` does not fit `pruner` (None: it is one of its arguments)."""
    if pruner not in PRUNER_CLASSES or pruner == "none":
        return None  # an unknown pruner is named by the search; pruner=none takes no arguments and ignores them
    arguments = pruner_arguments(pruner)
    if name in arguments:
        return None
    close = difflib.get_close_matches(name, arguments, n=1)
    hint = f"did you mean hydra.sweeper.pruner_args.{close[0]}?" if close else \
        f"it takes {', '.join(arguments) or 'none'}."
    return (f"hydra.sweeper.pruner_args.{name} is not an argument of the {pruner} pruner "
            f"(optuna.pruners.{PRUNER_CLASSES[pruner]}); {hint}")


def check_settings(settings: Mapping[str, Any]) -> None:
    """Raise a UserError for a key of `hydra.sweeper` the sweeper does not take, and for a pruner argument
    the chosen pruner does not take."""
    # Imported here: Hydra imports every plugin module at each start, before the project's own modules are needed.
    from src.errors import UserError, shorten

    for key in settings:
        if key not in SETTINGS and key not in HYDRA_KEYS:
            raise UserError(f"hydra.sweeper.{key} is not a setting of the Optuna sweeper; {setting_hint(str(key))}")
    pruner = str(settings.get("pruner") or "none")
    pruner_args = settings.get("pruner_args") or {}
    if not isinstance(pruner_args, Mapping):
        raise UserError(f"hydra.sweeper.pruner_args={shorten(pruner_args)} is not a mapping; write "
                        "{NAME: VALUE, ...} or +hydra.sweeper.pruner_args.NAME=VALUE.")
    for name in pruner_args:
        problem = pruner_argument_problem(pruner, str(name))
        if problem:
            raise UserError(f"{problem} (another pruner than the config's: drop its arguments with "
                            "'~hydra.sweeper.pruner_args')")
