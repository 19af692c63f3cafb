"""A config-group choice on the command line that names no file in `conf/` stops before Hydra composes
anything, in one sentence with the nearest names; Hydra's own report of it spans several lines and
exits with code 1."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from src.config.names import CONF
from src.errors import UserError


def _options(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def check_choices(args: Sequence[str], conf: Path = CONF) -> None:
    """Raise a UserError for `group=name` (also `+group=`, `group@package=`, a sweep `a,b` or a list `[a,b]`)
    where conf/<group>/ exists but holds no <name>.yaml. Other arguments are left to Hydra."""
    for arg in args:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+~").split("@")[0]
        folder = conf / group
        if not sep or arg.startswith("-") or group.startswith("hydra") or "." in group or not folder.is_dir() \
                or "(" in value or "$" in value:
            continue
        for name in (v.strip() for v in value.strip("[]").split(",")):
            if not name or name == "null" or (folder / f"{name}.yaml").is_file():
                continue
            options = _options(folder)
            close = difflib.get_close_matches(name, options, n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise UserError(f"{group}={name} names no config in conf/{group}/; {hint}"
                            f"the choices are {', '.join(options)}.")
