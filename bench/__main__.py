"""``python -m bench``: run every ``bench/bench_*.py`` present and print each result as a table.

Each module exposes ``run() -> list[dict]``. A module that fails to import or to run is skipped
with the reason, so one broken benchmark never hides the others; the exit status is 1 then.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Module names of the benchmarks in this folder, in file-name order."""
    return [f"bench.{p.stem}" for p in sorted(_HERE.glob("bench_*.py"))]


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: one column per key (first-seen order), right-aligned numbers."""
    if not rows:
        return "(no rows)"
    keys = list(dict.fromkeys(k for row in rows for k in row))

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    table = [[cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(r[i]) for r in table)) for i, k in enumerate(keys)]
    numeric = [all(isinstance(row.get(k), (int, float)) or row.get(k) is None for row in rows)
               for k in keys]
    lines = ["  ".join(k.rjust(w) if num else k.ljust(w)
                       for k, w, num in zip(keys, widths, numeric, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in table:
        lines.append("  ".join(c.rjust(w) if num else c.ljust(w)
                               for c, w, num in zip(r, widths, numeric, strict=True)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = discover()
    if argv:  # python -m bench policies extract
        names = [n for n in names if any(n.endswith(a) or n.endswith(f"bench_{a}") for a in argv)]
    failed = 0
    t_all = time.perf_counter()
    for name in names:
        print(f"== {name}")
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a missing dependency or a half-written module
            print(f"skipped: import failed: {type(exc).__name__}: {exc}\n")
            failed += 1
            continue
        if not callable(getattr(module, "run", None)):
            print("skipped: no run() function\n")
            failed += 1
            continue
        try:
            rows = module.run()
        except Exception as exc:
            traceback.print_exc()
            print(f"skipped: run() failed: {type(exc).__name__}: {exc}\n")
            failed += 1
            continue
        print(format_rows(list(rows)))
        print(f"({time.perf_counter() - t0:.1f} s)\n")
    print(f"bench: {len(names) - failed}/{len(names)} ran in {time.perf_counter() - t_all:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
