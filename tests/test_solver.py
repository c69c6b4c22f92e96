"""The solver on the real embedded tiny model: early stop, deadlines, fallback, tool use.

Everything here is real: the committed Qwen2 tiny model through ``TransformersEngine`` on CPU and,
for tool-integrated reasoning, the subprocess sandbox. Problems come from the project's CSV, whose
answers are known, so the tests check the answers too where the tiny model is reliable.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import polars as pl
import pytest

from aimo_submit.engines.transformers_engine import TransformersEngine
from aimo_submit.policy import PolicyConfig
from aimo_submit.schedule import ProblemBudget, Scheduler
from aimo_submit.solver import Solver, SolveResult

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "aimo_submit" / "assets" / "tiny-model"
PROBLEMS = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"

pytestmark = pytest.mark.skipif(
    not (MODEL / "config.json").is_file(), reason="tiny model not trained (make tiny-model)"
)


def _problem(kind: str) -> tuple[str, int]:
    """A problem of the CSV whose text contains ``kind`` (its text and its answer)."""
    frame = pl.read_csv(PROBLEMS, infer_schema_length=0)
    row = frame.filter(pl.col("problem").str.contains(kind, literal=True)).row(0, named=True)
    return row["problem"], int(row["answer"])


def _budget(seconds: float, *, n: int, max_tokens: int, soft: float | None = None) -> ProblemBudget:
    now = time.monotonic()
    return ProblemBudget(
        start=now,
        soft_deadline=now + (seconds if soft is None else soft),
        hard_deadline=now + seconds,
        max_tokens=max_tokens,
        n_samples=n,
        fair_share_s=seconds,
    )


def _solve(
    problem: str,
    policy: PolicyConfig,
    budget_s: float,
    *,
    max_tokens: int = 256,
    tir: bool = False,
    endless: bool = False,
) -> tuple[SolveResult, float, ProblemBudget]:
    """Run one problem on a freshly loaded engine; returns the result, wall seconds, budget."""

    async def main() -> tuple[SolveResult, float, ProblemBudget]:
        engine = TransformersEngine(MODEL, device="cpu", threads=1, max_concurrent=4)
        await engine.start()
        if endless:  # samples no longer end at <|im_end|>: they run to the length limit
            engine.eos_token_ids = frozenset()
        sandbox = None
        if tir:
            from aimo_submit.sandbox import Sandbox

            sandbox = Sandbox(workers=2, timeout_s=policy.code_timeout_s)
        solver = Solver(
            engine,
            policy,
            modulus=1000,
            prompt_style="tiny",
            tir_prompt_style="tiny-tir",
            stop=() if endless else ("<|im_end|>",),
            sandbox=sandbox,
        )
        try:
            budget = _budget(budget_s, n=policy.n_samples, max_tokens=max_tokens)
            t0 = time.monotonic()
            result = await solver.solve(problem, budget)
            return result, time.monotonic() - t0, budget
        finally:
            await engine.close()
            if sandbox is not None:
                sandbox.close()

    return asyncio.run(main())


def test_early_stop_when_enough_samples_agree() -> None:
    """An easy problem stops at the agreement rule and cancels the samples still queued."""
    problem, truth = _problem("What is 25 - 23")
    policy = PolicyConfig(n_samples=12, early_stop_agree=3, early_stop_unbeatable=False, tir=False)
    result, _, _ = _solve(problem, policy, budget_s=60)
    assert result.stop_reason == "agree"
    assert result.answer == truth
    assert max(result.votes.values()) == 3
    assert result.n_voted < result.n_samples
    finishes = [s["finish"] for s in result.samples]
    assert "cancelled" in finishes  # queued samples (max_concurrent=4) never ran to the end
    assert result.tokens > 0 and result.tokens_per_s and result.tokens_per_s > 0


def test_without_early_stop_every_sample_votes() -> None:
    """Turning the rules off makes the solver wait for every sample (the contrast case)."""
    problem, _ = _problem("What is 25 - 23")
    policy = PolicyConfig(n_samples=6, early_stop_agree=99, early_stop_unbeatable=False, tir=False)
    result, _, _ = _solve(problem, policy, budget_s=60)
    assert result.stop_reason == "all-done"
    assert result.n_voted + sum(1 for s in result.samples if s["answer"] is None) == 6
    assert all(s["finish"] != "cancelled" for s in result.samples)


def test_unbeatable_leader_stops_before_all_samples_end() -> None:
    problem, truth = _problem("What is 25 - 23")
    policy = PolicyConfig(n_samples=4, early_stop_agree=99, early_stop_unbeatable=True, tir=False)
    result, _, _ = _solve(problem, policy, budget_s=60)
    assert result.stop_reason in ("unbeatable", "all-done")
    if result.stop_reason == "unbeatable":
        leader = max(result.votes.values())
        assert leader > (result.n_samples - result.n_voted) + sum(
            v for a, v in result.votes.items() if a != result.answer
        ) - 1


def test_too_little_time_still_answers_in_time() -> None:
    """Samples that would run far longer than the deadline are cut off and an answer returned."""
    problem, _ = _problem("What is 454 + 389")
    policy = PolicyConfig(
        n_samples=8,
        early_stop_agree=99,
        early_stop_unbeatable=False,
        stop_on_boxed=False,
        answer_grace_s=0.1,
        tir=False,
    )
    # Samples never end by themselves (no end-of-turn token), so only the deadline stops them.
    result, wall, _ = _solve(problem, policy, budget_s=0.4, max_tokens=4096, endless=True)
    assert 0 <= result.answer < 1000
    assert wall <= 0.4 + 0.3, f"answered after {wall:.2f} s for a 0.4 s budget"
    assert result.stop_reason == "deadline"
    assert any(s["finish"] == "cancelled" for s in result.samples)
    assert result.tokens > 0


def test_no_time_at_all_gives_the_fallback_immediately() -> None:
    problem, _ = _problem("What is 25 - 23")
    policy = PolicyConfig(n_samples=4, fallback_answer=7, tir=False)
    result, wall, _ = _solve(problem, policy, budget_s=0.0)
    assert result.stop_reason == "no-time"
    assert result.answer == 7 and result.answer_source == "fallback"
    assert result.tokens == 0
    assert wall < 1.0


def test_tool_integrated_reasoning_runs_code_and_continues() -> None:
    """Modular powers are taught to the tiny model as code: samples pause, run, and resume."""
    problem, truth = _problem("mod 1000?")
    policy = PolicyConfig(n_samples=4, early_stop_agree=3, tir=True, code_timeout_s=10.0)
    result, _, _ = _solve(problem, policy, budget_s=60, tir=True)
    assert result.code_calls > 0
    coded = [s for s in result.samples if s["code_calls"] > 0 and s["answer"] is not None]
    assert coded, f"no sample reached an answer after running code: {result.samples}"
    # a sample paused on its code must resume, not be closed when its first stream ended
    assert all(s["finish"] != "lost" for s in result.samples)
    assert result.answer == truth


def test_solver_and_scheduler_together_measure_throughput() -> None:
    """The scheduler's token budget follows the speed the solver measured."""
    problem, _ = _problem("What is 25 - 23")
    policy = PolicyConfig(n_samples=4, tir=False, initial_tokens_per_s=1.0, max_tokens=256)
    clock = time.monotonic
    sched = Scheduler(policy, total_s=100.0, n_problems=5, clock=clock)
    first = sched.plan()
    result, _, _ = _solve(problem, policy, budget_s=30)
    assert result.tokens_per_s is not None
    sched.observe_throughput(int(result.tokens_per_s * 1000), 1000.0)
    sched.finish_problem()
    second = sched.plan()
    assert result.tokens_per_s > 1.0  # a 1M-parameter model on CPU is far faster than 1 tok/s
    assert second.max_tokens > first.max_tokens
