"""Trace-driven competition simulator: play whole 5-hour runs in virtual time, compare policies.

One competition = the submission's loop with the GPU replaced by the replay engine (a fake of
its timing only) and the wall clock replaced by the virtual clock of ``simclock.py``: for each
problem in a random order, ``scheduler.plan()``, ``solver.solve()``, the throughput feedback
and ``scheduler.finish_problem()``, exactly the four calls of ``Submission.predict``. The
solver, scheduler, vote and extraction code run unchanged.

Comparisons are paired: for a given seed every policy gets the same problems, the same sample
pool per problem (sample ``i`` of a request is pool sample ``i``) and the same order, so
differences between policies are differences of policy, not of luck.

``python -m aimo_submit simulate --seeds 20`` compares every preset; ``--policy`` picks some,
``--set key=value`` overrides fields of all of them, ``--budget-hours`` changes the run length.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aimo_submit import simclock
from aimo_submit.competition import AIMO2, CompetitionProfile
from aimo_submit.engines.base import Engine
from aimo_submit.engines.replay import (
    HARDWARE_PRESETS,
    ReplayEngine,
    ThroughputModel,
    load_throughput,
    problem_text,
)
from aimo_submit.policy import PolicyConfig
from aimo_submit.presets import PRESETS, get_preset
from aimo_submit.schedule import Scheduler
from aimo_submit.solver import Solver
from aimo_submit.traces import (
    DEFAULT_MODEL,
    TraceProblem,
    load_shared_traces,
    synthetic_problems,
)
from aimo_submit.vote import tally

__all__ = [
    "CompetitionResult",
    "ProblemRecord",
    "SimSettings",
    "compare",
    "main",
    "oracle",
    "problem_set",
    "run_competition",
    "summarize",
]


@dataclass(frozen=True)
class SimSettings:
    """Everything about a simulated run that is not the policy."""

    total_s: float = AIMO2.time_limit_s
    n_problems: int = AIMO2.n_problems
    startup_s: float = 120.0
    """Model load before the first problem; the scheduler's clock starts before it, as on Kaggle."""
    hardware: str = "l4x4-dp4"
    """A key of ``replay.HARDWARE_PRESETS`` (ignored when ``throughput_file`` is given)."""
    throughput_file: str | None = None
    throughput_scale: float | None = None
    chunk_tokens: int = 256
    request_latency_s: float = 0.5
    heartbeat_s: float | None = 30.0
    """Longest gap between a running sample's events (``ReplayEngine.heartbeat_s``); half the
    default ``engine_stall_s``, so a slowed machine is never mistaken for a hung one."""
    trace_model: str = DEFAULT_MODEL
    """Synthetic calibration (a key of ``traces.CALIBRATED``)."""
    pool: int = 64
    traces: str = "auto"
    """``auto``: recorded traces when the shared folder has them, else synthetic; ``synthetic``;
    or a folder of recorded traces."""
    stop: tuple[str, ...] = ("</think>",)

    def throughput(self) -> ThroughputModel:
        if self.throughput_file:
            return load_throughput(self.throughput_file, self.throughput_scale)
        try:
            return HARDWARE_PRESETS[self.hardware]
        except KeyError:
            raise KeyError(f"unknown hardware {self.hardware!r}; "
                           f"known: {sorted(HARDWARE_PRESETS)}") from None


@dataclass
class ProblemRecord:
    id: str
    gold: int
    answer: int
    correct: bool
    seconds: float
    tokens: int
    n_voted: int
    stop_reason: str
    max_tokens: int
    hard_s: float
    overran: bool
    """The solve returned after its hard deadline plus grace (the runner would have cut it)."""


@dataclass
class CompetitionResult:
    policy: str
    seed: int
    solved: int
    n_problems: int
    time_used_s: float
    total_s: float
    overrun: bool
    """The last answer came after the whole-run budget."""
    problem_overruns: int
    tokens: int
    real_s: float
    records: list[ProblemRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- problems ----------------------------------------------------------------------------------
def problem_set(seed: int, settings: SimSettings) -> tuple[list[TraceProblem], str]:
    """The problems of run ``seed`` and where they came from ('recorded: DIR' or 'synthetic')."""
    if settings.traces != "synthetic":
        root = None if settings.traces == "auto" else settings.traces
        recorded = load_shared_traces(root)
        if recorded:
            rng = np.random.default_rng(seed)
            n = min(settings.n_problems, len(recorded))
            picked = rng.choice(len(recorded), size=n, replace=False)
            return [recorded[int(i)] for i in picked], f"recorded: {root or 'shared/traces'}"
        if root is not None:
            raise FileNotFoundError(f"no recorded traces under {root}")
    problems = synthetic_problems(settings.n_problems, seed, settings.trace_model, settings.pool)
    return problems, f"synthetic: {settings.trace_model}"


def oracle(problems: Sequence[TraceProblem],
           modulus: int = AIMO2.answer_modulus) -> tuple[int, int]:
    """(majority over every finished pool sample, problems whose pool holds the answer at all).

    The first is the issue's "oracle": majority vote with no time limit. It is not a strict
    bound: a timed policy that counts early finishers can beat it, because short samples are
    right more often. The second (coverage) is a strict bound for any voting policy.
    """
    from aimo_submit.extract import extract_answer

    maj = cover = 0
    for p in problems:
        answers = [extract_answer(f"\\boxed{{{s.answer_text}}}", modulus)
                   if s.finished and s.answer_text is not None else None for s in p.samples]
        maj += tally(answers).leader() == p.answer
        cover += p.answer in answers
    return maj, cover


# -- one competition ---------------------------------------------------------------------------
async def compete(problems: Sequence[TraceProblem], policy: PolicyConfig, settings: SimSettings,
                  order_seed: int, profile: CompetitionProfile = AIMO2, *,
                  throughput: ThroughputModel | None = None,
                  wrap_engine: Callable[[Engine], Engine] | None = None,
                  ) -> tuple[list[ProblemRecord], float, int]:
    """Mirror of ``Submission.predict`` for each problem; returns records, time used, tokens.

    ``throughput`` replaces the settings' model and ``wrap_engine`` wraps the replay engine
    (the deadline benchmark slows the hardware down and injects faults this way).
    """
    loop = asyncio.get_running_loop()
    replay = ReplayEngine(problems, throughput or settings.throughput(),
                          chunk_tokens=settings.chunk_tokens,
                          request_latency_s=settings.request_latency_s,
                          heartbeat_s=settings.heartbeat_s)
    engine: Engine = wrap_engine(replay) if wrap_engine else replay
    scheduler = Scheduler(policy, settings.total_s, len(problems), clock=loop.time,
                          start=loop.time(),
                          max_problem_s=max(1.0, profile.response_timeout_s - 60.0))
    solver = Solver(engine, policy, modulus=profile.answer_modulus, stop=settings.stop)
    await asyncio.sleep(settings.startup_s)
    order = np.random.default_rng(order_seed).permutation(len(problems))
    records = []
    for i in order:
        problem = problems[int(i)]
        t0 = loop.time()
        budget = scheduler.plan()
        result = await solver.solve(problem_text(problem), budget)
        if result.tokens_per_s:
            scheduler.observe_throughput(int(result.tokens_per_s * 1000), 1000.0)
        answer = int(result.answer) % profile.answer_modulus
        scheduler.finish_problem()
        now = loop.time()
        records.append(ProblemRecord(
            id=problem.id, gold=problem.answer, answer=answer, correct=answer == problem.answer,
            seconds=now - t0, tokens=result.tokens, n_voted=result.n_voted,
            stop_reason=result.stop_reason, max_tokens=budget.max_tokens,
            hard_s=budget.hard_deadline - budget.start,
            overran=now > budget.hard_deadline + policy.answer_grace_s + 1e-6,
        ))
    return records, loop.time() - scheduler.start, replay.generated_tokens


def run_competition(problems: Sequence[TraceProblem], policy: PolicyConfig,
                    settings: SimSettings | None = None, *, order_seed: int = 0,
                    name: str = "policy", seed: int = 0,
                    throughput: ThroughputModel | None = None,
                    wrap_engine: Callable[[Engine], Engine] | None = None,
                    ) -> CompetitionResult:
    """Play one competition on a fresh virtual-time loop."""
    settings = settings or SimSettings()
    t0 = time.perf_counter()
    records, used, tokens = simclock.run(compete(
        problems, policy, settings, order_seed, throughput=throughput, wrap_engine=wrap_engine))
    return CompetitionResult(
        policy=name, seed=seed, solved=sum(r.correct for r in records),
        n_problems=len(records), time_used_s=used, total_s=settings.total_s,
        overrun=used > settings.total_s, problem_overruns=sum(r.overran for r in records),
        tokens=tokens, real_s=time.perf_counter() - t0, records=records,
    )


# -- many competitions -------------------------------------------------------------------------
def _job(args: tuple[str, PolicyConfig, int, SimSettings]) -> CompetitionResult:
    name, policy, seed, settings = args
    problems, _ = problem_set(seed, settings)
    return run_competition(problems, policy, settings, order_seed=seed + 10_000, name=name,
                           seed=seed)


def compare(policies: dict[str, PolicyConfig], seeds: Sequence[int],
            settings: SimSettings | None = None, *, jobs: int = 1) -> list[CompetitionResult]:
    """Every policy on every seed (paired: same problems, pools and order per seed)."""
    settings = settings or SimSettings()
    tasks = [(name, pol, s, settings) for s in seeds for name, pol in policies.items()]
    if jobs > 1 and len(tasks) > 1:
        ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
        with ctx.Pool(min(jobs, len(tasks))) as pool:
            return pool.map(_job, tasks, chunksize=1)
    return [_job(t) for t in tasks]


def summarize(results: Sequence[CompetitionResult], settings: SimSettings,
              seeds: Sequence[int]) -> list[dict[str, Any]]:
    """One row per policy: solved mean/std/min/max, time used, overrun rate, oracle."""
    oracles = [oracle(problem_set(s, settings)[0]) for s in seeds]
    maj = [o[0] for o in oracles]
    cover = [o[1] for o in oracles]
    rows = []
    names = list(dict.fromkeys(r.policy for r in results))
    for name in names:
        rs = [r for r in results if r.policy == name]
        solved = [r.solved for r in rs]
        used = [r.time_used_s / 3600 for r in rs]
        rows.append({
            "policy": name,
            "runs": len(rs),
            "solved_mean": round(statistics.fmean(solved), 2),
            "solved_std": round(statistics.pstdev(solved), 2) if len(solved) > 1 else 0.0,
            "solved_min": min(solved),
            "solved_max": max(solved),
            "time_used_h": round(statistics.fmean(used), 2),
            "time_max_h": round(max(used), 2),
            "overrun_rate": round(sum(r.overrun for r in rs) / len(rs), 3),
            "problem_overruns": sum(r.problem_overruns for r in rs),
            "oracle_majority": round(statistics.fmean(maj), 2),
            "oracle_coverage": round(statistics.fmean(cover), 2),
            "sim_s_per_run": round(statistics.fmean(r.real_s for r in rs), 3),
        })
    return rows


def paired_gaps(results: Sequence[CompetitionResult], ours: str) -> dict[str, tuple[float, int]]:
    """For each other policy: mean of (ours - it) over seeds and how many seeds ours won."""
    by = {(r.policy, r.seed): r.solved for r in results}
    seeds = sorted({r.seed for r in results})
    out = {}
    for name in dict.fromkeys(r.policy for r in results):
        if name == ours:
            continue
        diffs = [by[(ours, s)] - by[(name, s)] for s in seeds
                 if (name, s) in by and (ours, s) in by]
        if diffs:
            out[name] = (statistics.fmean(diffs), sum(d > 0 for d in diffs))
    return out


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of ``summarize`` rows."""
    head = ("| policy | solved (mean ± std) | min | max | time used (h, mean / max) | overrun rate "
            "| oracle maj@pool | coverage |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['solved_mean']:.2f} ± {r['solved_std']:.2f} "
            f"| {r['solved_min']} | {r['solved_max']} "
            f"| {r['time_used_h']:.2f} / {r['time_max_h']:.2f} | {r['overrun_rate']:.0%} "
            f"| {r['oracle_majority']:.2f} | {r['oracle_coverage']:.2f} |")
    return "\n".join(lines)


# -- CLI ---------------------------------------------------------------------------------------
def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="aimo_submit simulate",
        description="Simulate whole competitions in virtual time and compare policies "
                    "(paired: same problems, samples and order per seed).")
    ap.add_argument("--seeds", type=int, default=20, help="number of simulated competitions")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--policy", action="append", default=[],
                    help=f"preset to run (repeatable; default all: {', '.join(PRESETS)})")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a PolicyConfig field in every policy (JSON value)")
    ap.add_argument("--budget-hours", type=float, default=AIMO2.time_limit_s / 3600)
    ap.add_argument("--problems", type=int, default=AIMO2.n_problems)
    ap.add_argument("--startup-s", type=float, default=SimSettings.startup_s)
    ap.add_argument("--hardware", default=SimSettings.hardware, choices=sorted(HARDWARE_PRESETS))
    ap.add_argument("--throughput", default=None,
                    help="measured (concurrency, tokens/s per sequence) table, JSON or CSV")
    ap.add_argument("--throughput-scale", type=float, default=None,
                    help="multiply the measured speeds (e.g. H100 -> L4)")
    ap.add_argument("--traces", default="auto",
                    help="auto (shared/traces if present, else synthetic), synthetic, or a folder")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="synthetic calibration")
    ap.add_argument("--chunk-tokens", type=int, default=SimSettings.chunk_tokens)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--json", default=None, help="write every run's records to this file")
    args = ap.parse_args(argv)

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _parse_value(value)
    try:
        names = args.policy or list(PRESETS)
        policies = {n: get_preset(n, **overrides) for n in names}
    except (KeyError, TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = SimSettings(
        total_s=args.budget_hours * 3600, n_problems=args.problems, startup_s=args.startup_s,
        hardware=args.hardware, throughput_file=args.throughput,
        throughput_scale=args.throughput_scale, chunk_tokens=args.chunk_tokens,
        trace_model=args.model, traces=args.traces)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    _, source = problem_set(seeds[0], settings)
    print(f"{len(seeds)} competitions x {len(policies)} policies; {settings.n_problems} problems, "
          f"{args.budget_hours:g} h; traces {source}; throughput "
          f"{settings.throughput().describe()}")
    t0 = time.perf_counter()
    results = compare(policies, seeds, settings, jobs=args.jobs)
    rows = summarize(results, settings, seeds)
    print(format_table(rows))
    if len(policies) > 1 and "ours" in policies:
        for name, (gap, wins) in paired_gaps(results, "ours").items():
            print(f"ours - {name}: {gap:+.2f} problems per run (ours ahead on {wins}/{len(seeds)})")
    print(f"simulated in {time.perf_counter() - t0:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=1))
        print(f"records: {args.json}")
    bad = [r for r in rows if r["overrun_rate"] > 0]
    return 1 if bad else 0
