"""Hard-deadline benchmark: simulated 50-problem runs under an adversary, many seeds.

Each seed plays one AIMO2 competition (5 h, 50 problems: the real ``runner.Submission`` and its
``predict``, with the runner's engine waits, restarts and retry-after-restart, on the replay
engine in virtual time; ``simulate.compete``) against an adversary drawn from the seed:

* a model load of 1 to 15 minutes, while the first problem already waits for it (the clock
  runs from the start), and again on every engine restart;
* a machine that is 0.4x to 1.2x as fast as the roofline model says, plus up to 8 slowdown
  episodes (1 to 30 minutes each at 3% to 50% speed: throttling, a noisy neighbour);
* engine faults on random requests through the test-only ``FaultyEngine``: first events
  delayed 5 s to 4 min, hangs (polite, or deaf to cancellation for up to 5 min), samples that
  never end, exceptions and out-of-memory errors, garbage and empty text.

It reports, per policy, the slack between the time the last answer came back and the usable
budget (total minus the scheduler's safety margin): the guarantee is that it is never negative.
Timing is FAKE (the replay engine models the GPU); the runner, scheduling and solving code is
the code a submission runs.

Run: ``make bench-deadline`` (= ``python -m bench.deadline``; ``--seeds N`` for fewer). Writes
``bench/results/deadline.md`` and ``bench/results/deadline_slack.png``. Not part of ``make
bench`` because 1,000 seeds take 6 to 25 minutes on 2 shared CPUs (371 s and 1,376 s in two runs).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimo_submit.engines.base import Engine
from aimo_submit.engines.replay import ThroughputModel
from aimo_submit.presets import get_preset
from aimo_submit.schedule import Scheduler
from aimo_submit.simulate import SimSettings, problem_set, run_competition
from bench import markdown_rows
from bench.faulty import Fault, FaultKind, FaultyEngine

# -- configuration (data) ------------------------------------------------------------------------
POLICIES = ("ours", "ours-defaults")
"""The recommended preset and the plain manifest defaults: the two policies a submission runs."""
SEEDS = 1000
JOBS = min(2, multiprocessing.cpu_count())
RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "make bench-deadline  (= python -m bench.deadline --seeds 1000)"

STARTUP_S = (60.0, 900.0)
BASE_SPEED = (0.4, 1.2)
MAX_EPISODES = 8
EPISODE_S = (60.0, 1800.0)
EPISODE_SPEED = (0.03, 0.5)
FAULT_CALLS = 120
"""Requests (by index) that may carry a fault; a run makes 50 to about 100."""
FAULT_RATES: dict[FaultKind, float] = {
    FaultKind.SLOW_FIRST_EVENT: 0.05,
    FaultKind.HANG: 0.02,
    FaultKind.HANG_DEAF: 0.01,
    FaultKind.ENDLESS: 0.02,
    FaultKind.RAISE: 0.01,
    FaultKind.OOM: 0.01,
    FaultKind.GARBAGE: 0.02,
    FaultKind.EMPTY: 0.01,
}
"""Chance that a given request carries each fault (at most one fault per request)."""


# -- the adversary -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Episode:
    start: float
    end: float
    factor: float


class AdversarialThroughput:
    """FAKE timing: the replay engine's throughput model, slowed by the adversary's schedule.

    Episodes are in seconds since the run started (the virtual loop's clock at creation).
    """

    def __init__(self, inner: ThroughputModel, base: float, episodes: list[Episode]) -> None:
        self.inner = inner
        self.base = base
        self.episodes = episodes
        self.t0: float | None = None

    def factor(self, now: float) -> float:
        if self.t0 is None:
            self.t0 = now
        t = now - self.t0
        f = self.base
        for e in self.episodes:
            if e.start <= t < e.end:
                f *= e.factor
        return f

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float:
        now = asyncio.get_running_loop().time()
        return self.inner.tokens_per_s(concurrency, mean_context) * self.factor(now)

    def describe(self) -> str:
        return f"adversarial({self.inner.describe()})"


@dataclass
class Adversary:
    startup_s: float
    base: float
    episodes: list[Episode]
    plan: list[Fault] = field(default_factory=list)


def adversary(seed: int, total_s: float) -> Adversary:
    """Everything that goes wrong in run ``seed`` (deterministic)."""
    rng = random.Random(seed * 7_919 + 17)
    episodes = []
    for _ in range(rng.randint(0, MAX_EPISODES)):
        start = rng.uniform(0, total_s)
        episodes.append(Episode(start, start + rng.uniform(*EPISODE_S),
                                rng.uniform(*EPISODE_SPEED)))
    plan: list[Fault] = []
    for call in range(FAULT_CALLS):
        r = rng.random()
        for kind, rate in FAULT_RATES.items():
            if r < rate:
                plan.append(_fault(kind, call, rng))
                break
            r -= rate
    return Adversary(rng.uniform(*STARTUP_S), rng.uniform(*BASE_SPEED), episodes, plan)


def _fault(kind: FaultKind, call: int, rng: random.Random) -> Fault:
    if kind is FaultKind.SLOW_FIRST_EVENT:
        return Fault(kind, call=call, seconds=rng.uniform(5, 240))
    if kind is FaultKind.HANG:
        return Fault(kind, call=call, after_events=rng.randint(0, 60))
    if kind is FaultKind.HANG_DEAF:
        return Fault(kind, call=call, after_events=rng.randint(0, 60),
                     seconds=rng.uniform(5, 300))
    if kind in (FaultKind.RAISE, FaultKind.OOM):
        return Fault(kind, call=call, after_events=rng.randint(0, 60), torch_oom=False,
                     as_events=rng.random() < 0.5, at_generate=rng.random() < 0.2)
    if kind in (FaultKind.ENDLESS, FaultKind.GARBAGE, FaultKind.EMPTY):
        n = rng.randint(1, 8)
        return Fault(kind, call=call, samples=tuple(rng.sample(range(32), n)))
    raise ValueError(kind)


# -- one run ------------------------------------------------------------------------------------
def _job(args: tuple[str, int, SimSettings]) -> dict[str, Any]:
    name, seed, base_settings = args
    policy = get_preset(name)
    adv = adversary(seed, base_settings.total_s)
    settings = SimSettings(**{**base_settings.__dict__, "startup_s": adv.startup_s})
    problems, _ = problem_set(seed, settings)
    throughput = AdversarialThroughput(settings.throughput(), adv.base, adv.episodes)
    engines: list[FaultyEngine] = []

    def wrap(engine: Engine) -> Engine:
        faulty = FaultyEngine(engine, adv.plan)
        engines.append(faulty)
        return faulty

    result = run_competition(problems, policy, settings, order_seed=seed + 10_000, name=name,
                             seed=seed, throughput=throughput, wrap_engine=wrap)
    usable = settings.total_s - Scheduler(policy, settings.total_s, settings.n_problems).margin_s
    late = [r.seconds - (r.hard_s + policy.answer_grace_s) for r in result.records]
    return {
        "policy": name,
        "seed": seed,
        "solved": result.solved,
        "answered": len(result.records),
        "n_problems": settings.n_problems,
        "used_s": result.time_used_s,
        "usable_s": usable,
        "slack_s": usable - result.time_used_s,
        "worst_problem_slack_s": -max(late),
        "problem_overruns": result.problem_overruns,
        "startup_s": adv.startup_s,
        "base_speed": adv.base,
        "episodes": len(adv.episodes),
        "restarts": result.restarts,
        "retried": sum(r.retried for r in result.records),
        "fired": Counter(f["kind"] for e in engines for f in e.fired),
        "stops": Counter(r.stop_reason for r in result.records),
        "real_s": result.real_s,
    }


def play(policies: tuple[str, ...], seeds: int, jobs: int = JOBS,
         settings: SimSettings | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Every policy on seeds 0..seeds-1 under the same adversaries; one dict per run."""
    settings = settings or SimSettings(traces="synthetic")
    tasks = [(name, s, settings) for s in range(seeds) for name in policies]
    if jobs <= 1:
        it = map(_job, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(jobs)
        it = pool.imap_unordered(_job, tasks, chunksize=4)
    try:
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(tasks), desc="deadline runs", unit="run")
        return sorted(it, key=lambda r: (r["policy"], r["seed"]))
    finally:
        if pool is not None:
            pool.close()
            pool.join()


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys(r["policy"] for r in runs):
        rs = [r for r in runs if r["policy"] == name]
        slack = sorted(r["slack_s"] for r in rs)
        rows.append({
            "policy": name,
            "runs": len(rs),
            "answered": f"{sum(r['answered'] for r in rs)}/{sum(r['n_problems'] for r in rs)}",
            "overruns": sum(r["slack_s"] < 0 for r in rs),
            "worst_slack_s": round(slack[0], 1),
            "p1_slack_s": round(slack[max(0, math.ceil(0.01 * len(slack)) - 1)], 1),
            "median_slack_s": round(statistics.median(slack), 1),
            "problem_overruns": sum(r["problem_overruns"] for r in rs),
            "worst_problem_slack_s": round(min(r["worst_problem_slack_s"] for r in rs), 2),
            "solved_mean": round(statistics.fmean(r["solved"] for r in rs), 2),
            "faults_fired": sum(sum(r["fired"].values()) for r in rs),
            "restarts": sum(r["restarts"] for r in rs),
            "retried": sum(r["retried"] for r in rs),
        })
    return rows


def _plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in dict.fromkeys(r["policy"] for r in runs):
        ax.hist([r["slack_s"] / 60 for r in runs if r["policy"] == name], bins=40, alpha=0.6,
                label=name)
    ax.axvline(0, color="red", lw=1, label="usable budget (total - safety margin)")
    ax.set_xlabel("slack at the last answer (minutes; negative = overrun)")
    ax.set_ylabel("runs")
    ax.set_title("Deadline under adversarial slowdowns and engine faults", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(runs: list[dict[str, Any]], rows: list[dict[str, Any]], seeds: int,
                  wall_s: float, out: Path = RESULTS) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    fired: Counter[str] = Counter()
    stops: Counter[str] = Counter()
    for r in runs:
        fired.update(r["fired"])
        stops.update(r["stops"])
    worst = min(runs, key=lambda r: r["slack_s"])
    text = [
        "# Hard deadline under an adversary (simulated AIMO2 runs)",
        "",
        f"Command: `{COMMAND}`  ",
        f"Wall time: {wall_s:.0f} s on {JOBS} worker(s); {len(runs)} runs ({seeds} seeds per "
        "policy).",
        "",
        "Each run: 50 problems, 5 h, synthetic traces, `Submission.predict` called for each "
        "problem as the gateway does (the runner's engine waits, restarts and "
        "retry-after-restart, the solver and scheduler unchanged) on the replay engine (FAKE "
        "GPU timing) wrapped in the test-only FaultyEngine. Per seed: "
        f"model load {STARTUP_S[0]:.0f}-{STARTUP_S[1]:.0f} s (the first problem waits for it "
        "inside its budget; each engine restart loads again), machine speed "
        f"{BASE_SPEED[0]}-{BASE_SPEED[1]}x the roofline, 0-{MAX_EPISODES} slowdown episodes of "
        f"{EPISODE_S[0]:.0f}-{EPISODE_S[1]:.0f} s at {EPISODE_SPEED[0]}-{EPISODE_SPEED[1]}x, "
        "and per request these fault rates: "
        + ", ".join(f"{k.value} {v:.0%}" for k, v in FAULT_RATES.items()) + ".",
        "",
        "Slack = usable budget (total minus the scheduler's safety margin) minus the time at "
        "which the last answer came back; an overrun is a run with negative slack. Problem "
        "slack = the problem's hard deadline plus the answer grace minus its answer time.",
        "",
        markdown_rows(rows),
        "",
        f"Worst run: policy {worst['policy']}, seed {worst['seed']}: slack "
        f"{worst['slack_s']:.1f} s, load {worst['startup_s']:.0f} s, speed "
        f"{worst['base_speed']:.2f}x, {worst['episodes']} slowdown episode(s), faults "
        f"{dict(worst['fired'])}.",
        "",
        "Faults that fired (all runs): "
        + ", ".join(f"{k} {v}" for k, v in sorted(fired.items())) + ".",
        "",
        "Stop reasons (all problems): "
        + ", ".join(f"{k} {v}" for k, v in stops.most_common()) + ".",
        "",
        "![slack histogram](deadline_slack.png)",
        "",
    ]
    path = out / "deadline.md"
    path.write_text("\n".join(text))
    _plot(runs, out / "deadline_slack.png")
    return path


def run(seeds: int = SEEDS, policies: tuple[str, ...] = POLICIES, jobs: int = JOBS,
        write: bool = True) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    runs = play(policies, seeds, jobs)
    rows = summarize(runs)
    if write:
        write_results(runs, rows, seeds, time.perf_counter() - t0)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.deadline", description=__doc__.split(
        "\n")[0])
    ap.add_argument("--seeds", type=int, default=SEEDS)
    ap.add_argument("--jobs", type=int, default=JOBS)
    ap.add_argument("--policy", action="append", help="preset name (repeatable)")
    ap.add_argument("--no-write", action="store_true", help="print only; keep bench/results")
    args = ap.parse_args(argv)
    rows = run(args.seeds, tuple(args.policy or POLICIES), args.jobs, write=not args.no_write)
    from bench.__main__ import format_rows

    print(format_rows(rows))
    return 1 if any(r["overruns"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
