"""Time ``extract_answer`` on typical and adversarial outputs of 1k, 10k and 200k characters.

``run()`` returns one row per case: ``{case, chars, ms_per_call}`` (the best of a few repeats,
so scheduler noise on a shared machine does not inflate it). Run as a script for a table.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimo_submit.extract import extract_answer

_R1_PIECES = [
    "Let me think. ", "Wait, ", "so $x^2 + y^2 = 25$ ", r"and $\frac{a}{b} = \binom{n}{k}$, ",
    "hence ", "\n\n", "Alternatively, check $n = 12$: ", r"$\{1, 2, 3\}$ ", "the answer is not ",
    "```python\nprint(sum(range(10)))\n```\n", "45 ",
]  # fmt: skip


def _r1_style(chars: int, seed: int = 0) -> str:
    """A long chain of thought with LaTeX all over it and the box at the very end."""
    rng = random.Random(seed)
    tail = r"</think> Therefore the final answer is $\boxed{\dfrac{2\,024}{2}}$."
    out: list[str] = []
    size = 0
    while size < chars - len(tail):
        piece = rng.choice(_R1_PIECES)
        out.append(piece)
        size += len(piece)
    return "".join(out)[: chars - len(tail)] + tail


def _repeat(unit: str, chars: int) -> str:
    return (unit * (chars // len(unit) + 1))[:chars]


def _junk(chars: int, seed: int = 1) -> str:
    """Random LaTeX-ish junk with a box at the end."""
    rng = random.Random(seed)
    alphabet = "{}{}\\$^_ ()=+-0123456789abcxyz\n"
    tail = r"\boxed{7}"
    return "".join(rng.choice(alphabet) for _ in range(chars - len(tail))) + tail


CASES: dict[str, Callable[[int], str]] = {
    "r1 box at end": _r1_style,
    "r1 no box (phrase)": lambda n: _r1_style(n).replace(r"\boxed", r"\mathrm"),
    "r1 box early, long tail": lambda n: r"\boxed{7}" + _r1_style(n - 9).replace("boxed", "frac"),
    "random junk, box at end": _junk,
    "box, then unclosed boxes": lambda n: r"\boxed{7}" + _repeat("\\boxed{", n - 9),
    "box, then '{' run": lambda n: r"\boxed{7}" + "{" * (n - 9),
    "box, then '}' run": lambda n: r"\boxed{7}" + "}" * (n - 9),
    "box, then '{}' pairs": lambda n: r"\boxed{7}" + _repeat("{}", n - 9),
    "nested boxes": lambda n: "\\boxed{" * (n // 8) + "7" + "}" * (n // 8),
    "unclosed boxes with groups": lambda n: _repeat("\\boxed{{x}", n),
    "'box' word spam": lambda n: r"\boxed{7}" + _repeat("box ", n - 10) + "}",
    "'answer is' spam": lambda n: _repeat("answer is ", n),
    "huge exponent box": lambda n: _repeat(" ", n - 19) + r"\boxed{2^{10^{9}}}",
    "r1 boxes, then final phrase": lambda n: _r1_style(n - 60)
    + "\nFinal Answer: The final answer is $2{,}024$. I hope it is correct.",
    "harmony analysis, final message": lambda n: "<|channel|>analysis<|message|>"
    + _r1_style(n - 80) + "<|end|><|start|>assistant<|channel|>final<|message|>**Answer:** 42",
    "no answer at all": lambda n: _r1_style(n).replace("boxed", "frac").replace("answer", "ans"),
}
SIZES = (1_000, 10_000, 200_000)


def _time(text: str, min_total_s: float = 0.05, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds per call, each repeat running at least ``min_total_s``."""
    best = float("inf")
    for _ in range(repeats):
        calls = 0
        start = time.perf_counter()
        while True:
            extract_answer(text)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_total_s:
                break
        best = min(best, elapsed / calls * 1000)
    return best


def run() -> list[dict]:
    """One row per (case, size): ``{"case", "chars", "ms_per_call"}``."""
    rows = []
    for case, build in CASES.items():
        for chars in SIZES:
            text = build(chars)
            rows.append({"case": case, "chars": len(text), "ms_per_call": round(_time(text), 4)})
    return rows


if __name__ == "__main__":
    rows = run()
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  {'chars':>8}  {'ms/call':>9}")
    for r in rows:
        print(f"{r['case']:<{width}}  {r['chars']:>8}  {r['ms_per_call']:>9.4f}")
