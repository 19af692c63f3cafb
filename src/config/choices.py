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


GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def check_overrides(args: Sequence[str]) -> None:
    """Raise a UserError for a `key=value` argument that Hydra's override grammar cannot read."""
    parser = OverridesParser.create()
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as exc:
            raise UserError(f"cannot read the override {arg}: {_reason(exc.message)}; correct it "
                            f"(functions and quoting: {GRAMMAR}).") from None


def _reason(message: str) -> str:
    """Hydra's multi-line parse report as one clause: the parser's complaint and the known functions."""
    parts = []
    for line in message.splitlines():
        if not line or line.startswith(("Error parsing override", "See http")):
            continue
        if line.startswith("HydraException while evaluating"):
            line = line.split("': ", 1)[-1]
        if line.startswith("Available: "):
            line = f"(known: {line.removeprefix('Available: ').replace(',', ', ')})"
        parts.append(line)
    return " ".join(parts) or message


def check_command_line(args: Sequence[str]) -> None:
    check_overrides(args)
    check_choices(args)
