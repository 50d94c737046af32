"""Each ratio with an interval from the run's own interleaved rounds, and the three verdicts of a target.

A round times every backend once, side by side (:mod:`.timing`), so the rounds are the paired units of
the run: resampling whole rounds keeps each round's numerator and denominator together, and whatever
slowed a round (another process, a frequency step) slows both. :func:`bootstrap` resamples the kept
rounds with replacement, takes each backend's median over the timed calls of the resampled rounds, and
evaluates the ratio on those medians; the interval holds the central :data:`CONFIDENCE` of the
resampled ratios. The point value is the ratio of the medians over all kept rounds, the number the
tables print.

A target ``ratio <= limit`` is :data:`PASS` when the whole interval meets it, :data:`FAIL` when the whole
interval misses it and :data:`NOISE` (``within noise``) when the interval straddles the limit: the run
could not tell, and more rounds would (:func:`rounds_to_decide` estimates how many).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
"""Fixed, so that the same rounds always give the same interval (a run's JSON re-reports identically)."""

PASS, FAIL, NOISE = "PASS", "FAIL", "within noise"

Round = Mapping[str, Sequence[float]]
"""One round: each backend's timed calls, in seconds (the same number of calls for a backend in every round)."""

RatioFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]
"""A ratio of backend medians, written with array arithmetic so that it evaluates all resamples at once;
NaN where it is undefined (a difference in its denominator that came out non-positive). An undefined
value gives the interval (−inf, inf), within noise for any limit."""


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def text(self, digits: int = 2) -> str:
        return f"{self.value:.{digits}f} ({self.low:.{digits}f}–{self.high:.{digits}f})"


def bootstrap(rounds: Sequence[Round], ratio: RatioFn, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
              seed: int = SEED) -> Estimate:
    """``ratio`` of the backends' medians over ``rounds`` and its interval, resampling whole rounds."""
    if not rounds:
        raise ValueError("no rounds to estimate from")
    names = list(rounds[0])
    calls = {name: np.asarray([r[name] for r in rounds], dtype=float) for name in names}  # [rounds, calls]
    value = float(ratio({name: np.median(a) for name, a in calls.items()}))
    if math.isnan(value):
        return Estimate(value, -math.inf, math.inf)
    picks = np.random.default_rng(seed).integers(0, len(rounds), size=(resamples, len(rounds)))
    medians = {name: np.median(a[picks].reshape(resamples, -1), axis=1) for name, a in calls.items()}
    resampled = np.asarray(ratio(medians), dtype=float)
    resampled[np.isnan(resampled)] = np.inf  # a resample where the ratio is undefined bounds nothing from above
    # The nearest resamples outward (no interpolation, which an infinite resample would turn into NaN).
    low = np.quantile(resampled, (1 - confidence) / 2, method="lower")
    high = np.quantile(resampled, (1 + confidence) / 2, method="higher")
    return Estimate(value, min(float(low), value), max(float(high), value))


def verdict(estimate: Estimate, limit: float) -> str:
    """:data:`PASS`, :data:`FAIL` or :data:`NOISE` for the target ``ratio <= limit``."""
    if estimate.high <= limit:
        return PASS
    if estimate.low > limit:
        return FAIL
    return NOISE


def rounds_to_decide(estimate: Estimate, limit: float, rounds: int) -> int | None:
    """About how many rounds would shrink the interval off ``limit`` (its width falls as 1/√rounds);
    ``None`` where the value sits on the limit or the interval is unbounded, and no estimate can be made."""
    margin = abs(estimate.value - limit)
    half = (estimate.high - estimate.value) if estimate.value <= limit else (estimate.value - estimate.low)
    if not math.isfinite(half) or margin <= 1e-3 * abs(limit):
        return None
    return max(rounds + 1, math.ceil(rounds * (half / margin) ** 2 - 1e-9))
