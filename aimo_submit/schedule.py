"""The deadline owner: how much time and how many tokens each problem gets.

Pure logic with an injected clock, so the real run, the virtual-clock simulator and the tests use
the same arithmetic. The rules:

* usable time = total budget - safety margin (the larger of ``safety_margin_s`` and
  ``safety_margin_frac`` of the budget, capped at a quarter of the budget so short rehearsals
  still get time) - time already spent;
* a problem's fair share = usable time / problems left. Its *soft* deadline is at
  ``soft_fraction`` x fair share: a problem whose votes are settled by then stops there
  (with ``settle_late``, the solver also stops it at any later vote that settles it). Its
  *hard* deadline is ``extend_factor`` x fair share, but never so late that the problems still
  to come would get less than ``min_problem_s`` each. Time a settled problem did not use flows
  to later ones automatically, because the fair share is recomputed from the time left;
* triage (``min_useful_tokens``): the hard deadline is never shorter than the time a sample
  needs for that many tokens (at the measured speed), as long as the problems still to come
  keep ``min_problem_s`` each; on a tight clock the first problems get a real chance and the
  last ones the minimum, instead of every problem a slice too short to answer in;
* ``policy.time_rule`` replaces the rules above for published policies kept as references:
  ``fixed`` gives every problem the share the first one got (saved time is not reused, nothing
  is extended); ``run`` lets a problem run to the end of the usable time (the only limit on it
  is its token cap);
* tokens per sample = measured per-sample decode speed x seconds to the hard deadline, clipped
  to ``[min_tokens, max_tokens]``. The speed starts at ``initial_tokens_per_s`` and is updated
  online after every problem (exponential moving average), never hard-coded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from aimo_submit.policy import PolicyConfig


@dataclass(frozen=True)
class ProblemBudget:
    """Absolute clock times (same clock as the scheduler's) and the per-sample token cap."""

    start: float
    soft_deadline: float
    hard_deadline: float
    max_tokens: int
    n_samples: int
    fair_share_s: float

    def seconds_left(self, now: float) -> float:
        return self.hard_deadline - now


class Scheduler:
    """Plans each problem's budget against the whole run's deadline.

    ``clock`` must be monotonic seconds (``time.monotonic`` for real runs, the event loop's
    ``time`` in the simulator). ``start`` defaults to the clock's value at construction, so
    create the scheduler when the run starts (before loading the model: loading counts).
    """

    def __init__(
        self,
        policy: PolicyConfig,
        total_s: float,
        n_problems: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        start: float | None = None,
        max_problem_s: float = float("inf"),
    ) -> None:
        if total_s <= 0:
            raise ValueError(f"total_s must be positive, got {total_s}")
        if n_problems < 1:
            raise ValueError(f"n_problems must be >= 1, got {n_problems}")
        self.policy = policy
        self.total_s = float(total_s)
        self.n_problems = n_problems
        self.max_problem_s = max_problem_s
        """The gateway's per-answer timeout (minus a margin): no problem may run longer."""
        self.clock = clock
        self.start = clock() if start is None else start
        self.problems_done = 0
        self.tokens_per_s = policy.initial_tokens_per_s
        self.throughput_samples = 0
        self.fixed_share_s: float | None = None
        """``time_rule == "fixed"``: the share set when the first problem was planned."""

    # -- time accounting -----------------------------------------------------------------------
    @property
    def margin_s(self) -> float:
        """The larger of the two margins, but never more than a quarter of a short budget."""
        p = self.policy
        return min(max(p.safety_margin_s, p.safety_margin_frac * self.total_s), self.total_s / 4)

    @property
    def end(self) -> float:
        """Clock time by which every answer must be in (budget minus safety margin)."""
        return self.start + self.total_s - self.margin_s

    def usable_left(self, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        return self.end - now

    @property
    def problems_left(self) -> int:
        # Never below one: an extra, unexpected problem still gets planned (from what is left).
        return max(1, self.n_problems - self.problems_done)

    # -- planning ------------------------------------------------------------------------------
    def plan(self) -> ProblemBudget:
        """Budget for the problem starting now."""
        p = self.policy
        now = self.clock()
        left = max(0.0, self.usable_left(now))
        k = self.problems_left
        fair = left / k
        reserve_for_rest = (k - 1) * min(p.min_problem_s, fair)
        hard_len = min(fair * p.extend_factor, max(left - reserve_for_rest, fair))
        if fair < p.min_problem_s:
            # Running out: everyone gets the same small slice; nothing may borrow from others.
            hard_len = fair
        n_samples = p.n_samples
        if p.min_useful_tokens and p.time_rule == "adaptive":
            # a sample never needs more than its cap (a small model's cap may be far lower)
            useful = min(p.min_useful_tokens, p.max_tokens)
            useful_s = useful / max(self.tokens_per_s, 1e-9) + p.answer_grace_s
            hard_len = max(hard_len, min(useful_s, max(left - reserve_for_rest, fair)))
            if p.tight_min_samples and fair < useful_s:
                n_samples = max(min(p.tight_min_samples, p.n_samples),
                                math.ceil(p.n_samples * fair / useful_s))
        if p.time_rule == "fixed":
            if self.fixed_share_s is None:
                self.fixed_share_s = fair
            hard_len = min(self.fixed_share_s, left)
        elif p.time_rule == "run":
            hard_len = left
        hard_len = min(hard_len, self.max_problem_s)
        soft_len = min(hard_len, fair * p.soft_fraction)
        if p.time_rule != "adaptive":
            soft_len = hard_len  # the published rules have no soft stop
        gen_s = max(0.0, hard_len - p.answer_grace_s)
        tokens = int(self.tokens_per_s * gen_s)
        tokens = max(p.min_tokens, min(p.max_tokens, tokens))
        if p.behind_schedule_max_tokens and self.behind_schedule(now):
            tokens = max(p.min_tokens, min(tokens, p.behind_schedule_max_tokens))
        return ProblemBudget(
            start=now,
            soft_deadline=now + soft_len,
            hard_deadline=now + hard_len,
            max_tokens=tokens,
            n_samples=n_samples,
            fair_share_s=fair,
        )

    def behind_schedule(self, now: float | None = None) -> bool:
        """Has the run fallen behind the linear schedule of ``behind_schedule_*``?"""
        p = self.policy
        now = self.clock() if now is None else now
        k = min(self.problems_done, self.n_problems)
        frac = p.behind_schedule_start + (
            p.behind_schedule_end - p.behind_schedule_start) * k / self.n_problems
        return now - self.start > frac * self.total_s

    # -- feedback ------------------------------------------------------------------------------
    def observe_throughput(self, tokens: int, seconds: float) -> None:
        """Fold one sample's measured decode speed (tokens over its own running time) in."""
        if tokens <= 0 or seconds <= 0:
            return
        rate = tokens / seconds
        if self.throughput_samples == 0:
            self.tokens_per_s = rate
        else:
            a = self.policy.throughput_ema
            self.tokens_per_s = a * rate + (1 - a) * self.tokens_per_s
        self.throughput_samples += 1

    def finish_problem(self) -> None:
        self.problems_done += 1
