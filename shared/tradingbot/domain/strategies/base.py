"""Strategy contract and registry.

A strategy is a named, parameterised, pure function from candles (through a memoised
:class:`~tradingbot.domain.indicators.Indicators`) to four aligned boolean arrays. The signal at bar t may
use data up to bar t's close only; the backtester acts on it at bar t+1's open.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from tradingbot.domain.indicators import Indicators
from tradingbot.errors import PermanentError


class StrategyError(PermanentError, ValueError):
    """Unknown strategy, unknown parameter or a value outside its declared range."""


class Signals(NamedTuple):
    long_entry: np.ndarray
    long_exit: np.ndarray
    short_entry: np.ndarray
    short_exit: np.ndarray


@dataclass(frozen=True)
class Param:
    name: str
    kind: Literal["int", "float"]
    default: float
    low: float
    high: float
    step: float
    help: str = ""

    def parse(self, raw: str | float | int) -> int | float:
        try:
            value: int | float = float(raw)
        except (TypeError, ValueError):
            raise StrategyError(f"parameter {self.name}: {raw!r} is not a number") from None
        if self.kind == "int":
            if value != int(value):
                raise StrategyError(f"parameter {self.name}: {raw!r} must be an integer")
            value = int(value)
        if not self.low <= value <= self.high:
            raise StrategyError(f"parameter {self.name}: {value} outside its range [{self.low}, {self.high}]")
        return value

    def values(self) -> list[int | float]:
        """Every value of the declared optimisation range."""
        n = round((self.high - self.low) / self.step) + 1
        vals = [self.low + i * self.step for i in range(n)]
        if self.kind == "int":
            return [round(v) for v in vals]
        return [round(v, 10) for v in vals]


Params = dict[str, int | float]
SignalFn = Callable[..., Signals]


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    params: tuple[Param, ...]
    fn: SignalFn
    # combinations that make no sense (fast >= slow ...) are rejected / skipped in grids
    constraint: Callable[[Params], str | None] | None = field(default=None)

    @property
    def defaults(self) -> Params:
        return {p.name: (int(p.default) if p.kind == "int" else float(p.default)) for p in self.params}

    def resolve(self, overrides: Mapping[str, str | float | int] | None = None) -> Params:
        """Defaults overlaid with ``overrides``, every value checked against its declaration."""
        params = self.defaults
        by_name = {p.name: p for p in self.params}
        for key, raw in (overrides or {}).items():
            if key not in by_name:
                valid = ", ".join(by_name) or "(none)"
                raise StrategyError(f"strategy {self.name} has no parameter {key!r}; valid: {valid}")
            params[key] = by_name[key].parse(raw)
        if self.constraint is not None:
            problem = self.constraint(params)
            if problem:
                raise StrategyError(f"strategy {self.name}: {problem}")
        return params

    def signals(self, data: pd.DataFrame | Indicators, **overrides: str | float | int) -> Signals:
        ind = data if isinstance(data, Indicators) else Indicators(data)
        params = self.resolve(overrides)
        sig = self.fn(ind, **params)
        n = len(ind)
        for name, arr in zip(Signals._fields, sig, strict=True):
            if arr.shape != (n,) or arr.dtype != np.bool_:
                raise AssertionError(f"{self.name}.{name}: expected bool[{n}], got {arr.dtype}{arr.shape}")
        return sig

    def grid(self, ranges: Mapping[str, list[int | float]] | None = None) -> Iterator[Params]:
        """All valid combinations: declared ranges, or the given value lists per parameter."""
        names = [p.name for p in self.params]
        axes = [list((ranges or {}).get(p.name, p.values())) for p in self.params]
        for combo in itertools.product(*axes):
            candidate = dict(zip(names, combo, strict=True))
            if self.constraint is None or not self.constraint(candidate):
                yield candidate


REGISTRY: dict[str, Strategy] = {}


def register(
    name: str,
    params: list[Param],
    description: str,
    constraint: Callable[[Params], str | None] | None = None,
) -> Callable[[SignalFn], SignalFn]:
    """Decorator that adds a signal function to the registry under ``name``."""

    def wrap(fn: SignalFn) -> SignalFn:
        if name in REGISTRY:
            raise ValueError(f"strategy {name!r} registered twice")
        REGISTRY[name] = Strategy(name, description, tuple(params), fn, constraint)
        return fn

    return wrap


def get_strategy(name: str) -> Strategy:
    try:
        return REGISTRY[name]
    except KeyError:
        raise StrategyError(f"unknown strategy {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None


def no_nan(*arrays: np.ndarray) -> np.ndarray:
    """Mask of bars where every given indicator is defined (warm-up over)."""
    ok = np.ones(arrays[0].shape, dtype=np.bool_)
    for a in arrays:
        ok &= ~np.isnan(a)
    return ok
