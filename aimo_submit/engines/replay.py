"""Replay engine: a FAKE of the GPU's timing that streams recorded samples on the loop's clock.

This engine is a simulation stand-in for the GPU engine's *timing only*: what each sample says
(its length, its final answer, whether it finished) comes from a trace (``traces.py``), and when
its tokens arrive comes from a throughput model of the competition hardware. Run on the
virtual-clock loop of ``simclock.py`` it lets the unchanged solver and scheduler play a whole
5-hour competition in well under a second; on a real loop it runs in real time.

Protocol semantics (``engines/base.py``): every sample ends with exactly one final event
(``STOP`` when the trace ended within ``max_tokens``, with ``\\boxed{answer}`` at the end of its
text; ``LENGTH`` and no answer when the trace is longer than ``max_tokens`` or never finished;
``CANCELLED`` with the tokens generated so far when cancelled). Stop strings are irrelevant:
the trace already says where the sample ends. Text is filler plus the final box, emitted as
one event per ``chunk_tokens`` tokens so simulations stay fast; token counts are exact.

Timing: all running sequences (of every generation) decode in lockstep at the per-sequence
speed the throughput model gives for the current concurrency and mean context; the speed is
re-evaluated whenever a sequence joins or leaves and at every chunk boundary. A request's
samples join after ``request_latency_s`` (prefill). The throughput models live in
``hardware.py`` (roofline and measured tables). ``start`` takes ``load_s`` (the model load,
again on every restart) and ``close`` ends every stream, as a real engine's shutdown does.

Honest replay: within one problem a recorded sample is used at most once. A request for more
samples than the problem's pool has left gets the rest of the pool; each sample beyond it ends
at once, CANCELLED with 0 tokens and no answer (it never decodes, so it neither votes nor slows
the others). A policy asking 32 samples of an 8-sample pool is therefore simulated as the
8-sample policy it can honestly be: duplicated samples would be counted as independent votes.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable

from aimo_submit.confidence import ConfidenceBlocks
from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
    TokenStats,
)
from aimo_submit.hardware import (  # re-exported: they lived here before hardware.py
    HARDWARE_PRESETS,
    MeasuredThroughput,
    ThroughputModel,
    load_throughput,
)
from aimo_submit.traces import TraceProblem, TraceSample

__all__ = [
    "HARDWARE_PRESETS",
    "MeasuredThroughput",
    "ReplayEngine",
    "ThroughputModel",
    "load_throughput",
    "problem_text",
]

_MARKER = re.compile(r"\[trace:([^\]\s]+)\]")


def problem_text(problem: TraceProblem | str) -> str:
    """The statement to hand the solver: it carries the marker the engine finds in the prompt."""
    pid = problem if isinstance(problem, str) else problem.id
    return f"Replayed problem {pid}. [trace:{pid}]"


# -- the engine --------------------------------------------------------------------------------
_EPS = 1e-6
_FILLER = "."


class _Seq:
    """One sample being decoded."""

    __slots__ = ("boundary", "conf", "final_text", "gen", "index", "progress", "reason", "sent",
                 "state", "target")

    def __init__(self, gen: ReplayGeneration, index: int, target: int, reason: FinishReason,
                 final_text: str, chunk: int) -> None:
        self.gen = gen
        self.index = index
        self.target = target
        self.reason = reason
        self.final_text = final_text
        self.progress = 0.0
        self.boundary = min(chunk, target)
        self.state = "pending"  # pending (prefill) -> running -> done
        self.conf: ConfidenceBlocks | None = None
        """The trace's recorded confidence series, streamed when the request asks for
        log-probabilities (issue 16); None: events carry no token statistics."""
        self.sent = 0
        """Tokens whose statistics have been sent."""

    def event(self, delta: str, tokens: int, reason: FinishReason | None = None) -> SampleEvent:
        """The next event up to ``tokens``, with the recorded statistics of its new tokens."""
        stats = None
        if self.conf is not None and tokens > self.sent:
            conf = self.conf.values("topk", self.sent, tokens)
            logp = self.conf.values("logprob", self.sent, tokens)
            if conf and len(conf) == len(logp):
                stats = TokenStats(conf, logp)
            self.sent = tokens
        return SampleEvent(self.index, delta, tokens, finished=reason is not None,
                           finish_reason=reason, stats=stats)


class ReplayGeneration(Generation):
    """Events of one request's samples, in the order the decoder produces them."""

    def __init__(self, engine: ReplayEngine, request: GenerationRequest) -> None:
        self.engine = engine
        self.request = request
        self.seqs: list[_Seq] = []
        self._events: deque[SampleEvent] = deque()
        self._open = request.n
        self._waiter: asyncio.Future[None] | None = None

    def _push(self, event: SampleEvent) -> None:
        self._events.append(event)
        if event.finished:
            self._open -= 1
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[SampleEvent]:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        while True:
            while self._events:
                yield self._events.popleft()
            if self._open <= 0:
                return
            self._waiter = loop.create_future()
            await self._waiter
            self._waiter = None

    def cancel(self, index: int | None = None) -> None:
        targets = self.seqs if index is None else [self.seqs[index]]
        for seq in targets:
            self.engine._cancel(seq)

    async def aclose(self) -> None:
        self.cancel()


class ReplayEngine(Engine):
    """FAKE GPU engine for simulations: replays trace samples with modelled timing.

    ``problems`` are the pools to draw from; a request's prompt names its problem through the
    marker of :func:`problem_text`. Each request takes the problem's next ``n`` unused samples
    (never one twice: see the module docstring), so every policy sees the same samples in the
    same order; ``unavailable`` counts the samples asked for beyond a pool.
    """

    name = "replay"

    def __init__(
        self,
        problems: Iterable[TraceProblem],
        throughput: ThroughputModel | None = None,
        *,
        chunk_tokens: int = 256,
        prompt_tokens: int = 300,
        request_latency_s: float = 0.5,
        heartbeat_s: float | None = 30.0,
        load_s: float = 0.0,
    ) -> None:
        if chunk_tokens < 1:
            raise ValueError("chunk_tokens must be >= 1")
        if heartbeat_s is not None and heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be > 0 (or None: off)")
        self.problems = {p.id: p for p in problems}
        self.throughput: ThroughputModel = throughput or HARDWARE_PRESETS["l4x4-dp4"]
        self.chunk_tokens = chunk_tokens
        self.prompt_tokens = prompt_tokens
        self.request_latency_s = request_latency_s
        self.load_s = load_s
        self._live: list[ReplayGeneration] = []
        self.heartbeat_s = heartbeat_s
        """A real engine streams every decode step; chunks of ``chunk_tokens`` on a slowed
        machine can be minutes apart, which the solver's stall detector would take for a hang.
        So running samples report their progress (empty text) at least this often."""
        self._last_emit = 0.0
        self._cursor: dict[str, int] = {}
        self._running: list[_Seq] = []
        self._rate = 0.0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generated_tokens = 0
        """Tokens decoded so far across all samples (cancelled ones included)."""
        self.unavailable = 0
        """Samples requested beyond a problem's pool (ended at once, no tokens, no answer)."""
        self.busy_s = 0.0
        """Clock seconds during which at least one sequence was decoding."""

    # -- protocol ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.sleep(self.load_s)

    async def close(self) -> None:
        for gen in self._live:
            gen.cancel()
        self._live.clear()

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(m["content"] for m in messages)

    def generate(self, request: GenerationRequest) -> ReplayGeneration:
        match = _MARKER.search(request.prompt)
        if match is None or match.group(1) not in self.problems:
            raise KeyError("prompt names no known trace problem (use replay.problem_text)")
        problem = self.problems[match.group(1)]
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._last, self._running = loop, loop.time(), []
        gen = ReplayGeneration(self, request)
        self._live = [g for g in self._live if g._open > 0]
        self._live.append(gen)
        pool = problem.samples
        start = self._cursor.get(problem.id, 0)
        fresh = max(0, min(request.n, len(pool) - start))
        self._cursor[problem.id] = start + fresh
        for i in range(fresh):
            gen.seqs.append(self._make_seq(gen, i, pool[start + i], request))
        for i in range(fresh, request.n):  # beyond the pool: no recorded sample to replay
            seq = _Seq(gen, i, 1, FinishReason.CANCELLED, "", self.chunk_tokens)
            gen.seqs.append(seq)
            self.unavailable += 1
            self._finish(seq, FinishReason.CANCELLED, 0, "")
        loop.call_later(self.request_latency_s, self._join, gen)
        return gen

    def reset(self) -> None:
        """Rewind every problem's pool to its first sample."""
        self._cursor.clear()

    # -- decoding ---------------------------------------------------------------------------------
    def _make_seq(self, gen: ReplayGeneration, i: int, sample: TraceSample,
                  request: GenerationRequest) -> _Seq:
        limit = request.max_tokens
        if sample.finished and sample.tokens <= limit:
            box = "" if sample.answer_text is None else f"\n\\boxed{{{sample.answer_text}}}"
            seq = _Seq(gen, i, max(1, sample.tokens), FinishReason.STOP, box, self.chunk_tokens)
        else:
            target = max(1, min(sample.tokens, limit))
            seq = _Seq(gen, i, target, FinishReason.LENGTH, "", self.chunk_tokens)
        if request.logprobs > 0:
            seq.conf = sample.confidence
        return seq

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _sync(self, now: float) -> None:
        """Advance every running sequence to ``now`` at the current speed."""
        dt = now - self._last
        if dt > 0 and self._running:
            self.busy_s += dt
            step = self._rate * dt
            for seq in self._running:
                seq.progress = min(float(seq.target), seq.progress + step)
        self._last = now

    def _plan(self) -> None:
        """Re-evaluate the speed and set the timer for the next chunk boundary."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._running:
            return
        n = len(self._running)
        context = self.prompt_tokens + sum(s.progress for s in self._running) / n
        self._rate = max(1e-9, self.throughput.tokens_per_s(n, context))
        gap = min(min(s.boundary, s.target) - s.progress for s in self._running)
        assert self._loop is not None
        at = self._last + max(0.0, gap) / self._rate
        if self.heartbeat_s is not None:
            at = min(at, max(self._last, self._last_emit + self.heartbeat_s))
        self._timer = self._loop.call_at(at, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self._now()
        self._sync(now)
        if self.heartbeat_s is not None and now + _EPS >= self._last_emit + self.heartbeat_s:
            for seq in self._running:
                seq.gen._push(seq.event("", int(seq.progress)))
            self._last_emit = now
        still: list[_Seq] = []
        for seq in self._running:
            stop = min(seq.boundary, seq.target)
            if seq.progress + _EPS < stop:
                still.append(seq)
                continue
            seq.progress = float(stop)
            if stop >= seq.target:
                self._finish(seq, seq.reason, seq.target, _FILLER + seq.final_text)
            else:
                seq.gen._push(seq.event(_FILLER, stop))
                self._last_emit = self._last
                seq.boundary = min(seq.boundary + self.chunk_tokens, seq.target)
                still.append(seq)
        self._running = still
        self._plan()

    def _join(self, gen: ReplayGeneration) -> None:
        pending = [s for s in gen.seqs if s.state == "pending"]
        if not pending:
            return
        self._sync(self._now())
        if not self._running:
            self._last_emit = self._last
        for seq in pending:
            seq.state = "running"
        self._running.extend(pending)
        self._plan()

    def _finish(self, seq: _Seq, reason: FinishReason, tokens: int, delta: str) -> None:
        seq.state = "done"
        self.generated_tokens += tokens
        seq.gen._push(seq.event(delta, tokens, reason))

    def _cancel(self, seq: _Seq) -> None:
        if seq.state == "done":
            return
        if seq.state == "pending":
            self._finish(seq, FinishReason.CANCELLED, 0, "")
            return
        self._sync(self._now())
        self._running.remove(seq)
        self._finish(seq, FinishReason.CANCELLED, int(seq.progress), "")
        self._plan()
