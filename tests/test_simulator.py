"""The simulator: virtual clock, replay engine, synthetic traces and whole competitions."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from aimo_submit import simclock
from aimo_submit.competition import AIMO2, AIMO3
from aimo_submit.engines.base import FinishReason, GenerationRequest
from aimo_submit.engines.replay import (  # the old home of the throughput models still works
    HARDWARE_PRESETS,
    MeasuredThroughput,
    ReplayEngine,
    problem_text,
)
from aimo_submit.extract import extract_answer
from aimo_submit.policy import PolicyConfig
from aimo_submit.presets import PRESETS, get_preset, policies_for
from aimo_submit.schedule import ProblemBudget, Scheduler
from aimo_submit.simulate import SimSettings, main, oracle, problem_set, run_competition
from aimo_submit.solver import Solver
from aimo_submit.traces import (
    CALIBRATED,
    PUBLISHED,
    TraceProblem,
    TraceSample,
    load_shared_traces,
    predicted_table,
    synthetic_problems,
)
from bench.samples import SampleState

FLAT = MeasuredThroughput(((1, 100.0), (64, 100.0)))
"""100 tokens/s per sequence at any concurrency: timings in tests are easy to predict."""


# -- virtual clock -----------------------------------------------------------------------------
def test_sleep_an_hour_takes_no_real_time():
    async def body() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - t0

    real = time.perf_counter()
    assert simclock.run(body()) == pytest.approx(3600.0)
    assert time.perf_counter() - real < 1.0


def test_wait_for_times_out_in_virtual_time():
    async def body() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.create_future(), timeout=5)
        t1 = loop.time() - t0
        assert await asyncio.wait_for(asyncio.sleep(2, result="ok"), timeout=10) == "ok"
        return t1, loop.time() - t0

    assert simclock.run(body(), start=1000.0) == pytest.approx((5.0, 7.0))


def test_timers_fire_in_time_order_and_ties_in_scheduling_order():
    async def body() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []
        t0 = loop.time()
        for name, at in (("c", 30.0), ("a", 10.0), ("b1", 20.0), ("b2", 20.0)):
            loop.call_at(t0 + at, lambda n=name: fired.append((n, loop.time() - t0)))
        loop.call_later(15.0, lambda: fired.append(("later", loop.time() - t0)))
        await asyncio.sleep(31)
        return fired

    assert simclock.run(body()) == [("a", 10.0), ("later", 15.0), ("b1", 20.0), ("b2", 20.0),
                                    ("c", 30.0)]


def test_a_deadlocked_program_fails_instead_of_hanging():
    async def body() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(simclock.VirtualClockStall):
        simclock.run(body(), stall_timeout_s=0.05)


def test_wake_up_from_another_thread_is_delivered():
    async def body() -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        threading.Timer(0.05, loop.call_soon_threadsafe, (fut.set_result, "woken")).start()
        return await fut

    assert simclock.run(body(), stall_timeout_s=5.0) == "woken"


def test_a_driven_loop_keeps_time_still_while_its_driver_works():
    """The simulator's ``predict`` runs on another thread: the clock moves only in its waits."""
    from aimo_submit.runner import EventLoopThread

    loop = simclock.VirtualEventLoop(driven=True)
    thread = EventLoopThread("test-driven", loop)
    try:
        slept = thread.submit(asyncio.sleep(100.0))
        time.sleep(0.05)  # real time passes on this thread; virtual time must not
        assert loop.time() == 0.0 and not slept.done()
        assert thread.wait(slept, 30.0) is False  # the timeout comes first, in virtual seconds
        assert loop.time() == pytest.approx(30.0)
        time.sleep(0.05)
        assert loop.time() == pytest.approx(30.0)
        assert thread.wait(slept, 1000.0) is True
        assert loop.time() == pytest.approx(100.0)
    finally:
        thread.stop()
        loop.close()


# -- replay engine -----------------------------------------------------------------------------
def _problem(*samples: TraceSample, pid: str = "t1", answer: int = 42) -> TraceProblem:
    return TraceProblem(pid, answer, tuple(samples))


async def _collect(engine: ReplayEngine, request: GenerationRequest,
                   on_event=None) -> tuple[dict[int, SampleState], dict[int, int], float]:
    loop = asyncio.get_running_loop()
    states = {i: SampleState(i) for i in range(request.n)}
    finals = {i: 0 for i in range(request.n)}
    gen = engine.generate(request)
    async for ev in gen:
        assert not states[ev.index].finished, "event after a sample's final event"
        states[ev.index].apply(ev)
        finals[ev.index] += ev.finished
        if on_event is not None:
            on_event(gen, ev, loop.time())
    return states, finals, loop.time()


def test_replay_streams_each_sample_to_exactly_one_final_event():
    problem = _problem(TraceSample(1000, "42"), TraceSample(3000, "7"),
                       TraceSample(500, None), TraceSample(9000, "42", finished=False))
    engine = ReplayEngine([problem], FLAT, chunk_tokens=256, request_latency_s=0.5)
    request = GenerationRequest(problem_text(problem), n=4, max_tokens=5000)
    states, finals, end = simclock.run(_collect(engine, request))
    assert finals == {0: 1, 1: 1, 2: 1, 3: 1}
    assert [states[i].tokens for i in range(4)] == [1000, 3000, 500, 5000]
    assert [states[i].finish_reason for i in range(4)] == [
        FinishReason.STOP, FinishReason.STOP, FinishReason.STOP, FinishReason.LENGTH]
    assert extract_answer(states[0].text) == 42
    assert states[1].text.rstrip().endswith("\\boxed{7}")
    assert extract_answer(states[2].text) is None  # finished without an answer
    assert extract_answer(states[3].text) is None  # truncated: no answer
    assert end == pytest.approx(0.5 + 5000 / 100.0)
    assert len(states[1].text) < 100  # text stays small; token counts carry the length


def test_max_tokens_truncates_to_length_without_answer():
    problem = _problem(TraceSample(2000, "42"))
    engine = ReplayEngine([problem], FLAT, request_latency_s=0.0)
    states, _, end = simclock.run(_collect(
        engine, GenerationRequest(problem_text(problem), n=1, max_tokens=1500)))
    assert states[0].finish_reason == FinishReason.LENGTH
    assert states[0].tokens == 1500
    assert "boxed" not in states[0].text
    assert end == pytest.approx(15.0)


def test_cancel_one_sample_ends_it_with_its_tokens_so_far():
    problem = _problem(TraceSample(4000, "1"), TraceSample(4000, "2"))
    engine = ReplayEngine([problem], FLAT, chunk_tokens=100, request_latency_s=0.0)

    def cancel_at_1000(gen, ev, now):
        if ev.index == 0 and ev.tokens == 1000:
            gen.cancel(0)
            gen.cancel(0)  # idempotent

    states, finals, end = simclock.run(_collect(
        engine, GenerationRequest(problem_text(problem), n=2, max_tokens=8000), cancel_at_1000))
    assert finals == {0: 1, 1: 1}
    assert states[0].finish_reason == FinishReason.CANCELLED
    assert states[0].tokens == 1000
    assert states[1].finish_reason == FinishReason.STOP and states[1].tokens == 4000
    assert end == pytest.approx(40.0)


def test_cancel_all_and_aclose_end_every_sample_at_once():
    problem = _problem(*(TraceSample(10_000, "5") for _ in range(3)))
    engine = ReplayEngine([problem], FLAT, request_latency_s=1.0)

    async def body():
        loop = asyncio.get_running_loop()
        gen = engine.generate(GenerationRequest(problem_text(problem), n=3, max_tokens=20_000))
        await asyncio.sleep(0.5)  # still in prefill: cancelled before decoding
        gen.cancel(2)
        await asyncio.sleep(10)
        await gen.aclose()
        events = [ev async for ev in gen]
        return events, loop.time()

    events, now = simclock.run(body())
    finals = [ev for ev in events if ev.finished]
    assert sorted(ev.index for ev in finals) == [0, 1, 2]
    assert all(ev.finish_reason == FinishReason.CANCELLED for ev in finals)
    assert {ev.index: ev.tokens for ev in finals} == {0: 950, 1: 950, 2: 0}
    assert now == pytest.approx(10.5)


def test_a_recorded_sample_is_used_at_most_once_per_problem():
    problem = _problem(TraceSample(100, "1"), TraceSample(100, "2"), TraceSample(100, "3"))
    engine = ReplayEngine([problem], FLAT, request_latency_s=0.0)

    async def body():
        out = []
        for _ in range(2):
            states, finals, _ = await _collect(
                engine, GenerationRequest(problem_text(problem), n=2, max_tokens=500))
            assert finals == {0: 1, 1: 1}
            out.append([(extract_answer(states[i].text), states[i].finish_reason, states[i].tokens)
                        for i in range(2)])
        with pytest.raises(KeyError):
            engine.generate(GenerationRequest("no marker here", n=1))
        return out

    first, second = simclock.run(body())
    assert [a for a, _, _ in first] == [1, 2]
    # the pool has one sample left: the second request's other sample never decodes or votes
    assert second == [(3, FinishReason.STOP, 100), (None, FinishReason.CANCELLED, 0)]
    assert engine.unavailable == 1 and engine.generated_tokens == 300


# -- the solver, unchanged, on the replay engine -----------------------------------------------
def _budget(now: float, seconds: float, n: int, max_tokens: int = 20_000) -> ProblemBudget:
    return ProblemBudget(start=now, soft_deadline=now + seconds, hard_deadline=now + seconds,
                         max_tokens=max_tokens, n_samples=n, fair_share_s=seconds)


def test_solver_stops_early_when_samples_agree():
    quick = [TraceSample(1000 + 100 * i, "123") for i in range(4)]
    slow = [TraceSample(20_000, "9") for _ in range(4)]
    problem = _problem(*quick, *slow)
    engine = ReplayEngine([problem], FLAT, request_latency_s=0.0)
    policy = PolicyConfig(n_samples=8, early_stop_agree=4, early_stop_unbeatable=False)

    async def body():
        loop = asyncio.get_running_loop()
        solver = Solver(engine, policy, stop=("</think>",))
        return await solver.solve(problem_text(problem), _budget(loop.time(), 1000.0, 8))

    result = simclock.run(body())
    assert (result.answer, result.stop_reason) == (123, "agree")
    assert result.seconds == pytest.approx(13.0, abs=0.1)  # the 4th quick sample at 1300 tokens
    assert sorted(s["finish"] for s in result.samples).count("cancelled") == 4


@pytest.mark.parametrize("settle_late", [False, True])
def test_a_vote_after_the_soft_deadline_settles_only_with_settle_late(settle_late):
    """One sample answers at 20 s, past the 10 s soft deadline; the other three at 200 s.
    Checked only at the soft deadline (no vote yet), the problem runs on until two agree;
    with ``settle_late`` the lone vote (share 1.0 >= settled_share) ends it at once."""
    problem = _problem(TraceSample(2000, "5"), *(TraceSample(20_000, "5") for _ in range(3)))
    engine = ReplayEngine([problem], FLAT, request_latency_s=0.0)
    policy = PolicyConfig(n_samples=4, early_stop_agree=2, early_stop_unbeatable=False,
                          settle_late=settle_late)

    async def body():
        now = asyncio.get_running_loop().time()
        budget = ProblemBudget(start=now, soft_deadline=now + 10.0, hard_deadline=now + 1000.0,
                               max_tokens=20_000, n_samples=4, fair_share_s=10.0)
        return await Solver(engine, policy, stop=("</think>",)).solve(problem_text(problem),
                                                                      budget)

    result = simclock.run(body())
    assert result.answer == 5
    if settle_late:
        assert result.stop_reason == "soft-deadline"
        assert result.seconds == pytest.approx(20.0, abs=0.1)
    else:
        assert result.stop_reason == "agree"
        assert result.seconds == pytest.approx(200.0, abs=0.1)


def test_a_problem_given_one_second_answers_in_time():
    problem = _problem(*(TraceSample(50_000, "77") for _ in range(4)))
    engine = ReplayEngine([problem], HARDWARE_PRESETS["l4x4-dp4"])

    async def body():
        loop = asyncio.get_running_loop()
        solver = Solver(engine, PolicyConfig(n_samples=4), stop=("</think>",))
        budget = _budget(loop.time(), 1.0, 4)
        result = await solver.solve(problem_text(problem), budget)
        return result, loop.time() - budget.hard_deadline

    result, late = simclock.run(body())
    assert late <= 0.0
    assert result.answer == PolicyConfig().fallback_answer
    assert result.stop_reason == "deadline"


# -- traces ------------------------------------------------------------------------------------
def test_synthetic_traces_are_deterministic_per_seed():
    a, b, c = synthetic_problems(5, 3), synthetic_problems(5, 3), synthetic_problems(5, 4)
    assert a == b
    assert a != c
    assert all(len(p.samples) == 64 and 0 <= p.answer < 1000 for p in a)
    assert [p.id for p in a] == [p.id for p in b]


def test_calibrated_models_reproduce_the_published_table():
    for key, model in CALIBRATED.items():
        name, bench = key.split("/")
        table = PUBLISHED[name][bench]
        predicted = predicted_table(model, [t[0] for t in table])
        for (b, pub_p, pub_m), (_, p, m) in zip(table, predicted, strict=True):
            assert abs(p - pub_p) < 2.0, (key, b)
            assert abs(m - pub_m) < 500, (key, b)


def test_shared_traces_loader_skips_cleanly_when_absent(tmp_path):
    assert load_shared_traces(tmp_path / "missing") is None
    assert load_shared_traces(tmp_path) is None  # present but empty
    problems, source = problem_set(0, SimSettings())
    assert len(problems) == 50 and source.startswith("synthetic")


def test_traces_are_judged_under_the_profile_and_files_are_never_pooled(tmp_path):
    lines = [{"problem_id": "p", "gold": 12345, "tokens": 900, "extracted": "12345"},
             {"problem_id": "p", "gold": 12345, "tokens": 500, "extracted": "345"},
             {"problem_id": "p", "gold": 12345, "tokens": 700, "extracted": "345"}]
    path = tmp_path / "one.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    aimo3 = load_shared_traces(path, profile=AIMO3)
    aimo2 = load_shared_traces(tmp_path, profile=AIMO2)  # a folder with exactly one file
    assert aimo3[0].answer == 12345 and aimo2[0].answer == 345
    # under AIMO3 the two "345" samples are wrong; under AIMO2 (mod 1000) they are right
    assert oracle(aimo3, AIMO3.answer_modulus) == (0.0, 1)
    assert oracle(aimo2, AIMO2.answer_modulus) == (1.0, 1)
    (tmp_path / "two.jsonl").write_text(path.read_text())
    with pytest.raises(ValueError, match="never pooled"):
        load_shared_traces(tmp_path)


def test_time_rules_of_the_references():
    clock = [0.0]
    base = dict(initial_tokens_per_s=100.0, safety_margin_s=0.0, safety_margin_frac=0.0)
    fixed = Scheduler(PolicyConfig(**base, time_rule="fixed"), 1000, 10, clock=lambda: clock[0])
    run = Scheduler(PolicyConfig(**base, time_rule="run"), 1000, 10, clock=lambda: clock[0])
    ours = Scheduler(PolicyConfig(**base), 1000, 10, clock=lambda: clock[0])
    assert fixed.plan().hard_deadline == 100.0 and run.plan().hard_deadline == 1000.0
    assert ours.plan().hard_deadline == pytest.approx(160.0)  # fair share x extend_factor
    for s in (fixed, run, ours):
        s.finish_problem()
    clock[0] = 10.0  # the first problem took 10 s of its 100
    assert fixed.plan().hard_deadline == pytest.approx(110.0)  # saved time is not reused
    assert ours.plan().hard_deadline == pytest.approx(10.0 + 1.6 * 990 / 9)
    with pytest.raises(ValueError):
        PolicyConfig(time_rule="sometimes")


def test_shared_traces_loader_reads_jsonl(tmp_path):
    lines = [
        {"problem_id": "a", "answer": 12, "tokens": 900, "text": "so \\boxed{12}",
         "finish_reason": "stop"},
        {"problem_id": "a", "answer": 12, "tokens": 16000, "text": "...",
         "finish_reason": "length"},
        {"problem_id": "b", "gold": 1012, "completion_tokens": 50, "extracted": "3"},
        {"problem_id": "c", "tokens": 10, "extracted": "1"},  # no gold answer: skipped
        "not an object",
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{broken\n"
    (tmp_path / "run1.jsonl").write_text(text)
    problems = {p.id: p for p in load_shared_traces(tmp_path / "run1.jsonl")}
    assert sorted(problems) == ["a", "b"]
    assert problems["a"].samples == (TraceSample(900, "12"), TraceSample(16000, None, False))
    assert problems["b"].answer == 12 and problems["b"].samples[0].answer_text == "3"


# -- whole competitions ------------------------------------------------------------------------
def test_full_competitions_never_overrun():
    settings = SimSettings(traces="synthetic")
    problems, _ = problem_set(0, settings)
    real = time.perf_counter()
    for name, policy in PRESETS.items():
        result = run_competition(problems, policy, settings, order_seed=1, name=name)
        assert result.n_problems == 50
        assert not result.overrun and result.problem_overruns == 0, name
        assert result.time_used_s <= settings.total_s
        assert 0 < result.solved <= oracle(problems)[1]
    assert time.perf_counter() - real < 60.0  # 7 presets; generous: the machine is shared


def test_the_simulator_runs_the_runners_restart_and_retry():
    """A problem whose engine hangs: the runner restarts the engine (a model load in
    virtual time) and asks again on it, as on Kaggle; the simulator reports what it did."""
    from bench.faulty import Fault, FaultKind, FaultyEngine

    settings = SimSettings(traces="synthetic", n_problems=5, total_s=3600.0, startup_s=60.0)
    problems, _ = problem_set(0, settings)
    faulty: list[FaultyEngine] = []

    def wrap(engine):
        faulty.append(FaultyEngine(engine, [Fault(FaultKind.HANG, call=0)]))
        return faulty[0]

    result = run_competition(problems, get_preset("ours"), settings, order_seed=2,
                             wrap_engine=wrap)
    first = result.records[0]
    assert [f["kind"] for f in faulty[0].fired] == ["hang"]
    assert result.restarts == 1 and faulty[0].starts == 2
    assert first.retried and first.n_voted > 0
    assert not result.overrun and result.problem_overruns == 0
    assert first.seconds > settings.startup_s  # the retry waited for the reload


def test_behind_schedule_cap_is_off_by_default_and_applies_when_behind():
    clock = [0.0]
    base = dict(max_tokens=12_000, initial_tokens_per_s=1000.0, safety_margin_s=0.0,
                safety_margin_frac=0.0)
    plain = Scheduler(PolicyConfig(**base), 1000, 10, clock=lambda: clock[0])
    capped = Scheduler(PolicyConfig(**base, behind_schedule_max_tokens=8000), 1000, 10,
                       clock=lambda: clock[0])
    assert plain.plan().max_tokens == capped.plan().max_tokens == 12_000
    clock[0] = 700.0  # problem 0 should have started by 60 % of the budget
    assert plain.plan().max_tokens == 12_000  # the rule is off: being behind changes nothing
    assert capped.plan().max_tokens == 8000 and capped.behind_schedule()


def test_presets_and_cli(capsys, tmp_path):
    assert {"aimo2-baseline", "aimo2-winner", "aimo3-baseline", "ours"} <= set(PRESETS)
    assert get_preset("ours", n_samples=3).n_samples == 3
    with pytest.raises(KeyError):
        get_preset("nope")
    rc = main(["--seeds", "1", "--problems", "4", "--budget-hours", "0.5",
               "--policy", "ours", "--policy", "aimo2-winner"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| ours |" in out and "| aimo2-winner |" in out


def test_the_scaling_rule_is_a_setting_and_a_flag(tmp_path, capsys):
    """Measured tables are carried to the L4 by the split rule unless told otherwise; the
    earlier whole-step rule stays reachable for the sensitivity tables."""
    from aimo_submit.hardware import ScaledThroughput

    default, old = SimSettings().throughput(), SimSettings(scaling="bandwidth").throughput()
    assert isinstance(default, ScaledThroughput) and default.rule == "split"
    assert isinstance(old, ScaledThroughput) and old.rule == "bandwidth"
    assert default.tokens_per_s(8, 8192) > old.tokens_per_s(8, 8192)
    assert main(["--seeds", "1", "--problems", "2", "--budget-hours", "0.2", "--policy", "ours",
                 "--scaling", "bandwidth"]) == 0
    assert "bandwidth ratio; the earlier rule" in capsys.readouterr().out


def test_summary_json_of_a_recorded_file(tmp_path, capsys):
    lines = [{"problem_id": f"p{i}", "gold": 40000 + i, "tokens": 2000 + 300 * j,
              "extracted": str(40000 + i if j % 3 else 7), "finish_reason": "stop",
              "model": "gpt-oss-120b (test)"} for i in range(4) for j in range(6)]
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(json.dumps(x) for x in lines))
    summary = tmp_path / "s.json"
    rc = main(["--traces", str(trace), "--profile", "aimo3", "--seeds", "3",
               "--summary", str(summary)])
    assert rc == 0
    doc = json.loads(summary.read_text())
    assert doc["profile"] == "aimo3" and doc["seeds"] == 3 and doc["traces"] == str(trace)
    assert "h100-gpt-oss-120b" in doc["hardware"]  # where the gpt-oss traces were recorded
    assert doc["oracle"] == 4.0  # 4 of 6 samples right on every problem, judged 0..99999
    assert set(doc["policies"]) == set(policies_for("aimo3"))
    for row in doc["policies"].values():
        assert set(row) == {"solved_mean", "solved_sd", "overrun_rate", "config"}
        assert row["overrun_rate"] == 0.0 and 0 <= row["solved_mean"] <= 4
    assert doc["policies"]["ours"]["config"] == policies_for("aimo3")["ours"].to_dict()
    for gap in doc["paired"].values():
        lo, hi = gap["ci95"]
        assert lo <= gap["gap"] <= hi and 0 <= gap["ahead"] <= 3
    assert "ours" not in doc["paired"]
    assert "| ours |" in capsys.readouterr().out


@pytest.mark.parametrize("profile", ["aimo2", "aimo3"])
def test_the_notebook_runs_the_benchmarked_policy(capsys, profile):
    """``policy --profile P`` prints what Submission.create resolves for the notebook's model
    of that profile (the 14B AWQ model; gpt-oss-120b), and it is the simulator's ``ours``:
    token cap, sample count and the tool settings included."""
    from aimo_submit.cli import main as cli_main

    assert cli_main(["policy", "--profile", profile]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == policies_for(profile)["ours"].to_dict()


@pytest.mark.parametrize("profile", ["aimo2", "aimo3"])
def test_the_default_policy_fits_the_model_and_the_machine(profile):
    """One fact, one place: the simulator's token cap is the notebook model's (manifest), and
    the default preset's samples at that model's full context fit the KV cache of the machine
    the simulator models, so no sample the benchmark counts would be preempted for memory."""
    from aimo_submit.competition import get_profile
    from aimo_submit.hardware import SETUPS
    from aimo_submit.manifest import load_manifest
    from aimo_submit.presets import MODEL_MAX_TOKENS

    prof = get_profile(profile)
    manifest = load_manifest()
    entry = manifest.get(prof.default_model) if prof.default_model else manifest.default(
        "kaggle")
    assert MODEL_MAX_TOKENS[profile] == entry.max_tokens
    ours = policies_for(profile)["ours"]
    context = entry.engine_settings["max_model_len"]
    assert ours.n_samples * context <= SETUPS[prof.setup].kv_capacity_tokens


def test_the_tuning_grid_refuses_holdout_files(capsys):
    """Holdout traces are for reporting: the tool that chose the presets will not read them."""
    from bench.tune_policies import main as tune

    assert tune(["--traces", "traces/holdout/any.jsonl", "--grid", "{}"]) == 2
    assert "reporting only" in capsys.readouterr().err


def test_paired_interval_is_a_student_t_interval():
    """Small seed counts get Student's t, not 1.96: two pairs 0 and 2 give 1 +- 12.706."""
    from aimo_submit.simulate import paired_interval
    assert paired_interval([0.0, 2.0]) == pytest.approx((1.0, 12.706))
    assert paired_interval([1.0, 1.0, 1.0]) == (1.0, 0.0)
    assert paired_interval([3.0]) == (3.0, 0.0)
    gap, half = paired_interval([float(i % 2) for i in range(100)])  # beyond the table: 1.96
    assert half == pytest.approx(1.96 * 0.50252 / 10, rel=1e-3)
