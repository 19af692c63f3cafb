"""What Hydra's refusal of a command line means, in one sentence naming the nearest key (loaded only when
src/config/composition.py's composition of the overrides failed): a misspelt key of any group, typed with or
without `+` or `~`, a group the entry point does not choose, a setting the project's Optuna sweeper does not
take (its schema: src/sweeps/settings.py)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from src.config.names import SWEEPER_TARGET
from src.errors import UserError, shorten

_COULD_NOT = (
    ("override", re.compile(r"Could not override '([^']+)'")),
    ("delete", re.compile(r"Could not delete from config\. '([^']+)' does not exist")),
    ("append", re.compile(r"Could not append to config\. An item is already at '([^']+)'")),
)


def explain_composition_error(exc: Exception, config_name: str, texts: list[str | None],
                              compose_overrides: Callable[..., tuple[DictConfig | None, Exception | None]],
                              ) -> UserError | None:
    """The UserError for Hydra's composition error `exc` (`compose_overrides` composes the config again without
    the refused override); None where it is not one of the known kinds."""
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
    cfg = compose_overrides(config_name, [t for t in texts if t is not None and _key_of(t) != key])[0]
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
    from src.sweeps.settings import SETTINGS, pruner_argument_problem, setting_hint

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


GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def unreadable_override(arg: str, message: str) -> UserError:
    """The one sentence for an override Hydra's grammar cannot read, with the corrected form where there is one."""
    fix = corrected_override(arg, message)
    todo = f"write {fix}." if fix else f"correct it (functions and quoting: {GRAMMAR})."
    return UserError(f"cannot read the override {shorten(arg, 100)}: {parse_reason(message)}; {todo}")


def corrected_override(arg: str, message: str) -> str | None:
    """`optimizer.lr=interval(0.001,0.1)` for `optimizer.lr=intervl(0.001,0.1)`: a misspelt function corrected,
    written as Hydra accepts it (a search of hydra.sweeper.params.<key> is a search of <key> itself)."""
    unknown = re.search(r"Unknown function '(\w+)'", message)
    known = re.search(r"Available: ([\w,]+)", message)
    if not unknown or not known:
        return None
    close = difflib.get_close_matches(unknown.group(1), known.group(1).split(","), n=1)
    if not close:
        return None
    key, value = arg.split("=", 1)
    key = key.lstrip("+").removeprefix("hydra.sweeper.params.")
    call = re.compile(rf"\b{unknown.group(1)}\(")
    fixed = f"{key}={call.sub(close[0] + '(', value)}"
    try:
        OverridesParser.create().parse_overrides([fixed])
    except OverrideParseException:
        return None  # something else is wrong too: the parser's reason stands alone
    return shorten(fixed, 100)


def parse_reason(message: str) -> str:
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
