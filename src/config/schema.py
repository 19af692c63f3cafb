"""Typed configs that fail early, with the code as the schema.

Every config node with a `_target_` is checked against the signature of the class or function it
names: a key the target does not take (a typo) and a value of the wrong type are rejected with one
sentence naming the key, the bad value and what is allowed, before any data is loaded. Ranges
(a positive learning rate, a fraction in (0, 1)) are checked by the constructors themselves, which
also run before any data is loaded.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from hydra.utils import get_object

from src.builders import resolve_precision
from src.config.names import BUILT_GROUPS, DATA_OWN_KEYS, MODEL_OWN_KEYS, OPTIMIZER_OWN_KEYS, SCHEDULER_OWN_KEYS
from src.errors import UserError

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
# Keys read by the project's own code rather than passed to the target (see src/config/names.py).
OWN_KEYS = {"scheduler": set(SCHEDULER_OWN_KEYS), "optimizer": set(OPTIMIZER_OWN_KEYS), "data": set(DATA_OWN_KEYS),
            "model": set(MODEL_OWN_KEYS)}  # (checked by src/data/imbalance.py, src/models/imbalance.py)
_MISSING = object()


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Check every `_target_` node of the run's groups (a plain, resolved config), as it will be built."""
    trainer = cfg.get("trainer")
    if isinstance(trainer, Mapping) and trainer.get("precision") == "auto":  # the template's own value
        precision = resolve_precision(trainer.get("accelerator", "auto"), "auto")
        cfg = {**cfg, "trainer": {**trainer, "precision": precision}}
    for group in BUILT_GROUPS:
        node = cfg.get(group)
        if node:
            _walk(node, group, OWN_KEYS.get(group, set()))


def _walk(node: Any, path: str, own_keys: set[str]) -> None:
    if isinstance(node, Mapping):
        if "_target_" in node:
            _check_node(node, path, own_keys)
        for key, value in node.items():
            if isinstance(value, (Mapping, list)):
                _walk(value, f"{path}.{key}", set())
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]", set())


def _import_target(target_path: str) -> Any:
    """The class or function a `_target_` names. A name that does not exist is a spelling mistake in the
    config; a missing package that its module imports is a missing install; any other failure while
    importing its module is a fault in that code and keeps its own traceback."""
    try:
        return get_object(target_path)
    except (ImportError, ValueError) as exc:  # what Hydra's locate raises, the import's own failure as cause
        cause, parts = exc.__cause__, target_path.split(".")
        missing = cause.name if isinstance(cause, ModuleNotFoundError) else None
        misspelt = (isinstance(exc, ValueError)  # not a dotted name
                    or (isinstance(cause, AttributeError) and cause.name in parts)  # no such name in the module
                    or bool(missing and f"{target_path}.".startswith(f"{missing}.")))  # no such module
        if misspelt:
            raise UserError(f"_target_ {target_path} does not exist; check the spelling in the config.") from exc
        if missing:
            raise UserError(f"_target_ {target_path} imports the module {missing!r}, which is not installed; "
                            "install the package that provides it, or choose another target.") from exc
        raise  # the module's own fault: its traceback follows the import error's


@cache
def _parameters(target_path: str) -> tuple[dict[str, tuple[Any, Any]], bool]:
    """({name: (annotation, default)}, takes arbitrary keywords?) of a target, following **kwargs
    through the base classes' constructors."""
    target = _import_target(target_path)
    functions = [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if inspect.isclass(target) else [target]
    params: dict[str, tuple[Any, Any]] = {}
    for function in functions:
        try:
            signature = inspect.signature(function)
            hints = typing.get_type_hints(function)
        except (TypeError, ValueError, NameError):
            return params, True  # cannot be inspected: accept what it gets
        takes_kwargs = False
        for name, p in signature.parameters.items():
            if name == "self" or p.kind is p.VAR_POSITIONAL:
                continue
            if p.kind is p.VAR_KEYWORD:
                takes_kwargs = True
                continue
            default = _MISSING if p.default is p.empty else p.default
            params.setdefault(name, (hints.get(name, Any), default))
        if not takes_kwargs:
            return params, False
    return params, True


def _check_node(node: Mapping[str, Any], path: str, own_keys: set[str]) -> None:
    target = str(node["_target_"])
    params, open_ended = _parameters(target)
    for key, value in node.items():
        if key in HYDRA_KEYS or key in own_keys:
            continue
        if key not in params:
            if open_ended:
                continue
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"did you mean {path}.{close[0]}?" if close else f"it takes: {', '.join(sorted(params))}."
            raise UserError(f"{path}.{key} is not a setting of {target}; {hint}")
        annotation, default = params[key]
        if annotation is Any and default is not _MISSING and default is not None:
            annotation = type(default)
        if not _matches(value, annotation):
            raise UserError(f"{path}.{key}={value!r} has the wrong type: {target} expects {_describe(annotation)}.")


def _matches(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    container = origin or annotation
    if container in (list, tuple, Sequence, typing.Sequence) or (
            inspect.isclass(container) and issubclass(container, Sequence) and container is not str):
        return isinstance(value, (list, tuple))
    if container in (dict, Mapping) or (inspect.isclass(container) and issubclass(container, Mapping)):
        return isinstance(value, Mapping)
    return True  # a class the config cannot express (a device, a callable): nothing to check


def _describe(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " or ".join(dict.fromkeys(_describe(a) for a in args))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if annotation in names:
        return names[annotation]
    container = origin or annotation
    if inspect.isclass(container) and issubclass(container, Mapping):
        return "a mapping"
    if inspect.isclass(container) and issubclass(container, Sequence):
        return "a list"
    return getattr(annotation, "__name__", str(annotation))
