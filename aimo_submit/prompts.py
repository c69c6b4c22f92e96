"""Prompt templates, and the text format of tool-integrated reasoning (TIR).

A model is trained or tuned for one phrasing, so the manifest names the prompt style per model
and nothing else builds prompts. A style also names its *format*, which decides how the prompt
becomes text and how tool calls look:

* ``chat`` (the R1 family and the tiny model): the engine's own chat template renders the
  messages; TIR follows the common "fenced python, then fenced output" convention: the model
  writes a ```python block, then opens ```output and stops there (``CODE_STOP``); we run the
  code and append its output and the closing fence, and the model continues from the output.
* ``harmony`` (gpt-oss): system, developer and user messages rendered by ``harmony.py`` with
  the ``openai-harmony`` library; tool calls are messages addressed to ``python`` and their
  output goes back as a tool message. The style adds the reasoning effort and whether the
  python tool is declared.
"""

from __future__ import annotations

import re

from aimo_submit.competition import AIMO2

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

CODE_OPEN = "```python"
CODE_STOP = "```output"
"""Stop string that marks "run the code above now"; the model was taught to emit it."""

CHAT = "chat"
HARMONY = "harmony"
FORMATS = (CHAT, HARMONY)

_AIMO3_INSTRUCTIONS = (
    "Solve the math problem given by the user. Reason carefully and check your work. The"
    " answer is an integer from 0 to {max_answer}. In the final channel, write only the answer"
    " in \\boxed{{}}."
)
_AIMO3_TOOL_HINT = (
    " You may call the python tool as often as you like to compute or verify: it is a"
    " stateful Jupyter kernel, so variables and functions persist between calls; print what"
    " you need to see."
)

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
    # gpt-oss (harmony format). Instructions go in the developer message, as the harmony guide
    # places them; the system message carries the reasoning effort and the tool declaration
    # (the library's own python tool text, which the model was trained with).
    "gpt-oss": {
        "format": HARMONY,
        "system": None,
        "developer": _AIMO3_INSTRUCTIONS,
        "user": "{problem}",
        "reasoning_effort": "high",
        "tool": None,
    },
    "gpt-oss-tir": {
        "format": HARMONY,
        "system": None,
        "developer": _AIMO3_INSTRUCTIONS + _AIMO3_TOOL_HINT,
        "user": "{problem}",
        "reasoning_effort": "high",
        "tool": "python",
    },
}


def style_spec(style: str) -> dict[str, str | None]:
    """The named style's entry (KeyError names the known styles)."""
    try:
        return PROMPT_STYLES[style]
    except KeyError:
        raise KeyError(f"unknown prompt style {style!r}; known: {sorted(PROMPT_STYLES)}") from None


def prompt_format(style: str) -> str:
    """``chat`` or ``harmony``: how the style's messages become text (see the module doc)."""
    return style_spec(style).get("format") or CHAT


def build_messages(
    problem: str, style: str = "r1", max_answer: int = AIMO2.max_answer
) -> list[dict[str, str]]:
    """Chat messages for ``problem`` in the named style (KeyError names the known styles)."""
    spec = style_spec(style)
    messages: list[dict[str, str]] = []
    if spec["system"]:
        messages.append({"role": "system", "content": str(spec["system"])})
    if spec.get("developer"):
        developer = str(spec["developer"]).format(max_answer=max_answer)
        messages.append({"role": "developer", "content": developer})
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
