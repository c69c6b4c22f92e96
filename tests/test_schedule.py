"""The scheduler's arithmetic, driven by a hand-moved clock."""

import pytest

from aimo_submit.policy import PolicyConfig
from aimo_submit.schedule import Scheduler


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(total=1000.0, n=10, **policy):
    clock = Clock()
    base = dict(safety_margin_s=100.0, safety_margin_frac=0.0, min_problem_s=5.0,
                extend_factor=1.5, soft_fraction=0.5, answer_grace_s=1.0,
                initial_tokens_per_s=10.0, max_tokens=10_000, min_tokens=16)
    base.update(policy)
    return Scheduler(PolicyConfig(**base), total, n, clock=clock), clock


def test_fair_share_soft_and_hard_deadlines():
    s, clock = make()
    b = s.plan()
    assert b.start == clock.t
    assert b.fair_share_s == pytest.approx(90.0)  # (1000 - 100) / 10
    assert b.soft_deadline - b.start == pytest.approx(45.0)
    assert b.hard_deadline - b.start == pytest.approx(135.0)
    assert b.max_tokens == int(10.0 * (135.0 - 1.0))


def test_time_saved_on_a_settled_problem_flows_to_later_ones():
    s, clock = make()
    first = s.plan()
    clock.t += 10  # settled quickly
    s.finish_problem()
    second = s.plan()
    assert second.fair_share_s == pytest.approx((900 - 10) / 9)
    assert second.fair_share_s > first.fair_share_s


def test_extension_never_starves_the_remaining_problems():
    s, clock = make(extend_factor=10.0)
    b = s.plan()
    # 9 problems after this one keep min_problem_s each
    assert b.hard_deadline - b.start == pytest.approx(900 - 9 * 5.0)
    for _ in range(10):
        b = s.plan()
        clock.t = b.hard_deadline  # every problem uses its whole hard budget
        s.finish_problem()
    assert clock.t <= s.end + 1e-9


def test_out_of_time_gives_zero_length_budgets_not_negative():
    s, clock = make()
    clock.t += 5000
    b = s.plan()
    assert b.hard_deadline == b.start
    assert b.max_tokens == 16  # min_tokens


def test_last_stretch_shares_equally_below_min_problem_s():
    s, clock = make(n=10)
    clock.t = s.end - 20  # 20 s left for 10 problems: 2 s each, no borrowing
    b = s.plan()
    assert b.hard_deadline - b.start == pytest.approx(2.0)


def test_throughput_is_measured_online():
    s, _ = make()
    s.observe_throughput(300, 10.0)
    assert s.tokens_per_s == pytest.approx(30.0)
    s.observe_throughput(100, 10.0)  # ema 0.5
    assert s.tokens_per_s == pytest.approx(20.0)
    s.observe_throughput(0, 10.0)  # ignored
    assert s.tokens_per_s == pytest.approx(20.0)


def test_token_budget_clipped_to_policy_bounds():
    s, _ = make(initial_tokens_per_s=1e6, max_tokens=512)
    assert s.plan().max_tokens == 512


def test_per_problem_cap_from_gateway_timeout():
    clock = Clock()
    s = Scheduler(PolicyConfig(safety_margin_s=0, safety_margin_frac=0), 10_000, 2, clock=clock,
                  max_problem_s=60.0)
    b = s.plan()
    assert b.hard_deadline - b.start == pytest.approx(60.0)


def test_margin_capped_for_short_rehearsals():
    s, _ = make(total=200.0, safety_margin_s=300.0)
    assert s.margin_s == pytest.approx(50.0)


def test_extra_problems_beyond_the_count_still_get_planned():
    s, clock = make(n=1)
    s.finish_problem()
    s.finish_problem()
    b = s.plan()
    assert s.problems_left == 1
    assert b.hard_deadline >= b.start


@pytest.mark.parametrize("kwargs", [dict(total_s=0, n_problems=1), dict(total_s=10, n_problems=0)])
def test_bad_construction(kwargs):
    with pytest.raises(ValueError):
        Scheduler(PolicyConfig(), **kwargs)


def test_triage_gives_a_problem_time_for_a_useful_sample_on_a_tight_clock():
    # fair share 90 s at 10 tok/s = 900 tokens; a useful sample needs 2000 tokens (201 s)
    s, clock = make(min_useful_tokens=2000, extend_factor=1.0)
    b = s.plan()
    assert b.fair_share_s == pytest.approx(90.0)
    assert b.hard_deadline - b.start == pytest.approx(201.0)
    assert b.max_tokens == 2000
    assert b.soft_deadline - b.start == pytest.approx(45.0)  # a settled problem still stops
    # the problems still to come keep min_problem_s each: 900 - 9 x 5 s at most
    s, clock = make(min_useful_tokens=100_000, extend_factor=1.0)
    assert s.plan().hard_deadline - clock.t == pytest.approx(900.0 - 9 * 5.0)


def test_triage_changes_nothing_when_the_clock_is_generous():
    plain, _ = make()
    triaged, _ = make(min_useful_tokens=500, tight_min_samples=2)
    assert triaged.plan() == plain.plan()


def test_tight_clock_runs_fewer_samples_in_proportion():
    # fair 90 s, useful 2000 tokens = 201 s: 8 x 90/201 -> 4 samples; never below the floor
    s, _ = make(min_useful_tokens=2000, tight_min_samples=2, n_samples=8)
    assert s.plan().n_samples == 4
    s, _ = make(min_useful_tokens=20_000, tight_min_samples=3, n_samples=8)
    assert s.plan().n_samples == 3
    s, _ = make(min_useful_tokens=20_000, tight_min_samples=0, n_samples=8)
    assert s.plan().n_samples == 8  # off: triage alone keeps the sample count
    s, _ = make(min_useful_tokens=20_000, tight_min_samples=2, n_samples=8,
                time_rule="fixed")
    b = s.plan()
    assert b.n_samples == 8 and b.hard_deadline - b.start == pytest.approx(90.0)  # references


@pytest.mark.parametrize("field", ["min_useful_tokens", "tight_min_samples"])
def test_triage_knobs_refuse_negative_values(field):
    with pytest.raises(ValueError, match=field):
        PolicyConfig(**{field: -1})


def test_triage_never_asks_more_than_the_token_cap():
    # a small model (cap 256) under a preset tuned for a 16k model: 256 tokens are useful
    # fair share (300 - 75) / 10 = 22.5 s; 256 tokens take 26.6 s
    s, _ = make(total=300.0, min_useful_tokens=16_000, tight_min_samples=2, n_samples=8,
                max_tokens=256, extend_factor=1.0)
    b = s.plan()
    assert b.hard_deadline - b.start == pytest.approx(256 / 10.0 + 1.0)
    assert b.n_samples == 7  # ceil(8 x 22.5 / 26.6), not the floor of 2
