"""Differential test: wherever Math-Verify reads an integer, ``extract_answer`` reads the same.

Math-Verify (HuggingFace's answer parser, pinned in requirements.txt) is run with its default
configuration over three corpora: generated model-like endings (``tests/extraction_corpus.py``),
the texts of ``tests/test_extract.py`` and the peer cases of ``../shared``. Where it returns an
integer, our vote must equal it modulo the modulus, except for the differences listed below,
each a deliberate convention of ``aimo_submit.extract`` with its reason. A listed difference
that no longer occurs fails the test too, so the list cannot go stale.
"""

from __future__ import annotations

import sympy
from math_verify import parse

from aimo_submit.extract import extract_answer
from tests.extraction_corpus import MODULUS, generated_endings
from tests.test_extract import ALL_CASES, HARMONY, LIMITS
from tests.test_extract_peers import CASES as PEER_CASES
from tests.test_extract_peers import DECISIONS, case_key, needs_shared

N_GENERATED = 3000
SEED = 13

# generated kind -> why our vote differs from Math-Verify's integer there
KNOWN_KIND_DIFFERENCES = {
    "phrase_power": "an answer phrase is judged whole (2^{10} is 1024); Math-Verify reads the base",
    "phrase_factorial": "an answer phrase is judged whole (7! is 5040); Math-Verify reads 7",
    "phrase_alternatives": "'N or M' is two values, no vote; Math-Verify takes the first",
    "unanchored_number": "no vote on a number nothing marks as the answer; Math-Verify falls back",
    "box_thousands_spaces": "1\\,234 and 1~234 are one number; Math-Verify adds the groups (235)",
    "box_scale": "'2 million' is 2,000,000; Math-Verify drops the word and reads 2",
    "harmony_final": "only the final channel counts; Math-Verify also reads the analysis drafts",
    "box_scientific": "1e3 is 1000; Math-Verify reads Euler's e, so 5e0 = 0",
    "box_text_wrapped": "\\mathbf{\\text{N}} is N; Math-Verify fails, reads an earlier number",
}

# a text of tests/test_extract.py -> why our vote differs from Math-Verify's integer there
_UNANCHORED = "no vote on a number nothing marks as the answer; Math-Verify falls back to one"
_WHOLE = "an answer phrase is judged whole; Math-Verify reads only its first number"
_SPACED = "spaced digit groups: 1\\,234 is one number, 1 2 none; Math-Verify adds the groups"
_HARMONY = "only the final message counts; Math-Verify also reads the analysis drafts"
_NOT_UNIT = "words that change the value are no unit (no vote); Math-Verify drops any word"
KNOWN_TEXT_DIFFERENCES = {
    r"\boxed{5 \bmod 7}": "a trailing mod is dropped (the answer is 5); Math-Verify reads 7",
    r"\boxed{2\,024}": _SPACED,
    r"\boxed{1\,234\,567}": _SPACED,
    r"\boxed{1 2}": _SPACED,
    r"\boxed{2 3}": _SPACED,
    "\\boxed{4\xa02}": _SPACED,
    r"\boxed{2^3^2}": "towers are read top-down (512), as in maths and Python; Math-Verify: 64",
    "The answer is 1, 2 or 3.": _WHOLE,
    "The answer is 2^{10}.": _WHOLE,
    "The answer is 7!": _WHOLE,
    "The answer is 5 or 7.": _WHOLE,
    "The answer is 5, 7 and 9": _WHOLE,
    "Answer: 5. Later: the answer is 6.": "the last phrase decides; Math-Verify prefers 'Answer:'",
    "I answered 42 questions.": _UNANCHORED,
    "The answer is $42": _UNANCHORED,  # the math never closes
    "Final Answer: The largest $n$ is 34 more than $m$.": _UNANCHORED,
    "we still need to answer $3$ questions": _UNANCHORED,
    "so the count is 12 and we are done": _UNANCHORED,
    "```output\n42\n```\n": _UNANCHORED,
    "Let me think.\n\n42": _UNANCHORED,
    "Step 3": _UNANCHORED,
    r"\boxed 42 apples": "a braceless box must end with its number; Math-Verify reads on",
    r"\boxed{x. 3}": "only a-e are choice labels; Math-Verify reads the last number",
    r"\boxed{7} and then $\boxed 1$": "the box that starts last; Math-Verify skips braceless ones",
    r"\boxed{12 ab}": _NOT_UNIT,
    r"\boxed{2 \text{ thirds}}": _NOT_UNIT,
    r"\boxed{5 \text{ or more}}": _NOT_UNIT,
    r"\boxed{2 \text{ million}}": "'2 million' is 2,000,000; Math-Verify drops the word",
}
KNOWN_TEXT_DIFFERENCES.update(  # where the final message has no box of its own
    {t: _HARMONY for t, _ in HARMONY if "<|channel|>final" in t and "boxed{42}" not in t}
)

# LIMITS holds values such as 2^{10^{9}} on which sympy computes for minutes: they test our
# bounds, not agreement. Long texts are the adversarial speed cases of test_extract.py.
_PROJECT_TEXTS = [t for t, vote in ALL_CASES if (t, vote) not in LIMITS and len(t) <= 5000]


def math_verify_integer(text: str) -> int | None:
    """Math-Verify's first parse of ``text`` when it is an integer (12.0 counts), else None."""
    found = parse(text)
    if not found or not isinstance(found[0], sympy.Basic):
        return None
    try:
        value = found[0].doit()  # "42/3" comes back unevaluated
    except Exception:
        return None
    if value.is_Integer:
        return int(value)
    if value.is_Float and float(value).is_integer():
        return int(value)
    return None


def _disagreements(texts: list[tuple[str, int]]) -> list[tuple[str, int | None, int]]:
    """(text, ours, Math-Verify's integer) wherever the two differ."""
    out = []
    for text, modulus in texts:
        theirs = math_verify_integer(text)
        if theirs is None:
            continue
        ours = extract_answer(text, modulus)
        if ours != theirs % modulus:
            out.append((text, ours, theirs))
    return out


def test_generated_endings_vote_as_built() -> None:
    wrong = [(e.kind, e.text[-120:]) for e in generated_endings(N_GENERATED, SEED)
             if extract_answer(e.text, MODULUS) != e.vote]  # fmt: skip
    assert wrong == []


def test_agrees_with_math_verify_on_generated_endings() -> None:
    endings = generated_endings(N_GENERATED, SEED)
    kinds = {e.text: e.kind for e in endings}
    seen_differences: set[str] = set()
    unexplained = []
    for text, ours, theirs in _disagreements([(e.text, MODULUS) for e in endings]):
        kind = kinds[text]
        if kind in KNOWN_KIND_DIFFERENCES:
            seen_differences.add(kind)
        else:
            unexplained.append((kind, ours, theirs, text[-150:]))
    assert unexplained == []
    assert seen_differences == set(KNOWN_KIND_DIFFERENCES)  # every listed difference is real


def test_agrees_with_math_verify_on_project_texts() -> None:
    texts = [(t, 1000) for t in _PROJECT_TEXTS]
    found = {text: (ours, theirs) for text, ours, theirs in _disagreements(texts)}
    assert {t: found[t] for t in found if t not in KNOWN_TEXT_DIFFERENCES} == {}
    assert set(found) == set(KNOWN_TEXT_DIFFERENCES)


@needs_shared
def test_agrees_with_math_verify_on_peer_cases() -> None:
    """Differences only where a debatable case's documented decision says so."""
    texts = [(c["text"], c.get("modulus") or 1000) for c in PEER_CASES]
    unexplained = []
    for text, ours, theirs in _disagreements(texts):
        decision = DECISIONS.get(case_key(text))
        if decision is None or decision[0] != ours:
            unexplained.append((ours, theirs, text[-150:]))
    assert unexplained == []
