"""The deadline benchmark's adversary really bites, and the run still ends inside the budget.

A few seeds of ``bench/deadline.py`` (the full 1,000-seed run is ``make bench-deadline``):
the replay engine (FAKE GPU timing) slowed down and wrapped in the fault injector, the real
solver and scheduler on top.
"""

from __future__ import annotations

import asyncio

from aimo_submit.engines.replay import HARDWARE_PRESETS
from bench.deadline import AdversarialThroughput, Episode, adversary, play, summarize
from bench.faulty import FaultKind


def test_adversary_is_deterministic_and_varied() -> None:
    a, b = adversary(3, 18_000), adversary(3, 18_000)
    assert a == b
    plans = [adversary(s, 18_000) for s in range(200)]
    kinds = {f.kind for adv in plans for f in adv.plan}
    assert {FaultKind.HANG, FaultKind.HANG_DEAF, FaultKind.OOM, FaultKind.ENDLESS,
            FaultKind.SLOW_FIRST_EVENT} <= kinds
    assert min(a.startup_s for a in plans) >= 60 and max(a.startup_s for a in plans) <= 900


def test_adversarial_throughput_follows_its_episodes() -> None:
    inner = HARDWARE_PRESETS["l4x4-dp4"]
    slow = AdversarialThroughput(inner, 0.5, [Episode(10.0, 20.0, 0.1)])

    async def at(t: float) -> float:
        loop = asyncio.get_running_loop()
        slow.t0 = loop.time() - t
        return slow.tokens_per_s(8, 1000.0)

    full = inner.tokens_per_s(8, 1000.0)
    assert asyncio.run(at(5.0)) == 0.5 * full
    assert abs(asyncio.run(at(15.0)) - 0.05 * full) < 1e-9


def test_runs_under_the_adversary_answer_everything_inside_the_budget() -> None:
    runs = play(("ours-defaults",), seeds=3, jobs=1, progress=False)
    assert sum(sum(r["fired"].values()) for r in runs) > 0, "no fault fired"
    row = summarize(runs)[0]
    assert row["answered"] == "150/150"
    assert row["overruns"] == 0 and row["worst_slack_s"] >= 0
    assert row["problem_overruns"] == 0
