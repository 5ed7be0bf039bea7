"""Statistics of a search: the deflated Sharpe ratio (the multiple-testing guard), walk-forward
efficiency and parameter stability across folds. Pure numpy + the standard library's NormalDist.

The deflated Sharpe ratio is Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe
Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality", *The Journal of
Portfolio Management* 40 (5), 94-107 (https://ssrn.com/abstract=2460551):

    SR0 = sqrt(V[SR_n]) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))     (expected max of N trials)
    DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR^2))

with ``g`` the Euler-Mascheroni constant, ``Z`` the standard normal CDF, every Sharpe ratio per
observation (not annualised), ``V[SR_n]`` the variance of the N trials' Sharpe ratios, ``T`` the
number of returns, ``skew`` / ``kurt`` the selected strategy's return skewness and (non-excess)
kurtosis. DSR is the probability that the true Sharpe ratio is above what the best of N worthless
trials would show by luck alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def expected_max_sharpe(trial_sharpes: Sequence[float] | np.ndarray, n_trials: int | None = None) -> float:
    """SR0: the Sharpe ratio (per observation) the best of ``n_trials`` (default: as many as
    ``trial_sharpes``) trials with no skill is expected to reach, given the trials' spread. One
    trial: 0 (nothing was selected)."""
    sr = np.asarray(trial_sharpes, dtype=np.float64)
    sr = sr[np.isfinite(sr)]
    n = n_trials if n_trials is not None else len(sr)
    if n < 2 or len(sr) < 2:
        return 0.0
    spread = float(np.std(sr, ddof=1))
    if spread == 0.0:
        return 0.0
    return spread * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n) + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n * math.e)))


def sharpe_per_bar(returns: np.ndarray) -> float:
    """Mean over standard deviation of per-bar returns (0 for a flat series)."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return 0.0
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r)) / sd if sd > 1e-15 else 0.0


def deflated_sharpe(
    returns: np.ndarray, trial_sharpes: Sequence[float] | np.ndarray, n_trials: int | None = None
) -> float | None:
    """DSR of the selected strategy's per-bar ``returns`` among trials whose per-bar Sharpe ratios
    are ``trial_sharpes``; ``None`` when it is undefined (fewer than 3 returns, or a flat series)."""
    r = np.asarray(returns, dtype=np.float64)
    t = len(r)
    if t < 3:
        return None
    sd = float(np.std(r))
    if sd <= 1e-15:
        return None
    sr = sharpe_per_bar(r)
    z = (r - r.mean()) / sd
    skew = float(np.mean(z**3))
    kurt = float(np.mean(z**4))
    sr0 = expected_max_sharpe(trial_sharpes, n_trials)
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if denom <= 0:
        return None
    return _N.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom))


def annualised(total_return: float, bars: int, bars_per_year: float) -> float:
    """Linear annualisation (``return x bars_per_year / bars``), as walk-forward efficiency uses it:
    no overflow for a short window that doubled."""
    return total_return * bars_per_year / bars if bars > 0 else 0.0


def walk_forward_efficiency(
    is_returns: Sequence[float], is_bars: Sequence[int], oos_returns: Sequence[float], oos_bars: Sequence[int],
    bars_per_year: float,
) -> float | None:  # fmt: skip
    """Pardo's walk-forward efficiency: the annualised out-of-sample return over the annualised
    in-sample return of the chosen parameters, averaged over folds (each fold annualised on its own
    length). ``None`` when the in-sample figure is not positive: the ratio then says nothing."""
    if not is_returns:
        return None
    is_rate = float(np.mean([annualised(r, b, bars_per_year) for r, b in zip(is_returns, is_bars, strict=True)]))
    oos_rate = float(np.mean([annualised(r, b, bars_per_year) for r, b in zip(oos_returns, oos_bars, strict=True)]))
    if is_rate <= 0:
        return None
    return oos_rate / is_rate


@dataclass(frozen=True)
class Stability:
    """How much the chosen parameters move from fold to fold.

    ``spread[name]``: the standard deviation of the chosen values over the width of the searched
    range (0: the same value in every fold; about 0.5: the extremes alternate). ``modal_share``: the
    share of folds that chose the most common combination. ``score``: 1 - mean spread."""

    spread: dict[str, float]
    modal_share: float
    score: float


def parameter_stability(
    chosen: Sequence[Mapping[str, int | float]], ranges: Mapping[str, Sequence[int | float]]
) -> Stability | None:
    """Stability of the per-fold choices; ``None`` with no fold that chose anything."""
    if not chosen:
        return None
    spread: dict[str, float] = {}
    for name, values in ranges.items():
        width = float(max(values) - min(values))
        picked = np.asarray([float(c[name]) for c in chosen])
        spread[name] = float(np.std(picked)) / width if width > 0 else 0.0
    keys = [tuple(sorted(c.items())) for c in chosen]
    modal = max(keys.count(k) for k in set(keys))
    score = 1.0 - (float(np.mean(list(spread.values()))) if spread else 0.0)
    return Stability(spread, modal / len(chosen), score)
