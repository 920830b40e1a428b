"""The statistics every study reports: spread over seeds and paired intervals.

One convention, used by the Evaluator's studies, the example scripts and the results
pages: a score over `n` seeds is given as mean ± *sample* standard deviation
(`ddof=1`) with `n` stated; a difference between two arms trained on the same seeds
is the mean of the per-seed differences with a Student-t 95 % interval, and a claim
follows the interval: "A beats B" only when the whole interval is above zero,
"level" when it spans zero.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class SeedSpread:
    """Mean and sample standard deviation of one score over seeds.

    Examples:
        >>> from pretrainlib.evaluation.statistics import spread
        >>> s = spread([0.70, 0.74, 0.72])
        >>> round(s.mean, 3), round(s.std, 3), s.n
        (0.72, 0.02, 3)
        >>> s.format(3)
        '0.720 ± 0.020'
    """

    mean: float
    std: float
    n: int

    def format(self, digits: int = 3) -> str:
        """`"mean ± std"` with `digits` decimals (just the mean for one seed)."""
        if self.n < 2:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n": self.n}


def spread(values: Sequence[float]) -> SeedSpread:
    """Mean ± sample standard deviation (ddof=1; 0.0 for a single value)."""
    xs = np.asarray(values, dtype="float64").ravel()
    if xs.size == 0:
        raise ValueError("`values` is empty: pass one score per seed.")
    std = float(xs.std(ddof=1)) if xs.size > 1 else 0.0
    return SeedSpread(float(xs.mean()), std, int(xs.size))


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """The difference `a - b` of two arms scored on the same seeds.

    Attributes:
        mean: mean of the per-seed differences.
        low: the lower end of the `confidence` Student-t interval of that mean (equal
            to `mean` for one seed, which gives no interval).
        high: its upper end.
        n: number of paired seeds.
        differences: the per-seed differences, in seed order.
        confidence: the interval's level.

    Examples:
        >>> from pretrainlib.evaluation.statistics import paired_difference
        >>> d = paired_difference([0.78, 0.77, 0.79], [0.57, 0.58, 0.56])
        >>> d.verdict("pretrained", "scratch")
        'pretrained beats scratch'
        >>> d.format(3)
        '+0.210 [+0.160, +0.260]'
    """

    mean: float
    low: float
    high: float
    n: int
    differences: tuple
    confidence: float = 0.95

    @property
    def has_interval(self) -> bool:
        return self.n >= 2

    def verdict(self, a: str = "A", b: str = "B") -> str:
        """`"a beats b"`, `"b beats a"` or `"a and b are level"` by the interval;
        `"one seed: a - b = ..."` when there is no interval."""
        if not self.has_interval:
            return f"one seed: {a} − {b} = {self.mean:+.3f}"
        if self.low > 0:
            return f"{a} beats {b}"
        if self.high < 0:
            return f"{b} beats {a}"
        return f"{a} and {b} are level"

    def format(self, digits: int = 3) -> str:
        """`"+mean [low, high]"` (just `"+mean"` for one seed)."""
        if not self.has_interval:
            return f"{self.mean:+.{digits}f} (one seed)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"

    def to_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n,
                "differences": list(self.differences), "confidence": self.confidence}


def paired_difference(a: Sequence[float], b: Sequence[float],
                      confidence: float = 0.95) -> PairedDifference:
    """Mean per-seed difference `a - b` with its Student-t interval over seeds.

    Args:
        a: one score per seed for the first arm.
        b: one score per seed for the second arm, in the same seed order.
        confidence: the interval's level, in (0, 1).
    """
    xa = np.asarray(a, dtype="float64").ravel()
    xb = np.asarray(b, dtype="float64").ravel()
    if xa.size != xb.size or xa.size == 0:
        raise ValueError(f"`a` and `b` need one score per seed each, in the same order; "
                         f"got {xa.size} and {xb.size}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), e.g. 0.95; got {confidence!r}.")
    d = xa - xb
    mean = float(d.mean())
    if d.size < 2:
        return PairedDifference(mean, mean, mean, 1, tuple(d.tolist()), confidence)
    half = t_quantile(0.5 + confidence / 2, d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return PairedDifference(mean, mean - half, mean + half, int(d.size), tuple(d.tolist()),
                            confidence)


def t_quantile(p: float, df: int) -> float:
    """The `p` quantile of Student's t with `df` degrees of freedom.

    Computed here, to 1e-9, so the library needs no SciPy: the CDF by Simpson's rule
    on the density (after the substitution x = tan θ, which makes the range finite),
    then bisection.
    """
    if df < 1:
        raise ValueError(f"`df` must be at least 1; got {df}.")
    if not 0.0 < p < 1.0:
        raise ValueError(f"`p` must be in (0, 1); got {p}.")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def upper_tail(x: float) -> float:
        # P(T > x) = ∫_{atan x}^{π/2} f(tan θ) sec²θ dθ, a smooth finite integrand.
        theta = np.linspace(math.atan(x), math.pi / 2, 2001)
        t = np.tan(theta[:-1])
        integrand = np.exp(log_norm - (df + 1) / 2 * np.log1p(t * t / df)) / np.cos(theta[:-1]) ** 2
        # At θ = π/2 the integrand tends to 0 for df >= 1 (it decays as cos^(df-1)θ).
        end = 0.0 if df > 1 else math.exp(log_norm) * df
        values = np.append(integrand, end)
        h = (theta[-1] - theta[0]) / (len(theta) - 1)
        return float(h / 3 * (values[0] + values[-1] + 4 * values[1:-1:2].sum()
                              + 2 * values[2:-1:2].sum()))

    lo, hi = 0.0, 1.0
    while upper_tail(hi) > 1.0 - p:
        hi *= 2.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if upper_tail(mid) > 1.0 - p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return (lo + hi) / 2
