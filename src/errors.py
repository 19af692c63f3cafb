"""User errors: problems with what the user asked for, reported as one sentence, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from omegaconf.errors import MissingMandatoryValue

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """Bad input (config value, path, shape): the message is one sentence that says what to do."""


def require(condition: bool, message: str) -> None:
    """Raise `UserError(message)` unless `condition` holds."""
    if not condition:
        raise UserError(message)


def shorten(text: object, limit: int = 80) -> str:
    """`text` as one line of at most `limit` characters (its start, then "..."): a value quoted inside an error
    message (a whole config, a long list) shortened to what names it, so the message stays one readable line."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:max(limit - 3, 1)].rstrip(" ,") + "..."


def explain(exc: BaseException) -> UserError | None:
    """The `UserError` behind `exc` (it may be wrapped by Hydra's instantiate or OmegaConf), if any."""
    seen = exc
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        if isinstance(seen, MissingMandatoryValue):
            key = getattr(seen, "full_key", "") or "a value"
            return UserError(f"{key} is required: pass it on the command line, e.g. {key}=...")
        seen = seen.__cause__ or seen.__context__
    return None


def exits_on_user_error(fn: F) -> F:
    """Wrap an entry point: a `UserError` (however deeply wrapped) ends the process with one line, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            err = explain(exc)
            if err is None:
                raise
            exit_with_error(str(err))

    return wrapper  # type: ignore[return-value]


def exit_with_error(message: str) -> NoReturn:
    """End the process as bad input does: one `error:` line on stderr, exit code 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)
