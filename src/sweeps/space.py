"""A search space written as Hydra sweep expressions, read into Optuna distributions.

    optimizer.lr: tag(log, interval(0.0001, 0.1))     # a float, sampled on a log scale
    optimizer.weight_decay: interval(0.0, 0.001)      # a float, uniformly
    data.batch_size: choice(64, 128, 256)             # one of the values (lists too: choice([64], [128, 64]))
    model.net.depth: range(2, 8, 2)                   # 2, 4 or 6 (Hydra's range: the stop is left out)
    trainer.max_epochs: 5                             # not searched: passed to every trial as it is

A value that is not a sweep expression is passed to every trial as an override.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.errors import HydraException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from src.errors import UserError

SYNTAX = "interval(low, high), tag(log, interval(low, high)), choice(a, b, ...) or range(start, stop, step)"


def parse_override(text: str, where: str) -> Override:
    try:
        return OverridesParser.create().parse_override(text)
    except HydraException as exc:
        reason = str(exc).splitlines()[0]
        raise UserError(f"{where}: cannot read '{text}' ({reason}); write a value or a search expression: "
                        f"{SYNTAX}.") from None


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep expression."""
    value = override.value()
    if override.is_interval_sweep():
        return FloatDistribution(float(value.start), float(value.end), log="log" in value.tags)
    if override.is_range_sweep() and not value.shuffle:
        values = list(override.sweep_iterator(transformer=Transformer.encode))
        if all(isinstance(v, int) for v in values) and len(values) > 1:
            return IntDistribution(values[0], values[-1], step=values[1] - values[0])
        return CategoricalDistribution(values)
    return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))


def flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{a: {b: expr}}` (as `+hydra.sweeper.params.a.b=expr` writes it) as `{"a.b": expr}`."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]
                 ) -> tuple[dict[str, BaseDistribution], list[str]]:
    """({name: distribution} to search, overrides passed to every trial as they are) from the sweeper's
    `params` and the command's own overrides (a sweep expression there is searched too)."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    entries = [(f"hydra.sweeper.params.{k}", f"{k}={v}") for k, v in flat(params or {}).items()]
    entries += [("the command line", a) for a in arguments]
    for where, text in entries:
        override = parse_override(text, where)
        name = override.get_key_element()
        space.pop(name, None), fixed.pop(name, None)  # the command line wins over the config
        if override.is_sweep_override():
            space[name] = distribution(override)
        else:
            fixed[name] = text
    return space, list(fixed.values())


def trial_overrides(params: Mapping[str, Any]) -> list[str]:
    """`name=value` overrides of the values Optuna chose for a trial (`trial.params`)."""
    return [f"{name}={value}" for name, value in params.items()]


def suggest(trial: optuna.trial.Trial, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """Draw `trial`'s value of each parameter of `space` through the trial's suggest API (a queued trial's
    own values are kept)."""
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution):
            trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)
        else:
            trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.params
