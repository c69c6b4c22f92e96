"""Per-sample confidence signals from token log-probabilities, and the vote weights built on them.

Pure (no I/O, no global state): the solver feeds a :class:`ConfidenceTracker` the per-token
confidences of every event it receives, the replay engine feeds it recorded ones, and the
benchmark reads the same numbers, so all three judge a sample the same way.

Definitions (k = the number of top log-probabilities the engine reports per token):

* **token confidence** ``C_i = -(1/k) * sum_{j=1..k} log P_i(j)``, the mean negative
  log-probability of the k most likely tokens at position i (DeepConf's definition). A peaked
  distribution (the model is sure) pushes the runners-up far down, so ``C_i`` is large; a flat
  one keeps it near its floor ``log k`` (all k equally likely). Engines compute it; this module
  only averages it.
* **mean confidence** ``C_mean = (1/N) * sum_{i=1..N} C_i`` over all N generated tokens.
* **group confidence** at token t: ``G_t = (1/w) * sum_{i=t-w+1..t} C_i``, the mean over a
  sliding window of the last ``w`` tokens (``window``).
* **lowest group confidence** ``C_low = min_{t >= w} G_t``: the sample's weakest stretch. A
  sample shorter than one window has one partial group, ``C_low = C_mean``.
* **tail confidence** ``C_tail = (1/m) * sum_{i=N-m+1..N} C_i``: the last ``m = tail`` tokens,
  i.e. the stretch that writes the answer (a sample ends at its answer when the solver stops
  on a completed box). Shorter samples: ``C_tail = C_mean``.

Vote weight (:func:`weight_of`): ``u = max(0, 1 - k * exp(-s))`` maps a signal ``s`` to
[0, 1): ``exp(-s)`` is the geometric mean of the top-k probabilities, at most ``1/k``, so ``u``
is 0 when the top k are equally likely and tends to 1 as the model grows sure. It needs no
per-model scale, and its supremum is exactly 1, which is the true largest weight a sample
still running can add (what the ``unbeatable`` early stop must assume). The weight is
``u ** power``: ``power`` sharpens the preference for confident samples.

Why hand-written: the signals are a few running sums; no library offers them streaming.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "SIGNALS",
    "ConfidenceSummary",
    "ConfidenceTracker",
    "is_doomed",
    "percentile",
    "weight_of",
]

SIGNALS = ("mean", "lowest_group", "tail")
"""Names of the per-sample signals, as policy knobs and run-log keys spell them."""

_RESUM_EVERY = 4096
"""Running window sums are recomputed exactly this often (in tokens) so float drift stays tiny."""


@dataclass(frozen=True)
class ConfidenceSummary:
    """The signals of one sample (None when it has no scored token)."""

    tokens: int
    mean: float | None
    lowest_group: float | None
    tail: float | None

    def signal(self, name: str) -> float | None:
        if name not in SIGNALS:
            raise ValueError(f"unknown confidence signal {name!r}; known: {SIGNALS}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, float | int | None]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"tokens": self.tokens, "mean": r(self.mean),
                "lowest_group": r(self.lowest_group), "tail": r(self.tail)}


class ConfidenceTracker:
    """Streaming signals of one sample; ``add`` costs O(1) per token (amortised).

    Keeps the last ``max(window, tail)`` token confidences and two running window sums; the
    lowest group is updated whenever a full window slides by one token.
    """

    __slots__ = ("_count", "_last", "_low", "_since_resum", "_sum_all", "_sum_tail",
                 "_sum_win", "tail", "window")

    def __init__(self, window: int, tail: int) -> None:
        if window < 1 or tail < 1:
            raise ValueError(f"window and tail must be >= 1, got {window}, {tail}")
        self.window = window
        self.tail = tail
        self._last: deque[float] = deque(maxlen=max(window, tail))
        self._count = 0
        self._sum_all = 0.0
        self._sum_win = 0.0
        self._sum_tail = 0.0
        self._low = math.inf
        self._since_resum = 0

    def add(self, confidences: Iterable[float]) -> None:
        """Feed the confidences of newly generated tokens, in order."""
        last, w, m = self._last, self.window, self.tail
        for c in confidences:
            c = float(c)
            if not math.isfinite(c):
                raise ValueError(f"token confidence must be finite, got {c!r}")
            n = len(last)
            if n >= w:
                self._sum_win -= last[n - w]
            if n >= m:
                self._sum_tail -= last[n - m]
            last.append(c)  # drops the oldest once full: it was outside both windows already
            self._sum_win += c
            self._sum_tail += c
            self._sum_all += c
            self._count += 1
            self._since_resum += 1
            if self._since_resum >= _RESUM_EVERY:
                self._resum()
            if self._count >= w:
                self._low = min(self._low, self._sum_win / w)

    def _resum(self) -> None:
        items = list(self._last)
        self._sum_win = math.fsum(items[-self.window:])
        self._sum_tail = math.fsum(items[-self.tail:])
        self._since_resum = 0

    @property
    def tokens(self) -> int:
        return self._count

    @property
    def window_full(self) -> bool:
        return self._count >= self.window

    def mean(self) -> float | None:
        return self._sum_all / self._count if self._count else None

    def group(self) -> float | None:
        """The current group confidence ``G_t`` (None before one full window)."""
        return self._sum_win / self.window if self.window_full else None

    def lowest_group(self) -> float | None:
        return self._low if self.window_full else self.mean()

    def tail_confidence(self) -> float | None:
        return self._sum_tail / self.tail if self._count >= self.tail else self.mean()

    def upper_bound(self, signal: str) -> float:
        """The largest value ``signal`` can still take however the sample continues.

        Only the lowest group is monotone (a minimum never rises once a window is full);
        the others can still go anywhere.
        """
        if signal == "lowest_group" and self.window_full:
            return self._low
        return math.inf

    def summary(self) -> ConfidenceSummary:
        return ConfidenceSummary(self._count, self.mean(), self.lowest_group(),
                                 self.tail_confidence())


def weight_of(signal: float | None, k: int, power: float) -> float:
    """Vote weight ``(max(0, 1 - k * exp(-signal))) ** power`` (module doc); 1.0 when unknown.

    A sample without a signal (its engine reported no log-probabilities) votes at full
    weight, so a run without confidences degrades to the plain vote.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}")
    if signal is None:
        return 1.0
    if math.isinf(signal) and signal > 0:
        return 1.0
    u = max(0.0, 1.0 - k * math.exp(-signal))
    return u**power if power > 0 else 1.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def is_doomed(tracker: ConfidenceTracker, threshold: float | None) -> bool:
    """Online termination (DeepConf-online): the sample's current group confidence, over a full
    window, is below ``threshold`` (set from the problem's warm-up samples; None: no rule yet).

    Judged only on a full window: the first tokens of a sample alone say little.
    """
    if threshold is None:
        return False
    group = tracker.group()
    return group is not None and group < threshold
