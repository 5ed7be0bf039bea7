"""A strategy's search space: its declared parameter ranges (``Param.low .. high`` by ``step``), or
value lists that override some of them, with the strategy's constraint applied to every point."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tradingbot.domain.strategies import Params, Strategy, StrategyError, get_strategy
from tradingbot.errors import PermanentError


class OptimiseError(PermanentError, ValueError):
    """Bad optimisation input: an empty or constraint-violating space, a window longer than the
    history, an unknown objective, a promotion without out-of-sample evidence. The message names
    the field and the reason."""


@dataclass(frozen=True)
class Axis:
    """One parameter's candidate values, in order (a genome gene is an index into ``values``)."""

    name: str
    values: tuple[int | float, ...]


@dataclass(frozen=True)
class SearchSpace:
    """The axes of one strategy. ``size`` counts the raw product; :meth:`points` yields only the
    combinations the strategy's constraint accepts (the grid search runs exactly those)."""

    strategy: Strategy
    axes: tuple[Axis, ...]

    @classmethod
    def of(
        cls, strategy: str | Strategy, *, ranges: Mapping[str, Sequence[int | float | str]] | None = None
    ) -> SearchSpace:
        """The declared space of ``strategy``, with ``ranges`` replacing the values of the parameters
        it names (each value parsed and range-checked by the parameter's declaration).

        Raises :class:`OptimiseError` for an unknown parameter, an empty value list, or a space in
        which the strategy's constraint rejects every combination."""
        strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
        by_name = {p.name: p for p in strat.params}
        for key in ranges or {}:
            if key not in by_name:
                raise OptimiseError(
                    f"parameter {key!r}: strategy {strat.name} has no such parameter; valid: {', '.join(by_name)}"
                )
        axes: list[Axis] = []
        for p in strat.params:
            raw = (ranges or {}).get(p.name)
            if raw is None:
                values = list(p.values())
            else:
                if len(raw) == 0:
                    raise OptimiseError(f"parameter {p.name!r}: the value list is empty")
                try:
                    values = [p.parse(v) for v in raw]
                except StrategyError as exc:
                    raise OptimiseError(str(exc)) from None
            axes.append(Axis(p.name, tuple(dict.fromkeys(values))))  # de-duplicated, order kept
        space = cls(strat, tuple(axes))
        if space.size == 0 or next(iter(space.points()), None) is None:
            detail = space.first_violation()
            raise OptimiseError(
                f"strategy {strat.name}: the search space has no valid combination"
                + (f" (every one breaks the constraint, e.g. {detail})" if detail else "")
            )
        return space

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def size(self) -> int:
        """The raw product of the axes' lengths (before the constraint)."""
        return math.prod(len(a.values) for a in self.axes)

    def point(self, genome: Sequence[int]) -> Params:
        """The parameters a genome (one index per axis) stands for."""
        return {a.name: a.values[int(g)] for a, g in zip(self.axes, genome, strict=True)}

    def violation(self, params: Params) -> str | None:
        """Why the strategy's constraint rejects ``params`` (``None``: it is valid)."""
        return self.strategy.constraint(params) if self.strategy.constraint is not None else None

    def points(self) -> list[Params]:
        """Every combination the constraint accepts, in grid order."""
        ranges = {a.name: list(a.values) for a in self.axes}
        return list(self.strategy.grid(ranges))

    def first_violation(self) -> str | None:
        import itertools

        for combo in itertools.product(*(a.values for a in self.axes)):
            problem = self.violation(dict(zip(self.names, combo, strict=True)))
            if problem:
                return problem
        return None
