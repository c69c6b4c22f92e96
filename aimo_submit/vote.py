"""Weighted majority vote over extracted answers, and the early-stop rule built on it.

Pure functions over plain data, so the solver, the scheduler and the simulator all decide the
same way from the same votes.

Ranking (deterministic, used for the leader and every tie): higher total weight, then more
votes, then the answer seen first (lowest sample arrival index), then the smaller value.

Early stop (``should_stop``), checked in this order:

1. ``all-done``: nothing is outstanding; the answer is the leader (None if nobody voted).
2. ``continue`` while fewer than ``min_votes`` votes are in.
3. ``agree``: the leader holds at least ``agree`` votes.
4. ``unbeatable``: even if every outstanding sample voted for the strongest challenger with
   the most weight it can still carry, the leader would still rank first. That most weight is
   ``outstanding_weight`` when the caller knows a bound per sample (a confidence-weighted vote
   whose weight can only fall: the sum of the outstanding samples' bounds), else
   ``outstanding * max_weight_per_sample``. A challenger that can only *equal* the leader's
   weight needs all outstanding samples at their largest weight, so the tie is settled
   exactly by the ranking above (its votes then number, at most, its own plus all
   outstanding). The runner-up is always the strongest challenger: it beats any answer not
   yet seen on every ranking key, and every challenger can gain the same.
5. otherwise ``continue``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Decision", "Tally", "is_settled", "leader_share", "should_stop", "tally"]

_REL_EPS = 1e-9
"""Weight sums closer than this (relative) are ties: float sums must not decide a vote."""


@dataclass(frozen=True)
class Tally:
    """Votes per answer. Build it with ``tally``; the dicts must not be mutated.

    ``first_seen`` maps each answer to the arrival index of its first vote; ``n_votes`` counts
    votes (None answers excluded) and ``total_weight`` sums their weights.
    """

    counts: dict[int, int]
    weights: dict[int, float]
    first_seen: dict[int, int]
    n_votes: int
    total_weight: float

    def _key(self, answer: int) -> tuple[float, int, int, int]:
        # Rounded so float noise (0.1 + 0.2 vs 0.3) is a tie that the next keys settle.
        weight = round(self.weights[answer], 9)
        return (-weight, -self.counts[answer], self.first_seen[answer], answer)

    def ranking(self) -> list[int]:
        """Answers best first, by weight, votes, first arrival, then value."""
        return sorted(self.counts, key=self._key)

    def leader(self) -> int | None:
        """The best-ranked answer, or None when nothing voted."""
        return min(self.counts, key=self._key) if self.counts else None


def tally(answers: Sequence[int | None], weights: Sequence[float] | None = None) -> Tally:
    """Count ``answers`` in arrival order (index = arrival); None casts no vote.

    ``weights[i]`` is sample ``i``'s vote weight (default 1.0); it must be finite and >= 0.
    """
    if weights is None:
        weights = [1.0] * len(answers)
    elif len(weights) != len(answers):
        raise ValueError(f"{len(weights)} weights for {len(answers)} answers")
    counts: dict[int, int] = {}
    totals: dict[int, float] = {}
    first_seen: dict[int, int] = {}
    n_votes = 0
    total_weight = 0.0
    for index, (answer, weight) in enumerate(zip(answers, weights, strict=True)):
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight {index} must be finite and >= 0, got {weight!r}")
        if answer is None:
            continue
        counts[answer] = counts.get(answer, 0) + 1
        totals[answer] = totals.get(answer, 0.0) + weight
        first_seen.setdefault(answer, index)
        n_votes += 1
        total_weight += weight
    return Tally(counts, totals, first_seen, n_votes, total_weight)


@dataclass(frozen=True)
class Decision:
    """Whether to stop now, why, and the answer to submit (the current leader, maybe None)."""

    stop: bool
    reason: str
    answer: int | None


def _can_overtake(t: Tally, leader: int, outstanding: int, reach_weight: float) -> bool:
    """Could the outstanding samples lift some other answer above ``leader`` in the ranking?"""
    ranking = t.ranking()
    if len(ranking) > 1:
        rival = ranking[1]
        rival_weight, rival_votes, rival_seen = (
            t.weights[rival],
            t.counts[rival],
            t.first_seen[rival],
        )
    else:  # an answer nobody has given yet: no weight, no votes, seen after everything
        rival_weight, rival_votes, rival_seen = 0.0, 0, math.inf
    lead_weight = t.weights[leader]
    reach = rival_weight + reach_weight
    eps = _REL_EPS * max(1.0, abs(lead_weight), abs(reach))
    if reach > lead_weight + eps:
        return True
    if reach < lead_weight - eps:
        return False
    # A weight tie needs every outstanding sample that can add weight on the rival, so the
    # rival then holds at most its votes plus all outstanding ones (the worst case).
    rival_votes += outstanding
    if rival_votes != t.counts[leader]:
        return rival_votes > t.counts[leader]
    return rival_seen < t.first_seen[leader]


def should_stop(
    tally: Tally,
    outstanding: int,
    *,
    agree: int,
    unbeatable: bool = True,
    min_votes: int = 1,
    max_weight_per_sample: float = 1.0,
    outstanding_weight: float | None = None,
) -> Decision:
    """Early-stop decision while ``outstanding`` samples may still vote (rules in module doc).

    ``max_weight_per_sample`` bounds the weight any future vote can carry (the largest weight
    the caller might assign, e.g. the code-vote weight when that is above 1).
    ``outstanding_weight``, when given, replaces ``outstanding * max_weight_per_sample``: the
    sum of per-sample bounds, each the true largest weight that sample can still add.
    """
    if outstanding < 0:
        raise ValueError(f"outstanding must be >= 0, got {outstanding}")
    if agree < 1:
        raise ValueError(f"agree must be >= 1, got {agree}")
    if not math.isfinite(max_weight_per_sample) or max_weight_per_sample < 0:
        raise ValueError(
            f"max_weight_per_sample must be finite and >= 0, got {max_weight_per_sample}"
        )
    if outstanding_weight is None:
        outstanding_weight = outstanding * max_weight_per_sample
    elif not math.isfinite(outstanding_weight) or outstanding_weight < 0:
        raise ValueError(f"outstanding_weight must be finite and >= 0, got {outstanding_weight}")
    leader = tally.leader()
    if outstanding == 0:
        return Decision(True, "all-done", leader)
    if leader is None or tally.n_votes < min_votes:
        return Decision(False, "continue", leader)
    if tally.counts[leader] >= agree:
        return Decision(True, "agree", leader)
    if unbeatable and not _can_overtake(tally, leader, outstanding, outstanding_weight):
        return Decision(True, "unbeatable", leader)
    return Decision(False, "continue", leader)


def leader_share(tally: Tally) -> float:
    """The leader's share of the total weight; 0.0 when nothing (or only zero weight) voted."""
    leader = tally.leader()
    if leader is None or tally.total_weight <= 0:
        return 0.0
    return tally.weights[leader] / tally.total_weight


def is_settled(tally: Tally, share: float, min_votes: int = 1) -> bool:
    """At least ``min_votes`` votes are in and the leader holds at least ``share`` of the weight.

    The scheduler stops a settled problem at its soft deadline instead of extending it.
    """
    if tally.n_votes < min_votes or tally.leader() is None:
        return False
    return leader_share(tally) >= share - _REL_EPS
