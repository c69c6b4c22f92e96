"""Test helper: model-like endings with a known vote, for the extraction tests.

``generated_endings(n, seed)`` returns ``Ending(kind, text, vote)`` records: a short stretch of
reasoning (numbers and LaTeX all over it, as in real outputs) followed by one of the endings
below, built around a value the generator chose, so ``vote`` (the ``extract_answer`` result
with modulus 1000, or None) is known by construction, not by running the extractor.
The kinds cover boxes, answer phrases, thousands separators, fractions, units, negatives,
nested braces, truncation and gpt-oss harmony final messages.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

MODULUS = 1000


class Ending(NamedTuple):
    kind: str
    text: str
    vote: int | None


_REASONING = [
    "Let $n$ be the number of such pairs. ",
    "We have $a + b = 12$ and $ab = 35$, so $a, b$ are $5$ and $7$. ",
    "Since $2^{10} = 1024 \\equiv 24 \\pmod{1000}$, we continue. ",
    "Wait, let me recheck the case $k = 3$: it gives $\\frac{9}{2}$, not an integer. ",
    "By symmetry the count doubles, giving $2 \\cdot 18 = 36$ arrangements. ",
    "Hmm, that contradicts the earlier bound of 40. ",
    "So the area is $\\frac{1}{2} \\cdot 6 \\cdot 8 = 24$. ",
    "Checking small cases: $f(1) = 1$, $f(2) = 3$, $f(3) = 7$. ",
    "```python\nprint(sum(range(10)))\n```\n```output\n45\n```\n",
    "Thus $x^2 - 5x + 6 = 0$, i.e. $x \\in \\{2, 3\\}$. ",
    "\n\n",
]


def _reasoning(rng: random.Random) -> str:
    return "".join(rng.choice(_REASONING) for _ in range(rng.randint(0, 4)))


def _value(rng: random.Random) -> int:
    """Mostly competition-sized answers, sometimes large ones (then reduced mod 1000)."""
    return rng.choice([rng.randint(0, 999), rng.randint(0, 99_999), rng.randint(0, 10**7)])


def _thousands(n: int, sep: str) -> str:
    return f"{n:,}".replace(",", sep)


# Each builder returns (ending text, vote).
Builder = Callable[[random.Random], tuple[str, int | None]]


def _box_int(rng: random.Random) -> tuple[str, int | None]:
    n = _value(rng)
    wrap = rng.choice(["$\\boxed{%s}$", "\\boxed{%s}", "\\(\\boxed{%s}\\)", "\\[\\boxed{%s}\\]"])
    lead = rng.choice(["Therefore the answer is ", "**Final Answer**\n", "So we get ", ""])
    return lead + wrap % n + rng.choice([".", "", "\n", " I hope it is correct."]), n % MODULUS


def _box_negative(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(1, 5000)
    return f"The minimum is $\\boxed{{-{n}}}$.", -n % MODULUS


def _box_thousands(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(1000, 10**9)
    sep = rng.choice([",", "{,}", ",\\!", ",\\! "])
    return f"The total is $\\boxed{{{_thousands(n, sep)}}}$.", n % MODULUS


def _box_thousands_spaces(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(1000, 10**9)
    sep = rng.choice(["\\,", "~", " "])
    return f"The total is $\\boxed{{{_thousands(n, sep)}}}$.", n % MODULUS


def _box_list(rng: random.Random) -> tuple[str, int | None]:
    a, b = rng.randint(1, 99), rng.randint(100, 999)
    inner = rng.choice([f"{a}, {b}", f"{a},{a}", f"{a} \\text{{ and }} {b}", f"\\pm {a}",
                        f"{a} \\text{{ or }} {b}", f"({a}, {b})", f"\\{{{a}, {b}\\}}"])  # fmt: skip
    return f"The solutions are $\\boxed{{{inner}}}$.", None


def _box_fraction(rng: random.Random) -> tuple[str, int | None]:
    q, d = rng.randint(0, 500), rng.randint(2, 9)
    cmd = rng.choice(["\\frac", "\\dfrac", "\\tfrac", "\\cfrac"])
    if rng.random() < 0.5:
        return f"$\\boxed{{{cmd}{{{q * d}}}{{{d}}}}}$", q % MODULUS
    return f"$\\boxed{{{cmd}{{{q * d + 1}}}{{{d}}}}}$", None


def _box_short_fraction(rng: random.Random) -> tuple[str, int | None]:
    d = rng.randint(1, 9)
    q = rng.randint(1, 9 // d)
    form = rng.choice(["\\frac%d%d", "\\frac%d{%d}", "\\frac{%d}%d"])
    return f"The value is $\\boxed{{{form % (q * d, d)}}}$.", q


def _box_unit(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(1, 9999)
    unit = rng.choice(["\\text{ cm}^2", "\\text{ cm}", "\\textnormal{ miles}", "\\mbox{ cm}^2",
                       " ways", " minutes", " degrees", "^\\circ", "^{\\circ}", "\\%", " percent",
                       "\\text{ square units}", " dollars", "\\mathrm{th}"])  # fmt: skip
    return f"The result is $\\boxed{{{n}{unit}}}$.", n % MODULUS


def _box_scale(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(1, 99)
    word, power = rng.choice([("thousand", 3), ("million", 6), ("billion", 9)])
    form = rng.choice(["%d \\text{ %s}", "%d %s"])
    return f"The population is $\\boxed{{{form % (n, word)}}}$.", n * 10**power % MODULUS


def _box_equation(rng: random.Random) -> tuple[str, int | None]:
    n = _value(rng)
    lhs = rng.choice(["x", "n", "m+n", "N", "a_{10}", "\\text{answer}"])
    return f"Hence $\\boxed{{{lhs} = {n}}}$.", n % MODULUS


def _box_nested(rng: random.Random) -> tuple[str, int | None]:
    n = _value(rng)
    inner = rng.choice(["{%d}", "{{%d}}", "\\left(%d\\right)", "\\displaystyle %d", "\\boxed{%d}"])
    return f"$\\boxed{{{inner % n}}}$", n % MODULUS


def _box_text_wrapped(rng: random.Random) -> tuple[str, int | None]:
    n = _value(rng)
    inner = rng.choice(["\\text{%d}", "\\textbf{%d}", "\\mathbf{\\text{%d}}", "\\mathrm{%d}"])
    return f"$\\boxed{{{inner % n}}}$", n % MODULUS


def _box_power(rng: random.Random) -> tuple[str, int | None]:
    b, e = rng.randint(2, 9), rng.randint(2, 12)
    if rng.random() < 0.5:
        return f"So there are $\\boxed{{{b}^{{{e}}}}}$ colourings.", b**e % MODULUS
    return f"So there are $\\boxed{{{b}!}}$ orders.", _factorial(b) % MODULUS


def _box_scientific(rng: random.Random) -> tuple[str, int | None]:
    m, e = rng.randint(1, 9), rng.randint(0, 6)
    return f"$\\boxed{{{m}e{e}}}$", m * 10**e % MODULUS


def _box_decimal(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(0, 999)
    if rng.random() < 0.5:
        return f"$\\boxed{{{n}.{'0' * rng.randint(1, 2)}}}$", n
    return f"$\\boxed{{{n}.{rng.randint(1, 99):02d}}}$", None


def _braceless_box(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(0, 99_999)
    return f"So the answer is $\\boxed {n}$.", n % MODULUS


def _boxes_then_final_box(rng: random.Random) -> tuple[str, int | None]:
    a, n = rng.randint(0, 999), rng.randint(0, 999)
    return f"First $\\boxed{{{a}}}$ for part one; overall \\boxed{{{n}}}.", n


def _truncated_box(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(0, 999)
    tail = rng.choice(["\\boxed{", "\\boxed{\\frac{1}{", "\\boxed{12", "$\\boxed{\\text{"])
    return f"Earlier we found $\\boxed{{{n}}}$. Now double-check: {tail}", n


def _phrase_int(rng: random.Random) -> tuple[str, int | None]:
    n = _value(rng)
    shown = rng.choice([str(n), f"${n}$", f"**{n}**", f"\\({n}\\)", _thousands(n, ",")])
    form = rng.choice(["The answer is %s.", "Answer: %s", "**Answer:** %s", "the answer is %s",
                       "Final Answer: The final answer is %s. I hope it is correct.",
                       "FINAL_ANSWER: %s", "The final answer is %s"])  # fmt: skip
    return form % shown, n % MODULUS


def _phrase_negative(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(1, 999)
    return f"The answer is ${-n}$.", -n % MODULUS


def _phrase_fraction(rng: random.Random) -> tuple[str, int | None]:
    q, d = rng.randint(1, 300), rng.randint(2, 9)
    if rng.random() < 0.5:
        return f"Final Answer: {q * d}/{d}", q % MODULUS
    return f"The answer is {q * d + 1}/{d}.", None


def _phrase_power(rng: random.Random) -> tuple[str, int | None]:
    b, e = rng.randint(2, 9), rng.randint(2, 9)
    return f"The answer is {b}^{{{e}}}.", b**e % MODULUS


def _phrase_factorial(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(3, 9)
    return f"The answer is {n}!", _factorial(n) % MODULUS


def _phrase_alternatives(rng: random.Random) -> tuple[str, int | None]:
    a, b = rng.randint(1, 500), rng.randint(501, 999)
    return f"The answer is {a} or {b}.", None


def _final_answer_sentence(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(0, 999)
    what = rng.choice(["The largest $n$", "The volume of $ABCDEFGH$", "The number of ways"])
    return f"Final Answer: {what} is {n}. I hope it is correct.", n


def _final_phrase_after_boxes(rng: random.Random) -> tuple[str, int | None]:
    a, n = rng.randint(0, 999), rng.randint(1000, 99_999)
    return (f"so part one is $\\boxed{{{a}}}$. In total ${_thousands(n, ',')}$. Final Answer: "
            f"The final answer is ${_thousands(n, ',')}$. I hope it is correct.", n % MODULUS)


def _harmony_final(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(0, 99_999)
    body = rng.choice(["**Answer:** %d", "The answer is %d.", "%d", "**%d**", "$\\boxed{%d}$",
                       "Summing the cases gives the total.\n\n**%d**"])  # fmt: skip
    draft = rng.randint(0, 99)
    return (f"<|channel|>analysis<|message|>Maybe \\boxed{{{draft}}}? Let me verify.<|end|>"
            f"<|start|>assistant<|channel|>final<|message|>{body % n}<|return|>", n % MODULUS)


def _unanchored_number(rng: random.Random) -> tuple[str, int | None]:
    n = rng.randint(0, 999)
    tail = rng.choice(["So far the sum is %d", "which gives %d and then", "Now $f(5) = %d$, so"])
    return tail % n, None


def _factorial(n: int) -> int:
    out = 1
    for k in range(2, n + 1):
        out *= k
    return out


BUILDERS: dict[str, Builder] = {
    "box_int": _box_int,
    "box_negative": _box_negative,
    "box_thousands": _box_thousands,
    "box_thousands_spaces": _box_thousands_spaces,
    "box_list": _box_list,
    "box_fraction": _box_fraction,
    "box_short_fraction": _box_short_fraction,
    "box_unit": _box_unit,
    "box_scale": _box_scale,
    "box_equation": _box_equation,
    "box_nested": _box_nested,
    "box_text_wrapped": _box_text_wrapped,
    "box_power": _box_power,
    "box_scientific": _box_scientific,
    "box_decimal": _box_decimal,
    "braceless_box": _braceless_box,
    "boxes_then_final_box": _boxes_then_final_box,
    "truncated_box": _truncated_box,
    "phrase_int": _phrase_int,
    "phrase_negative": _phrase_negative,
    "phrase_fraction": _phrase_fraction,
    "phrase_power": _phrase_power,
    "phrase_factorial": _phrase_factorial,
    "phrase_alternatives": _phrase_alternatives,
    "final_answer_sentence": _final_answer_sentence,
    "final_phrase_after_boxes": _final_phrase_after_boxes,
    "harmony_final": _harmony_final,
    "unanchored_number": _unanchored_number,
}


def generated_endings(n: int, seed: int) -> list[Ending]:
    """``n`` endings, the kinds in turn, from a fixed seed: the same list on every run."""
    rng = random.Random(seed)
    kinds = list(BUILDERS)
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        ending, vote = BUILDERS[kind](rng)
        out.append(Ending(kind, _reasoning(rng) + ending, vote))
    return out
