"""Confidence signals: each definition checked against a direct computation, and the weights."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path
from typing import Any

import pytest

from aimo_submit.confidence import (
    SIGNALS,
    ConfidenceBlocks,
    ConfidenceSummary,
    ConfidenceTracker,
    SampleConfidence,
    is_doomed,
    percentile,
    weight_of,
)


def _direct(cs: list[float], window: int, tail: int) -> tuple[float, float, float]:
    mean = sum(cs) / len(cs)
    if len(cs) >= window:
        low = min(sum(cs[t - window:t]) / window for t in range(window, len(cs) + 1))
    else:
        low = mean
    tail_c = sum(cs[-tail:]) / tail if len(cs) >= tail else mean
    return mean, low, tail_c


@pytest.mark.parametrize("window,tail", [(1, 1), (3, 5), (8, 2), (50, 50)])
def test_signals_match_their_definitions_whatever_the_event_sizes(window: int, tail: int) -> None:
    rng = random.Random(window * 31 + tail)
    for _ in range(50):
        cs = [rng.uniform(math.log(5), 20.0) for _ in range(rng.randint(1, 40))]
        lps = [-rng.expovariate(2.0) for _ in cs]
        tracker = SampleConfidence(window, tail)
        i = 0
        while i < len(cs):  # events of 0..4 tokens, as engines send them
            step = rng.randint(0, 4)
            tracker.add(cs[i:i + step], lps[i:i + step])
            i += step
        got = tracker.summary()
        assert got.tokens == len(cs)
        for prefix, series in (("", cs), ("logprob_", lps)):
            mean, low, tail_c = _direct(series, window, tail)
            assert got.signal(prefix + "mean") == pytest.approx(mean)
            assert got.signal(prefix + "lowest_group") == pytest.approx(low)
            assert got.signal(prefix + "tail") == pytest.approx(tail_c)
        assert ConfidenceSummary.from_dict(got.to_dict()).to_dict() == got.to_dict()


def test_long_samples_do_not_drift() -> None:
    """10,000 tokens (past the periodic exact re-sum): still exact."""
    rng = random.Random(3)
    cs = [rng.choice([2.0, 1e-3, 17.5]) for _ in range(10_000)]
    tracker = ConfidenceTracker(64, 32)
    tracker.add(cs)
    assert tracker.group() == pytest.approx(sum(cs[-64:]) / 64, abs=1e-9)
    assert tracker.tail_confidence() == pytest.approx(sum(cs[-32:]) / 32, abs=1e-9)


def test_no_tokens_no_signal() -> None:
    s = SampleConfidence(4, 4).summary()
    assert s.tokens == 0 and all(s.signal(name) is None for name in SIGNALS)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError):
        ConfidenceTracker(0, 4)
    with pytest.raises(ValueError):
        ConfidenceTracker(4, 4).add([float("nan")])
    with pytest.raises(ValueError):
        SampleConfidence(4, 4).summary().signal("median")


def test_lowest_group_bound_never_rises_and_holds() -> None:
    rng = random.Random(5)
    tracker = SampleConfidence(4, 4)
    for name in ("lowest_group", "logprob_lowest_group"):
        assert tracker.upper_bound(name) == math.inf  # no full window yet
    bounds = []
    for _ in range(40):
        tracker.add([rng.uniform(1.6, 9.0)], [-rng.expovariate(1.0)])
        bounds.append(tracker.upper_bound("logprob_lowest_group"))
        assert tracker.summary().logprob_lowest_group <= bounds[-1]
        assert tracker.summary().lowest_group <= tracker.upper_bound("lowest_group")
    finite = [b for b in bounds if b != math.inf]
    assert finite == sorted(finite, reverse=True) and len(finite) == 37
    assert tracker.upper_bound("mean") == tracker.upper_bound("logprob_tail") == math.inf


def test_weight_mapping() -> None:
    k = 5
    assert weight_of("mean", math.log(k), k, 1.0) == pytest.approx(0.0, abs=1e-12)  # flat top k
    assert weight_of("tail", 1.0, k, 1.0) == 0.0  # below the floor (rounding): clamped
    assert weight_of("mean", None, k, 3.0) == 1.0  # no signal: a plain vote
    assert weight_of("lowest_group", math.inf, k, 3.0) == 1.0  # no bound yet: the supremum
    ws = [weight_of("lowest_group", s, k, 2.0) for s in (2.0, 4.0, 8.0, 30.0)]
    assert ws == sorted(ws) and all(0 <= w < 1 for w in ws) and ws[-1] > 0.999
    assert weight_of("mean", 4.0, k, 0.0) == 1.0
    # chosen log-probability: the geometric-mean probability of the drawn tokens, to a power
    assert weight_of("logprob_mean", math.log(0.5), k, 2.0) == pytest.approx(0.25)
    assert weight_of("logprob_tail", 0.0, k, 2.0) == 1.0
    with pytest.raises(ValueError):
        weight_of("median", 1.0, k, 1.0)


def test_doomed_only_on_a_full_window_below_threshold() -> None:
    tracker = SampleConfidence(3, 3)
    tracker.add([1.0, 1.0], [-2.0, -2.0])
    assert not is_doomed(tracker, "lowest_group", 5.0)  # window not full
    tracker.add([1.0], [-2.0])
    assert is_doomed(tracker, "lowest_group", 5.0)
    assert not is_doomed(tracker, "lowest_group", 1.0)  # equal is not below
    assert not is_doomed(tracker, "lowest_group", None)
    assert is_doomed(tracker, "logprob_lowest_group", -1.0)
    assert not is_doomed(tracker, "logprob_lowest_group", -3.0)


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 25) == 1.25
    assert percentile([4.0], 90) == 4.0
    with pytest.raises(ValueError):
        percentile([], 10)


def test_blocks_record_the_series_and_replay_group_values_at_block_boundaries() -> None:
    rng = random.Random(9)
    cs = [rng.uniform(2.0, 12.0) for _ in range(37)]
    lps = [-rng.expovariate(1.0) for _ in cs]
    live = SampleConfidence(8, 8, block=4)
    live.add(cs[:10], lps[:10])
    live.add(cs[10:], lps[10:])
    blocks = ConfidenceBlocks.from_dict(live.blocks().to_dict())
    assert blocks.tokens == 37 and len(blocks.topk) == 10  # nine full blocks and one of 1
    assert blocks.topk[-1] == pytest.approx(cs[-1], abs=1e-3)
    replayed = SampleConfidence(8, 8, block=4)
    for start in range(0, 37, 5):
        end = start + 5
        replayed.add(blocks.values("topk", start, end), blocks.values("logprob", start, end))
    assert replayed.tokens == 37
    # a window of two whole blocks ending on a block boundary is exact
    assert sum(blocks.values("topk", 24, 32)) / 8 == pytest.approx(sum(cs[24:32]) / 8, abs=1e-3)
    got, want = replayed.summary(), live.summary()
    assert got.mean == pytest.approx(want.mean, abs=1e-3)
    assert got.logprob_mean == pytest.approx(want.logprob_mean, abs=1e-3)
    with pytest.raises(ValueError):
        ConfidenceBlocks.from_dict({"size": 0, "tokens": 3})


# -- the same solver code on the replay engine (virtual time) ---------------------------------
def _replay_problem(with_conf: bool) -> Any:
    from aimo_submit.traces import TraceProblem, TraceSample

    def sample(answer: str, logprob: float) -> TraceSample:
        blocks = ConfidenceBlocks(4, 40, (8.0,) * 10, (logprob,) * 10) if with_conf else None
        return TraceSample(40, answer, confidence=blocks)

    # Three unsure samples say 7, two sure ones say 5 (a slip is an unlikely draw).
    pool = [sample("7", -2.0), sample("5", -0.01), sample("7", -2.0), sample("5", -0.01),
            sample("7", -2.0)]
    return TraceProblem("p1", 5, tuple(pool))


def _replay_solve(problem: Any, policy: Any) -> Any:
    from aimo_submit import simclock
    from aimo_submit.engines.replay import ReplayEngine, problem_text
    from aimo_submit.schedule import ProblemBudget
    from aimo_submit.solver import Solver

    async def main() -> Any:
        engine = ReplayEngine([problem], chunk_tokens=4, heartbeat_s=None)
        solver = Solver(engine, policy, modulus=1000)
        now = asyncio.get_running_loop().time()
        budget = ProblemBudget(now, now + 1e5, now + 1e5, policy.max_tokens, policy.n_samples,
                               1e5)
        return await solver.solve(problem_text(problem), budget)

    return simclock.run(main())


def test_replayed_confidences_weight_the_vote_and_fall_back_to_plain_without_them() -> None:
    from aimo_submit.policy import PolicyConfig

    plain = PolicyConfig(n_samples=5, early_stop_agree=9, early_stop_unbeatable=False,
                         max_tokens=100)
    weighted = plain.replace(confidence_vote="logprob_mean", confidence_power=1.0,
                             confidence_window=4, confidence_tail=4)
    assert _replay_solve(_replay_problem(True), plain).answer == 7
    r = _replay_solve(_replay_problem(True), weighted)
    assert r.answer == 5
    weights = sorted(s["weight"] for s in r.samples)
    assert weights[0] == pytest.approx(math.exp(-2.0), abs=1e-6)  # the log rounds to 6 places
    assert weights[-1] == pytest.approx(math.exp(-0.01), abs=1e-6)
    assert all(s["confidence"]["blocks"]["tokens"] == 40 for s in r.samples)
    fallback = _replay_solve(_replay_problem(False), weighted)
    assert fallback.answer == 7 and all(s["confidence"] is None for s in fallback.samples)
    assert all(s["weight"] == 1.0 for s in fallback.samples)


def test_replayed_online_termination_cancels_unsure_samples_after_the_warm_up() -> None:
    from aimo_submit.policy import PolicyConfig

    policy = PolicyConfig(n_samples=5, early_stop_agree=9, early_stop_unbeatable=False,
                          max_tokens=100, confidence_stop_signal="logprob_lowest_group",
                          confidence_stop_percentile=50.0, confidence_warmup=2,
                          confidence_staged=True, confidence_window=4, confidence_tail=4)
    r = _replay_solve(_replay_problem(True), policy)
    # warm-up: samples 0 (-2.0) and 1 (-0.01) finish; threshold = their median (-1.005);
    # of the rest, the two unsure ones are cancelled on their first full window
    assert r.confidence_threshold == pytest.approx(-1.005)
    finish = [s["finish"] for s in r.samples]
    assert finish == ["boxed", "boxed", "low-confidence", "boxed", "low-confidence"]
    assert [s["tokens"] for s in r.samples] == [40, 40, 4, 40, 4]
    assert r.low_confidence_stops == 2 and r.n_voted == 3 and r.answer == 5
    assert r.tokens == 128
    off = _replay_solve(_replay_problem(False), policy)  # no confidences: nothing is stopped
    assert off.low_confidence_stops == 0 and off.tokens == 200 and off.answer == 7


# -- the real tiny model ---------------------------------------------------------------------
_MODEL = Path(__file__).resolve().parents[1] / "aimo_submit" / "assets" / "tiny-model"


@pytest.mark.skipif(not (_MODEL / "config.json").is_file(), reason="tiny model not trained")
def test_tiny_model_weighted_vote_and_online_termination() -> None:
    """On the real engine: every generated token is scored, the weights follow the mapping,
    and online termination cancels samples (no vote, fewer tokens) on the same seeds."""
    from aimo_submit.engines.transformers_engine import TransformersEngine
    from aimo_submit.policy import PolicyConfig
    from aimo_submit.schedule import ProblemBudget
    from aimo_submit.solver import Solver

    base = PolicyConfig(n_samples=8, early_stop_agree=9, early_stop_unbeatable=False,
                        temperature=1.0, top_p=1.0, max_tokens=128, seed=3,
                        confidence_vote="logprob_lowest_group", confidence_power=4.0,
                        confidence_window=8, confidence_tail=8, confidence_block=4)
    online = base.replace(confidence_vote="", confidence_stop_signal="logprob_lowest_group",
                          confidence_stop_percentile=90.0, confidence_warmup=2,
                          confidence_staged=True)
    problem = "What is the remainder when 947 is divided by 7?"

    async def main() -> tuple[Any, Any]:
        engine = TransformersEngine(_MODEL, device="cpu", threads=1)
        await engine.start()
        try:
            out = []
            for policy in (base, online):
                solver = Solver(engine, policy, modulus=1000, prompt_style="tiny",
                                stop=("<|im_end|>",))
                now = asyncio.get_running_loop().time()
                budget = ProblemBudget(now, now + 600, now + 600, 128, 8, 600)
                out.append(await solver.solve(problem, budget))
            return out[0], out[1]
        finally:
            await engine.close()

    full, cut = asyncio.run(main())
    for s in full.samples:
        conf = s["confidence"]
        assert conf["tokens"] == s["tokens"] == conf["blocks"]["tokens"]
        want = weight_of("logprob_lowest_group", conf["logprob_lowest_group"], 5, 4.0)
        assert s["weight"] == pytest.approx(want, abs=1e-3)
    stopped = [s for s in cut.samples if s["finish"] == "low-confidence"]
    assert stopped and cut.low_confidence_stops == len(stopped)
    assert cut.n_voted == 8 - len(stopped) and cut.tokens < full.tokens
    assert cut.confidence_threshold is not None


def test_presets_say_whether_they_use_confidence() -> None:
    """presets.py states that no preset uses confidence: keep the statement true."""
    import aimo_submit.presets as presets

    assert "no preset uses it" in (presets.__doc__ or "")
    for name in presets.preset_names():
        policy = presets.get_preset(name)
        assert not policy.uses_confidence and not policy.confidence_record, name


def test_a_recorded_run_replays_with_its_confidences(tmp_path: Path) -> None:
    """A run-log line (what the runner writes per problem) loads back as a trace pool whose
    samples carry their confidences, and replays to the same weighted decision."""
    import json

    from aimo_submit.policy import PolicyConfig
    from aimo_submit.traces import load_runlog_traces

    policy = PolicyConfig(n_samples=5, early_stop_agree=9, early_stop_unbeatable=False,
                          max_tokens=100, confidence_vote="logprob_mean", confidence_window=4,
                          confidence_tail=4, confidence_block=4)
    first = _replay_solve(_replay_problem(True), policy)
    log = tmp_path / "aimo_runlog.jsonl"
    log.write_text(json.dumps({"id": "p1", **first.to_dict()}) + "\n" + "not json\n")
    (problem,) = load_runlog_traces(log, {"p1": 5})
    assert [s.answer_text for s in problem.samples] == ["7", "5", "7", "5", "7"]
    assert all(s.confidence is not None and s.confidence.tokens == 40 for s in problem.samples)
    again = _replay_solve(problem, policy)
    assert again.answer == first.answer == 5
    assert [s["weight"] for s in again.samples] == [s["weight"] for s in first.samples]
    assert load_runlog_traces(log, {}) == []
