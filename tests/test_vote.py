"""Weighted vote and early stop: ranking order, tie-breaks at every level, stop rules."""

from __future__ import annotations

import itertools
import random

import pytest

from aimo_submit.vote import Decision, Tally, is_settled, leader_share, should_stop, tally

# ----- tally ----------------------------------------------------------------------------------


def test_tally_counts_weights_and_arrival() -> None:
    t = tally([5, None, 7, 5, None, 7, 7], [1.0, 9.0, 0.5, 2.0, 9.0, 0.5, 0.5])
    assert t.counts == {5: 2, 7: 3}
    assert t.weights == {5: 3.0, 7: 1.5}
    assert t.first_seen == {5: 0, 7: 2}
    assert t.n_votes == 5
    assert t.total_weight == 4.5  # the weights of None answers count nowhere
    assert t.leader() == 5  # weight beats votes
    assert t.ranking() == [5, 7]


def test_default_weight_is_one() -> None:
    t = tally([3, 3, 4])
    assert t.weights == {3: 2.0, 4: 1.0}
    assert t.total_weight == 3.0


def test_empty_and_all_none() -> None:
    for t in (tally([]), tally([None, None])):
        assert t.leader() is None
        assert t.ranking() == []
        assert t.n_votes == 0
        assert leader_share(t) == 0.0


@pytest.mark.parametrize(
    ("answers", "weights", "ranking"),
    [
        # 1. higher total weight wins, even with fewer votes
        ([1, 1, 2], [0.5, 0.5, 1.5], [2, 1]),
        # 2. equal weight: more votes win
        ([1, 2, 2], [1.0, 0.5, 0.5], [2, 1]),
        # 3. equal weight and votes: the answer seen first wins
        ([9, 3, 3, 9], None, [9, 3]),
        ([3, 9, 9, 3], None, [3, 9]),
        # (4. the value key needs a hand-built Tally: two answers never share an arrival)
        # float noise is a tie, settled by the next keys
        ([1, 1, 2], [0.1, 0.2, 0.3], [1, 2]),
        ([2, 1, 1, 2], [0.3, 0.1, 0.2, 0.0], [2, 1]),  # 0.3 vs 0.30000000000000004
    ],
)
def test_tie_break_order(
    answers: list[int], weights: list[float] | None, ranking: list[int]
) -> None:
    t = tally(answers, weights)
    assert t.ranking() == ranking
    assert t.leader() == ranking[0]


def test_smaller_value_is_the_last_tie_break() -> None:
    t = Tally({8: 1, 3: 1}, {8: 1.0, 3: 1.0}, {8: 0, 3: 0}, 2, 2.0)
    assert t.ranking() == [3, 8]


def test_zero_weight_votes_count_but_weigh_nothing() -> None:
    t = tally([4, 6, 6], [1.0, 0.0, 0.0])
    assert t.counts == {4: 1, 6: 2}
    assert t.leader() == 4
    assert leader_share(t) == 1.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_weights_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        tally([1, 2], [1.0, bad])


def test_weight_count_must_match() -> None:
    with pytest.raises(ValueError):
        tally([1, 2], [1.0])


def test_ranking_is_a_deterministic_total_order() -> None:
    rng = random.Random(3)
    for _ in range(300):
        n = rng.randint(0, 12)
        answers = [rng.choice([None, 1, 2, 3, 4]) for _ in range(n)]
        weights = [rng.choice([0.0, 0.5, 1.0, 1.5]) for _ in range(n)]
        t = tally(answers, weights)
        ranking = t.ranking()
        assert sorted(ranking) == sorted(t.counts)
        for a, b in itertools.pairwise(ranking):
            ka = (-t.weights[a], -t.counts[a], t.first_seen[a], a)
            kb = (-t.weights[b], -t.counts[b], t.first_seen[b], b)
            assert ka < kb


# ----- leader_share / is_settled --------------------------------------------------------------


def test_leader_share_uses_weight() -> None:
    t = tally([1, 1, 2, 3], [1.0, 1.0, 1.0, 1.0])
    assert leader_share(t) == 0.5
    t = tally([1, 2], [3.0, 1.0])
    assert leader_share(t) == 0.75


def test_leader_share_of_zero_weight_is_zero() -> None:
    assert leader_share(tally([1, 2], [0.0, 0.0])) == 0.0


@pytest.mark.parametrize(
    ("answers", "share", "min_votes", "settled"),
    [
        ([1, 1, 1, 2, 3], 0.6, 1, True),  # exactly the share counts
        ([1, 1, 2, 3], 0.6, 1, False),
        ([1, 1, 1, 2, 3], 0.6, 6, False),  # not enough votes yet
        ([1], 1.0, 1, True),
        ([], 0.1, 0, False),  # nobody voted: nothing is settled
        ([None, None], 0.1, 0, False),
    ],
)
def test_is_settled(answers: list[int | None], share: float, min_votes: int, settled: bool) -> None:
    assert is_settled(tally(answers), share, min_votes) is settled


def test_is_settled_tolerates_float_noise() -> None:
    t = tally([1, 1, 1, 2, 2], [0.1, 0.1, 0.1, 0.1, 0.1])
    assert is_settled(t, 0.6, 1)


# ----- should_stop ----------------------------------------------------------------------------


def test_all_done_stops_with_the_leader() -> None:
    assert should_stop(tally([4, 2, 2]), 0, agree=9) == Decision(True, "all-done", 2)
    assert should_stop(tally([]), 0, agree=1) == Decision(True, "all-done", None)
    # all-done wins over min_votes: nothing more is coming
    assert should_stop(tally([4]), 0, agree=9, min_votes=5) == Decision(True, "all-done", 4)


def test_agree() -> None:
    t = tally([7, 7, 3, 7, 7])
    assert should_stop(t, 10, agree=4) == Decision(True, "agree", 7)
    assert should_stop(t, 10, agree=5) == Decision(False, "continue", 7)


def test_agree_counts_votes_of_the_weight_leader_only() -> None:
    # 3 has 4 votes of weight 0.5; the leader 9 has 2 votes of weight 1.5: no agreement yet
    t = tally([3, 3, 3, 3, 9, 9], [0.5, 0.5, 0.5, 0.5, 1.5, 1.5])
    assert t.leader() == 9
    assert should_stop(t, 10, agree=4, max_weight_per_sample=1.5).stop is False


def test_min_votes_blocks_early_stops() -> None:
    t = tally([5, 5, None, None])
    assert should_stop(t, 1, agree=2, min_votes=3) == Decision(False, "continue", 5)
    assert should_stop(t, 1, agree=2, min_votes=2) == Decision(True, "agree", 5)


def test_no_votes_yet_continues() -> None:
    assert should_stop(tally([None]), 3, agree=1, min_votes=0) == Decision(False, "continue", None)


@pytest.mark.parametrize(
    ("answers", "outstanding", "stop"),
    [
        ([1, 1, 1, 2], 1, True),  # 3 vs 1 + 1
        ([1, 1, 1, 2], 2, True),  # 3 vs 1 + 2: a weight tie with 3 votes each; 1 was first
        ([1, 1, 1, 2], 3, False),  # 3 vs 1 + 3
        ([1, 1, 1], 2, True),  # a new answer could reach 2 < 3
        ([1, 1, 1], 3, True),  # a new answer ties 3-3 in weight and votes; 1 was seen first
        ([1, 1, 1], 4, False),
        ([2, 1, 1, 1], 2, False),  # rival 2 ties 3-3 and was seen first: it would win
        ([1, 2, 1, 1], 2, True),  # rival 2 ties 3-3 but 1 was seen first
    ],
)
def test_unbeatable_with_unit_weights(answers: list[int], outstanding: int, stop: bool) -> None:
    decision = should_stop(tally(answers), outstanding, agree=99)
    assert decision.stop is stop
    assert decision.reason == ("unbeatable" if stop else "continue")
    assert decision.answer == 1


def test_unbeatable_tie_is_settled_by_vote_count() -> None:
    # Leader 1: weight 2.0 from 1 vote. Rival 2: weight 1.0 from 1 vote.
    # One outstanding sample of weight <= 1.0 can bring 2 to a 2.0 tie with 2 votes > 1 vote.
    t = tally([1, 2], [2.0, 1.0])
    assert should_stop(t, 1, agree=99).stop is False
    # Leader 1: weight 2.0 from 2 votes; rival 2 at 1.0 + 1.0 ties with 2 votes, but 1 came first.
    t = tally([1, 1, 2], [1.0, 1.0, 1.0])
    assert should_stop(t, 1, agree=99) == Decision(True, "unbeatable", 1)


def test_new_answer_is_the_challenger_when_alone() -> None:
    # A single answer with weight 2.0 from 1 vote: two outstanding unit samples on a new answer
    # tie its weight with 2 votes > 1, so it is not yet safe.
    t = tally([6], [2.0])
    assert should_stop(t, 2, agree=99).stop is False
    assert should_stop(t, 1, agree=99) == Decision(True, "unbeatable", 6)


def test_weights_above_one() -> None:
    # code votes weigh 1.5; the leader must survive outstanding samples at 1.5 each
    t = tally([1, 1, 2], [1.5, 1.5, 1.0])  # 3.0 vs 1.0
    assert should_stop(t, 1, agree=99, max_weight_per_sample=1.5).stop is True  # 2.5 < 3
    assert should_stop(t, 2, agree=99, max_weight_per_sample=1.5).stop is False  # 4.0 > 3
    assert should_stop(t, 2, agree=99, max_weight_per_sample=1.0).stop is False  # tie, 3 > 2 votes
    t = tally([1, 1, 1, 2], [1.5, 1.5, 1.0, 1.0])  # 4.0 vs 1.0
    assert should_stop(t, 2, agree=99, max_weight_per_sample=1.5) == Decision(
        True, "unbeatable", 1
    )  # 1.0 + 3.0 = 4.0 ties; rival would have 3 votes, the leader has 3 and came first


def test_zero_max_weight_still_counts_votes() -> None:
    # Rival weight can't grow, but zero-weight votes could lift its count past the leader's.
    t = Tally({1: 1, 2: 1}, {1: 1.0, 2: 1.0}, {1: 0, 2: 1}, 2, 2.0)
    assert should_stop(t, 1, agree=99, max_weight_per_sample=0.0).stop is False
    t = tally([1, 1, 2], [0.5, 0.5, 1.0])  # 1.0 each; 1 leads on votes (2 vs 1)
    assert should_stop(t, 5, agree=99, max_weight_per_sample=0.0).stop is False  # 2 could get 6
    t = tally([1, 2], [2.0, 1.0])
    assert should_stop(t, 5, agree=99, max_weight_per_sample=0.0) == Decision(True, "unbeatable", 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"outstanding": -1, "agree": 1},
        {"outstanding": 1, "agree": 0},
        {"outstanding": 1, "agree": 1, "max_weight_per_sample": -1.0},
        {"outstanding": 1, "agree": 1, "max_weight_per_sample": float("inf")},
    ],
)
def test_should_stop_refuses_bad_arguments(kwargs: dict) -> None:
    outstanding = kwargs.pop("outstanding")
    with pytest.raises(ValueError):
        should_stop(tally([1]), outstanding, **kwargs)


def test_unbeatable_can_be_switched_off() -> None:
    t = tally([1, 1, 1, 2])
    assert should_stop(t, 1, agree=99, unbeatable=False) == Decision(False, "continue", 1)


def test_unbeatable_never_stops_on_a_leader_that_could_still_lose() -> None:
    """Brute force: whenever it says stop, no assignment of the outstanding votes changes the
    leader (unit weights, so every assignment is a choice of answers, including a new one)."""
    rng = random.Random(11)
    for _ in range(400):
        answers = [rng.choice([1, 2, 3, None]) for _ in range(rng.randint(1, 7))]
        outstanding = rng.randint(1, 3)
        t = tally(answers)
        decision = should_stop(t, outstanding, agree=99)
        if decision.reason != "unbeatable":
            continue
        for future in itertools.product([1, 2, 3, 4, None], repeat=outstanding):
            assert tally(answers + list(future)).leader() == decision.answer, (answers, future)


def test_unbeatable_is_not_overly_cautious() -> None:
    """Brute force the other way: when some future could change the leader it continues, and
    when none can, it stops."""
    rng = random.Random(12)
    for _ in range(400):
        answers = [rng.choice([1, 2, 3]) for _ in range(rng.randint(1, 7))]
        outstanding = rng.randint(1, 3)
        t = tally(answers)
        leader = t.leader()
        can_change = any(
            tally(answers + list(future)).leader() != leader
            for future in itertools.product([1, 2, 3, 4], repeat=outstanding)
        )
        assert should_stop(t, outstanding, agree=99).stop is not can_change, (answers, outstanding)


def test_unbeatable_with_per_sample_bounds_is_sound() -> None:
    """Confidence-weighted votes: each outstanding sample can still add at most its own bound.
    Whenever that says stop, no future (any answer, any weight up to the bound) changes the
    leader; and a bound sum below the plain one stops at least as often."""
    rng = random.Random(13)
    stopped = 0
    for _ in range(300):
        n = rng.randint(1, 6)
        answers = [rng.choice([1, 2, 3]) for _ in range(n)]
        weights = [round(rng.uniform(0.1, 1.0), 2) for _ in range(n)]
        bounds = [round(rng.uniform(0.0, 1.0), 2) for _ in range(rng.randint(1, 3))]
        t = tally(answers, weights)
        decision = should_stop(t, len(bounds), agree=99, outstanding_weight=sum(bounds))
        plain = should_stop(t, len(bounds), agree=99, max_weight_per_sample=1.0)
        assert decision.stop or not plain.stop
        if decision.reason != "unbeatable":
            continue
        stopped += 1
        choices = [[(a, w * b) for a in (1, 2, 3, 4, None) for w in (0.0, 0.5, 1.0)]
                   for b in bounds]
        for future in itertools.product(*choices):
            after = tally(answers + [a for a, _ in future], weights + [w for _, w in future])
            assert after.leader() == decision.answer, (answers, weights, bounds, future)
    assert stopped > 30


def test_outstanding_weight_must_be_finite() -> None:
    with pytest.raises(ValueError):
        should_stop(tally([1]), 1, agree=9, outstanding_weight=float("inf"))
