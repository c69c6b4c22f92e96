"""Fault report: each injected fault on the real tiny model, and what ``predict`` did about it.

The scenarios here are also the parametrisation of ``tests/test_faults.py`` (the tests assert,
this module measures and writes ``bench/results/faults.md``). Each scenario wraps the embedded
tiny model (``TransformersEngine`` on CPU) in the test-only ``FaultyEngine``, builds a
``Submission`` with a few seconds per problem, and calls ``predict`` twice the way Kaggle's
gateway does: the first problem meets the fault, the second must be served normally.

Run: ``make bench-faults`` (= ``python -m bench.faults``); about a minute on 2 CPUs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl

from aimo_submit.competition import AIMO2
from aimo_submit.engines.transformers_engine import TransformersEngine
from aimo_submit.manifest import load_manifest
from aimo_submit.policy import PolicyConfig
from aimo_submit.runner import Submission, spec_from_entry
from bench import markdown_rows
from bench.faulty import Fault, FaultKind, FaultyEngine

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "aimo_submit" / "assets" / "tiny-model"
PROBLEMS = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"
RESULTS = REPO / "bench" / "results"
COMMAND = "make bench-faults  (= python -m bench.faults)"

GRACE = 0.5
POLICY = PolicyConfig(
    n_samples=4,
    max_tokens=256,  # the tiny model's manifest cap
    early_stop_agree=3,
    tir=False,
    answer_grace_s=GRACE,
    engine_stall_s=1.5,
    min_problem_s=2.0,
    temperature=1.0,
    top_p=1.0,
)
"""Small and fast: a hang is declared after 1.5 s of silence instead of a minute."""

# (name, faults on the first problem, text its run-log faults must contain, total_s, n)
# With total_s T and n problems the scheduler keeps a quarter of T back and gives the first
# problem a hard deadline of 1.6 x 0.75 T / n seconds.
CASES: list[tuple[str, list[Fault], str, float, int]] = [
    ("raise-mid-stream", [Fault(FaultKind.RAISE, call=0, after_events=6)],
     "generation failed: RuntimeError: injected engine failure", 24, 4),
    ("error-events-mid-stream", [Fault(FaultKind.RAISE, call=0, after_events=6, as_events=True)],
     "engine error: RuntimeError: injected engine failure", 24, 4),
    ("oom-torch-at-generate",
     [Fault(FaultKind.OOM, match="Carl has 29 apples", times=None, at_generate=True)],
     "generation failed: OutOfMemoryError", 24, 4),
    ("oom-cuda-runtime-error",
     [Fault(FaultKind.OOM, match="Carl has 29 apples", times=None, torch_oom=False,
            as_events=True, after_events=3)],
     "engine error: RuntimeError: CUDA out of memory", 24, 4),
    ("hang", [Fault(FaultKind.HANG, call=0, after_events=4)],
     "engine silent for", 24, 4),
    ("hang-deaf-to-cancel", [Fault(FaultKind.HANG_DEAF, call=0, after_events=4, seconds=30)],
     "did not release in time", 24, 4),
    ("endless-samples", [Fault(FaultKind.ENDLESS, call=0, samples=(0, 1, 2, 3))],
     "engine went past max_tokens", 24, 4),
    ("garbage-text", [Fault(FaultKind.GARBAGE, call=0)],
     "no sample produced an answer", 24, 4),
    ("empty-text", [Fault(FaultKind.EMPTY, call=0)],
     "4 sample(s) ended with no text", 24, 4),
    ("slow-first-event", [Fault(FaultKind.SLOW_FIRST_EVENT, call=0, seconds=2.5)],
     "engine silent for", 24, 4),
    # 16 s for 4 problems: a 4.8 s hard deadline, which the 5.5 s block outlasts
    ("event-loop-blocked", [Fault(FaultKind.BLOCK_LOOP, call=0, seconds=5.5)],
     "solve overran its deadline", 16, 4),
    # 40 s for 4 problems: a 12 s hard deadline, which the 12 s delay plus the load outlasts;
    # the second problem (9.6 s) then has about 5 s with a ready engine
    ("slow-start", [Fault(FaultKind.SLOW_START, call=0, seconds=12.0)],
     "engine not ready before the problem's deadline", 40, 4),
    ("start-failure", [Fault(FaultKind.START_FAIL, call=0)],
     "engine failed to start", 24, 4),
    ("oom-every-request-of-a-problem",
     [Fault(FaultKind.OOM, match="Carl has 29 apples", times=None, at_generate=True)],
     "engine restart scheduled", 24, 4),
]


def rows(n: int) -> list[dict[str, str]]:
    """The first ``n`` problems of the tiny model's CSV (the first is the Carl problem)."""
    return pl.read_csv(PROBLEMS, infer_schema_length=0).head(n).to_dicts()


def submission(
    workdir: Path,
    plan: list[Fault],
    *,
    total_s: float,
    n_problems: int,
    policy: PolicyConfig = POLICY,
    sandbox: Any = None,
    clock: Any = time.monotonic,
) -> tuple[Submission, FaultyEngine]:
    """A ``Submission`` on the real tiny model, wrapped in the fault injector."""
    inner = TransformersEngine(
        MODEL, device="cpu", dtype="float32", max_concurrent=4, max_model_len=512, threads=1
    )
    engine = FaultyEngine(inner, plan)
    entry = load_manifest().get("tiny-qwen2-math")
    spec = spec_from_entry(entry, MODEL)
    if sandbox is None:
        spec = spec.__class__(**{**spec.__dict__, "tir_prompt_style": None})
    sub = Submission(
        engine, spec, AIMO2, policy=policy, total_s=total_s, n_problems=n_problems,
        workdir=workdir, sandbox=sandbox, clock=clock,
    )
    return sub, engine


def predict(sub: Submission, pid: str, text: str) -> tuple[pl.DataFrame, float, dict[str, Any]]:
    """One gateway call: the frame, its wall seconds, and the problem's run-log line."""
    t0 = time.monotonic()
    out = sub.predict(pl.Series("id", [pid]), pl.Series("problem", [text]))
    wall = time.monotonic() - t0
    record = [r for r in sub.runlog.read() if r.get("id") == pid][-1]
    return out, wall, record


def play(name: str, plan: list[Fault], total_s: float, n: int) -> dict[str, Any]:
    """Two problems through one faulty submission; what happened to each."""
    first, second = rows(2)
    with tempfile.TemporaryDirectory() as tmp:
        sub, engine = submission(Path(tmp), plan, total_s=total_s, n_problems=n)
        try:
            out1, wall1, rec1 = predict(sub, "p1", first["problem"])
            out2, wall2, rec2 = predict(sub, "p2", second["problem"])
        finally:
            sub.close()
    faults = list(rec1["faults"])
    return {
        "fault": name,
        "answer": out1["answer"].item(),
        "truth": int(first["answer"]),
        "in_range": 0 <= out1["answer"].item() <= AIMO2.max_answer,
        "wall_s": round(wall1, 2),
        "deadline_s": round(rec1["budget"]["hard_s"] + GRACE, 2),
        "source": rec1.get("answer_source") or ("votes" if rec1.get("n_voted") else "fallback"),
        "logged": faults[0][:70] if faults else "",
        "restart_s": round(sub.restarts[0], 2) if sub.restarts else None,
        "next_voted": rec2.get("n_voted", 0),
        "next_wall_s": round(wall2, 2),
        "next_stop": rec2.get("stop_reason"),
        "fired": len(engine.fired),
    }


def run() -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    out = [play(name, plan, total_s, n) for name, plan, _, total_s, n in CASES]
    _write(out, time.perf_counter() - t0)
    return out


def _write(out: list[dict[str, Any]], wall_s: float) -> None:
    lines = [
        "# Fault injection on the real tiny model (CPU)",
        "",
        f"Command: `{COMMAND}`  ",
        f"Wall time: {wall_s:.0f} s. Policy: 4 samples, max 256 tokens, hang declared after "
        f"{POLICY.engine_stall_s} s of silence, answer grace {GRACE} s.",
        "",
        "Per fault: the first problem's answer and wall time against its hard deadline plus "
        "grace, where the answer came from, the first fault line of its run-log record, the "
        "engine restart time if one happened, and how the next problem went (samples that "
        "voted, wall time, stop reason).",
        "",
        markdown_rows(out),
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faults.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    from bench.__main__ import format_rows

    print(format_rows(run()))
