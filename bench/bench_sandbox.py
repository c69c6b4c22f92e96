"""Per-call overhead of the code sandbox.

Compares a bare ``python -I -c pass`` start with sandboxed runs of ``print(1)`` (the fixed
cost of every code call) and ``import sympy`` (what most model code pays on top), with all
protections and with the optional layers switched off, so a slow layer shows up by itself.
Then the same through a ``PythonSession`` (one persistent interpreter per attempt): the first
call (start-up and hardening), later ``print(1)`` calls, and ``import sympy`` once it is loaded.

Run: ``python -m bench.bench_sandbox`` or ``python bench/bench_sandbox.py`` from the repo root.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _time_ms(fn: Any, n: int) -> list[float]:
    fn()  # warm-up: page cache, uid lock dir
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def run(n: int = 10, n_sympy: int = 3) -> list[dict[str, Any]]:
    """One row per case: mean/median/min wall milliseconds per call, and what was active."""
    if str(Path(__file__).resolve().parents[1]) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from aimo_submit.sandbox import Sandbox, SandboxOptions, Status, run_code

    full = SandboxOptions()
    modes = {
        "full": full,
        "no-namespaces": SandboxOptions(namespaces=False),
        "bare": SandboxOptions(namespaces=False, drop_privileges=False, python_guards=False),
    }
    rows: list[dict[str, Any]] = []

    def row(case: str, mode: str, times: list[float], active: str) -> None:
        rows.append({
            "case": case,
            "mode": mode,
            "n": len(times),
            "mean_ms": round(statistics.fmean(times), 1),
            "median_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1),
            "active": active,
        })

    def start() -> None:
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)

    row("python -I -c pass", "no sandbox", _time_ms(start, n), "-")
    cases = (("print(1)", "print(1)", n), ("import sympy", "import sympy", n_sympy))
    for case, code, reps in cases:
        for mode, opts in modes.items():
            last: dict[str, Any] = {}

            def call(code: str = code, opts: SandboxOptions = opts, last: dict = last) -> None:
                r = run_code(code, timeout_s=60, options=opts)
                if r.status is not Status.OK:
                    raise RuntimeError(f"{code!r} failed in the sandbox: {r.to_model_text()}")
                last["prot"] = r.protections

            times = _time_ms(call, reps)
            active = sorted(k for k, v in last["prot"].items() if v.startswith("ok"))
            row(case, mode, times, f"{len(active)} layers")

    async def session_times(opts: SandboxOptions) -> dict[str, Any]:
        timed: dict[str, list[float]] = {"start": [], "print": [], "sympy": []}
        prot: dict[str, str] = {}
        with Sandbox(workers=1, timeout_s=60, options=opts) as box:
            for i in range(n_sympy + 1):
                session = box.session()
                try:
                    steps = [("start", "print(1)", 1), ("print", "print(1)", 5 * n),
                             ("sympy", "import sympy", 1), ("sympy", "import sympy", n)]
                    for key, code, reps in steps:
                        for _ in range(reps):
                            t0 = time.perf_counter()
                            r = await session.run(code)
                            if r.status is not Status.OK:
                                raise RuntimeError(f"{code!r} failed: {r.to_model_text()}")
                            if i and not (key == "sympy" and code == "import sympy" and reps == 1):
                                timed[key].append((time.perf_counter() - t0) * 1000)
                            prot = dict(r.protections)
                finally:
                    await session.aclose()
        return {"times": timed, "prot": prot}

    labels = {"start": "session: first call (start-up)", "print": "session: print(1)",
              "sympy": "session: import sympy again"}
    for mode, opts in modes.items():
        got = asyncio.run(session_times(opts))
        active = sorted(k for k, v in got["prot"].items() if v.startswith("ok"))
        for key, label in labels.items():
            row(label, mode, got["times"][key], f"{len(active)} layers")
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines.append("  ".join("-" * widths[c] for c in cols))
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(_table(run()))
