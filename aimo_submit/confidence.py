"""Per-sample confidence signals from token log-probabilities, and the vote weights built on them.

Pure (no I/O, no global state): the solver feeds a :class:`SampleConfidence` the per-token
statistics of every event it receives, the replay engine streams recorded ones, and the
benchmark reads the same numbers, so all three judge a sample the same way.

Two per-token series (k = the number of top log-probabilities the engine reports per token):

* **token confidence** ``C_i = -(1/k) * sum_{j=1..k} log P_i(j)``, the mean negative
  log-probability of the k most likely tokens at position i (DeepConf's definition). A peaked
  distribution (the model is sure) pushes the runners-up far down, so ``C_i`` is large; a flat
  one keeps it near its floor ``log k`` (all k equally likely). It measures the model's
  *distribution*, whatever token was then drawn.
* **chosen log-probability** ``L_i = log P_i(x_i)`` of the token actually drawn. It measures
  the *draw*: a sample that took an unlikely turn (a slip) has a low ``L_i`` there even when
  the distribution looked like every other sample's.

Three statistics of a series ``X_1..X_N`` (N generated tokens), each a signal:

* **mean** ``(1/N) * sum_{i=1..N} X_i``;
* **lowest group** ``min_{t >= w} G_t`` with the group (sliding-window) value
  ``G_t = (1/w) * sum_{i=t-w+1..t} X_i`` over the last ``w = window`` tokens: the sample's
  weakest stretch. A sample shorter than one window has one partial group: its mean;
* **tail** ``(1/m) * sum_{i=N-m+1..N} X_i`` over the last ``m = tail`` tokens, i.e. the stretch
  that writes the answer (a sample ends at its answer when the solver stops on a completed
  box). Shorter samples: the mean.

Signal names: ``mean``, ``lowest_group``, ``tail`` (token confidence, the issue's three) and
``logprob_mean``, ``logprob_lowest_group``, ``logprob_tail`` (chosen log-probability).

Vote weight (:func:`weight_of`), in [0, 1] and scale-free, so no per-model constant is needed:

* token confidence ``s``: ``(max(0, 1 - k * exp(-s))) ** power``. ``exp(-s)`` is the geometric
  mean of the top-k probabilities, at most ``1/k``: the base is 0 when the top k are equally
  likely and tends to 1 as the model grows sure;
* chosen log-probability ``s`` (<= 0): ``exp(s) ** power``, the geometric-mean probability of
  the drawn tokens.

Both have supremum 1, the true largest weight a sample still running can add (what the
``unbeatable`` early stop must assume), except that a lowest group never rises once a window
is full (:meth:`SampleConfidence.upper_bound`). ``power`` sharpens the preference.

Why hand-written: the signals are a few running sums; no library offers them streaming.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "LOGPROB_SIGNALS",
    "SIGNALS",
    "TOPK_SIGNALS",
    "ConfidenceBlocks",
    "ConfidenceSummary",
    "ConfidenceTracker",
    "SampleConfidence",
    "is_doomed",
    "percentile",
    "weight_of",
]

TOPK_SIGNALS = ("mean", "lowest_group", "tail")
LOGPROB_SIGNALS = ("logprob_mean", "logprob_lowest_group", "logprob_tail")
SIGNALS = TOPK_SIGNALS + LOGPROB_SIGNALS
"""Names of the per-sample signals, as policy knobs and run-log keys spell them."""

_RESUM_EVERY = 4096
"""Running window sums are recomputed exactly this often (in tokens) so float drift stays tiny."""


@dataclass(frozen=True)
class ConfidenceSummary:
    """The signals of one sample (a signal is None when its series has no token)."""

    tokens: int
    mean: float | None = None
    lowest_group: float | None = None
    tail: float | None = None
    logprob_mean: float | None = None
    logprob_lowest_group: float | None = None
    logprob_tail: float | None = None

    def signal(self, name: str) -> float | None:
        if name not in SIGNALS:
            raise ValueError(f"unknown confidence signal {name!r}; known: {SIGNALS}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {"tokens": self.tokens}
        for name in SIGNALS:
            value = getattr(self, name)
            out[name] = None if value is None else round(value, 4)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ConfidenceSummary:
        """Inverse of ``to_dict`` (unknown keys ignored, missing signals None)."""
        values = {name: None if data.get(name) is None else float(data[name]) for name in SIGNALS}
        return cls(int(data.get("tokens", 0)), **values)


class ConfidenceTracker:
    """Streaming mean, group, lowest group and tail of one per-token series; ``add`` costs
    O(1) per token (amortised).

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

    def add(self, values: Iterable[float]) -> None:
        """Feed the values of newly generated tokens, in order."""
        last, w, m = self._last, self.window, self.tail
        for c in values:
            c = float(c)
            if not math.isfinite(c):
                raise ValueError(f"per-token value must be finite, got {c!r}")
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



@dataclass(frozen=True)
class ConfidenceBlocks:
    """Both series of a sample, recorded as means over consecutive blocks of ``size`` tokens
    (the last block may be shorter; ``tokens`` says where it ends).

    What the run log and trace files keep so a recorded run replays with its confidences:
    a per-token record of a 30k-token sample is too big, and block means keep every group
    value exact at block boundaries (windows a multiple of ``size``).
    """

    size: int
    tokens: int
    topk: tuple[float, ...]
    logprob: tuple[float, ...]

    def values(self, series: str, start: int, end: int) -> tuple[float, ...]:
        """Per-token values of tokens ``start..end-1``: each token gets its block's mean."""
        blocks = self.topk if series == "topk" else self.logprob
        if not blocks:
            return ()
        end = min(end, self.tokens)
        return tuple(blocks[min(i // self.size, len(blocks) - 1)] for i in range(start, end))

    def to_dict(self) -> dict:
        return {"size": self.size, "tokens": self.tokens,
                "topk": [round(x, 3) for x in self.topk],
                "logprob": [round(x, 3) for x in self.logprob]}

    @classmethod
    def from_dict(cls, data: dict) -> ConfidenceBlocks:
        size, tokens = int(data["size"]), int(data["tokens"])
        topk = tuple(float(x) for x in data.get("topk") or ())
        logprob = tuple(float(x) for x in data.get("logprob") or ())
        if size < 1 or tokens < 0 or any(not math.isfinite(x) for x in topk + logprob):
            raise ValueError(f"bad confidence blocks: size {size}, tokens {tokens}")
        return cls(size, tokens, topk, logprob)


class _BlockMeans:
    """Running means over consecutive blocks of a series (O(1) per token)."""

    __slots__ = ("count", "done", "size", "sum")

    def __init__(self, size: int) -> None:
        self.size, self.done, self.sum, self.count = size, [], 0.0, 0

    def add(self, values: Iterable[float]) -> None:
        for v in values:
            self.sum += v
            self.count += 1
            if self.count == self.size:
                self.done.append(self.sum / self.size)
                self.sum, self.count = 0.0, 0

    def means(self) -> tuple[float, ...]:
        tail = (self.sum / self.count,) if self.count else ()
        return (*self.done, *tail)


class SampleConfidence:
    """Both series of one sample: token confidence and chosen log-probability, streamed into
    signal trackers and into block means for the record."""

    __slots__ = ("_blocks", "logprob", "topk")

    def __init__(self, window: int, tail: int, block: int = 64) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.topk = ConfidenceTracker(window, tail)
        self.logprob = ConfidenceTracker(window, tail)
        self._blocks = (_BlockMeans(block), _BlockMeans(block))

    def add(self, confidences: Iterable[float], logprobs: Iterable[float] = ()) -> None:
        confidences, logprobs = tuple(confidences), tuple(logprobs)
        self.topk.add(confidences)
        self.logprob.add(logprobs)
        self._blocks[0].add(confidences)
        self._blocks[1].add(logprobs)

    def blocks(self) -> ConfidenceBlocks:
        return ConfidenceBlocks(self._blocks[0].size, self.tokens, self._blocks[0].means(),
                                self._blocks[1].means())

    @property
    def tokens(self) -> int:
        return max(self.topk.tokens, self.logprob.tokens)

    def series(self, signal: str) -> ConfidenceTracker:
        """The tracker a signal is computed from."""
        return self.logprob if signal in LOGPROB_SIGNALS else self.topk

    def upper_bound(self, signal: str) -> float:
        """The largest value ``signal`` can still take however the sample continues.

        Only a lowest group is monotone (a minimum never rises once a window is full); the
        other signals can still go anywhere.
        """
        tracker = self.series(signal)
        if signal.endswith("lowest_group") and tracker.window_full:
            return tracker.lowest_group()  # type: ignore[return-value]
        return math.inf

    def summary(self) -> ConfidenceSummary:
        c, lp = self.topk, self.logprob
        return ConfidenceSummary(
            self.tokens, c.mean(), c.lowest_group(), c.tail_confidence(),
            lp.mean(), lp.lowest_group(), lp.tail_confidence())


def weight_of(signal: str, value: float | None, k: int, power: float) -> float:
    """Vote weight of a sample whose ``signal`` is ``value`` (mapping in the module doc).

    A sample without a value (its engine reported no log-probabilities) votes at full weight,
    so a run without confidences degrades to the plain vote. ``value=inf`` (no bound yet)
    gives the supremum, 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}")
    if signal not in SIGNALS:
        raise ValueError(f"unknown confidence signal {signal!r}; known: {SIGNALS}")
    if value is None or power == 0 or value == math.inf:
        return 1.0
    if signal in LOGPROB_SIGNALS:
        return math.exp(power * min(0.0, value))
    return max(0.0, 1.0 - k * math.exp(-value)) ** power


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


def is_doomed(sample: SampleConfidence, signal: str, threshold: float | None) -> bool:
    """Online termination (DeepConf-online): the current group value of ``signal``'s series,
    over a full window, is below ``threshold`` (set from the problem's warm-up samples' lowest
    groups; None: no threshold yet).

    Judged only on a full window: the first tokens of a sample alone say little.
    """
    if threshold is None:
        return False
    group = sample.series(signal).group()
    return group is not None and group < threshold
