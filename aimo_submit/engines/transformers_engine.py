"""Reference backend on plain ``transformers``: one batched KV-cache decode loop per request.

It needs nothing but torch and transformers, so it runs the tiny CPU model in CI and any HF
checkpoint on a GPU when vLLM is unavailable. Each request runs in its own worker thread (the
event loop stays free for the solver), streams events through an ``asyncio.Queue`` and can drop
samples from the batch at any step. The ``n`` samples share one prompt, so the batch needs no
padding: the prompt is prefilled once and its cache repeated ``n`` times.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import inspect
import random
import secrets
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
    TokenStats,
)

_REPLACEMENT = "\ufffd"

_LOAD_LOCK = threading.Lock()
"""One model load at a time in a process: ``from_pretrained`` sets process-wide state while it
builds a model (its empty-weights init, lazy imports), so two loads in two threads (a closed
submission's load still running while the next one starts) can leave one model's weights on
the meta device."""


# --------------------------------------------------------------------------------------------
# Stats
# --------------------------------------------------------------------------------------------


@dataclass
class RequestStats:
    """Timings of one request, for the time scheduler (seconds; written by the worker)."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    queue_seconds: float = 0.0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    decode_steps: int = 0

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens (all samples) per second of this request's decode loop."""
        busy = self.prefill_seconds + self.decode_seconds
        return self.generated_tokens / busy if busy > 0 else 0.0


@dataclass
class EngineStats:
    """Totals over the engine's life. Concurrent requests overlap, so seconds add up per request."""

    requests: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    decode_steps: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of (summed) prefill + decode time."""
        busy = self.prefill_seconds + self.decode_seconds
        return self.generated_tokens / busy if busy > 0 else 0.0

    def add(self, rs: RequestStats) -> None:
        with self._lock:
            self.requests += 1
            self.prompt_tokens += rs.prompt_tokens
            self.generated_tokens += rs.generated_tokens
            self.prefill_seconds += rs.prefill_seconds
            self.decode_seconds += rs.decode_seconds
            self.decode_steps += rs.decode_steps


# --------------------------------------------------------------------------------------------
# Per-sample text handling (pure Python, runs in the worker thread)
# --------------------------------------------------------------------------------------------


class IncrementalDetokenizer:
    """Turns a growing list of token ids into stable text.

    Decoding a token alone can split a multi-byte character or lose a leading space, so (as in
    TGI/vLLM) we decode a window that starts one emitted chunk back and only accept new text
    when it does not end in U+FFFD (an incomplete UTF-8 sequence that a later token may finish).
    ``text`` is always a prefix of ``decode(ids)``; after ``flush`` it equals it.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0
        self._read = 0

    def _advance(self, final: bool) -> None:
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        new_text = self._decode(self.ids[self._prefix :])
        if len(new_text) > len(prefix_text) and (final or not new_text.endswith(_REPLACEMENT)):
            self.text += new_text[len(prefix_text) :]
            self._prefix = self._read
            self._read = len(self.ids)

    def add(self, token_id: int) -> None:
        self.ids.append(token_id)
        self._advance(final=False)

    def flush(self) -> None:
        """Accept whatever is pending (the sample is over, nothing can complete it any more)."""
        if self._read < len(self.ids):
            self._advance(final=True)


class _StopMatcher:
    """Finds stop strings in a growing text, including ones that span token boundaries."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self.stops), default=0)
        self._searched = 0  # text[:_searched] holds no complete stop string

    def find(self, text: str) -> tuple[int, int] | None:
        """``(start, end)`` of the stop string that completes first in ``text``, if any."""
        if not self.stops:
            return None
        begin = max(0, self._searched - self._longest + 1)
        # The stop string whose end comes first is the one the model completed first; on a tie
        # the longer one (earlier start) wins.
        hits = [(pos + len(s), pos) for s in self.stops if (pos := text.find(s, begin)) >= 0]
        self._searched = len(text)
        if not hits:
            return None
        end, start = min(hits)
        return start, end

    def holdback(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that could still grow into a stop string."""
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), hold, -1):
                if text.endswith(s[:k]):
                    hold = k
                    break
        return hold


class _Row:
    """One sample's decode state inside the worker."""

    def __init__(
        self, index: int, decode: Callable[[Sequence[int]], str], stops: Sequence[str]
    ) -> None:
        self.index = index
        self.detok = IncrementalDetokenizer(decode)
        self.stop = _StopMatcher(stops)
        self.tokens = 0
        self.emitted = 0  # characters of detok.text already sent
        self.finished = False
        self.confidence: list[float] = []  # TokenStats of tokens not yet sent in an event
        self.logprob: list[float] = []

    def event(
        self,
        end: int | None = None,
        reason: FinishReason | None = None,
        error: str | None = None,
    ) -> SampleEvent:
        """Event carrying text up to ``end`` (default: everything sent so far)."""
        end = self.emitted if end is None else max(end, self.emitted)
        delta = self.detok.text[self.emitted : end]
        self.emitted = end
        if reason is not None:
            self.finished = True
        stats = None
        if self.confidence:
            stats = TokenStats(tuple(self.confidence), tuple(self.logprob))
            self.confidence, self.logprob = [], []
        return SampleEvent(
            index=self.index,
            delta=delta,
            tokens=self.tokens,
            finished=reason is not None,
            finish_reason=reason,
            error=error,
            stats=stats,
        )


# --------------------------------------------------------------------------------------------
# Shared state between a Generation (event-loop side) and its worker thread
# --------------------------------------------------------------------------------------------


class _Control:
    """Cancellation flags and outputs shared with the worker; holds no reference to the consumer."""

    def __init__(self, n: int) -> None:
        self.cancelled = [False] * n
        self.output_ids: list[list[int]] = [[] for _ in range(n)]
        self.stats = RequestStats()
        self.thread_done = threading.Event()
        self.wake: Callable[[], None] = lambda: None

    def cancel(self, index: int | None = None) -> None:
        if index is None:
            for i in range(len(self.cancelled)):
                self.cancelled[i] = True
        else:
            self.cancelled[index] = True
        self.wake()

    @property
    def all_cancelled(self) -> bool:
        return all(self.cancelled)


def _deliver_to(ref: weakref.ref[TransformersGeneration], events: list[SampleEvent]) -> None:
    gen = ref()
    if gen is not None:
        gen._deliver(events)


def _mark_done(ref: weakref.ref[TransformersGeneration]) -> None:
    gen = ref()
    if gen is not None and gen._done is not None and not gen._done.done():
        gen._done.set_result(None)


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


class TransformersGeneration(Generation):
    """A running request. Single consumer: iterate it once (``async with`` closes it)."""

    def __init__(self, engine: TransformersEngine, request: GenerationRequest) -> None:
        self.request = request
        self._engine = engine
        self._control = _Control(request.n)
        self._finished = [False] * request.n  # loop-side truth: a row's final event was queued
        self._tokens = [0] * request.n
        self._open = request.n
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[SampleEvent] | None = None
        self._done: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None
        # If the consumer drops the handle without closing it, stop burning compute on it.
        weakref.finalize(self, self._control.cancel)
        with contextlib.suppress(RuntimeError):
            self._start(asyncio.get_running_loop())

    # -- public ----------------------------------------------------------------------------

    @property
    def stats(self) -> RequestStats:
        return self._control.stats

    @property
    def output_ids(self) -> list[list[int]]:
        """Generated token ids per sample (eos included if generated); for tests and debugging."""
        return self._control.output_ids

    def __aiter__(self) -> AsyncIterator[SampleEvent]:
        return self._events()

    def cancel(self, index: int | None = None) -> None:
        """Finish the sample(s) now with CANCELLED; the worker drops them before its next step."""
        if index is not None and not 0 <= index < self.request.n:
            raise IndexError(f"sample index {index} out of range for n={self.request.n}")
        self._control.cancel(index)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        indices = range(self.request.n) if index is None else (index,)
        events = [
            SampleEvent(i, "", self._tokens[i], True, FinishReason.CANCELLED)
            for i in indices
            if not self._finished[i]
        ]
        if not events:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(events)
        else:  # called from another thread: hand the final events to the owning loop
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._deliver, events)

    async def aclose(self) -> None:
        """Cancel everything and wait until the worker thread has ended."""
        self.cancel()
        thread = self._thread
        if thread is None:
            return
        if self._done is not None and not self._control.thread_done.is_set():
            await asyncio.shield(self._done)
        if self._control.thread_done.is_set():
            thread.join()  # past its last statement: returns at once
        else:  # the loop that started it is gone; wait without blocking this one
            await asyncio.to_thread(thread.join)

    # -- internals -------------------------------------------------------------------------

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None:
            return
        self._loop = loop
        self._queue = asyncio.Queue()
        self._done = loop.create_future()
        ref = weakref.ref(self)

        def emit(events: list[SampleEvent]) -> None:
            loop.call_soon_threadsafe(_deliver_to, ref, events)

        control = self._control  # the closures must not keep ``self`` alive

        def done() -> None:
            control.thread_done.set()
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(_mark_done, ref)

        self._thread = self._engine._spawn(self.request, control, emit, done)

    def _deliver(self, events: list[SampleEvent]) -> None:
        """Runs on the event loop: drop anything after a row's final event, then queue."""
        assert self._queue is not None
        for ev in events:
            i = ev.index
            if self._finished[i]:
                continue
            self._tokens[i] = ev.tokens
            if ev.finished:
                self._finished[i] = True
                self._open -= 1
            self._queue.put_nowait(ev)

    async def _events(self) -> AsyncIterator[SampleEvent]:
        self._start(asyncio.get_running_loop())
        queue = self._queue
        assert queue is not None
        complete = False
        try:
            while self._open > 0 or not queue.empty():
                yield await queue.get()
            complete = True
        finally:
            if not complete:  # consumer broke out, was cancelled, or the generator was collected
                self.cancel()


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------


class TransformersEngine(Engine):
    """``transformers`` backend: a hand-written batched decode loop over a ``DynamicCache``."""

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_concurrent: int = 4,
        max_model_len: int | None = None,
        threads: int | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        self.model_path = Path(model_path)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.dtype = self._resolve_dtype(dtype, self.device)
        self.max_concurrent = max_concurrent
        self.max_model_len = max_model_len
        self.threads = threads
        self.stats = EngineStats()
        self.eos_token_ids: frozenset[int] = frozenset()
        self._model: Any = None
        self._tokenizer: Any = None
        self._logits_kw: dict[str, int] = {}
        # Fast tokenizers raise "Already borrowed" when one instance is used from two threads.
        self._tok_lock = threading.Lock()
        self._loading: threading.Event | None = None
        """Set when this engine's load thread has ended; ``close`` waits for it, because a
        cancelled ``start`` does not stop the thread."""
        self._slots = threading.Condition()
        self._active = 0
        self._waiting: collections.deque[_Control] = collections.deque()
        self._live: weakref.WeakSet[_Control] = weakref.WeakSet()
        self._threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    @staticmethod
    def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
        if dtype == "auto":
            if device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.float32
        names = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32"}
        resolved = getattr(torch, names.get(dtype, dtype), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}")
        return resolved

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def model(self) -> Any:
        if self._model is None:
            raise RuntimeError("TransformersEngine.start() has not been awaited")
        return self._model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise RuntimeError("TransformersEngine.start() has not been awaited")
        return self._tokenizer

    async def start(self) -> None:
        if self._model is not None:
            return
        if not self.model_path.exists():
            raise FileNotFoundError(f"model path does not exist: {self.model_path}")
        self._loading = done = threading.Event()
        await asyncio.to_thread(self._load_once, done)

    def _load_once(self, done: threading.Event) -> None:
        try:
            with _LOAD_LOCK:
                self._load()
        finally:
            done.set()

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        if self.device.type == "cuda":
            # PyTorch's cuDNN attention builds a graph per new key length, i.e. at every decode
            # step: measured 20 vs 280 steps/s on an H100. Process-wide, but so is the GPU.
            torch.backends.cuda.enable_cudnn_sdp(False)
        # A one-device map loads the weights straight onto the GPU (no full copy in host RAM).
        placement = {"device_map": {"": str(self.device)}} if self.device.type == "cuda" else {}
        tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
        model = AutoModelForCausalLM.from_pretrained(
            str(self.model_path), dtype=self.dtype, **placement
        )
        model.to(self.device)
        model.eval()
        eos: set[int] = set()
        for source in (
            tokenizer.eos_token_id,
            getattr(model.generation_config, "eos_token_id", None),
        ):
            if isinstance(source, int):
                eos.add(source)
            elif source is not None:
                eos.update(int(t) for t in source)
        if self.max_model_len is None:
            self.max_model_len = getattr(model.config, "max_position_embeddings", None)
        params = inspect.signature(model.forward).parameters
        if "logits_to_keep" in params:
            self._logits_kw = {"logits_to_keep": 1}
        elif "num_logits_to_keep" in params:
            self._logits_kw = {"num_logits_to_keep": 1}
        self.eos_token_ids = frozenset(eos)
        self._tokenizer, self._model = tokenizer, model

    async def close(self) -> None:
        """Cancel running requests, wait for their threads, free the weights. Idempotent."""
        for control in list(self._live):
            control.cancel()
        for thread in list(self._threads):
            if thread.is_alive():
                await asyncio.to_thread(thread.join, 30.0)
        if self._loading is not None and not self._loading.is_set():
            await asyncio.to_thread(self._loading.wait, 60.0)
        if self._model is None:
            return
        self._model = self._tokenizer = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def generate(self, request: GenerationRequest) -> TransformersGeneration:
        self.model  # noqa: B018 - fail fast if not started
        return TransformersGeneration(self, request)

    # -- concurrency -----------------------------------------------------------------------

    def _spawn(
        self,
        request: GenerationRequest,
        control: _Control,
        emit: Callable[[list[SampleEvent]], None],
        done: Callable[[], None],
    ) -> threading.Thread:
        def wake() -> None:
            with self._slots:
                self._slots.notify_all()

        control.wake = wake
        self._live.add(control)
        thread = threading.Thread(
            target=self._worker,
            args=(request, control, emit, done),
            name=f"transformers-engine-{id(control):x}",
            daemon=True,
        )
        self._threads.add(thread)
        thread.start()
        return thread

    def _acquire_slot(self, control: _Control) -> bool:
        """FIFO wait for one of ``max_concurrent`` slots; False if everything got cancelled."""
        with self._slots:
            self._waiting.append(control)
            try:
                while not (self._active < self.max_concurrent and self._waiting[0] is control):
                    if control.all_cancelled:
                        return False
                    self._slots.wait(timeout=0.5)
                self._active += 1
                return True
            finally:
                self._waiting.remove(control)
                self._slots.notify_all()

    def _release_slot(self) -> None:
        with self._slots:
            self._active -= 1
            self._slots.notify_all()

    # -- the decode loop (worker thread) ---------------------------------------------------

    def _worker(
        self,
        request: GenerationRequest,
        control: _Control,
        emit: Callable[[list[SampleEvent]], None],
        done: Callable[[], None],
    ) -> None:
        tokenizer = self._tokenizer

        tok_lock = self._tok_lock

        def decode(ids: Sequence[int]) -> str:
            with tok_lock:
                return tokenizer.decode(
                    ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
                )

        rows = [_Row(i, decode, request.stop) for i in range(request.n)]
        send_ok = True

        def send(events: list[SampleEvent]) -> None:
            nonlocal send_ok
            if not events or not send_ok:
                return
            try:
                emit(events)
            except RuntimeError:  # event loop closed: nobody is listening any more
                send_ok = False
                control.cancel()

        if self.threads:  # OpenMP thread counts are per thread: set it where the work runs
            torch.set_num_threads(self.threads)
        acquired = False
        t0 = time.perf_counter()
        try:
            acquired = self._acquire_slot(control)
            control.stats.queue_seconds = time.perf_counter() - t0
            if acquired:
                device_ctx = (
                    torch.cuda.device(self.device)
                    if self.device.type == "cuda"
                    else contextlib.nullcontext()
                )
                with device_ctx, torch.inference_mode():
                    self._decode_loop(request, control, rows, send)
            send([r.event(reason=FinishReason.CANCELLED) for r in rows if not r.finished])
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the consumer
            message = f"{type(exc).__name__}: {exc}"
            send(
                [r.event(reason=FinishReason.ERROR, error=message) for r in rows if not r.finished]
            )
        finally:
            if acquired:
                self._release_slot()
            self.stats.add(control.stats)
            done()

    def _decode_loop(
        self,
        request: GenerationRequest,
        control: _Control,
        rows: list[_Row],
        send: Callable[[list[SampleEvent]], None],
    ) -> None:
        from transformers import DynamicCache

        model, stats = self._model, control.stats
        if model is None:
            raise RuntimeError("engine was closed")
        with self._tok_lock:
            encoded = self._tokenizer(request.prompt, add_special_tokens=False, return_tensors="pt")
        prompt_ids = encoded.input_ids.to(self.device)
        prompt_len = int(prompt_ids.shape[1])
        stats.prompt_tokens = prompt_len
        limit = request.max_tokens
        if self.max_model_len is not None:
            limit = min(limit, self.max_model_len - prompt_len)
        if limit <= 0:  # the prompt alone fills the context window
            send([r.event(reason=FinishReason.LENGTH) for r in rows])
            return
        if prompt_len == 0:
            raise ValueError("empty prompt")

        base_seed = request.seed if request.seed is not None else secrets.randbits(62)
        rngs = [random.Random(base_seed + r.index) for r in rows]  # sample i uses seed + i

        active = [r for r in rows if not control.cancelled[r.index]]
        if not active:
            return
        t = time.perf_counter()
        cache = DynamicCache(config=model.config)
        out = model(input_ids=prompt_ids, past_key_values=cache, use_cache=True, **self._logits_kw)
        cache = out.past_key_values
        logits = out.logits[:, -1, :]
        if len(active) > 1:
            cache.batch_repeat_interleave(len(active))
            logits = logits.expand(len(active), -1)
        stats.prefill_seconds = time.perf_counter() - t
        t = time.perf_counter()
        try:
            while True:
                # Invariant here: cache rows == logits rows == ``active``. Rows cancelled during
                # the last forward are dropped before they get another token.
                active, logits, events = self._compact(active, logits, cache, control)
                send(events)
                if not active:
                    return
                picked = self._sample(logits, request, [rngs[r.index] for r in active])
                if request.logprobs:
                    conf, chosen = self._token_stats(logits, picked, request.logprobs)
                    for r, c, lp in zip(active, conf, chosen, strict=True):
                        r.confidence.append(c)
                        r.logprob.append(lp)
                next_ids = picked.tolist()
                for r, tok in zip(active, next_ids, strict=True):
                    ev = self._step_row(r, int(tok), request, limit, control)
                    if ev is not None:
                        events.append(ev)
                stats.generated_tokens += len(active)
                stats.decode_steps += 1
                send(events)
                ids = torch.tensor(next_ids, device=self.device).unsqueeze(1)
                active, ids, events = self._compact(active, ids, cache, control)
                send(events)
                if not active:
                    return
                out = model(input_ids=ids, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                logits = out.logits[:, -1, :]
        finally:
            stats.decode_seconds = time.perf_counter() - t

    def _compact(
        self, active: list[_Row], rows: torch.Tensor, cache: Any, control: _Control
    ) -> tuple[list[_Row], torch.Tensor, list[SampleEvent]]:
        """Drop finished and cancelled rows from the batch (cache and ``rows`` alike)."""
        events = []
        keep = []
        for j, r in enumerate(active):
            if r.finished:
                continue
            if control.cancelled[r.index]:
                events.append(r.event(reason=FinishReason.CANCELLED))
                continue
            keep.append(j)
        if len(keep) == len(active) or not keep:
            return [active[j] for j in keep], rows, events
        index = torch.tensor(keep, device=self.device)
        cache.batch_select_indices(index)
        return [active[j] for j in keep], rows[index], events

    @staticmethod
    def _token_stats(
        logits: torch.Tensor, picked: torch.Tensor, k: int
    ) -> tuple[list[float], list[float]]:
        """Per row: DeepConf confidence ``-mean(top-k log-probs)`` and the picked token's
        log-prob, both of the raw distribution (no temperature or top-p), as vLLM reports."""
        logp = torch.log_softmax(logits.float(), dim=-1)
        top = logp.topk(min(k, logp.shape[-1]), dim=-1).values
        conf = (-top.mean(dim=-1)).tolist()
        chosen = logp.gather(1, picked.view(-1, 1)).squeeze(1).tolist()
        return conf, chosen

    @staticmethod
    def _sample(
        logits: torch.Tensor, request: GenerationRequest, rngs: list[random.Random]
    ) -> torch.Tensor:
        """Next token per row: greedy at temperature 0, else top-p sampling.

        Each row draws one uniform number per step from its own seeded ``random.Random`` and
        inverts the CDF on the device: one batched op instead of a multinomial call per row,
        and a sample's tokens do not depend on which other samples share the batch.
        """
        if request.temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits.float() / request.temperature, dim=-1)
        order = None
        last = probs.shape[-1] - 1
        if request.top_p < 1.0:
            probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (the top token always survives).
            drop = probs.cumsum(dim=-1) - probs >= request.top_p
            drop[:, 0] = False
            probs = probs.masked_fill(drop, 0.0)
            last = (~drop).sum(dim=-1, keepdim=True) - 1
        cdf = probs.cumsum(dim=-1, dtype=torch.float64)
        u = torch.tensor([r.random() for r in rngs], dtype=torch.float64, device=logits.device)
        target = (u * cdf[:, -1]).unsqueeze(1)
        picks = torch.searchsorted(cdf, target, right=True)
        picks = torch.minimum(picks, torch.as_tensor(last, device=picks.device))
        if order is not None:
            picks = order.gather(1, picks)
        return picks.squeeze(1)

    def _step_row(
        self,
        row: _Row,
        token: int,
        request: GenerationRequest,
        limit: int,
        control: _Control,
    ) -> SampleEvent | None:
        """Feed one token to a row; returns the event to send, if any."""
        row.tokens += 1
        control.output_ids[row.index].append(token)
        detok = row.detok
        if token in self.eos_token_ids:
            detok.flush()
            return self._finish_text(row, request, FinishReason.STOP)
        detok.add(token)
        hit = row.stop.find(detok.text)
        if hit is not None:
            return self._stop_at(row, request, hit)
        if row.tokens >= limit:
            detok.flush()
            return self._finish_text(row, request, FinishReason.LENGTH)
        end = len(detok.text)
        if not request.include_stop:
            end -= row.stop.holdback(detok.text)
        if end > row.emitted:
            return row.event(end)
        return None

    def _finish_text(
        self, row: _Row, request: GenerationRequest, reason: FinishReason
    ) -> SampleEvent:
        """Final event after a flush; the flushed tail may itself complete a stop string."""
        hit = row.stop.find(row.detok.text)
        if hit is not None:
            return self._stop_at(row, request, hit)
        return row.event(len(row.detok.text), reason)

    @staticmethod
    def _stop_at(row: _Row, request: GenerationRequest, hit: tuple[int, int]) -> SampleEvent:
        start, end = hit
        return row.event(end if request.include_stop else start, FinishReason.STOP)
