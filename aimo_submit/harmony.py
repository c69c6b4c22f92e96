"""gpt-oss's harmony chat format, rendered and parsed by the ``openai-harmony`` library.

gpt-oss reads and writes *harmony*: messages framed by special tokens (``<|start|>``,
``<|channel|>``, ``<|message|>``, ``<|end|>``), an ``analysis`` / ``commentary`` / ``final``
channel on every assistant message, tool calls as messages addressed to a tool (``to=python``)
that end with ``<|call|>``, and the answer turn ending with ``<|return|>``. Nothing here writes
that framing by hand: prompts, tool replies and stop strings come from the library's encoder,
and completions are read by its streaming parser.

Why text and not token ids: the engine protocol (``engines/base.py``) carries text. The library
renders to token ids and ``decode_utf8`` turns them into text in which special tokens appear
as their names; gpt-oss's Hugging Face tokenizer (the one vLLM uses) maps those names back to
the same ids. For the reverse direction the engine must keep special tokens in its output
(``skip_special_tokens=False``, which the manifest sets for harmony models). A completion's text
is re-encoded with special tokens allowed: ordinary text may be split into other tokens than the
model sampled, but the message structure, which is all the parser needs, is the same.

**The vocabulary.** ``openai-harmony`` needs OpenAI's ``o200k_base.tiktoken`` file and, unless
``TIKTOKEN_ENCODINGS_BASE`` names a folder holding it, downloads it at first use: impossible on
Kaggle and in CI. ``find_vocab`` looks, in order, at that variable, ``encodings/`` beside the
package (``make package`` puts a copy in the library dataset), the copy that the pinned
``litellm`` wheel carries (MIT licence; requirements-data.txt, installed without its
dependencies by ``make venv``, never imported), and the caches of
tiktoken and tiktoken-rs; every candidate is checked against the file's published sha256 (the
one the library itself checks). ``ensure_vocab`` points the variable at a folder holding the
file, so the library (and a vLLM started later in this process) loads it offline.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VOCAB_FILE = "o200k_base.tiktoken"
VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
"""OpenAI's published hash of the file (openai-harmony 0.0.8 checks the same value)."""
VOCAB_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
"""Never fetched; tiktoken caches files under the sha1 of their URL, so it names the cache."""
VOCAB_ENV = "TIKTOKEN_ENCODINGS_BASE"
VOCAB_DIR = "encodings"
"""Folder beside ``aimo_submit/`` (in the Kaggle library dataset) that may hold the file."""

PYTHON_TOOL = "python"
REASONING_EFFORTS = ("low", "medium", "high")

_CACHE_NAME = hashlib.sha1(VOCAB_URL.encode()).hexdigest()


class HarmonyUnavailable(RuntimeError):
    """The harmony format cannot be used here; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# The vocabulary file
# ---------------------------------------------------------------------------------------------


def vocab_candidates() -> list[Path]:
    """Files that may be ``o200k_base.tiktoken``, in the order they are tried."""
    from aimo_submit.manifest import package_root

    out: list[Path] = []
    if os.environ.get(VOCAB_ENV):
        out.append(Path(os.environ[VOCAB_ENV]) / VOCAB_FILE)
    out.append(package_root() / VOCAB_DIR / VOCAB_FILE)
    spec = importlib.util.find_spec("litellm")  # finds the package, does not import it
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            out.append(Path(loc) / "litellm_core_utils" / "tokenizers" / _CACHE_NAME)
    tmp = Path(tempfile.gettempdir())
    for env in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(env):
            out.append(Path(os.environ[env]) / _CACHE_NAME)
    out.append(tmp / "data-gym-cache" / _CACHE_NAME)
    if os.environ.get("TIKTOKEN_RS_CACHE_DIR"):
        out.append(Path(os.environ["TIKTOKEN_RS_CACHE_DIR"]) / VOCAB_FILE)
    out.append(tmp / "tiktoken-rs-cache" / VOCAB_FILE)
    return out


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def find_vocab() -> Path | None:
    """The first candidate whose content is the real ``o200k_base.tiktoken``, else None."""
    for path in vocab_candidates():
        if path.is_file() and _sha256(path) == VOCAB_SHA256:
            return path
    return None


@functools.lru_cache(maxsize=1)
def ensure_vocab() -> Path:
    """A folder holding ``o200k_base.tiktoken``, exported as ``$TIKTOKEN_ENCODINGS_BASE``.

    A file found under another name (a tiktoken cache entry) is linked, or else copied, into a
    private folder under the temp directory under the name the library expects.
    """
    found = find_vocab()
    if found is None:
        tried = "\n  ".join(str(p) for p in vocab_candidates())
        raise HarmonyUnavailable(
            f"{VOCAB_FILE} (sha256 {VOCAB_SHA256[:12]}...) not found; openai-harmony would "
            f"download it, and there is no internet. Looked at:\n  {tried}\nInstall "
            "requirements-data.txt with --no-deps (its litellm wheel carries the file; make venv "
            "does it), attach the aimo-submit-lib "
            f"dataset built by 'make package' (it has {VOCAB_DIR}/{VOCAB_FILE}), or set "
            f"{VOCAB_ENV} to a folder holding the file."
        )
    if found.name == VOCAB_FILE:
        folder = found.parent
    else:
        folder = Path(tempfile.gettempdir()) / f"aimo_submit-encodings-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        target = folder / VOCAB_FILE
        if _sha256(target) != VOCAB_SHA256:
            target.unlink(missing_ok=True)
            try:
                target.symlink_to(found)
            except OSError:
                target.write_bytes(found.read_bytes())
    os.environ[VOCAB_ENV] = str(folder)
    return folder


@functools.lru_cache(maxsize=1)
def load_encoding() -> Any:
    """gpt-oss's ``HarmonyEncoding`` (loaded once; raises ``HarmonyUnavailable``)."""
    try:
        import openai_harmony as oh
    except ImportError as exc:
        raise HarmonyUnavailable(f"openai-harmony is not installed ({exc}); it is pinned in "
                                 "requirements.txt and requirements-gpu.txt") from exc
    ensure_vocab()
    try:
        return oh.load_harmony_encoding(oh.HarmonyEncodingName.HARMONY_GPT_OSS)
    except Exception as exc:  # the library's own HarmonyError
        raise HarmonyUnavailable(f"openai-harmony could not load its encoding: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Reading a completion
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """What one stretch of generated text (one engine request) amounted to.

    ``kind`` is ``call`` (the last message is addressed to ``recipient``), ``final`` (a final
    channel message, ``final_text``), ``truncated`` (cut off inside a message by the token
    limit), ``malformed`` (stopped inside a message header), ``no-final`` (the model stopped
    without a final message) or ``empty``. ``notes`` say what was wrong, for the run log.
    """

    kind: str
    recipient: str | None = None
    channel: str | None = None
    code: str = ""
    final_text: str = ""
    messages: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class HarmonyPrompt:
    text: str
    token_ids: tuple[int, ...] = field(repr=False)


class HarmonyChat:
    """Renders one prompt style's conversations and reads the model's turns.

    ``messages`` are the role/content dicts of ``prompts.build_messages``; ``python_tool``
    declares the stateful python tool the gpt-oss way (the library's own tool description,
    unless ``tool_description`` replaces it).
    """

    def __init__(
        self,
        encoding: Any = None,
        *,
        reasoning_effort: str = "high",
        python_tool: bool = True,
        tool_description: str | None = None,
    ) -> None:
        if reasoning_effort not in REASONING_EFFORTS:
            raise ValueError(f"reasoning_effort {reasoning_effort!r} not in {REASONING_EFFORTS}")
        self.encoding = encoding if encoding is not None else load_encoding()
        import openai_harmony as oh  # importable: an encoding exists

        self._oh = oh
        self.reasoning_effort = reasoning_effort
        self.python_tool = python_tool
        self.tool_description = tool_description
        enc = self.encoding
        self.stop: tuple[str, ...] = tuple(
            enc.decode_utf8([t]) for t in enc.stop_tokens_for_assistant_actions()
        )
        """``<|call|>`` and ``<|return|>``: where a turn hands over to a tool or ends."""
        self._start_id = self._special_id("<|start|>")
        self.call_token = "<|call|>"
        """Ends a tool call; restored when the engine stopped at it without writing it out."""
        self._special_id(self.call_token)
        self._specials = sorted(enc.special_tokens_set, key=len, reverse=True)
        self._special_re = re.compile("|".join(re.escape(s) for s in self._specials))

    @classmethod
    def for_style(
        cls, spec: Mapping[str, Any], *, tools: bool, encoding: Any = None
    ) -> HarmonyChat:
        """From a ``prompts.PROMPT_STYLES`` entry; ``tools`` False leaves the python tool out."""
        return cls(
            encoding,
            reasoning_effort=str(spec.get("reasoning_effort") or "high"),
            python_tool=tools and spec.get("tool") == PYTHON_TOOL,
            tool_description=spec.get("tool_description"),
        )

    def _special_id(self, name: str) -> int:
        ids = self.encoding.encode(name, allowed_special={name})
        if len(ids) != 1:
            raise HarmonyUnavailable(f"{name} is not one special token in this encoding")
        return ids[0]

    def defuse(self, text: str) -> str:
        """Text with special-token names broken up (``<|end|>`` becomes ``<\u200b|end|>``).

        The prompt travels as text and the engine's tokenizer turns special-token names into
        special tokens, so a problem statement or a program output that prints ``<|end|>``
        would otherwise close its message early and forge the conversation.
        """
        return self._special_re.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)

    # -- rendering ---------------------------------------------------------------------------
    def _text(self, token_ids: Sequence[int]) -> str:
        return self.encoding.decode_utf8(list(token_ids))

    def system_content(self, model_identity: str | None = None) -> Any:
        oh = self._oh
        content = oh.SystemContent.new().with_reasoning_effort(
            oh.ReasoningEffort(self.reasoning_effort.capitalize())
        )
        if model_identity:
            content = content.with_model_identity(model_identity)
        if self.python_tool:
            tool = oh.ToolNamespaceConfig.python()
            if self.tool_description:
                tool = oh.ToolNamespaceConfig(name=PYTHON_TOOL,
                                              description=self.tool_description, tools=[])
            content = content.with_tools(tool)
        return content

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> HarmonyPrompt:
        """The conversation, ready for the assistant's turn (ends with ``<|start|>assistant``)."""
        oh = self._oh
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        out = [oh.Message.from_role_and_content(oh.Role.SYSTEM,
                                                self.system_content(self.defuse(system or "")))]
        for m in messages:
            content = self.defuse(m["content"])
            if m["role"] == "system":
                continue
            if m["role"] == "developer":
                out.append(oh.Message.from_role_and_content(
                    oh.Role.DEVELOPER, oh.DeveloperContent.new().with_instructions(content)))
            elif m["role"] == "user":
                out.append(oh.Message.from_role_and_content(oh.Role.USER, content))
            else:
                raise ValueError(f"harmony prompts take system/developer/user messages, got "
                                 f"{m['role']!r}")
        ids = self.encoding.render_conversation_for_completion(
            oh.Conversation.from_messages(out), oh.Role.ASSISTANT,
            oh.RenderConversationConfig(auto_drop_analysis=False),
        )
        return HarmonyPrompt(self._text(ids), tuple(ids))

    def tool_reply(self, tool: str, output: str, channel: str | None = None) -> str:
        """The tool's message back to the assistant, then the assistant's next header.

        Appended to the conversation after a call, it is where generation continues.
        """
        oh = self._oh
        msg = oh.Message(
            author=oh.Author(role=oh.Role.TOOL, name=tool),
            content=[oh.TextContent(text=self.defuse(output))],
        ).with_recipient("assistant")
        if channel:
            msg = msg.with_channel(channel)
        ids = self.encoding.render_conversation_for_completion(
            oh.Conversation.from_messages([msg]), oh.Role.ASSISTANT)
        return self._text(ids)

    # -- parsing -----------------------------------------------------------------------------
    def read_turn(self, text: str, *, stopped: bool) -> Turn:
        """Parse the text generated by one request (it starts after ``<|start|>assistant``).

        ``stopped`` is true when the engine ended the request at a stop string or the end of
        sequence (not at the token limit): a message still open then ends there. Garbage the
        parser refuses is skipped up to the next ``<|start|>`` and noted; never raises.
        """
        oh = self._oh
        ids = self.encoding.encode(text, allowed_special="all")
        notes: list[str] = []
        closed: list[Any] = []
        parser = oh.StreamableParser(self.encoding, oh.Role.ASSISTANT, strict=False)
        i = 0
        while i < len(ids):
            try:
                parser.process(ids[i])
                i += 1
                continue
            except Exception as exc:  # HarmonyError: a token the grammar does not allow here
                closed.extend(parser.messages)
                nxt = next((j for j in range(i + 1, len(ids)) if ids[j] == self._start_id), None)
                skipped = (nxt if nxt is not None else len(ids)) - i
                notes.append(f"malformed harmony: {exc}; skipped {skipped} token(s)")
                parser = oh.StreamableParser(self.encoding, None, strict=False)
                if nxt is None:
                    i = len(ids)
                    break
                i = nxt
        if not ids:
            return Turn("empty")
        open_message = parser.state != oh.StreamState.EXPECT_START
        if open_message and stopped:
            try:
                parser.process_eos()
                open_message = False
            except Exception as exc:  # the text stopped inside a header: nothing to salvage
                closed.extend(parser.messages)
                return Turn("malformed", messages=len(closed),
                            notes=(*notes, f"malformed harmony at the end: {exc}"))
        closed.extend(parser.messages)
        if open_message:
            return Turn("truncated", channel=parser.current_channel, messages=len(closed),
                        notes=(*notes, "the text ends inside a message (token limit)"))
        if not closed:
            return Turn("empty", notes=tuple(notes))
        last = closed[-1]
        body = "".join(getattr(c, "text", "") for c in last.content)
        if last.recipient and last.recipient != "assistant":
            return Turn("call", recipient=last.recipient, channel=last.channel, code=body,
                        messages=len(closed), notes=tuple(notes))
        if last.channel == "final":
            return Turn("final", channel="final", final_text=body, messages=len(closed),
                        notes=tuple(notes))
        return Turn("no-final", channel=last.channel, messages=len(closed),
                    notes=(*notes, f"the turn ended without a final answer (last message on "
                           f"channel {last.channel!r})"))


def final_answer(final_text: str, modulus: int) -> int | None:
    """The vote of a final-channel message: a box, an answer phrase or a number alone on the
    last line (``extract_answer`` with the final-message rules, so a recorded text with its
    channel markers votes as the live turn does), or else the whole message as one expression
    (gpt-oss often writes just ``42``)."""
    from aimo_submit.extract import extract_answer, to_integer

    answer = extract_answer(final_text, modulus, final_message=True)
    if answer is None and final_text.strip():
        answer = to_integer(final_text.strip(), modulus)  # it normalises; None for any bad text
    return answer
