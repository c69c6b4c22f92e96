"""Fault injection: whatever the engine does, ``predict`` answers in range and in time.

Each test wraps the real embedded tiny model (``TransformersEngine`` on CPU) in the test-only
``FaultyEngine``, builds a ``Submission`` with a budget of a few seconds per problem, and calls
``predict`` the way Kaggle's gateway does (two one-element polars Series). For every fault it
checks the contract: a one-row frame ``id, answer`` with an integer in range, returned before
the problem's hard deadline plus the answer grace (measured on the wall clock), the fault
written to the run log, and the *next* problem answered normally (votes from real samples).

Budgets: with ``total_s`` T and N problems the scheduler keeps a quarter of T back and plans
about 0.75 T / N seconds per problem, so the hang and deadline cases take seconds, not minutes.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from aimo_submit.competition import AIMO2
from aimo_submit.prompts import CODE_STOP
from aimo_submit.runner import Submission
from bench.faults import CASES, GRACE, MODEL, POLICY
from bench.faults import rows as _rows
from bench.faults import submission as _submission
from bench.faulty import Fault, FaultKind, hostile_code_text

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (MODEL / "config.json").is_file(), reason="tiny model not trained (make tiny-model)"
)

MOD = AIMO2.answer_modulus
SLACK = 0.25
"""Wall-clock allowance past deadline + grace for building the answer frame on a busy CPU."""


def _predict(sub: Submission, pid: str, text: str) -> tuple[int, float, dict[str, Any]]:
    """One gateway call; returns the answer, wall seconds, and the problem's run-log line."""
    t0 = time.monotonic()
    out = sub.predict(pl.Series("id", [pid]), pl.Series("problem", [text]))
    wall = time.monotonic() - t0
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["id", "answer"] and out.height == 1
    assert out["id"].item() == pid
    answer = out["answer"].item()
    assert isinstance(answer, int) and 0 <= answer < MOD
    record = [r for r in sub.runlog.read() if r["id"] == pid][-1]
    assert record["answer"] == answer
    return answer, wall, record


def _in_time(wall: float, record: dict[str, Any]) -> None:
    limit = record["budget"]["hard_s"] + GRACE + SLACK
    assert wall <= limit, f"answered after {wall:.2f} s; deadline + grace was {limit:.2f} s"


def _faults(record: dict[str, Any]) -> str:
    return "\n".join(record["faults"])


# The scenarios (CASES) live in bench/faults.py, which also reports their outcomes.
@pytest.mark.parametrize(("faults", "expect", "total_s", "n"),
                         [c[1:] for c in CASES[:-1]], ids=[c[0] for c in CASES[:-1]])
def test_fault_is_survived_logged_and_the_next_problem_is_normal(
    tmp_path: Path, faults: list[Fault], expect: str, total_s: float, n: int
) -> None:
    sub, engine = _submission(tmp_path, faults, total_s=total_s, n_problems=n)
    try:
        first, second = _rows(2)
        _, wall, rec = _predict(sub, "p1", first["problem"])
        _in_time(wall, rec)
        assert engine.fired, "the planned fault never fired"
        assert expect in _faults(rec), rec["faults"]

        answer, wall2, rec2 = _predict(sub, "p2", second["problem"])
        _in_time(wall2, rec2)
        assert rec2["n_voted"] > 0, f"next problem not served normally: {rec2['faults']}"
        assert rec2["stop_reason"] in ("agree", "unbeatable", "all-done", "soft-deadline")
    finally:
        sub.close()


def test_oom_everywhere_restarts_the_engine_and_degrades_to_fewer_samples(
    tmp_path: Path,
) -> None:
    """Every request of one problem runs out of memory: the solver retries with fewer samples,
    the runner restarts the engine (timed), asks once more on the fresh engine (which fails
    again: the fault follows the problem), and later problems start fewer samples."""
    plan = [Fault(FaultKind.OOM, match="Carl has 29 apples", times=None, at_generate=True)]
    sub, engine = _submission(tmp_path, plan, total_s=24, n_problems=4)
    try:
        first, second = _rows(2)
        _, wall, rec = _predict(sub, "p1", first["problem"])
        _in_time(wall, rec)
        text = _faults(rec)
        assert "retry 1 with 2 sample(s)" in text  # 4 samples * oom_sample_factor 0.5
        assert "later problems start 2 sample(s), not 4" in text
        assert "engine restart scheduled" in text
        assert "retrying this problem on the restarted engine" in text
        assert "retry 1 with 1 sample(s)" in text  # the second attempt started 2, then 1
        assert rec["out_of_memory"] and rec["engine_errors"] == 4 + 2  # the first attempt
        assert sum(1 for f in engine.fired if f["kind"] == "oom") == 4

        _, wall2, rec2 = _predict(sub, "p2", second["problem"])
        _in_time(wall2, rec2)
        assert rec2["n_samples"] == 1 and rec2["n_voted"] > 0
        assert len(sub.restarts) == 2 and all(0 < t < 10 for t in sub.restarts)
        assert any(f.startswith("engine restarted in") for f in rec2["faults"])
        assert engine.starts == 3
    finally:
        sub.close()


def test_hung_engine_is_restarted_and_the_same_problem_solved_on_it(tmp_path: Path) -> None:
    sub, engine = _submission(tmp_path, [Fault(FaultKind.HANG, call=0, after_events=4)],
                              total_s=24, n_problems=4)
    try:
        _, wall, rec = _predict(sub, "p1", _rows(1)[0]["problem"])
        _in_time(wall, rec)
        text = _faults(rec)
        assert "treated as hung" in text and "retrying this problem" in text
        assert rec["n_voted"] > 0, rec["faults"]  # answered from real votes, not the fallback
        assert len(sub.restarts) == 1 and engine.starts == 2
    finally:
        sub.close()


def test_start_failure_recovers_within_the_same_problem(tmp_path: Path) -> None:
    """A failed load is retried at once, so the first problem itself still gets solved."""
    sub, engine = _submission(tmp_path, [Fault(FaultKind.START_FAIL, call=0)],
                              total_s=24, n_problems=4)
    try:
        _, wall, rec = _predict(sub, "p1", _rows(1)[0]["problem"])
        _in_time(wall, rec)
        assert "engine failed to start" in _faults(rec)
        assert rec["n_voted"] > 0, rec["faults"]
        assert engine.starts == 2 and len(sub.restarts) == 1
    finally:
        sub.close()


def test_endless_sample_is_cut_at_the_token_cap_while_others_vote(tmp_path: Path) -> None:
    sub, _ = _submission(tmp_path, [Fault(FaultKind.ENDLESS, call=0, samples=(0,))],
                         total_s=24, n_problems=4)
    try:
        _, wall, rec = _predict(sub, "p1", _rows(1)[0]["problem"])
        _in_time(wall, rec)
        cut = rec["samples"][0]
        assert cut["finish"] == "length" and cut["tokens"] > POLICY.max_tokens
        assert rec["n_voted"] > 0  # the three healthy samples still voted
    finally:
        sub.close()


# -- the clock ----------------------------------------------------------------------------------
class JumpClock:
    """Monotonic time plus an offset that a test can bump (a VM pause, a stalled host)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_clock_jumps_shrink_later_budgets_without_crashing(tmp_path: Path) -> None:
    clock = JumpClock()
    sub, _ = _submission(tmp_path, [], total_s=40, n_problems=4, clock=clock)
    try:
        rows = _rows(4)
        _, _, rec1 = _predict(sub, "p1", rows[0]["problem"])
        assert rec1["n_voted"] > 0

        clock.offset += sub.scheduler.usable_left() / 2  # half the remaining run vanishes
        _, wall2, rec2 = _predict(sub, "p2", rows[1]["problem"])
        assert 0 < rec2["budget"]["hard_s"] < rec1["budget"]["hard_s"]
        assert rec2["n_voted"] > 0
        _in_time(wall2, rec2)

        # Mid-problem the clock jumps past the end of the whole run.
        bump = threading.Timer(0.2, lambda: setattr(clock, "offset", clock.offset + 3600))
        bump.start()
        _, wall3, rec3 = _predict(sub, "p3", rows[2]["problem"])
        bump.join()
        _in_time(wall3, rec3)

        _, wall4, rec4 = _predict(sub, "p4", rows[3]["problem"])
        assert rec4["budget"]["hard_s"] == 0 and rec4["budget"]["soft_s"] == 0
        assert "no time left for this problem" in _faults(rec4)
        assert wall4 < GRACE + SLACK
        assert sub.scheduler.usable_left() < 0 and rec4["time_left_s"] < 0
    finally:
        sub.close()


# -- hostile code through the solver and the real sandbox ---------------------------------------
def test_hostile_code_from_the_model_is_contained(tmp_path: Path) -> None:
    """Eight samples write hostile code at once; the sandbox contains all of it, the solver
    answers in time, the host process and its process group survive."""
    from aimo_submit.sandbox import Sandbox

    tag = secrets.token_hex(6)
    outside = [f"/tmp/aimo-fault-{tag}/x", str(REPO / f"aimo-fault-{tag}.txt")]
    secret = tmp_path / "secret.txt"
    secret.write_text(f"SECRET-{tag}")
    secret.chmod(0o600)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    codes = {
        "infinite-loop": "while True:\n    pass",
        "fork-bomb": "import os\nwhile True:\n    os.fork()",
        "alloc-50gb": "x = bytearray(50 * 1024**3)\nprint(len(x))",
        "write-outside": (
            "import os\n"
            f"for t in {outside!r}:\n"
            "    try:\n        os.makedirs(os.path.dirname(t), exist_ok=True)\n"
            "        open(t, 'w').write('escaped')\n    except OSError as e:\n"
            "        print('refused', type(e).__name__)"
        ),
        "read-host-file": f"print(open({str(secret)!r}).read())",
        "socket": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                  "print('connected')",
        "kill-parent": "import os\nos.kill(os.getppid(), 9)",
        "print-1gb": "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n"
                     "    sys.stdout.write(chunk)",
    }
    texts = tuple(hostile_code_text(f"# case {name}\n{code}", CODE_STOP)
                  for name, code in codes.items())
    policy = POLICY.replace(n_samples=len(codes), tir=True, early_stop_agree=99,
                            early_stop_unbeatable=False, code_timeout_s=2.0, engine_stall_s=30.0)
    sandbox = Sandbox(workers=4, timeout_s=policy.code_timeout_s, memory_mb=1024)
    sentinel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    plan = [Fault(FaultKind.INJECT, call=0, texts=texts)]
    sub, engine = _submission(tmp_path, plan, total_s=60, n_problems=2, policy=policy,
                              sandbox=sandbox)
    try:
        first, second = _rows(2)
        _, wall, rec = _predict(sub, "p1", first["problem"])
        _in_time(wall, rec)
        assert rec["code_calls"] >= len(codes)
        by_case = {}
        for request in engine.requests[1:]:  # continuations carry each code run's output
            for name in codes:
                if f"# case {name}\n" in request.prompt:
                    by_case[name] = request.prompt.rsplit(CODE_STOP, 1)[1]
        assert set(by_case) == set(codes), f"no continuation for {set(codes) - set(by_case)}"
        assert "Timed out" in by_case["infinite-loop"]
        assert "MemoryError" in by_case["alloc-50gb"]
        assert f"SECRET-{tag}" not in "".join(r.prompt for r in engine.requests)
        assert "connected" not in by_case["socket"]
        assert len(by_case["print-1gb"]) < 5000  # a gigabyte became a bounded excerpt
        statuses = [s for sample in rec["samples"] for s in sample["code_status"]]
        assert {"timeout", "memory"} <= set(statuses), rec["samples"]
        for path in outside:
            assert not os.path.exists(path), f"{path} was written on the host"
        with pytest.raises(BlockingIOError):
            listener.accept()
        assert sentinel.poll() is None, "a process of the host was killed"

        _, wall2, rec2 = _predict(sub, "p2", second["problem"])
        _in_time(wall2, rec2)
        assert rec2["n_voted"] > 0
    finally:
        sub.close()
        sandbox.close()
        sentinel.kill()
        sentinel.wait()
        listener.close()


# -- bad input from the gateway -----------------------------------------------------------------
@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("inputs")
    sub, _ = _submission(workdir, [], total_s=600, n_problems=20)
    assert sub.wait_ready(timeout=60), sub._ready.exception()
    yield sub
    sub.close()


def _call(sub: Submission, id_: Any, problem: Any) -> tuple[pl.DataFrame, dict[str, Any]]:
    t0 = time.monotonic()
    out = sub.predict(id_, problem)
    wall = time.monotonic() - t0
    assert isinstance(out, pl.DataFrame) and out.columns == ["id", "answer"]
    assert out.height == 1 and out.schema == {"id": pl.String, "answer": pl.Int64}
    assert 0 <= out["answer"].item() < MOD
    record = sub.runlog.read()[-1]
    assert record["id"] == out["id"].item()
    _in_time(wall, record)
    return out, record


def test_empty_problem_is_answered_without_solving(plain: Submission) -> None:
    for i, empty in enumerate(["", "   \n\t ", None]):
        out, rec = _call(plain, pl.Series("id", [f"empty{i}"]), pl.Series("problem", [empty]))
        assert out["answer"].item() == POLICY.fallback_answer
        assert "empty problem text" in _faults(rec)
        assert rec["n_voted"] == 0 and rec["tokens"] == 0


def test_megabyte_problem_is_cut_and_still_answered(plain: Submission) -> None:
    question = _rows(1)[0]["problem"]
    huge = "Lorem ipsum dolor sit amet. " * 40_000 + question  # ~1.1 MB
    out, rec = _call(plain, pl.Series("id", ["huge"]), pl.Series("problem", [huge]))
    text = _faults(rec)
    assert f"cut from {len(huge)} to {POLICY.max_problem_chars} characters" in text
    # Still longer than the tiny model's 512-token window: refused by the engine, and said so.
    assert "the engine generated nothing" in text


@pytest.mark.parametrize(
    ("problem", "note"),
    [
        (pl.Series("problem", [b"What is 25 - 23?\xff\xfe"]), "got bytes, decoded as UTF-8"),
        # polars refuses to hold lone surrogates, so this one comes as a bare str
        ("What is 25 - 23?\udcff\ud800", "replaced lone surrogates"),
        (pl.Series("problem", ["What\x00 is\x07 25\x1b - 23?\x7f"]),
         "removed 4 control character(s)"),
    ],
    ids=["bytes", "lone-surrogates", "control-chars"],
)
def test_non_utf8_looking_text_is_cleaned_and_solved(
    plain: Submission, problem: Any, note: str
) -> None:
    pid = f"enc-{note[:8]}"
    _, rec = _call(plain, pl.Series("id", [pid]), problem)
    assert note in _faults(rec)
    assert rec["engine_errors"] == 0 and rec["n_voted"] > 0  # the engine never saw bad text


def test_latex_heavy_problem(plain: Submission) -> None:
    latex = (r"Let $f(x)=\frac{x^{2}+1}{x-1}$ and $\sum_{k=1}^{n}\binom{n}{k}\left\{k\right\}$"
             r" \begin{align*} a &= \sqrt[3]{\tfrac{1}{2}} \\ b &= \mathbb{Z}/7\mathbb{Z}"
             r"\end{align*} %comment {{}} \boxed{ What is 25 - 23?")
    _, rec = _call(plain, pl.Series("id", ["latex"]), pl.Series("problem", [latex]))
    assert rec["engine_errors"] == 0 and "predict error" not in _faults(rec)


def test_repeated_id_is_solved_again_and_logged(plain: Submission) -> None:
    text = _rows(2)[1]["problem"]
    _call(plain, pl.Series("id", ["twice"]), pl.Series("problem", [text]))
    _, rec = _call(plain, pl.Series("id", ["twice"]), pl.Series("problem", [text]))
    assert "repeated id 'twice': solved again" in _faults(rec)
    assert [r["id"] for r in plain.runlog.read()].count("twice") == 2


@pytest.mark.parametrize(
    ("make", "note"),
    [
        (lambda i, p: (pd.Series([i]), pd.Series([p])), None),
        (lambda i, p: (pd.DataFrame({"id": [i]}), pd.DataFrame({"problem": [p]})),
         "got a pandas DataFrame"),
        (lambda i, p: (pl.DataFrame({"id": [i]}), pl.DataFrame({"problem": [p]})),
         "got a DataFrame"),
        (lambda i, p: (i, p), None),
    ],
    ids=["pandas-series", "pandas-frame", "polars-frame", "plain-str"],
)
def test_unexpected_container_types(plain: Submission, make: Any, note: str | None) -> None:
    row = _rows(3)[2]
    pid = f"types-{note or 'plain'}-{secrets.token_hex(2)}"
    id_, problem = make(pid, row["problem"])
    out, rec = _call(plain, id_, problem)
    assert out["id"].item() == pid
    assert rec["n_voted"] > 0
    if note:
        assert note in _faults(rec)


def test_none_and_int_ids_and_extra_arguments(plain: Submission, caplog) -> None:
    text = _rows(1)[0]["problem"]
    with caplog.at_level(logging.WARNING, logger="aimo_submit.runner"):
        out, rec = _call(plain, None, pl.Series("problem", [text]))
    assert out["id"].item() == "" and "id: empty value" in _faults(rec)
    assert any("id: empty value" in r.getMessage() for r in caplog.records)
    out, rec = _call(plain, pl.Series("id", [12345]), pl.Series("problem", [text]))
    assert out["id"].item() == "12345" and "id: got int" in _faults(rec)
    out = plain.predict(pl.Series("id", ["extra"]), pl.Series("problem", [text]), "surprise")
    assert out.height == 1
    assert "ignored 1 extra argument(s)" in _faults(plain.runlog.read()[-1])


def test_every_run_log_line_has_the_diagnosis_fields(plain: Submission) -> None:
    records = plain.runlog.read()
    assert records
    for rec in records:
        for key in ("id", "answer", "votes", "tokens", "seconds", "faults", "budget"):
            assert key in rec, f"run log line lacks {key}: {rec}"
