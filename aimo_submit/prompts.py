"""Prompt templates, and the text format of tool-integrated reasoning (TIR).

A model is trained or tuned for one phrasing, so the manifest names the prompt style per model
and nothing else builds prompts. The TIR format follows the common "fenced python, then fenced
output" convention: the model writes a ```python block, then opens ```output and stops there
(``CODE_STOP``); we run the code and append its output and the closing fence, and the model
continues from the output.
"""

from __future__ import annotations

import re

from aimo_submit.competition import AIMO2

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

CODE_OPEN = "```python"
CODE_STOP = "```output"
"""Stop string that marks "run the code above now"; the model was taught to emit it."""

PROMPT_STYLES: dict[str, dict[str, str | None]] = {
    # Short phrasing used to train the project's tiny model (see scripts/make_tiny_model.py).
    "tiny": {
        "system": None,
        "user": "{problem}\nAnswer with an integer from 0 to {max_answer} in \\boxed{{}}.",
    },
    "tiny-tir": {
        "system": None,
        "user": "{problem}\nYou may run python. Answer with an integer from 0 to {max_answer}"
        " in \\boxed{{}}.",
    },
    # DeepSeek-R1-Distill family: no system prompt; the instruction DeepSeek recommends for math.
    "r1": {
        "system": None,
        "user": "{problem}\nPlease reason step by step, and put your final answer within"
        " \\boxed{{}}. The answer is an integer from 0 to {max_answer}.",
    },
    "r1-tir": {
        "system": None,
        "user": "{problem}\nPlease reason step by step. You may write Python code in ```python"
        " blocks to check your work; its output will be shown in an ```output block. Put your"
        " final answer within \\boxed{{}}. The answer is an integer from 0 to {max_answer}.",
    },
}


def build_messages(
    problem: str, style: str = "r1", max_answer: int = AIMO2.max_answer
) -> list[dict[str, str]]:
    """Chat messages for ``problem`` in the named style (KeyError names the known styles)."""
    try:
        spec = PROMPT_STYLES[style]
    except KeyError:
        raise KeyError(f"unknown prompt style {style!r}; known: {sorted(PROMPT_STYLES)}") from None
    messages: list[dict[str, str]] = []
    if spec["system"]:
        messages.append({"role": "system", "content": str(spec["system"])})
    user = str(spec["user"]).format(problem=problem, max_answer=max_answer)
    messages.append({"role": "user", "content": user})
    return messages


_CODE_BLOCK = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)


def last_code_block(text: str) -> str | None:
    """The code of the last complete ```python block in ``text`` (None if there is none)."""
    blocks = _CODE_BLOCK.findall(text)
    return blocks[-1] if blocks else None


def format_code_output(output: str) -> str:
    """What is appended after ``CODE_STOP`` once the code ran: the output and the closing fence."""
    body = output if output.endswith("\n") or not output else output + "\n"
    return "\n" + body + "```\n"
