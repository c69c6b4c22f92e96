r"""Turn one model output into one integer vote, or ``None`` when it casts no vote.

Finding, normalising and judging are separate steps (as in Math-Verify), each public and
tested on its own; ``extract_answer`` chains them and never raises on any string. A wrong vote
is worse than a missing one (it can win the majority), so every rule below reads an integer
only where the text plainly states it. Hand-written rather than Math-Verify/sympy because it
runs on every sample inside the submission: it must take well under a millisecond on a
200,000-character output, never hang, and never import a LaTeX grammar; Math-Verify checks it
in ``tests/test_extract_differential.py``.

**1. Find** the candidate answer text (``find_answer``).

- **Harmony.** When the text holds a gpt-oss ``<|channel|>final<|message|>``, only the last
  final message counts (up to the next ``<|``): the analysis channel holds drafts. The steps
  below then run on that message alone.
- **Box** (``find_last_boxed``): the content of the last complete ``\boxed{...}`` or
  ``\fbox{...}`` ("last" = the box that *starts* last, so ``\boxed{\boxed{5}}`` gives ``5``).
  Braces must balance, nesting is allowed, escaped ``\{`` ``\}`` are not braces, whitespace may
  sit between the keyword and ``{``. An unclosed trailing box is ignored, so the previous
  complete box counts; so is a box whose content runs past 1000 chars (it could never be an
  answer). After 400 keywords that are not complete boxes the search gives up. ``\boxed 42``
  without braces counts when a plain number follows the space and ends the math or the
  sentence (``$\boxed 42$.``; TeX would box only the "4", but every model that writes it means
  42). Linear in the text; a box near the end is found without reading what precedes it.
- **Final-answer override**: an answer phrase whose word is preceded by "final" ("Final
  Answer: The final answer is $10,455$.") that comes *after* the last box decides instead of
  the box: models box intermediate results and then state the answer.
- **Answer phrase** (``find_answer_phrase``), when there is no box: the last "answer" /
  "Answer" / "ANSWER" (also "FINAL_ANSWER", and Chinese "答案") followed by ``is`` / ``was`` /
  ``:`` / ``=`` / "是" / "为" (markdown ``**`` allowed) and then either math in ``$...$``,
  ``$$...$$``, ``\(...\)``, ``\[...\]`` holding a digit, or a plain expression: the whole run of
  digits, operators, ``\frac``-like commands and spaces between them (``42``, ``-7``,
  ``1,000``, ``42/3``, ``2^{10}``, ``7!``). The expression is judged whole by the same
  evaluator as a box, so ``The answer is 1/2.`` casts no vote and ``Final Answer: 42/3`` is
  14. A comma list (``1, 2``) and "N or M" / "N and M" are taken whole and judged ``None``.
  Two more forms: "Final Answer:" followed by a sentence that *ends* in "is N" ("Final
  Answer: The largest $n$ is 34.") and an "Answer" heading at the start of a line followed
  directly by math ("Answer $ 9 $"). Phrases followed by words ("the answer is not 5",
  "the answer is $n$") are skipped in favour of earlier ones; at most 100 phrases are tried.
- **Bare number**, when there is no box and no phrase: a number standing alone -- the whole
  text, or the last line of a harmony final message -- optionally in ``**bold**`` or math
  delimiters (``42``, ``**42**``, ``$42$``). In a chain of thought a line holding only a number
  is usually an intermediate result, a tool output or the point where the output was cut off,
  so there it is no vote.

**2. Normalise** (``normalize``; idempotent, content over 1000 chars is not judged):
Unicode minus/times/dot/divide become ``- * * /``; Unicode decimal digits (``'٣'``, ``'３'``)
become ASCII digits; ``$``, ``\$``, ``%``, ``\%``, ``\displaystyle``, ``\left``/``\right``,
``\big`` and friends, ``^\circ``, ``^{\circ}``, ``\circ``, ``\degree``, ``°`` are dropped; a
LaTeX line break ``\\`` becomes a space; ``,\!`` between digits is a thousands comma (the
separator of Hendrycks MATH: ``10,\!000``, ``11,\! 111``); other spacing (``\,`` ``\;`` ``\:``
``\!`` ``\ `` ``~`` ``\quad`` ``\qquad`` ``\hspace{..}`` ...) becomes a space; ``\text``,
``\textbf``, ``\mathbf``, ``\mathrm``, ``\mbox``, ``\operatorname`` ... are unwrapped; a leading
"answer:" / "the final answer is" is dropped; a trailing ``\pmod{..}``, ``\mod ..``,
``\bmod ..``, ``(mod ..)`` is dropped; ``\equiv`` counts as ``=`` and only the part after the
last ``=`` is kept (``x = 5``, ``n=5``, ``\text{answer}=5``, ``2^{10}=1024``), unless the left
side lists alternatives (``,``, ``;``, "or", "and") or ends in ``<``, ``>``, ``!``; a trailing
``.``, ``,`` or ``;`` is dropped; a leading choice label ``c.`` / ``(B)`` is dropped;
``\dfrac``/``\tfrac``/``\cfrac`` become ``\frac``, ``\dbinom``/``\tbinom`` become ``\binom``,
``\frac12``, ``\frac3{3}`` and ``\frac{3}4`` get their braces, ``\times``, ``\cdot``, ``\ast``
become ``*`` and ``\div`` becomes ``/``.
Units after a number are dropped: ``\text{ cm}``, ``\textnormal{ miles}``, ``\mbox{ cm}^2``
(an exponent belongs to the unit, so ``12 \text{ cm}^2`` is 12), an ordinal ``6\mathrm{th}`` /
``21st``, and up to four bare words (``12 ways``, ``30 minutes``, ``28 percent``) when the
first has at least 4 letters or is a known short unit (``cm``, ``ft``, ...): ``12 ab`` may be
a product of variables. Words that change the value or make it no single number are never a
unit (``or``, ``and``, ``squared``, ``half``, ``thirds``, ``dozen``, ``pi`` ...): the text then
casts no vote. Scale words multiply: ``2 million`` is 2,000,000, ``5 \text{ thousand}`` is 5000.
Thousands separators: a run of digit groups joined by one kind of separator (``,``, ``{,}``,
or spaces, which is what ``\,`` and ``~`` become) is one number when the first group has 1-3
digits and every later group exactly 3 (``1,000``, ``1{,}234``, ``2\,024``, ``1 000 000``);
anything else (``1,2``, ``12, 345``, ``1234,567``, ``1 2``) is left alone and so is a list.

**3. Judge** (``to_integer``): the normalised text (at most 100 chars) is evaluated exactly by a
small recursive-descent parser over ``fractions.Fraction`` (never ``eval``): numbers (leading
zeros, ``12.00`` and ``1e3`` fine), ``+ - * /``, unary minus, ``^`` (right-associative, so
``2^3^2`` is 512), ``!``, ``( )``, ``{ }``, ``\frac``, ``\binom``, ``\sqrt`` of a perfect
square and fractional powers of perfect powers (``4^{1/2}``, ``8^{2/3}``). Every value is
bounded to 10,000 bits *before* it is computed (``2^{10^{9}}``, ``1001!``, ``1e100000`` or
``\binom{10^{6}}{5 \cdot 10^{5}}`` are rejected at once). Anything else -- letters, ``\pi``,
``\infty``, ``\sqrt{2}``, sets ``\{1,2\}``, tuples, intervals, lists, an empty box, "none" -- and
any non-integer value (``3.5``, ``\frac{1}{2}``) gives ``None``. An integer is reduced with
Python's ``%`` by ``modulus`` (so ``-1`` gives 999 and ``1234`` gives 234 for the default 1000).

**Conventions** where peer projects disagree (the debatable cases of the shared peer corpus;
``tests/test_extract_peers.py`` holds each to its decision). The competition scores one
integer, so each choice asks: does this text state that integer beyond doubt?

- A "final answer" phrase after the last box beats the box (Math-Verify, Qwen2.5-Math and
  DeepSeek-Math do the same): the statement that comes last is the model's conclusion.
- "Final Answer: <sentence> is N." and an "Answer $ N $" heading are read: they state N as
  the answer; a sentence with words after N is not ("... is 34 more than ...").
- No vote on an unanchored number: no last-number fallback (a truncated output, "AZYUK2A",
  "start from 0"), and no ``output`` block of a tool call -- they are intermediate values, and
  a fallback would turn every cut-off sample into a vote.
- A non-integer is never rounded (``16386.17``, ``5.001``, ``3.7``): it is another answer.
- The last box decides even when several are joined by "and" (Math-Verify reads a set): one
  integer is asked for, and the box written last is the model's latest word.
- Units, ``%`` and the word "percent" are dropped (``28 percent`` is 28, ``50%`` is 50): the
  integer asked for is the count; ``\mbox{ cm}^2`` is a unit with its exponent (15, not 225).
- Scale words multiply (``2 million`` is 2,000,000, which is 0 mod 1000): reading 2 would be
  a wrong vote.
- Number words (``twelve``) are not read: models write digits in boxes, and a word list would
  be a second number parser for no gain.
- A leading choice label (``c. 3``) is dropped: there are no choices in an integer
  competition, so the number is what the model meant.
- A trailing ``\\`` (``185\\``), spaces between ``\boxed`` and ``{``, nested ``{{7}}``, a chain
  ``x = 5+5+1 = 7 = 11`` (the part after the last ``=``), ``1,234/2`` (617) and ``(9+1)`` (10)
  are read as written; a negative is reduced with Python's ``%`` (``-7`` gives 993 for 1000).
"""

from __future__ import annotations

import math
import re
import unicodedata
from fractions import Fraction
from typing import NamedTuple

__all__ = [
    "extract_answer",
    "find_answer",
    "find_answer_phrase",
    "find_last_boxed",
    "normalize",
    "to_integer",
]

MAX_CONTENT_CHARS = 1000
"""Box or phrase content longer than this is no answer; such a box counts as unclosed."""
MAX_EXPR_CHARS = 100
"""Normalised expressions longer than this are not evaluated."""
MAX_BITS = 10_000
"""Largest numerator/denominator (in bits) any step of an evaluation may produce."""
MAX_FACTORIAL = 1000
MAX_ROOT_DEGREE = 64
"""Largest ``q`` in a fractional exponent ``p/q`` that is evaluated (``4^{1/2} = 2``)."""
MAX_BOX_TRIES = 400
"""Box keywords examined from the end before giving up: a real output has at most one unclosed
box (where it was cut off); each costs about a microsecond, so junk stays under 1 ms."""
MAX_PHRASE_TRIES = 100
"""Answer phrases examined from the end before giving up (bounds adversarial texts)."""


class _Reject(Exception):
    """The content is not an exact number this module can judge; it casts no vote."""


# --------------------------------------------------------------------------------------------
# 1. Find
# --------------------------------------------------------------------------------------------


_SPACES = re.compile(r"\s*")


def _neutral(region: str) -> str:
    """Same-length copy in which escaped braces and empty ``{}`` pairs are not braces."""
    if "\\" in region:  # pairs first, so "\\\\{" is a line break and then a real brace
        region = region.replace("\\\\", "  ").replace("\\{", "  ").replace("\\}", "  ")
    return region.replace("{}", "  ")


def _closing(region: str) -> int:
    """Index in ``region`` of the '}' closing a group opened just before it, or -1."""
    depth, pos = 1, 0
    while True:
        close = region.find("}", pos)
        if close < 0:
            return -1
        depth += region.count("{", pos, close) - 1
        if depth == 0:
            return close
        pos = close + 1


class _Found(NamedTuple):
    """A candidate and where it lies: ``text[start:end]`` holds it with its keyword."""

    start: int
    end: int
    content: str


def _last_braced_box(text: str, boxed: int) -> _Found | None:
    """The last complete ``\\boxed{...}`` / ``\\fbox{...}`` (see ``find_last_boxed``);
    ``boxed`` is ``text.rfind("\\boxed")``, shared with the braceless search."""
    limit = len(text)  # a box must close before this
    keyword_hi = len(text)  # the next keyword lies inside text[:keyword_hi]
    last_close = text.rfind("}")
    fbox = text.rfind("\\fbox")  # both cached, rescanned when stale
    for _ in range(MAX_BOX_TRIES):
        if last_close >= limit:
            last_close = text.rfind("}", 0, limit)
        if last_close < 0:
            return None
        hi = min(keyword_hi, last_close)
        if boxed + 6 > hi:
            boxed = text.rfind("\\boxed", 0, hi)
        if fbox + 5 > hi:
            fbox = text.rfind("\\fbox", 0, hi)
        start = max(boxed, fbox)
        if start < 0:
            return None
        keyword_hi = start
        opener = start + (6 if start == boxed else 5)
        if text[opener : opener + 1] != "{":  # the common case skips the regex
            opener = _SPACES.match(text, opener).end()
        if opener >= last_close or text[opener] != "{":
            continue  # no '}' after it, or no box at all ("\\boxed 5", "\\boxedfoo{")
        region = text[opener + 1 : min(limit, opener + 2 + MAX_CONTENT_CHARS)]
        close = _closing(_neutral(region))
        if close >= 0:
            return _Found(start, opener + 2 + close, text[opener + 1 : opener + 1 + close])
        limit = start
    return None


_BRACELESS_BOX = re.compile(
    r"\\boxed +([-+\u2212]?[0-9]+(?:[.,][0-9]+)*)(?=\s*(?:$|[$.,;:!?)\]}]|\\[)\]]))"
)


def _last_braceless_box(text: str, lo: int, hi: int) -> _Found | None:
    """The last ``\\boxed 42`` in ``text[lo:hi]``: a plain number that ends the math or line."""
    at = hi
    for _ in range(MAX_BOX_TRIES):
        at = text.rfind("\\boxed ", lo, at)
        if at < 0:
            return None
        m = _BRACELESS_BOX.match(text, at)
        if m is not None:
            return _Found(at, m.end(), m.group(1))
    return None


def _last_box(text: str) -> _Found | None:
    boxed = text.rfind("\\boxed")
    braced = _last_braced_box(text, boxed)
    if boxed < 0:
        return braced
    lo = 0 if braced is None else braced.start + 1
    return _last_braceless_box(text, lo, boxed + 7) or braced


def find_last_boxed(text: str) -> str | None:
    r"""Content of the last complete ``\boxed{}`` / ``\fbox{}`` / ``\boxed 42``, or None.

    Keywords are visited from the end; each one's group is matched forwards over at most
    ``MAX_CONTENT_CHARS`` (a longer box could never vote, so it counts as unclosed). When a
    box does not close, an earlier box can only close before it starts (groups nest), so the
    search goes on in the text before it, and boxes opening after the last '}' are skipped in
    one jump. Every ``rfind`` and every match window covers fresh text: linear in the text,
    and usually only the last few hundred characters are read. Gives up (None) after
    ``MAX_BOX_TRIES`` keywords that are not complete boxes. A braceless ``\boxed 42`` that
    starts after the last braced box wins over it.
    """
    found = _last_box(text)
    return None if found is None else found.content


_PHRASE_KEYS = ("nswer", "NSWER")  # one scan finds "answer" and "Answer"; then "ANSWER"
_CJK_ANSWER = "\u7b54\u6848"  # Chinese "答案", looked for only in non-ASCII text
_PHRASE_TAIL = re.compile(r"[*_]{0,2}\s*(?:is\b|was\b|=|:|\uff1a|\u662f|\u4e3a)[\s*_:}]*")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_DIGIT = re.compile(r"\d")
_OPS = r"(?:[-+/^!(){}=\u2212\u00d7\u00f7]|(?<!\*)\*(?!\*))"  # "**" is markdown bold
_MATH_CMD = r"\\(?:[dtc]?frac|[dt]?binom|sqrt|times|cdot|div|left|right)(?![a-zA-Z])"
_PLAIN_EXPR = re.compile(
    rf"[-+\u2212(\s]*(?:\d|{_MATH_CMD})"  # a number, or math, possibly signed or bracketed
    rf"(?:\d|\{{,\}}|{_OPS}|{_MATH_CMD}|\\[,!;: ]"
    r"|[.,](?=\d)|,(?=\s*[-+\u2212]?\d)"  # decimal point, separator or list comma
    rf"|\s+(?=\d|{_OPS}|{_MATH_CMD}))*"  # a space only inside the expression
)
_MORE_VALUES = re.compile(r"\s*,?\s*(?:or|and)\s+[-+\u2212]?\d")
_FINAL_BEFORE = re.compile(r"final[\s*_]*$", re.I)
_HEADING_GAP = re.compile(r"[*_]{0,2}[ \t]*")
_LINE_START = re.compile(r"(?:^|\n)[ \t#*_>]*$")
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n|$")
_LAST_IS = re.compile(r".*\b(?:is|was)\b[\s*_:]*", re.S)
_SENTENCE_TAIL = re.compile(r"[\s*_.]*")


def _math_or_expression(text: str, i: int, end: int) -> tuple[str, int] | None:
    """The number, expression or ``$math$`` at ``i`` (within ``end``) and where it stops."""
    for open_, close in _MATH_DELIMITERS:
        if text.startswith(open_, i):
            j = text.find(close, i + len(open_), end)
            if j < 0:
                return None
            content = text[i + len(open_) : j]
            return (content, j + len(close)) if _DIGIT.search(content) else None
    m = _PLAIN_EXPR.match(text, i, end)
    if m is None:
        return None
    more = _MORE_VALUES.match(text, m.end(), end)  # "5 or 7": kept whole, judged None
    stop = m.end() if more is None else more.end()
    return text[i:stop].strip(), stop


def _final_sentence(text: str, i: int) -> str | None:
    """After "Final Answer:", a sentence that ends "... is N." (``The largest $n$ is 34.``)."""
    window = min(len(text), i + 200)
    stop = _SENTENCE_END.search(text, i, window)
    sentence_end = window if stop is None else stop.start()
    m = _LAST_IS.match(text, i, sentence_end)
    if m is None:
        return None
    found = _math_or_expression(text, m.end(), sentence_end)
    if found is None or _SENTENCE_TAIL.match(text, found[1], sentence_end).end() < sentence_end:
        return None  # words follow the number: "... is 34 more than ..."
    return found[0]


def _phrase_candidate(text: str, at: int, start: int) -> str | None:
    """What follows the answer word ``text[at:start]`` when it reads like an answer statement."""
    window_end = min(len(text), start + 2 + MAX_CONTENT_CHARS)
    m = _PHRASE_TAIL.match(text, start, start + 40)
    if m is not None:
        found = _math_or_expression(text, m.end(), window_end)
        if found is not None:
            return found[0]
        if ":" in m.group(0) and _is_final(text, at):
            return _final_sentence(text, m.end())
        return None
    if _LINE_START.search(text, max(0, at - 8), at) is not None:  # "Answer $ 9 $" heading
        i = _HEADING_GAP.match(text, start).end()
        if text.startswith(("$", "\\(", "\\["), i):
            found = _math_or_expression(text, i, window_end)
            return None if found is None else found[0]
    return None


def _is_final(text: str, at: int) -> bool:
    return _FINAL_BEFORE.search(text, max(0, at - 12), at) is not None


def _last_phrase(text: str, lo: int = 0, final_only: bool = False) -> _Found | None:
    """The last answer phrase starting at or after ``lo`` that holds a candidate.

    Every key costs one scan of the text, so there are few: "nswer" and "NSWER" (the word
    is checked around them), and "答案" only when the text is not ASCII.
    """
    keys = _PHRASE_KEYS if text.isascii() else (*_PHRASE_KEYS, _CJK_ANSWER)
    # "nswer" is found one char into its word, so the word itself starts at or after lo
    floor = {k: lo if k == _CJK_ANSWER else lo + 1 for k in keys}
    pos = {k: text.rfind(k, floor[k]) for k in keys}
    for _ in range(MAX_PHRASE_TRIES):
        key = max(pos, key=pos.__getitem__)
        hit = pos[key]
        if hit < 0:
            return None
        pos[key] = text.rfind(key, floor[key], hit)
        at = hit if key == _CJK_ANSWER else hit - 1
        if at < hit and text[at] not in "aA":
            continue  # "nswer" inside another word
        end = hit + len(key)
        if not final_only or _is_final(text, at):
            candidate = _phrase_candidate(text, at, end)
            if candidate is not None:
                return _Found(at, end, candidate)
    return None


def find_answer_phrase(text: str) -> str | None:
    """Candidate after the last "answer is N" / "Answer: N" / "answer = $N$", or None.

    Occurrences of the word are visited from the end with cached ``rfind``s (each scans fresh
    text, so this is linear); the first one followed by a number, an expression or math with
    a digit wins.
    """
    found = _last_phrase(text)
    return None if found is None else found.content


_FINAL_CHANNEL = "<|channel|>final"
_MESSAGE = "<|message|>"
_BARE_DRESSING = " \t\r\n*_#>"
_BARE_START = re.compile(r"[-+\u2212]?(?:[0-9]|\\[dtc]?frac)")


def _final_message(text: str) -> str | None:
    """The text of the last harmony ``final`` channel message, or None when there is none."""
    at = text.rfind(_FINAL_CHANNEL)
    if at < 0:
        return None
    body = text.find(_MESSAGE, at, at + 64)
    if body < 0:
        return None
    body += len(_MESSAGE)
    end = text.find("<|", body)
    return text[body:] if end < 0 else text[body:end]


def _bare_answer(text: str, whole_message: bool) -> str | None:
    """A number standing alone: the last line of a final message, or the whole of any text."""
    stripped = text.strip()
    if len(stripped) > MAX_CONTENT_CHARS and not whole_message:
        return None
    line = stripped[stripped.rfind("\n") + 1 :] if whole_message else stripped
    if "\n" in line:
        return None
    line = line.strip(_BARE_DRESSING).rstrip(".").strip(_BARE_DRESSING)
    for open_, close in _MATH_DELIMITERS:
        if line.startswith(open_) and line.endswith(close) and len(line) > 2 * len(open_):
            line = line[len(open_) : -len(close)].strip()
            break
    return line if _BARE_START.match(line) else None


def find_answer(text: str, *, final_message: bool = False) -> str | None:
    r"""The candidate that casts this output's vote (see the module doc, "Find"), or None.

    Harmony text: only the last ``final`` message counts. There, or in any text: the last
    box, unless a "final answer" phrase follows it; else the last answer phrase; else a number
    standing alone (the whole text, or the last line of a final message). ``final_message``:
    ``text`` is already the body of a final message (a parser cut it out), so the same rules
    apply as when the channel markers are still in the text.
    """
    message = text if final_message else _final_message(text)
    region = text if message is None else message
    box = _last_box(region)
    if box is not None:
        override = _last_phrase(region, box.end, final_only=True)
        return box.content if override is None else override.content
    phrase = _last_phrase(region)
    if phrase is not None:
        return phrase.content
    return _bare_answer(region, whole_message=message is not None)


# --------------------------------------------------------------------------------------------
# 2. Normalise
# --------------------------------------------------------------------------------------------

_UNICODE = str.maketrans(
    {
        "\u2212": "-",  # minus sign
        "\u00d7": "*",  # multiplication sign
        "\u00b7": "*",  # middle dot
        "\u22c5": "*",  # dot operator
        "\u00f7": "/",
        "\u00b0": "",  # degree sign
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
    }
)
_NO_LETTER = r"(?![a-zA-Z])"
_DROP = re.compile(
    r"\\(?:displaystyle|textstyle|scriptstyle|left|right|[bB]igg?[lrm]?)(?![a-zA-Z])"
    r"|\\?[$%]"
    r"|\^\s*(?:\{\s*\\circ\s*\}|\\circ)|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])"
)
_SPACE = re.compile(
    r"\\[,;:! ]|~|\\q?quad(?![a-zA-Z])|\\(?:en|thin|med|thick|neg)space(?![a-zA-Z])"
    r"|\\h?space\*?\s*\{[^{}]*\}|\\phantom\s*\{[^{}]*\}"
)
_SEPARATOR_BANG = re.compile(r"(?<=[0-9]),\\!\s*(?=[0-9])")  # "10,\!000" (Hendrycks MATH)
_UNIT_POWER = r"(?:\^\s*(?:[23]|\{\s*[23]\s*\}))?"  # cm^2, m^{3}
_TRAILING_UNIT = re.compile(
    r"(?<=[0-9.}])\s*\\(?:text(?:normal|rm|up)?|mbox|mathrm)\s*\{\s*([A-Za-z][A-Za-z\s.]*)\}"
    r"\s*" + _UNIT_POWER + r"\s*$"
)
_TRAILING_WORDS = re.compile(
    r"(?<=[0-9.}])(?:(?:st|nd|rd|th)|\s+([A-Za-z]+(?:\s+[A-Za-z]+){0,3}))\s*" + _UNIT_POWER + "$"
)
_SCALE_WORDS = {"hundred": 2, "thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_NOT_UNITS = frozenset(
    [
        "or", "and", "to", "plus", "minus", "times", "over", "divided", "by", "choose",
        "mod", "modulo", "squared", "cubed", "power", "root", "roots", "factorial", "sqrt",
        "log", "ln", "sin", "cos", "tan", "pi", "dozen", "dozens", "score", "half",
        "halves", "third", "thirds", "quarter", "quarters", "fourth", "fourths", "fifth",
        "fifths", "sixth", "sixths", "seventh", "sevenths", "eighth", "eighths", "ninth",
        "ninths", "tenth", "tenths", "hundredth", "hundredths", "thousandth", "thousandths",
        "not", "no", "none", "than", "less", "more", "either", "each", "per", "hundreds",
        "thousands", "millions", "billions", "trillions", "inverse", "reciprocal"
    ]  # fmt: skip
)
"""Words after a number that change its value or make it no single number: never a unit."""
_SHORT_UNITS = frozenset(
    [
        "cm", "mm", "km", "kg", "mg", "ft", "yd", "mi", "hr", "hrs", "ml", "mL", "oz", "lb",
        "lbs", "sq", "in", "cc", "mph", "kph", "sec", "min"
    ]  # fmt: skip
)
"""Units of 2-3 letters; a longer bare word is a unit too, a shorter one may be a variable."""
_WRAPPER = re.compile(
    r"\\(?:text(?:bf|rm|it|tt|sf|up|normal)?|math(?:bf|rm|it|sf|tt|bb|normal)"
    r"|mbox|bm|boldsymbol|operatorname)\s*\{([^{}]*)\}"
)
_MAX_WRAPPER_DEPTH = 8
_ANSWER_PREFIX = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is\b|:)?\s*:?", re.I)
_MOD = re.compile(r"\\[pb]?mod(?![a-zA-Z])|\bmod\b", re.I)
_ALTERNATIVES = re.compile(r"[,;]|\bor\b|\band\b|\\(?:vee|wedge|lor|land|pm|mp)(?![a-zA-Z])", re.I)
_ALIASES = (
    (re.compile(r"\\equiv" + _NO_LETTER), "="),
    (re.compile(r"\\[dtc]frac" + _NO_LETTER), r"\\frac"),
    (re.compile(r"\\[dt]binom" + _NO_LETTER), r"\\binom"),
    (re.compile(r"\\(frac|binom)\s*([0-9])\s*([0-9])"), r"\\\1{\2}{\3}"),  # \frac12
    (re.compile(r"\\(frac|binom)\s*([0-9])(?=\s*\{)"), r"\\\1{\2}"),  # \frac3{3}
    (re.compile(r"\\(frac|binom)\s*(\{[^{}]*\})\s*([0-9])"), r"\\\1\2{\3}"),  # \frac{3}4
    (re.compile(r"\\sqrt\s*([0-9])"), r"\\sqrt{\1}"),
    (re.compile(r"\\(?:times|cdot|ast)" + _NO_LETTER), "*"),
    (re.compile(r"\\div" + _NO_LETTER), "/"),
)
_CHOICE_LABEL = re.compile(r"^\(?[A-Ea-e][.):]\s+(?=[-+0-9(\\])")  # "c. 3", "(B) 12"


def _unit_words(words: str) -> str | None:
    """What a run of words after a number becomes: "" for a unit, a power of ten for a scale
    word ("2 million"), or None when the words are not a unit and must stay (no vote)."""
    lowered = words.lower().split()
    if len(lowered) == 1 and lowered[0] in _SCALE_WORDS:
        return f" * 10^{{{_SCALE_WORDS[lowered[0]]}}}"
    if any(w in _NOT_UNITS or w in _SCALE_WORDS for w in lowered):
        return None
    return ""


def _drop_text_unit(m: re.Match[str]) -> str:
    replacement = _unit_words(m.group(1))
    return m.group(0) if replacement is None else replacement


def _drop_bare_unit(m: re.Match[str]) -> str:
    words = m.group(1)
    if words is None:  # an ordinal suffix: "6th"
        return ""
    first = words.split()[0]
    if len(first) < 4 and first not in _SHORT_UNITS:
        return m.group(0)  # "12 ab" may be a product of variables
    replacement = _unit_words(words)
    return m.group(0) if replacement is None else replacement


_DIGIT_GROUPS = re.compile(r"(?<![0-9])[0-9]+(?:(?:,| +)[0-9]+)+")  # starts only at run starts
_GROUP_SEP = re.compile(r",| +")


def _join_thousands(m: re.Match[str]) -> str:
    run = m.group(0)
    groups = _GROUP_SEP.split(run)
    kinds = {"," if sep == "," else " " for sep in _GROUP_SEP.findall(run)}
    if len(kinds) == 1 and len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
        return "".join(groups)
    return run


def _ascii_digits(s: str) -> str:
    out = []
    for c in s:
        if not c.isascii() and unicodedata.category(c) == "Nd":
            out.append(str(unicodedata.decimal(c)))
        else:
            out.append(c)
    return "".join(out)


def normalize(content: str) -> str:
    r"""Strip LaTeX dressing and separators so only an expression is left (see module doc).

    ``normalize("\\text{answer} = 1{,}234 \\pmod{7}") == "1234"``. Idempotent. Meant for
    short content (``to_integer`` passes at most ``MAX_CONTENT_CHARS``), but linear in any case.
    """
    s = content
    if not s.isascii():
        s = _ascii_digits(s.translate(_UNICODE))
    s = _DROP.sub("", s)
    s = s.replace("\\\\", " ")  # a LaTeX line break: "185\\"
    s = _SEPARATOR_BANG.sub(",", s)
    s = _SPACE.sub(" ", s)
    s = _TRAILING_UNIT.sub(_drop_text_unit, s)
    for _ in range(_MAX_WRAPPER_DEPTH):  # innermost first; deeper nesting is left (no vote)
        unwrapped = _WRAPPER.sub(r"\1", s)
        if unwrapped == s:
            break
        s = unwrapped
    s = s.replace("{,}", ",")
    s = _ANSWER_PREFIX.sub("", s)
    mod = _MOD.search(s)
    if mod is not None:  # "5 \pmod{7}", "5 (\mod 7)", "5 \bmod 7": keep what precedes it
        s = s[: mod.start()].rstrip().rstrip("(")
    for pattern, repl in _ALIASES:
        s = pattern.sub(repl, s)
    if "=" in s:
        left, _, right = s.rpartition("=")
        if not _ALTERNATIVES.search(left) and not left.rstrip().endswith(("<", ">", "!")):
            s = right
    s = s.strip().rstrip(".,;").strip()
    s = _CHOICE_LABEL.sub("", s)
    s = _TRAILING_WORDS.sub(_drop_bare_unit, s)
    s = _DIGIT_GROUPS.sub(_join_thousands, s)
    return s


# --------------------------------------------------------------------------------------------
# 3. Judge
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<cmd>\\(?:frac|binom|sqrt)" + _NO_LETTER + r")"
    r"|(?P<op>[-+*/^!(){}]))"
)
_Token = Fraction | str


def _tokenize(s: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, end = 0, len(s.rstrip())
    while pos < end:
        m = _TOKEN.match(s, pos)
        if m is None:
            raise _Reject(f"unexpected {s[pos : pos + 10]!r}")
        num = m.group("num")
        tokens.append(_number(num) if num is not None else m.group("cmd") or m.group("op"))
        pos = m.end()
    return tokens


def _number(literal: str) -> Fraction:
    """``12``, ``0.5``, ``1e3``: the exponent is bounded before the value is built."""
    mantissa, _, exponent = literal.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_BITS // 3:
        raise _Reject("exponent too large")
    return _bounded(Fraction(literal))


def _bounded(v: Fraction) -> Fraction:
    if v.numerator.bit_length() > MAX_BITS or v.denominator.bit_length() > MAX_BITS:
        raise _Reject("value too large")
    return v


def _as_int(v: Fraction, what: str) -> int:
    if v.denominator != 1:
        raise _Reject(f"{what} must be an integer")
    return v.numerator


def _integer_root(n: int, q: int) -> int:
    """The exact ``q``-th root of ``n >= 0``; raises ``_Reject`` when there is none."""
    if n < 2:
        return n
    x = 1 << -(-n.bit_length() // q)  # above the root; Newton's method descends to it
    while True:
        y = ((q - 1) * x + n // x ** (q - 1)) // q
        if y >= x:
            break
        x = y
    if x**q != n:
        raise _Reject("irrational root")
    return x


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:  # 4^{1/2}, 8^{2/3}: exact when the base is a perfect power
        q = exponent.denominator
        if base < 0 or q > MAX_ROOT_DEGREE:
            raise _Reject("root of a negative number or of too high a degree")
        base = Fraction(_integer_root(base.numerator, q), _integer_root(base.denominator, q))
        exponent = Fraction(exponent.numerator)
    e = _as_int(exponent, "exponent")
    if base == 0:
        if e < 0:
            raise _Reject("0 to a negative power")
        return Fraction(int(e == 0))
    if base.denominator == 1 and abs(base.numerator) == 1:
        return base ** (e % 2)
    size = max(base.numerator.bit_length(), base.denominator.bit_length())
    if abs(e) * (size - 1) > MAX_BITS:  # estimated before computing: 2^{10^9} never runs
        raise _Reject("power too large")
    return _bounded(base**e)


def _factorial(v: Fraction) -> Fraction:
    n = _as_int(v, "factorial argument")
    if not 0 <= n <= MAX_FACTORIAL:
        raise _Reject("factorial out of range")
    return Fraction(math.factorial(n))


def _binomial(nv: Fraction, kv: Fraction) -> Fraction:
    n, k = _as_int(nv, "binomial n"), _as_int(kv, "binomial k")
    if n < 0 or k < 0:
        raise _Reject("negative binomial argument")
    if k > n:
        return Fraction(0)
    # C(n, k) < 2^n and < n^min(k, n-k): check the smaller bound before computing.
    if min(n, min(k, n - k) * n.bit_length()) > MAX_BITS:
        raise _Reject("binomial too large")
    return Fraction(math.comb(n, k))


def _sqrt(v: Fraction) -> Fraction:
    if v < 0:
        raise _Reject("square root of a negative number")
    p, q = math.isqrt(v.numerator), math.isqrt(v.denominator)
    if p * p != v.numerator or q * q != v.denominator:
        raise _Reject("irrational square root")
    return Fraction(p, q)


class _Parser:
    """expr := term (('+'|'-') term)*;  term := unary (('*'|'/') unary)*;
    unary := ('+'|'-') unary | power;  power := postfix ('^' unary)?;  postfix := atom '!'*;
    atom := number | '(' expr ')' | '{' expr '}' | \\frac G G | \\binom G G | \\sqrt G;
    G := '{' expr '}'.
    """

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> _Token:
        tok = self._peek()
        if tok is None:
            raise _Reject("unexpected end")
        self.i += 1
        return tok

    def _expect(self, op: str) -> None:
        if self._take() != op:
            raise _Reject(f"expected {op!r}")

    def parse(self) -> Fraction:
        value = self._expr()
        if self.i != len(self.tokens):
            raise _Reject("trailing tokens")
        return value

    def _expr(self) -> Fraction:
        value = self._term()
        while self._peek() in ("+", "-"):
            op = self._take()
            rhs = self._term()
            value = _bounded(value + rhs if op == "+" else value - rhs)
        return value

    def _term(self) -> Fraction:
        value = self._unary()
        while self._peek() in ("*", "/"):
            op = self._take()
            rhs = self._unary()
            if op == "/" and rhs == 0:
                raise _Reject("division by zero")
            value = _bounded(value * rhs if op == "*" else value / rhs)
        return value

    def _unary(self) -> Fraction:
        tok = self._peek()
        if tok in ("+", "-"):
            self.i += 1
            value = self._unary()
            return -value if tok == "-" else value
        return self._power()

    def _power(self) -> Fraction:
        base = self._postfix()
        if self._peek() == "^":
            self.i += 1
            return _power(base, self._unary())
        return base

    def _postfix(self) -> Fraction:
        value = self._atom()
        while self._peek() == "!":
            self.i += 1
            value = _factorial(value)
        return value

    def _group(self) -> Fraction:
        self._expect("{")
        value = self._expr()
        self._expect("}")
        return value

    def _atom(self) -> Fraction:
        tok = self._take()
        if isinstance(tok, Fraction):
            return tok
        if tok == "(":
            value = self._expr()
            self._expect(")")
            return value
        if tok == "{":
            value = self._expr()
            self._expect("}")
            return value
        if tok == "\\frac":
            num, den = self._group(), self._group()
            if den == 0:
                raise _Reject("division by zero")
            return _bounded(num / den)
        if tok == "\\binom":
            return _binomial(self._group(), self._group())
        if tok == "\\sqrt":
            return _sqrt(self._group())
        raise _Reject(f"unexpected {tok!r}")


def _evaluate(expression: str) -> Fraction:
    """Exact value of a normalised expression; raises ``_Reject`` for anything else."""
    return _Parser(_tokenize(expression)).parse()


def _check_modulus(modulus: int) -> None:
    if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 1:
        raise ValueError(f"modulus must be a positive int, got {modulus!r}")


def to_integer(content: str, modulus: int = 1000) -> int | None:
    r"""The vote of one candidate (raw or normalised): its exact integer value ``% modulus``.

    ``None`` when the content is too long, not an expression this module evaluates, out of
    bounds, or not an integer: ``to_integer("\\frac{12}{4}") == 3``,
    ``to_integer("\\frac{1}{2}") is None``, ``to_integer("-1") == 999``.
    """
    _check_modulus(modulus)
    if len(content) > MAX_CONTENT_CHARS:
        return None
    expression = normalize(content)
    if not expression or len(expression) > MAX_EXPR_CHARS:
        return None
    try:
        value = _evaluate(expression)
    except (_Reject, ZeroDivisionError, ValueError, OverflowError, RecursionError):
        return None
    if value.denominator != 1:
        return None
    return value.numerator % modulus


def extract_answer(text: str, modulus: int = 1000, *, final_message: bool = False) -> int | None:
    r"""The integer answer of one model output (``% modulus``), or None: no vote.

    The last complete ``\boxed{}``/``\fbox{}`` decides; only without one does the last
    "answer is N" phrase count. Never raises on a string (a non-``str`` gives None too);
    raises ``ValueError`` only for a ``modulus`` below 1, which is a caller bug.
    ``final_message``: see :func:`find_answer`.
    """
    _check_modulus(modulus)
    if not isinstance(text, str):
        return None
    try:
        content = find_answer(text, final_message=final_message)
        return None if content is None else to_integer(content, modulus)
    except Exception:  # backstop only: every expected failure above already returns None
        return None
