"""A stand-in for the few vLLM names the engine and the GPU benches use, for CPU runs.

``install(step_s)`` puts modules named ``vllm``, ``vllm.sampling_params`` and
``vllm.v1.engine.async_llm`` into ``sys.modules``. Their engine "decodes" one token per active
request every ``step_s`` seconds in one asyncio task (as vLLM's output handler hands each step's
outputs to per-request queues), so a front-end's CPU cost per step can be measured on a CPU
machine: when the front-end needs more than ``step_s`` a step, tokens/s falls below the
fake's ceiling. Also used to run ``bench_hardware engine`` end to end before a GPU call.
"""

from __future__ import annotations

import asyncio
import enum
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any


class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    stop: list[str] | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    ignore_eos: bool = False
    logprobs: int | None = None
    flat_logprobs: bool = False
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    extra_args: dict[str, Any] | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]
    finish_reason: str | None = None
    stop_reason: Any = None
    logprobs: Any = None


@dataclass
class RequestOutput:
    request_id: str
    outputs: list[CompletionOutput]
    finished: bool = False


@dataclass
class AsyncEngineArgs:
    model: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, **kw: Any) -> None:
        self.model = kw.get("model", "")
        self.kwargs = kw


STEP_S = [0.01]
"""The fake engine's step time (``install`` sets it)."""


class AsyncLLM:
    """One request a sample; every step each active request gets one token ("a", id 67)."""

    def __init__(self, args: AsyncEngineArgs) -> None:
        self.args = args
        self.active: dict[str, tuple[asyncio.Queue[RequestOutput], SamplingParams, list[int]]] = {}
        self.steps = 0
        self.prompts: dict[str, list[int]] = {}
        self.texts: dict[str, str] = {}
        self._tok: Any = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_engine_args(cls, args: AsyncEngineArgs) -> AsyncLLM:
        return cls(args)

    def _replay(self, params: SamplingParams, prompt_ids: list[int], n_out: int,
                text: str) -> tuple[str, int, str | None]:
        """``extra_args['harmony_replay']``: what ``bench.harmony_replay`` forces on the GPU,
        with vLLM's stop handling (stop strings in the text, the end token)."""
        from bench.harmony_replay import replay_token

        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.args.kwargs.get("tokenizer")
                                                      or self.args.model)
        extra = params.extra_args or {}
        token = replay_token(extra["harmony_replay"], int(extra["call_id"]), prompt_ids, n_out,
                             extra.get("end_id"))
        piece = self._tok.decode([token], skip_special_tokens=params.skip_special_tokens)
        full = text + piece
        for stop in params.stop or ():
            if full.endswith(stop):
                return (piece if params.include_stop_str_in_output
                        else piece[: len(piece) - len(stop)]), token, "stop"
        return piece, token, ("stop" if token == extra.get("end_id") else None)

    async def _run(self) -> None:
        next_at = time.perf_counter()
        while self.active:
            next_at += STEP_S[0]
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            self.steps += 1
            for rid, (queue, params, count) in list(self.active.items()):
                count[0] += 1
                piece, token, reason = "a", 67, None
                if (params.extra_args or {}).get("harmony_replay"):
                    piece, token, reason = self._replay(params, self.prompts[rid],
                                                        count[0] - 1, self.texts[rid])
                    self.texts[rid] += piece
                if reason is None and count[0] >= params.max_tokens:
                    reason = "length"
                queue.put_nowait(RequestOutput(rid, [CompletionOutput(
                    piece, [token], reason)], reason is not None))
                if reason is not None:
                    del self.active[rid]

    async def generate(self, prompt: Any, params: SamplingParams, request_id: str,
                       **kw: Any) -> Any:
        queue: asyncio.Queue[RequestOutput] = asyncio.Queue()
        self.prompts[request_id] = list(prompt.get("prompt_token_ids", ())
                                        if isinstance(prompt, dict) else ())
        self.texts[request_id] = ""
        self.active[request_id] = (queue, params, [0])
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        try:
            while True:
                out = await queue.get()
                yield out
                if out.finished:
                    return
        finally:
            self.active.pop(request_id, None)
            self.prompts.pop(request_id, None)
            self.texts.pop(request_id, None)

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()


class LLM:
    """Synchronous batch generation at the fake's step time."""

    def __init__(self, **kw: Any) -> None:
        self.kw = kw

    def get_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.kw.get("tokenizer") or self.kw["model"])

    def generate(self, prompts: list[Any], params: list[SamplingParams] | SamplingParams,
                 use_tqdm: bool = False) -> list[RequestOutput]:
        plist = params if isinstance(params, list) else [params] * len(prompts)
        time.sleep(STEP_S[0] * max(p.max_tokens for p in plist))
        return [RequestOutput(str(i), [CompletionOutput("a" * p.max_tokens,
                                                        [67] * p.max_tokens, "length")], True)
                for i, p in enumerate(plist)]


def modules(step_s: float = 0.01) -> dict[str, types.ModuleType]:
    """The fake's modules by the names vLLM's would have (``step_s``: the fake's step time)."""
    STEP_S[0] = step_s
    root = types.ModuleType("vllm")
    root.__version__ = "fake"
    root.LLM, root.SamplingParams, root.AsyncEngineArgs = LLM, SamplingParams, AsyncEngineArgs
    sp = types.ModuleType("vllm.sampling_params")
    sp.RequestOutputKind, sp.SamplingParams = RequestOutputKind, SamplingParams
    v1 = types.ModuleType("vllm.v1")
    eng = types.ModuleType("vllm.v1.engine")
    al = types.ModuleType("vllm.v1.engine.async_llm")
    al.AsyncLLM = AsyncLLM
    return {"vllm": root, "vllm.sampling_params": sp, "vllm.v1": v1, "vllm.v1.engine": eng,
            "vllm.v1.engine.async_llm": al}


def install(step_s: float = 0.01) -> None:
    """Make ``import vllm`` (and the submodules the engine imports) load this fake."""
    sys.modules.update(modules(step_s))
