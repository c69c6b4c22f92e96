"""Bench-only vLLM logits processor: make a dummy-weight gpt-oss write a canned harmony transcript.

Dummy weights sample random tokens, so the harmony path (tool calls, persistent python session,
final answer) cannot be exercised through real vLLM on them. A request whose
``SamplingParams.extra_args`` holds ``harmony_replay`` (one list of token ids per assistant turn
of the transcript) and ``call_id`` (the ``<|call|>`` token) has every logit but the transcript's
next token set to -inf. Which turn a request plays is read from its prompt: the number of
``<|call|>`` tokens in it is the number of tool calls already answered. Past the turn's end the
processor forces ``end_id`` (the turn's stop token, so the request ends even if the stop string
was missed). Requests without ``harmony_replay`` are left alone.

Loaded by vLLM's engine core from ``logits_processors=["bench.harmony_replay:HarmonyReplay"]``
(vLLM 0.26's v1 ``AdapterLogitsProcessor``: one callable per request, called with the prompt ids,
the live output ids and that request's logits row). ``replay_token`` is the pure rule, shared
with ``bench/fake_vllm.py`` so the whole path also runs on CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def replay_turn(segments: Sequence[Sequence[int]], call_id: int,
                prompt_ids: Sequence[int]) -> Sequence[int]:
    """The turn a request with this prompt plays: one per tool call already answered (the
    last turn once the calls outnumber the turns)."""
    return segments[min(sum(1 for t in prompt_ids if t == call_id), len(segments) - 1)]


def turn_token(seg: Sequence[int], n_out: int, end_id: int | None = None) -> int:
    """The token a turn puts at output position ``n_out``: past its end, ``end_id`` (else its
    last token again)."""
    if n_out < len(seg):
        return int(seg[n_out])
    return int(end_id if end_id is not None else seg[-1])


def replay_token(segments: Sequence[Sequence[int]], call_id: int, prompt_ids: Sequence[int],
                 n_out: int, end_id: int | None = None) -> int:
    """The token the transcript puts at output position ``n_out`` of a request with this prompt."""
    return turn_token(replay_turn(segments, call_id, prompt_ids), n_out, end_id)


try:  # only where vLLM is installed (the GPU machine); the rule above is importable anywhere
    from vllm.v1.sample.logits_processor import AdapterLogitsProcessor
except ImportError:  # pragma: no cover - CPU machines
    AdapterLogitsProcessor = object  # type: ignore[assignment,misc]


class HarmonyReplay(AdapterLogitsProcessor):  # type: ignore[misc,valid-type]
    """Forces the transcript's tokens on requests that carry ``extra_args['harmony_replay']``."""

    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(self, params: Any) -> Any:
        extra = getattr(params, "extra_args", None) or {}
        segments = extra.get("harmony_replay")
        if not segments:
            return None
        call_id = int(extra["call_id"])
        end_id = extra.get("end_id")
        chosen: list[Sequence[int]] = []

        def force(prompt_ids: list[int], output_ids: list[int], logits: Any) -> Any:
            if not chosen:  # which turn: fixed by the prompt, computed once
                chosen.append(replay_turn(segments, call_id, prompt_ids))
            token = turn_token(chosen[0], len(output_ids), end_id)
            logits.fill_(float("-inf"))
            logits[token] = 0.0
            return logits

        return force
