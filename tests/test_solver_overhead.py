"""The solver's cost per streamed event stays flat in the number of samples (issue 15).

With 64 samples each decode step brings 64 events; walking every sample for the stop rules on
each of them cost 28 us an event on this CPU (a fake vLLM, ``bench/fake_vllm.py``). The stop
rules now run again only after something they read changed (a sample finished, a vote, a code
run started or ended). These tests count how often they run against a scripted engine, and
check that stopping still happens at the event that made it due, not later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aimo_submit.solver as solver_mod
from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
)
from aimo_submit.policy import PolicyConfig
from aimo_submit.schedule import ProblemBudget
from aimo_submit.solver import Solver, SolveResult


class _Steps(Generation):
    """Every sample emits one token per step; sample i ends after ``lengths[i]`` tokens with
    ``answers[i]`` boxed (None: no answer). Cancelled samples end at the next step."""

    def __init__(self, request: GenerationRequest, lengths: list[int],
                 answers: list[int | None]) -> None:
        self.request = request
        self.lengths = lengths
        self.answers = answers
        self.cancelled: set[int] = set()
        self.events = 0

    def __aiter__(self) -> AsyncIterator[SampleEvent]:
        return self._run()

    async def _run(self) -> AsyncIterator[SampleEvent]:
        n = self.request.n
        done = [False] * n
        step = 0
        while not all(done):
            step += 1
            for i in range(n):
                if done[i]:
                    continue
                if i in self.cancelled:
                    done[i] = True
                    yield SampleEvent(i, "", step - 1, True, FinishReason.CANCELLED)
                    continue
                last = step >= self.lengths[i]
                a = self.answers[i]
                delta = (f" \\boxed{{{a}}}" if a is not None else " x") if last else " w"
                done[i] = last
                self.events += 1
                yield SampleEvent(i, delta, step, last, FinishReason.STOP if last else None)
            await asyncio.sleep(0)

    def cancel(self, index: int | None = None) -> None:
        self.cancelled.update(range(self.request.n) if index is None else (index,))

    async def aclose(self) -> None:
        self.cancel()


class _Engine(Engine):
    name = "steps"

    def __init__(self, lengths: list[int], answers: list[int | None]) -> None:
        self.lengths, self.answers = lengths, answers
        self.gens: list[_Steps] = []

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        return messages[-1]["content"]

    def generate(self, request: GenerationRequest) -> Generation:
        gen = _Steps(request, self.lengths, self.answers)
        self.gens.append(gen)
        return gen


def _solve(engine: _Engine, n: int, **policy: Any) -> SolveResult:
    async def main() -> SolveResult:
        now = time.monotonic()
        budget = ProblemBudget(start=now, soft_deadline=now + 60, hard_deadline=now + 60,
                               max_tokens=1000, n_samples=n, fair_share_s=60)
        settings = dict(n_samples=n, tir=False, stop_on_boxed=False, **policy)
        return await Solver(engine, PolicyConfig(**settings), modulus=1000,
                            prompt_style="tiny").solve("What is 1 + 1?", budget)

    return asyncio.run(main())


@pytest.fixture
def stop_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts ``should_stop`` calls (the per-check walk over the samples and votes)."""
    calls: list[int] = []
    real = solver_mod.should_stop

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(solver_mod, "should_stop", counted)
    return calls


def test_stop_rules_run_per_finished_sample_not_per_event(stop_calls: list[int]) -> None:
    n, steps = 64, 50
    engine = _Engine([steps] * n, [7] * n)
    result = _solve(engine, n, early_stop_agree=n + 1, early_stop_unbeatable=False)
    assert result.stop_reason == "all-done" and result.answer == 7 and result.n_voted == n
    assert engine.gens[0].events == n * steps  # 3200 events streamed
    # once at the start, then at most once per finished sample
    assert len(stop_calls) <= n + 1


def test_early_stop_still_fires_at_the_vote_that_makes_it_due(stop_calls: list[int]) -> None:
    # samples end one step apart; the third "7" (sample 2, step 12) settles agree=3
    n = 8
    lengths = [10 + i for i in range(n)]
    engine = _Engine(lengths, [7] * n)
    result = _solve(engine, n, early_stop_agree=3, early_stop_unbeatable=False)
    assert result.stop_reason == "agree" and result.answer == 7
    assert result.votes == {7: 3}
    finishes = sorted(s["finish"] for s in result.samples)
    assert finishes.count("stop") == 3 and finishes.count("cancelled") == n - 3
    # the others were cancelled at that point: none of them streamed to its end
    assert max(s["tokens"] for s in result.samples if s["finish"] == "cancelled") <= 12


def test_with_a_confidence_vote_the_rules_run_on_every_event(stop_calls: list[int]) -> None:
    """Its weight bounds move with every token, so the per-event check stays (and is needed)."""
    n, steps = 4, 20
    engine = _Engine([steps] * n, [3] * n)
    result = _solve(engine, n, early_stop_agree=n + 1, early_stop_unbeatable=False,
                    confidence_vote="tail")
    assert result.answer == 3
    assert len(stop_calls) >= n * steps
