"""Trace-driven competition simulator: play whole 5-hour runs in virtual time, compare policies.

One competition = the real ``runner.Submission`` with the GPU replaced by the replay engine (a
fake of its timing only) and the wall clock replaced by the virtual clock of ``simclock.py``:
``predict`` is called for each problem in a random order, as Kaggle's gateway does, and runs
unchanged (scheduler, solver, vote and extraction, engine waits, restarts and
retry-after-restart); there is no second copy of the predict loop here.

Comparisons are paired: for a given seed every policy gets the same problems, the same sample
pool per problem (sample ``i`` of a request is pool sample ``i``) and the same order, so
differences between policies are differences of policy, not of luck.

Recorded traces (``--traces FILE``, one model and setup per file) are judged under a
competition profile (``--profile``: answers mod 1000 for aimo2, 0..99999 for aimo3); a run plays
all of the file's problems on a clock scaled to the profile's (5 h x problems / 50, times
``--clock-scale``), on the machine the file was recorded on where known (the gpt-oss files: one
H100), else the profile's. Each seed reorders every problem's pool (the samples are independent
draws, so any order is as likely) and the problems; the replay never uses a sample twice.

``python -m aimo_submit simulate --traces FILE --profile aimo3 --seeds 20`` compares the
profile's references with its ``ours``; ``--policy`` picks presets instead, ``--set key=value``
overrides fields of all of them, ``--summary FILE`` writes the JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aimo_submit import simclock
from aimo_submit.competition import AIMO2, PROFILES, CompetitionProfile, get_profile
from aimo_submit.engines.base import Engine
from aimo_submit.engines.replay import ReplayEngine, problem_text
from aimo_submit.hardware import (
    DEFAULT_SCALING,
    SCALING_RULES,
    SETUPS,
    ThroughputModel,
    hardware_for_trace,
    load_throughput,
    throughput_for,
)
from aimo_submit.policy import PolicyConfig
from aimo_submit.presets import PRESETS, get_preset, policies_for
from aimo_submit.runner import EventLoopThread, ModelSpec, Submission
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
    "settings_for",
    "summarize",
    "summary_json",
]


@dataclass(frozen=True)
class SimSettings:
    """Everything about a simulated run that is not the policy."""

    total_s: float = AIMO2.time_limit_s
    n_problems: int = AIMO2.n_problems
    """Problems per run; a trace file with more problems gives a random subset per seed."""
    startup_s: float = 120.0
    """Model load (and each engine restart); the clock starts before it and the first problem
    waits for it inside its own budget, as on Kaggle."""
    hardware: str = "l4x4-tp4"
    """A key of ``hardware.SETUPS`` (ignored when ``throughput_file`` is given); its measured
    table is used where ``bench/results/throughput`` has one, else its roofline model."""
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
    traces: str = "synthetic"
    """``synthetic``, or ONE recorded trace file (or a folder holding exactly one)."""
    stop: tuple[str, ...] = ("</think>",)
    profile: str = "aimo2"
    """The competition profile judging answers (``competition.PROFILES``)."""
    tables_dir: str | None = None
    """Folder of measured H200 tables (default ``bench/results/throughput``)."""
    scaling: str = DEFAULT_SCALING
    """How a measured table is carried to the setup (``hardware.SCALING_RULES``)."""

    @property
    def competition(self) -> CompetitionProfile:
        return get_profile(self.profile)

    def throughput(self) -> ThroughputModel:
        if self.throughput_file:
            return load_throughput(self.throughput_file, self.throughput_scale)
        return throughput_for(self.hardware, self.tables_dir, self.scaling)


def settings_for(traces: str, profile: str = "aimo2", *, clock_scale: float = 1.0,
                 hardware: str | None = None, **changes: Any) -> SimSettings:
    """Settings that play a whole trace file as the profile's competition, scaled.

    All of the file's problems; the clock and the model load scaled to the profile's
    (``time_limit_s x problems / n_problems``, e.g. 3 h for 30 AIMO2 problems), times
    ``clock_scale``; the hardware the file was recorded on where known, else the profile's.
    ``traces="synthetic"`` keeps the profile's problem count.
    """
    prof = get_profile(profile)
    if traces == "synthetic":
        n, model = changes.pop("n_problems", prof.n_problems), None
    else:
        problems = _load(traces, prof.name)
        n, model = len(problems), problems[0].meta.get("model")
    share = n / prof.n_problems
    base = dict(total_s=prof.time_limit_s * share * clock_scale, n_problems=n,
                startup_s=SimSettings.startup_s * share,
                hardware=hardware or hardware_for_trace(model, prof.setup),
                traces=traces, profile=prof.name)
    base.update(changes)
    return SimSettings(**base)


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
    """``predict`` answered after the problem's hard deadline plus grace."""
    retried: bool = False
    """The engine failed the whole problem and ``predict`` asked again after a restart."""


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
    restarts: int = 0
    """Engine restarts the runner made (each takes the model load again)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- problems ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _load(traces: str, profile: str) -> tuple[TraceProblem, ...]:
    problems = load_shared_traces(traces, profile=get_profile(profile))
    if not problems:
        missing = "" if Path(traces).exists() else " (no such file)"
        raise FileNotFoundError(f"no recorded traces in {traces}{missing}")
    return tuple(problems)


def problem_set(seed: int, settings: SimSettings) -> tuple[list[TraceProblem], str]:
    """The problems of run ``seed`` and where they came from ('recorded: FILE' or 'synthetic').

    Recorded: the file's problems (a random subset when ``n_problems`` is smaller), each pool
    in a seed-dependent order, so paired policies see the same samples in the same order.
    """
    if settings.traces != "synthetic":
        recorded = _load(settings.traces, settings.profile)
        rng = np.random.default_rng(seed)
        n = min(settings.n_problems, len(recorded))
        picked = sorted(rng.choice(len(recorded), size=n, replace=False)) if n < len(
            recorded) else range(len(recorded))
        problems = []
        for i in picked:
            p = recorded[int(i)]
            order = rng.permutation(len(p.samples))
            problems.append(TraceProblem(p.id, p.answer, tuple(p.samples[int(j)] for j in order),
                                         meta=p.meta))
        return problems, f"recorded: {settings.traces}"
    problems = synthetic_problems(settings.n_problems, seed, settings.trace_model, settings.pool)
    return problems, f"synthetic: {settings.trace_model}"


def oracle(problems: Sequence[TraceProblem],
           modulus: int = AIMO2.answer_modulus) -> tuple[float, int]:
    """(majority over every finished pool sample, problems whose pool holds the answer at all).

    The first is the issue's "oracle": majority vote over the whole pool with no clock (a tie
    counts as the share of tied answers that are right). It is not a strict bound: a timed
    policy that counts early finishers can beat it, because short samples are right more
    often. The second (coverage) is a strict bound for any voting policy.
    """
    from aimo_submit.extract import extract_answer

    maj = 0.0
    cover = 0
    for p in problems:
        answers = [extract_answer(f"\\boxed{{{s.answer_text}}}", modulus)
                   if s.finished and s.answer_text is not None else None for s in p.samples]
        counts = tally(answers).counts
        if counts:
            top = max(counts.values())
            leaders = [a for a, c in counts.items() if c == top]
            maj += (p.answer in leaders) / len(leaders)
        cover += p.answer in answers
    return maj, cover


# -- one competition ---------------------------------------------------------------------------
REPLAY_SPEC = ModelSpec(name="replay", engine="replay", path=Path("."))
"""What the runner is told of the replayed model: the prompt style's defaults; no tool use."""


def compete(problems: Sequence[TraceProblem], policy: PolicyConfig, settings: SimSettings,
            order_seed: int, profile: CompetitionProfile = AIMO2, *,
            throughput: ThroughputModel | None = None,
            wrap_engine: Callable[[Engine], Engine] | None = None,
            ) -> tuple[list[ProblemRecord], float, int, int]:
    """The real ``Submission`` over the replay engine in virtual time.

    Returns the records, the time used, the tokens generated and the engine restarts.

    The gateway's part is played here: one ``predict`` per problem in a seeded order, each
    called as soon as the previous one answered, the first at once while the model still loads
    (``settings.startup_s``, again on every engine restart). Everything else is the runner's:
    deadlines, engine waits and restarts, retry-after-restart, the answer from partial votes
    when a solve overruns. ``throughput`` replaces the settings' model and ``wrap_engine``
    wraps the replay engine (the deadline benchmark slows the hardware down and injects faults
    this way).
    """
    replay = ReplayEngine(problems, throughput or settings.throughput(),
                          chunk_tokens=settings.chunk_tokens,
                          request_latency_s=settings.request_latency_s,
                          heartbeat_s=settings.heartbeat_s, load_s=settings.startup_s)
    engine: Engine = wrap_engine(replay) if wrap_engine else replay
    loop = simclock.VirtualEventLoop(driven=True)
    thread = EventLoopThread("aimo-sim", loop)
    spec = replace(REPLAY_SPEC, stop=settings.stop)
    order = np.random.default_rng(order_seed).permutation(len(problems))
    records = []
    try:
        with tempfile.TemporaryDirectory(prefix="aimo-sim-") as tmp, _quiet_runner():
            sub = Submission(engine, spec, profile, policy=policy, total_s=settings.total_s,
                             n_problems=len(problems), workdir=tmp, clock=loop.time,
                             loop=thread)
            for i in order:
                problem = problems[int(i)]
                t0 = loop.time()  # the clock stands still while this thread works
                sub.predict(problem.id, problem_text(problem))
                now = loop.time()
                budget = sub.last_budget
                rec = sub.records[problem.id]
                assert budget is not None
                records.append(ProblemRecord(
                    id=problem.id, gold=problem.answer, answer=rec["answer"],
                    correct=rec["answer"] == problem.answer, seconds=now - t0,
                    tokens=rec["tokens"], n_voted=rec["n_voted"],
                    stop_reason=rec.get("stop_reason") or _cut_reason(rec["faults"]),
                    max_tokens=budget.max_tokens, hard_s=budget.hard_deadline - budget.start,
                    overran=now > budget.hard_deadline + policy.answer_grace_s + 1e-6,
                    retried=any(f.startswith("retrying") for f in rec["faults"]),
                ))
            used = loop.time() - sub.scheduler.start
            restarts = len(sub.restarts)
            sub.close()
    finally:
        _shut_down(thread)
    return records, used, replay.generated_tokens, restarts


def _cut_reason(faults: list[str]) -> str:
    """Why ``predict`` answered without a solve result (its run-log line says in words)."""
    if any(f.startswith("solve overran") for f in faults):
        return "overrun-cut"
    if any(f.startswith("engine not ready") or f.startswith("engine failed") for f in faults):
        return "no-engine"
    return "no-result"


@contextlib.contextmanager
def _quiet_runner() -> Iterator[None]:
    """The runner logs each fault as a warning for a person watching the notebook; simulated
    faults are in the records instead, so only errors are printed."""
    logger = logging.getLogger("aimo_submit.runner")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _shut_down(thread: EventLoopThread) -> None:
    """End what the run left behind (streams hung on purpose) and close the virtual loop."""
    async def cancel_rest() -> None:
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    if thread.loop.is_running():
        thread.wait(thread.submit(cancel_rest()), 24 * 3600.0)
    thread.stop()
    if not thread.loop.is_running():
        thread.loop.close()


def run_competition(problems: Sequence[TraceProblem], policy: PolicyConfig,
                    settings: SimSettings | None = None, *, order_seed: int = 0,
                    name: str = "policy", seed: int = 0,
                    throughput: ThroughputModel | None = None,
                    wrap_engine: Callable[[Engine], Engine] | None = None,
                    ) -> CompetitionResult:
    """Play one competition on a fresh virtual-time loop."""
    settings = settings or SimSettings()
    t0 = time.perf_counter()
    records, used, tokens, restarts = compete(
        problems, policy, settings, order_seed, settings.competition, throughput=throughput,
        wrap_engine=wrap_engine)
    return CompetitionResult(
        policy=name, seed=seed, solved=sum(r.correct for r in records),
        n_problems=len(records), time_used_s=used, total_s=settings.total_s,
        overrun=used > settings.total_s, problem_overruns=sum(r.overran for r in records),
        tokens=tokens, real_s=time.perf_counter() - t0, records=records, restarts=restarts,
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
    modulus = settings.competition.answer_modulus
    oracles = [oracle(problem_set(s, settings)[0], modulus) for s in seeds]
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
            "solved_std": round(statistics.stdev(solved), 2) if len(solved) > 1 else 0.0,
            "solved_min": min(solved),
            "solved_max": max(solved),
            "time_used_h": round(statistics.fmean(used), 2),
            "time_max_h": round(max(used), 2),
            "overrun_rate": round(sum(r.overrun or r.problem_overruns > 0 for r in rs)
                                  / len(rs), 3),
            "problem_overruns": sum(r.problem_overruns for r in rs),
            "oracle_majority": round(statistics.fmean(maj), 2),
            "oracle_coverage": round(statistics.fmean(cover), 2),
            "sim_s_per_run": round(statistics.fmean(r.real_s for r in rs), 3),
        })
    return rows


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
"""Two-sided 95 % Student t quantiles for 1..30 degrees of freedom (1.96 beyond)."""


def paired_interval(diffs: Sequence[float]) -> tuple[float, float]:
    """Mean of paired differences and the half-width of its two-sided 95 % t interval (0 for
    fewer than two pairs): the one interval every policy table reports."""
    gap = statistics.fmean(diffs)
    if len(diffs) < 2:
        return gap, 0.0
    t = _T975[len(diffs) - 2] if len(diffs) - 1 <= len(_T975) else 1.96
    return gap, t * statistics.stdev(diffs) / math.sqrt(len(diffs))


def paired(results: Sequence[CompetitionResult], ours: str = "ours"
           ) -> dict[str, dict[str, Any]]:
    """For each other policy: mean of (ours - it) over seeds, its 95 % t interval, seeds won."""
    by = {(r.policy, r.seed): r.solved for r in results}
    seeds = sorted({r.seed for r in results})
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.policy for r in results):
        if name == ours:
            continue
        diffs = [by[(ours, s)] - by[(name, s)] for s in seeds
                 if (name, s) in by and (ours, s) in by]
        if not diffs:
            continue
        gap, half = paired_interval(diffs)
        out[name] = {"gap": round(gap, 3), "ci95": [round(gap - half, 3), round(gap + half, 3)],
                     "ahead": sum(d > 0 for d in diffs)}
    return out


def summary_json(results: Sequence[CompetitionResult], settings: SimSettings,
                 seeds: Sequence[int], policies: dict[str, PolicyConfig]) -> dict[str, Any]:
    """The ``--summary`` document: settings, oracle, every policy, and ours paired with each."""
    rows = {r["policy"]: r for r in summarize(results, settings, seeds)}
    return {
        "traces": settings.traces,
        "profile": settings.profile,
        "hardware": settings.throughput().describe(),
        "seeds": len(seeds),
        "total_s": settings.total_s,
        "n_problems": settings.n_problems,
        "oracle": next(iter(rows.values()))["oracle_majority"] if rows else 0.0,
        "policies": {name: {"solved_mean": row["solved_mean"], "solved_sd": row["solved_std"],
                            "overrun_rate": row["overrun_rate"],
                            "config": policies[name].to_dict()}
                     for name, row in rows.items()},
        "paired": paired(results, "ours") if "ours" in rows else {},
    }


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of ``summarize`` rows."""
    head = ("| policy | solved (mean ± sd) | min | max | time used (h, mean / max) | overruns "
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
    ap.add_argument("--profile", default="aimo2", choices=sorted(PROFILES),
                    help="competition judging answers and giving the clock and hardware")
    ap.add_argument("--policy", action="append", default=[],
                    help="preset to run (repeatable; default: the profile's references and "
                         f"ours; presets: {', '.join(PRESETS)})")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a PolicyConfig field in every policy (JSON value)")
    ap.add_argument("--budget-hours", type=float, default=None,
                    help="whole-run clock (default: the profile's, scaled to the problem count)")
    ap.add_argument("--clock-scale", type=float, default=1.0,
                    help="multiply the (scaled) clock, e.g. 0.25 for a quarter of the time")
    ap.add_argument("--problems", type=int, default=None,
                    help="problems per run (default: all of a trace file; the profile's count)")
    ap.add_argument("--startup-s", type=float, default=None)
    ap.add_argument("--hardware", default=None, choices=sorted(SETUPS),
                    help="machine and model layout (default: the one the trace file was "
                         "recorded on where known, else the profile's)")
    ap.add_argument("--scaling", default=SimSettings.scaling, choices=SCALING_RULES,
                    help="how a measured H200 table is carried to the hardware (hardware.py: "
                         "'split' by default, 'bandwidth' the earlier, more pessimistic rule)")
    ap.add_argument("--throughput", default=None,
                    help="a measured table (JSON or CSV) instead of the hardware's model")
    ap.add_argument("--throughput-scale", type=float, default=None,
                    help="multiply the measured speeds")
    ap.add_argument("--traces", default="synthetic",
                    help="synthetic, or one recorded trace file (.jsonl)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="synthetic calibration")
    ap.add_argument("--chunk-tokens", type=int, default=SimSettings.chunk_tokens)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--json", default=None, help="write every run's records to this file")
    ap.add_argument("--summary", default=None, help="write the JSON summary to this file")
    args = ap.parse_args(argv)

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _parse_value(value)
    try:
        base = ({n: get_preset(n) for n in args.policy} if args.policy
                else policies_for(args.profile))
        policies = {n: p.replace(**overrides) if overrides else p for n, p in base.items()}
        changes: dict[str, Any] = {"chunk_tokens": args.chunk_tokens, "trace_model": args.model,
                                   "scaling": args.scaling,
                                   "throughput_file": args.throughput,
                                   "throughput_scale": args.throughput_scale}
        if args.problems is not None:
            changes["n_problems"] = args.problems
        if args.startup_s is not None:
            changes["startup_s"] = args.startup_s
        settings = settings_for(args.traces, args.profile, clock_scale=args.clock_scale,
                                hardware=args.hardware, **changes)
        if args.budget_hours is not None:
            settings = replace(settings, total_s=args.budget_hours * 3600 * args.clock_scale)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    _, source = problem_set(seeds[0], settings)
    print(f"{len(seeds)} competitions x {len(policies)} policies; {settings.n_problems} problems, "
          f"{settings.total_s / 3600:g} h; profile {settings.profile}; traces {source}; "
          f"throughput {settings.throughput().describe()}")
    t0 = time.perf_counter()
    results = compare(policies, seeds, settings, jobs=args.jobs)
    rows = summarize(results, settings, seeds)
    print(format_table(rows))
    if len(policies) > 1 and "ours" in policies:
        for name, gap in paired(results, "ours").items():
            lo, hi = gap["ci95"]
            print(f"ours - {name}: {gap['gap']:+.2f} problems per run, 95% CI [{lo:+.2f}, "
                  f"{hi:+.2f}] (ours ahead on {gap['ahead']}/{len(seeds)})")
    print(f"simulated in {time.perf_counter() - t0:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=1))
        print(f"records: {args.json}")
    if args.summary:
        Path(args.summary).write_text(json.dumps(
            summary_json(results, settings, seeds, policies), indent=1))
        print(f"summary: {args.summary}")
    bad = [r for r in rows if r["overrun_rate"] > 0]
    return 1 if bad else 0
