"""Checks of a command line before Hydra composes anything: an override Hydra's grammar cannot read (a
misspelt sweep function, an unclosed bracket) and a config-group choice that names no file in `conf/`
stop in one sentence (exit code 2); Hydra's own reports of them span several lines and exit with 1."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException

from src.config.names import CONF
from src.errors import UserError


def _options(folder: Path) -> list[str]:
    """The group's choices: its config files, without the shared ones under base/ that choices build on."""
    names = (p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))
    return sorted(name for name in names if not name.startswith("base/"))


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


def check_overrides(args: Sequence[str]) -> None:
    """Raise a UserError for a `key=value` argument that Hydra's override grammar cannot read."""
    parser = OverridesParser.create()
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as exc:
            from src.config.mistakes import unreadable_override  # (on a refusal only)

            raise unreadable_override(arg, exc.message) from None


MODES = {"-m": "-m", "--multirun": "-m", "-c": "--cfg", "--cfg": "--cfg", "-i": "--info", "--info": "--info",
         "-sc": "--shell-completion", "--shell-completion": "--shell-completion"}


def check_modes(args: Sequence[str]) -> None:
    """Hydra runs in one mode at a time: a sweep (-m), printing the config (--cfg), --info or --shell-completion."""
    modes = list(dict.fromkeys(MODES[a] for a in args if a in MODES))
    if len(modes) > 1:
        raise UserError(f"{' and '.join(modes)} cannot be combined; pass one of them (--cfg job without -m prints "
                        "the config of one job).")


def check_command_line(args: Sequence[str], config_name: str | None = None) -> None:
    """Every entry point's check of its command line before Hydra runs it: overrides Hydra cannot read,
    group choices with no file, then the overrides composed (src/config/composition.py) with `config_name`
    (default: the running entry point's config)."""
    check_modes(args)
    check_overrides(args)
    check_choices(args)
    if any(not a.startswith("-") and ("=" in a or a.startswith("~")) for a in args):  # overrides to compose
        from src.config.composition import check_composition

        check_composition(args, config_name)
