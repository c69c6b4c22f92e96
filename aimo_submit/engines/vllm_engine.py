"""vLLM backend: the async engine behind the one engine protocol, laid out over several GPUs.

Why it is built this way:

* **One vLLM request per sample** (ids ``<generation>-<i>``, seeds ``seed + i``), not one
  request with ``SamplingParams(n=...)``: vLLM aborts a parent ``n`` request only as a whole,
  while early stopping must abort single samples, and per-sample requests also stream and finish
  independently. The shared prompt costs nothing extra: prefix caching computes it once.
* **The prompt is tokenised once** per generation (``PromptTokens``) and its ids are submitted
  for all n samples: vLLM then skips its own per-request tokenisation. A TIR continuation's
  prompt starts with an earlier prompt plus a sample's text; the ids of that prefix are reused
  (the sample's own generated ids where they decode back to its text), so only the new tail is
  tokenised and the prefix is an exact prefix-cache hit.
* **Token statistics** (``GenerationRequest.logprobs = k``): vLLM returns the top-k
  log-probabilities in its flat layout (``flat_logprobs``, few Python objects) and
  ``SampleTracker`` reduces each token to the two floats of ``TokenStats`` at once.
* **Streaming** uses ``RequestOutputKind.DELTA``: each output carries the new text and token ids
  only, so a 32k-token sample is never re-sent whole (``SampleTracker`` also accepts cumulative
  outputs and diffs them). vLLM holds back text that could still become a stop string.
* **Abort**: each sample is pumped by its own asyncio task. ``cancel`` emits the sample's final
  ``CANCELLED`` event at once (the solver never waits) and cancels the task; vLLM's ``generate``
  turns that cancellation into an engine-side abort, so the KV blocks are freed at the next step.
  Consumer cancellation and ``aclose`` do the same for every outstanding sample.
* **Tool-integrated reasoning** continues a sample as a new request whose prompt starts with the
  old prompt and text. ``ReplicaRouter`` remembers which replica produced which text and sends the
  continuation there, so its prefix is a cache hit instead of a second full prefill.
* **A hung replica** (several replicas; one sends nothing for ``replica_stall_s`` while it has
  samples and another replica is still streaming) is fenced: its samples end with an error at
  once (the solver stops waiting for them; the other replicas' samples go on), the router sends
  nothing new there, and with ``dp_backend="replicas"`` that replica alone is killed and started
  again in the background. A hang of the only (or every) replica is the runner's to handle: the
  solver sees the whole engine stall and ``Submission`` restarts it.
* **vLLM is imported inside ``start``** only, so this module (routing, stall fencing, output
  mapping) imports and is tested on CPU machines without vLLM.

Layout. ``tensor_parallel_size`` x ``data_parallel_size`` GPUs. Data parallel replicas are either
vLLM's own (``dp_backend="vllm"``: one ``AsyncLLM``, ``data_parallel_size`` engine-core processes
started in parallel; for dense models vLLM runs them independently, and we pick the replica of
every request through ``data_parallel_rank``) or separate ``AsyncLLM`` objects pinned with
``CUDA_VISIBLE_DEVICES`` (``dp_backend="replicas"``, started one after the other; a fallback).

Settings (``VLLMSettings``, the manifest's ``engine_settings`` schema) are in
``engines/vllm_settings.py``; what a layout holds in memory and how fast it decodes is computed
in ``hardware.py`` from the manifest's settings (``hardware.SETUPS``). Tensor parallel 4 over
the 4 L4s (the manifest's AIMO2 layout) stores the weights once and has about 7x the KV room of
one L4; data parallel (``data_parallel_size=4``) is one setting away and is the layout to
measure against on Kaggle (``bench/bench_vllm.py``), since PCIe all-reduce speed on Kaggle's
hosts is not known here.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import itertools
import os
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
    TokenStats,
)
from aimo_submit.engines.vllm_settings import VLLMSettings

# --------------------------------------------------------------------------------------------
# Request bookkeeping (pure: tested with plain objects shaped like vLLM's outputs)
# --------------------------------------------------------------------------------------------

_FINISH = {
    "stop": FinishReason.STOP,  # stop string, stop token or end-of-sequence
    "length": FinishReason.LENGTH,  # max_tokens or max_model_len
    "abort": FinishReason.CANCELLED,
    "error": FinishReason.ERROR,
    # vLLM's repetition detector ended a looping sample: it ran out of useful tokens.
    "repetition": FinishReason.LENGTH,
}


def map_finish_reason(reason: object) -> FinishReason | None:
    """vLLM's ``CompletionOutput.finish_reason`` (a string, or its enum) to ours."""
    if reason is None:
        return None
    return _FINISH.get(str(reason).lower(), FinishReason.ERROR)


def sample_request_ids(generation_id: str, n: int) -> list[str]:
    """One vLLM request id per sample; the suffix is the sample index."""
    return [f"{generation_id}-{i}" for i in range(n)]


def sample_seeds(seed: int | None, n: int) -> list[int | None]:
    """Sample ``i`` uses ``seed + i`` (the protocol's rule); None stays non-reproducible."""
    return [None if seed is None else seed + i for i in range(n)]


def sampling_kwargs(request: GenerationRequest, index: int) -> dict[str, Any]:
    """``SamplingParams`` keywords of one sample (``output_kind`` is added by the engine)."""
    return dict(
        n=1,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        seed=sample_seeds(request.seed, index + 1)[index],
        stop=list(request.stop) or None,
        include_stop_str_in_output=request.include_stop,
        skip_special_tokens=True,
        **({"logprobs": request.logprobs, "flat_logprobs": True} if request.logprobs else {}),
    )


def token_stats(logprobs: Any, token_ids: Sequence[int], k: int, start: int = 0) -> TokenStats:
    """``TokenStats`` of positions ``start..`` of a vLLM sample's logprobs.

    ``logprobs`` is vLLM's ``FlatLogprobs`` (flat lists with per-position index ranges) or a
    list of ``{token_id: Logprob}`` dicts; each position holds the sampled token (any rank) and
    the top ``k`` (ranks 1..k), the sampled one possibly twice in the flat layout.
    """
    conf: list[float] = []
    chosen: list[float] = []
    flat = hasattr(logprobs, "start_indices")
    for p in range(start, len(logprobs)):
        if flat:
            lo, hi = logprobs.start_indices[p], logprobs.end_indices[p]
            entries = zip(logprobs.token_ids[lo:hi], logprobs.logprobs[lo:hi],
                          logprobs.ranks[lo:hi], strict=True)
        else:
            entries = ((tid, lp.logprob, lp.rank) for tid, lp in logprobs[p].items())
        sampled = token_ids[p]
        top: dict[int, float] = {}
        mine: float | None = None
        for tid, value, rank in entries:
            if tid == sampled and mine is None:
                mine = value
            if rank is not None and rank <= k:
                top[tid] = value
        if mine is None or not top:
            raise ValueError(f"logprobs of position {p} lack the sampled token or the top-k")
        conf.append(-sum(top.values()) / len(top))
        chosen.append(mine)
    return TokenStats(tuple(conf), tuple(chosen))


class PromptTokens:
    """Token ids of prompt texts: each prompt is tokenised once, continuations only in part.

    ``ids(text)`` starts from the longest remembered text that prefixes ``text`` (a prompt,
    or a prompt plus a sample's generated text registered by ``remember``) and tokenises only
    the rest, without special tokens (the chat template already wrote them, as the
    transformers engine assumes too). A generated text's ids are used only if they decode back
    to exactly that text (a stop string can end inside a token, special tokens are hidden in
    the text); otherwise the last few tokens are dropped until they do, and the remainder is
    tokenised. Splitting the tokenisation at a prompt boundary can differ from tokenising the
    whole string at a merge across the boundary; the model sees a valid encoding either way.
    Bounded: the ``memory`` most recent texts are kept (ids as 4-byte arrays).
    """

    def __init__(self, encode: Callable[[str], Sequence[int]],
                 decode: Callable[[Sequence[int]], str], memory: int = 256) -> None:
        self.encode = encode
        self.decode = decode
        self.memory = memory
        self._entries: collections.OrderedDict[str, tuple[array.array, int, int]] = (
            collections.OrderedDict())
        """text -> (ids, n, chars): ids[:n] encode text[:chars]; ids[n:] are generated ids
        not yet checked against text[chars:]."""
        self.tokenised_chars = 0
        """Characters passed to ``encode`` (the work this cache does not save)."""

    def _longest_prefix(self, text: str) -> str | None:
        best: str | None = None
        for key in self._entries:
            n = len(key)
            if n > len(text) or (best is not None and n <= len(best)):
                continue
            if text[max(0, n - 64):n] == key[-64:] and text.startswith(key):
                best = key
        return best

    def _checked(self, key: str) -> tuple[array.array, int]:
        """The entry's ids cut to what provably encodes a prefix of ``key``, and its length."""
        ids, n, chars = self._entries[key]
        if n < len(ids):
            tail, generated = key[chars:], ids[n:]
            for cut in range(len(generated), max(0, len(generated) - 4) - 1, -1):
                piece = self.decode(generated[:cut]) if cut else ""
                if tail.startswith(piece):
                    ids, chars = ids[:n + cut], chars + len(piece)
                    break
            else:
                ids = ids[:n]
            self._entries[key] = (ids, len(ids), chars)
        return ids, chars

    def ids(self, text: str) -> list[int]:
        """Token ids of ``text``; remembered for later continuations of it."""
        key = self._longest_prefix(text) if self._entries else None
        if key is None:
            out, chars = [], 0
        else:
            self._entries.move_to_end(key)
            base, chars = self._checked(key)
            out = base.tolist()
        if chars < len(text):
            out.extend(self.encode(text[chars:]))
            self.tokenised_chars += len(text) - chars
        self._put(text, array.array("i", out), len(out), len(text))
        return out

    def remember(self, prompt: str, prompt_ids: Sequence[int], text: str,
                 generated_ids: Sequence[int]) -> None:
        """Register ``prompt + text`` (a sample's prompt and output) for continuations."""
        if not text or not generated_ids:
            return
        ids = array.array("i", prompt_ids)
        n = len(ids)
        ids.extend(generated_ids)
        self._put(prompt + text, ids, n, len(prompt))

    def _put(self, text: str, ids: array.array, n: int, chars: int) -> None:
        self._entries[text] = (ids, n, chars)
        self._entries.move_to_end(text)
        while len(self._entries) > self.memory:
            self._entries.popitem(last=False)


@dataclass
class SampleTracker:
    """Turns one sample's vLLM outputs into protocol events, delta or cumulative alike."""

    index: int
    request_id: str
    cumulative: bool = False
    logprobs: int = 0
    """Top-k of the request: > 0 turns each output's logprobs into ``TokenStats``."""
    tokens: int = 0
    finished: bool = False
    chunks: list[str] = field(default_factory=list)
    token_ids: array.array = field(default_factory=lambda: array.array("i"))
    """The sample's generated ids (4 bytes each), for ``PromptTokens.remember``."""
    _text_len: int = 0

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def update(self, completion: Any, request_finished: bool = False) -> SampleEvent | None:
        """The event for one ``CompletionOutput``; None when it carries nothing new."""
        if self.finished:
            return None
        text: str = completion.text or ""
        ids = completion.token_ids or ()
        if self.cumulative:
            delta = text[self._text_len :]
            self._text_len = len(text)
            tokens = max(self.tokens, len(ids))
            first = self.tokens  # position of the first new token in ``ids``
        else:
            delta = text
            tokens = self.tokens + len(ids)
            first = 0
        new_ids = ids[first:] if first else ids
        if new_ids:
            self.token_ids.extend(new_ids)
        stats = None
        if self.logprobs and new_ids and getattr(completion, "logprobs", None) is not None:
            stats = token_stats(completion.logprobs, ids, self.logprobs, first)
        reason = map_finish_reason(getattr(completion, "finish_reason", None))
        error = None
        if reason is None and request_finished:
            reason, error = FinishReason.ERROR, "vLLM finished the request without a reason"
        elif reason is FinishReason.ERROR:
            error = f"vLLM finish_reason {completion.finish_reason!r}"
        changed = bool(delta) or tokens != self.tokens
        self.tokens = tokens
        if delta:
            self.chunks.append(delta)
        if reason is None:
            return SampleEvent(self.index, delta, tokens, stats=stats) if changed else None
        self.finished = True
        return SampleEvent(self.index, delta, tokens, True, reason, error, stats)

    def events(self, output: Any) -> list[SampleEvent]:
        """Events of one ``RequestOutput`` (one completion, since every request has n=1)."""
        out = []
        for completion in output.outputs:
            event = self.update(completion, bool(getattr(output, "finished", False)))
            if event is not None:
                out.append(event)
        if getattr(output, "finished", False) and not self.finished:
            out.append(self.finish(FinishReason.ERROR, "vLLM finished with no completion"))
        return out

    def finish(self, reason: FinishReason, error: str | None = None) -> SampleEvent:
        """The final event of a sample ended from our side (cancel, crash)."""
        self.finished = True
        return SampleEvent(self.index, "", self.tokens, True, reason, error)


class ReplicaRouter:
    """Chooses the data-parallel replica of each sample.

    Fresh samples go to the least-loaded replica (ties rotate, so the n samples of a prompt
    spread evenly). A prompt that extends a text this router has seen (a TIR continuation) goes
    back to the replica holding that prefix in its cache, unless that replica is ``slack``
    samples busier than the least-loaded one.
    """

    def __init__(self, n_replicas: int, slack: int = 4, memory: int = 1024) -> None:
        if n_replicas < 1:
            raise ValueError("n_replicas must be >= 1")
        self.loads = [0] * n_replicas
        self.down: set[int] = set()
        """Replicas fenced off as hung: nothing is sent there until they are back."""
        self.slack = slack
        self.memory = memory
        self._seen: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._turn = itertools.count()

    def least_loaded(self) -> int:
        n = len(self.loads)
        start = next(self._turn) % n
        order = [(start + k) % n for k in range(n)]
        live = [r for r in order if r not in self.down] or order  # all down: the runner's case
        return min(live, key=lambda r: self.loads[r])

    def affinity(self, prompt: str) -> int | None:
        """The replica that produced the longest remembered prefix of ``prompt``."""
        best, best_len = None, 0
        for text, replica in self._seen.items():
            n = len(text)
            if n <= best_len or n > len(prompt):
                continue
            tail = max(0, n - 64)  # cheap reject on the end before the full compare
            if prompt[tail:n] == text[tail:] and prompt.startswith(text):
                best, best_len = replica, n
        return best

    def acquire(self, prompt: str = "") -> int:
        least = self.least_loaded()
        home = self.affinity(prompt) if prompt and self._seen else None
        replica = least
        if (home is not None and home not in self.down
                and self.loads[home] - self.loads[least] <= self.slack):
            replica = home
        self.loads[replica] += 1
        return replica

    def release(self, replica: int) -> None:
        self.loads[replica] = max(0, self.loads[replica] - 1)

    def remember(self, text: str, replica: int) -> None:
        """Note that ``replica`` now caches ``text`` (a prompt plus what a sample generated)."""
        if not text or len(self.loads) == 1:
            return
        self._seen[text] = replica
        self._seen.move_to_end(text)
        while len(self._seen) > self.memory:
            self._seen.popitem(last=False)


def stalled_replicas(outstanding: Sequence[int], progress_at: Sequence[float], now: float,
                     stall_s: float, down: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Replicas to fence as hung: samples outstanding and silent for more than ``stall_s``,
    while at least one other live replica is not (a silence of all of them is the whole
    engine's, which the runner restarts)."""
    live = [r for r in range(len(outstanding)) if r not in down]
    silent = [r for r in live if outstanding[r] > 0 and now - progress_at[r] > stall_s]
    return silent if len(silent) < len(live) else []


@contextlib.contextmanager
def _visible_devices(value: str | None) -> Iterator[None]:
    """Set ``CUDA_VISIBLE_DEVICES`` while an engine spawns its processes (they inherit it)."""
    if value is None:
        yield
        return
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old


def _vllm_env_defaults() -> None:
    """Environment that vLLM 0.26 needed on the H100 device; a value already set wins.

    * ``spawn`` workers: something in the parent initialises CUDA before vLLM forks its engine
      core, and a forked child then fails with "Cannot re-initialize CUDA in forked subprocess".
    * No FlashInfer sampler when flashinfer is not installed: vLLM 0.26's sampler imports the
      FlashInfer backend unconditionally unless ``VLLM_USE_FLASHINFER_SAMPLER=0``.
    """
    import importlib.util

    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if importlib.util.find_spec("flashinfer") is None:
        os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------


@dataclass
class _Replica:
    client: Any
    """The ``AsyncLLM`` that serves this replica."""
    dp_rank: int | None = None
    """``data_parallel_rank`` to pass (vLLM's own data parallel), else None."""
    tasks: dict[asyncio.Task[Any], Callable[[], None]] = field(default_factory=dict)
    """Pump tasks of the samples running here, each with the call that fails its sample."""
    fenced: set[asyncio.Task[Any]] = field(default_factory=set)
    """Tasks cancelled because this replica hung (their samples end with an error)."""
    progress_at: float = 0.0
    """Last output from vLLM, or when the replica went from idle to busy (monotonic)."""
    submitted: int = 0
    aborted: int = 0
    """Samples cancelled from our side (early stop, consumer gone): vLLM aborts them."""
    hangs: int = 0
    restarts: int = 0

    def state(self, down: bool) -> dict[str, Any]:
        return {"outstanding": len(self.tasks), "submitted": self.submitted,
                "aborted": self.aborted, "hangs": self.hangs, "restarts": self.restarts,
                "down": down, "silent_s": round(time.monotonic() - self.progress_at, 1)}


class VLLMGeneration(Generation):
    """n samples as n vLLM requests, merged into one event stream. Single consumer."""

    def __init__(self, engine: VLLMEngine, request: GenerationRequest, generation_id: str) -> None:
        self.request = request
        self._engine = engine
        self.request_ids = sample_request_ids(generation_id, request.n)
        self.trackers = [SampleTracker(i, rid, logprobs=request.logprobs)
                         for i, rid in enumerate(self.request_ids)]
        self.prompt_ids: list[int] | None = None
        """The prompt's token ids, computed once in ``_start`` and shared by every sample."""
        self.replicas: list[int | None] = [None] * request.n
        self._tasks: list[asyncio.Task[None] | None] = [None] * request.n
        self._queue: asyncio.Queue[SampleEvent] = asyncio.Queue()
        self._open = request.n
        self._started = False
        weakref.finalize(self, _cancel_tasks, self._tasks)
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._start()

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if all(t.finished for t in self.trackers):
            return
        try:
            self.prompt_ids = self._engine._prompt_ids(self.request.prompt)
        except Exception as exc:  # noqa: BLE001 - a bad prompt fails its samples, not the run
            for tracker in self.trackers:
                if not tracker.finished:
                    self._put(tracker.finish(FinishReason.ERROR,
                                             f"tokenising the prompt: {type(exc).__name__}: {exc}"))
            return
        for i, tracker in enumerate(self.trackers):
            if tracker.finished:  # cancelled before the loop ran
                continue
            self._tasks[i] = asyncio.ensure_future(self._pump(i))

    async def _pump(self, i: int) -> None:
        tracker = self.trackers[i]
        replica = self._engine._router.acquire(self.request.prompt)
        self.replicas[i] = replica
        rep = self._engine._replicas[replica]
        me = asyncio.current_task()
        if not rep.tasks:
            rep.progress_at = time.monotonic()
        if me is not None:
            rep.tasks[me] = lambda: self._fail_hung(i, replica)
        rep.submitted += 1
        try:
            stream = self._engine._submit(self.request, i, self.request_ids[i], replica,
                                          self.prompt_ids)
            async for output in stream:
                rep.progress_at = time.monotonic()
                for event in tracker.events(output):
                    self._put(event)
        except asyncio.CancelledError:
            # vLLM's generate aborted the request on the way out: count ours, not a fence's
            rep.aborted += me not in rep.fenced
        except Exception as exc:  # noqa: BLE001 - any engine failure ends the sample, not the run
            if not tracker.finished:
                self._put(tracker.finish(FinishReason.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            rep.tasks.pop(me, None)  # type: ignore[arg-type]
            rep.fenced.discard(me)  # type: ignore[arg-type]
            self._engine._router.release(replica)
            if not tracker.finished:
                self._put(tracker.finish(FinishReason.CANCELLED))
            elif tracker.tokens:
                self._engine._router.remember(self.request.prompt + tracker.text, replica)
                if self.prompt_ids is not None and tracker.text:
                    self._engine._prompt_tokens().remember(
                        self.request.prompt, self.prompt_ids, tracker.text, tracker.token_ids)

    def _fail_hung(self, i: int, replica: int) -> None:
        """End sample ``i`` with an error now: its replica was fenced as hung."""
        tracker = self.trackers[i]
        if not tracker.finished:
            self._put(tracker.finish(FinishReason.ERROR, f"replica {replica} hung (silent for "
                                     f"{self._engine.settings.replica_stall_s:g} s)"))

    def _put(self, event: SampleEvent) -> None:
        if event.finished:
            self._engine._count(event)
        self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[SampleEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[SampleEvent]:
        self._start()
        try:
            while self._open > 0:
                event = await self._queue.get()
                if event.finished:
                    self._open -= 1
                yield event
        finally:
            if self._open > 0:  # consumer left early (break, cancellation): abort the rest
                self.cancel()

    def cancel(self, index: int | None = None) -> None:
        """Final CANCELLED event now; the sample's task aborts its vLLM request."""
        if index is not None and not 0 <= index < self.request.n:
            raise IndexError(f"sample index {index} out of range for n={self.request.n}")
        for i in range(self.request.n) if index is None else (index,):
            tracker = self.trackers[i]
            if tracker.finished:
                continue
            self._put(tracker.finish(FinishReason.CANCELLED))
            task = self._tasks[i]
            if task is not None and not task.done():
                task.cancel()

    async def aclose(self) -> None:
        """Cancel what is outstanding and wait until vLLM has been told to abort it."""
        self.cancel()
        tasks = [t for t in self._tasks if t is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _cancel_tasks(tasks: list[asyncio.Task[None] | None]) -> None:
    for task in tasks:
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # loop already closed
                task.cancel()


class VLLMEngine(Engine):
    """The protocol on vLLM's ``AsyncLLM``. ``VLLMEngine(model_path, **engine_settings)``."""

    name = "vllm"

    def __init__(self, model_path: str | os.PathLike[str] | None = None,
                 settings: VLLMSettings | None = None, **kwargs: Any) -> None:
        if settings is None:
            if model_path is None:
                raise ValueError("VLLMEngine needs a model path or settings")
            settings = VLLMSettings.from_dict({"model": str(model_path), **kwargs})
        elif kwargs or model_path is not None:
            settings = settings.replace(
                **({"model": str(model_path)} if model_path is not None else {}), **kwargs
            )
        self.settings = settings
        self.startup_s: float | None = None
        """Seconds from ``start()`` to ready; counts against Kaggle's server start-up limit."""
        self.stats = collections.Counter()
        self._replicas: list[_Replica] = []
        self._clients: list[Any] = []
        self._router = ReplicaRouter(settings.n_replicas, settings.affinity_slack)
        self._tokenizer: Any = None
        self._prompts: PromptTokens | None = None
        self._sampling_params: Any = None
        self._delta_kind: Any = None
        self._ids = itertools.count()
        self._prefix = secrets.token_hex(3)
        self._new_client: Callable[[int | None], Any] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        """The hang watchdog and replica restarts under way."""

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every engine process and wait until each has loaded weights and captured graphs."""
        if self._replicas:
            return
        t0 = time.monotonic()
        _vllm_env_defaults()
        from vllm import AsyncEngineArgs, SamplingParams
        from vllm.sampling_params import RequestOutputKind

        try:
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError:  # older releases: the v0 name
            from vllm import AsyncLLMEngine as AsyncLLM

        self._sampling_params = SamplingParams
        self._delta_kind = RequestOutputKind.DELTA
        s = self.settings

        def new_client(replica: int | None) -> Any:
            """One ``AsyncLLM``: a pinned replica, or (None) the whole layout."""
            with _visible_devices(s.visible_devices(replica)):
                return AsyncLLM.from_engine_args(AsyncEngineArgs(**s.engine_kwargs(replica)))

        self._new_client = new_client
        if s.dp_backend == "replicas" and s.data_parallel_size > 1:
            for r in range(s.data_parallel_size):
                client = new_client(r)
                self._clients.append(client)
                self._replicas.append(_Replica(client))
        else:
            client = new_client(None)
            self._clients.append(client)
            dp = s.data_parallel_size if s.dp_backend == "vllm" else 1
            self._replicas = [_Replica(client, r if dp > 1 else None) for r in range(dp)]
        self._router.down.clear()
        if len(self._replicas) > 1:
            self._spawn(self._watch())
        self.startup_s = time.monotonic() - t0

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        clients, self._clients, self._replicas = self._clients, [], []
        for client in clients:
            with contextlib.suppress(Exception):
                client.shutdown()

    # -- replica health ---------------------------------------------------------------------

    def replica_state(self) -> list[dict[str, Any]]:
        """Per replica: samples outstanding, submitted, aborted, hangs, restarts, fenced."""
        return [rep.state(r in self._router.down) for r, rep in enumerate(self._replicas)]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _watch(self) -> None:
        """Every quarter of ``replica_stall_s``: fence the replicas that went silent."""
        stall = self.settings.replica_stall_s
        while self._replicas:
            await asyncio.sleep(stall / 4)
            reps = self._replicas
            for r in stalled_replicas([len(x.tasks) for x in reps],
                                      [x.progress_at for x in reps], time.monotonic(), stall,
                                      self._router.down):
                self.fence(r)

    def fence(self, replica: int) -> None:
        """Treat ``replica`` as hung: fail its samples now, route around it, restart it alone
        where it is a separate engine (``dp_backend="replicas"``)."""
        rep = self._replicas[replica]
        self._router.down.add(replica)
        rep.hangs += 1
        for task, fail in list(rep.tasks.items()):
            rep.fenced.add(task)
            fail()  # the solver hears at once, whatever vLLM's abort of a stopped process does
            task.cancel()
        self.stats["replica_hangs"] += 1
        if self.settings.dp_backend == "replicas" and self._new_client is not None:
            self._spawn(self._restart_replica(replica))

    async def _restart_replica(self, replica: int) -> None:
        """Kill one pinned replica's engine and start it again; the others keep serving."""
        rep = self._replicas[replica]
        old = rep.client
        with contextlib.suppress(Exception):  # a stopped process is killed by vLLM's shutdown
            await asyncio.wait_for(asyncio.to_thread(old.shutdown), timeout=60)
        assert self._new_client is not None
        try:
            client = await asyncio.to_thread(self._new_client, replica)
        except Exception:  # noqa: BLE001 - the replica stays fenced; the others serve on
            self.stats["replica_restart_failed"] += 1
            return
        if rep not in self._replicas:  # the engine was closed meanwhile
            with contextlib.suppress(Exception):
                client.shutdown()
            return
        rep.client = client
        self._clients = [client if c is old else c for c in self._clients]
        rep.restarts += 1
        rep.progress_at = time.monotonic()
        self._router.down.discard(replica)

    # -- protocol ---------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                self.settings.tokenizer or self.settings.model
            )
        return self._tokenizer

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def generate(self, request: GenerationRequest) -> VLLMGeneration:
        if not self._replicas:
            raise RuntimeError("VLLMEngine.generate before start()")
        if request.max_tokens >= self.settings.max_model_len:
            raise ValueError(f"max_tokens {request.max_tokens} >= max_model_len "
                             f"{self.settings.max_model_len}")
        return VLLMGeneration(self, request, f"{self._prefix}-{next(self._ids)}")

    # -- internals --------------------------------------------------------------------------

    def sampling_params(self, request: GenerationRequest, index: int) -> Any:
        kw = {**sampling_kwargs(request, index), **self.settings.sampling_extra}
        return self._sampling_params(**kw, output_kind=self._delta_kind)

    def _prompt_tokens(self) -> PromptTokens:
        """The engine's prompt-id cache, on the model's own tokenizer."""
        if self._prompts is None:
            tok = self.tokenizer
            self._prompts = PromptTokens(
                lambda text: tok.encode(text, add_special_tokens=False),
                lambda ids: tok.decode(ids, skip_special_tokens=False,
                                       clean_up_tokenization_spaces=False),
            )
        return self._prompts

    def _prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a request's prompt: tokenised here once, not by vLLM per sample."""
        if not prompt:
            raise ValueError("empty prompt")
        ids = self._prompt_tokens().ids(prompt)
        if len(ids) >= self.settings.max_model_len:
            raise ValueError(f"prompt of {len(ids)} tokens >= max_model_len "
                             f"{self.settings.max_model_len}")
        return ids

    def _submit(self, request: GenerationRequest, index: int, request_id: str,
                replica: int, prompt_ids: list[int] | None = None) -> AsyncIterator[Any]:
        rep = self._replicas[replica]
        kwargs = {} if rep.dp_rank is None else {"data_parallel_rank": rep.dp_rank}
        self.stats["requests"] += 1
        prompt: Any = request.prompt if prompt_ids is None else {"prompt_token_ids": prompt_ids}
        return rep.client.generate(prompt, self.sampling_params(request, index),
                                   request_id, **kwargs)

    def _count(self, event: SampleEvent) -> None:
        self.stats[f"finish_{event.finish_reason.value if event.finish_reason else 'none'}"] += 1
        self.stats["tokens"] += event.tokens


__all__: Sequence[str] = (
    "PromptTokens", "ReplicaRouter", "SampleTracker", "VLLMEngine", "VLLMGeneration",
    "VLLMSettings", "map_finish_reason", "sample_request_ids", "sample_seeds", "sampling_kwargs",
    "stalled_replicas", "token_stats",
)
