"""FAULT-INJECTION wrapper for tests and benchmarks; it lives outside ``aimo_submit`` so that no
submission ships or imports it.

:class:`FaultyEngine` wraps a real engine (the tiny ``TransformersEngine`` in the tests, the
replay engine in the deadline benchmark) and breaks it on purpose, as described by a list of
:class:`Fault` records, so that the runner's guarantees are exercised against the real stream
machinery rather than a mock: exceptions mid-stream, hangs (polite or deaf to cancellation),
samples that never end, garbage or empty text, out-of-memory errors, slow starts, a blocked event
loop, injected text (hostile code for the sandbox) and start-up failures.

Faults are data: each says what happens, which request it hits (by ``call`` index of
``generate``/``start`` and/or a ``match`` substring of the prompt), which samples, and how
many times it fires. Every fault that fires is appended to ``FaultyEngine.fired`` so a test can
check that what it planned actually happened; every request is kept in ``requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
)

__all__ = ["Fault", "FaultKind", "FaultyEngine", "FaultyGeneration", "hostile_code_text"]


class FaultKind(str, enum.Enum):
    """What goes wrong. Stream faults act on one request; start faults on ``start()``."""

    RAISE = "raise"
    """The stream raises ``RuntimeError`` after ``after_events`` events (or at its end)."""
    OOM = "oom"
    """As RAISE, with an out-of-memory error (``torch.OutOfMemoryError`` when ``torch_oom``,
    else ``RuntimeError('CUDA out of memory...')``)."""
    HANG = "hang"
    """The stream stops yielding after ``after_events`` events and never ends by itself; it
    honours ``cancel`` (cancelled samples get their final event) and ``aclose``."""
    HANG_DEAF = "hang-deaf"
    """As HANG, but ``cancel`` and ``aclose`` are ignored for ``seconds`` (``aclose`` blocks)."""
    BLOCK_LOOP = "block-loop"
    """Blocks the event loop's thread for ``seconds`` (a synchronous call that never yields),
    then carries on normally."""
    ENDLESS = "endless"
    """The chosen samples never finish: filler text keeps coming, past ``max_tokens``, until
    they are cancelled."""
    GARBAGE = "garbage"
    """The chosen samples' text is replaced by digit-free junk (control characters, broken
    LaTeX, replacement characters) of the same length."""
    EMPTY = "empty"
    """The chosen samples' text is dropped: they end normally with no text."""
    INJECT = "inject"
    """The chosen samples say ``texts[i % len(texts)]`` at once and stop (finish STOP), e.g.
    a code block ending in the tool-use stop string so the solver runs it."""
    SLOW_FIRST_EVENT = "slow-first-event"
    """Nothing is yielded for ``seconds`` after the request starts (a first request that
    compiles kernels), then the stream runs normally."""
    SLOW_START = "slow-start"
    """``start()`` takes ``seconds`` longer."""
    START_FAIL = "start-fail"
    """``start()`` raises ``RuntimeError`` before loading anything."""


_CONTROL = {FaultKind.RAISE, FaultKind.OOM, FaultKind.HANG, FaultKind.HANG_DEAF,
            FaultKind.BLOCK_LOOP}
_TEXT = {FaultKind.ENDLESS, FaultKind.GARBAGE, FaultKind.EMPTY, FaultKind.INJECT}
_START = {FaultKind.SLOW_START, FaultKind.START_FAIL}

_JUNK = "\x00\x07\x1b\ufffd\u202e\u200b{}}\\frac{\\boxed{ \\sqrt[ ]^_$$ ???!!! ~~~ \n\t"
_FILLER = " and then we keep going"
_ENDLESS_TOKENS = 8
"""Tokens one filler event of an endless sample claims (it grows past any cap)."""


@dataclass(frozen=True)
class Fault:
    """One planned fault. Unset selectors match everything."""

    kind: FaultKind
    call: int | None = None
    """Index (0-based, over the engine's life) of the ``generate`` or ``start`` call it hits."""
    match: str | None = None
    """Only requests whose prompt contains this text."""
    times: int | None = 1
    """How many requests (or starts) it fires on; None: every matching one."""
    after_events: int = 0
    """Events passed through unharmed before a RAISE/OOM/HANG/BLOCK_LOOP fires."""
    samples: tuple[int, ...] | None = None
    """Sample indices a text fault applies to; None: all of them."""
    seconds: float = 0.0
    """Delay of SLOW_*, duration of BLOCK_LOOP, deafness of HANG_DEAF."""
    texts: tuple[str, ...] = ()
    """What INJECT makes sample ``i`` say: ``texts[i % len(texts)]``."""
    at_generate: bool = False
    """RAISE/OOM: raise from ``generate()`` itself instead of from the stream."""
    as_events: bool = False
    """RAISE/OOM: end the open samples with ERROR events (as a backend that catches its own
    exception does) instead of raising from the iterator."""
    torch_oom: bool = True
    message: str = ""

    def error(self) -> BaseException:
        """The exception a RAISE/OOM fault throws."""
        if self.kind is FaultKind.OOM:
            text = self.message or "CUDA out of memory. Tried to allocate 2.00 GiB (injected)"
            if self.torch_oom:
                import torch

                return torch.OutOfMemoryError(text)
            return RuntimeError(text)
        return RuntimeError(self.message or "injected engine failure")

    def covers(self, index: int) -> bool:
        return self.samples is None or index in self.samples


def _now() -> float:
    """The running loop's clock (virtual in the simulator), else the monotonic clock."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def hostile_code_text(code: str, stop: str = "```output") -> str:
    """What a model says when it asks to run ``code``: a python block, then the stop string."""
    body = code if code.endswith("\n") else code + "\n"
    return f"Let me compute this.\n```python\n{body}```\n{stop}"


class FaultyEngine(Engine):
    """TEST-ONLY fault-injecting wrapper around a real :class:`Engine` (see module docstring)."""

    def __init__(self, inner: Engine, plan: Sequence[Fault] = ()) -> None:
        self.inner = inner
        self.name = f"faulty({inner.name})"
        self.plan = list(plan)
        self._left = {i: f.times for i, f in enumerate(self.plan)}
        self.calls = 0
        self.starts = 0
        self.requests: list[GenerationRequest] = []
        self.fired: list[dict[str, Any]] = []
        """One entry per fault that fired: kind, call index, what it did."""
        self._live: weakref.WeakSet[FaultyGeneration] = weakref.WeakSet()

    # -- selection -----------------------------------------------------------------------------
    def _take(self, kinds: set[FaultKind], call: int, prompt: str | None) -> list[Fault]:
        """Faults of ``kinds`` that fire now (their remaining count goes down by one)."""
        chosen = []
        for i, fault in enumerate(self.plan):
            if fault.kind not in kinds or self._left[i] == 0:
                continue
            if fault.call is not None and fault.call != call:
                continue
            if fault.match is not None and (prompt is None or fault.match not in prompt):
                continue
            if self._left[i] is not None:
                self._left[i] -= 1
            chosen.append(fault)
        return chosen

    def record(self, fault: Fault, call: int, what: str) -> None:
        self.fired.append({"kind": fault.kind.value, "call": call, "what": what,
                           "at": _now()})

    # -- protocol ------------------------------------------------------------------------------
    async def start(self) -> None:
        call = self.starts
        self.starts += 1
        for fault in self._take(_START, call, None):
            if fault.kind is FaultKind.SLOW_START:
                self.record(fault, call, f"start delayed {fault.seconds:g} s")
                await asyncio.sleep(fault.seconds)
            else:
                self.record(fault, call, "start failed")
                raise RuntimeError(fault.message or "injected start failure")
        await self.inner.start()

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        return self.inner.format_prompt(messages)

    def generate(self, request: GenerationRequest) -> Generation:
        call = self.calls
        self.calls += 1
        self.requests.append(request)
        faults = self._take(_CONTROL | _TEXT | {FaultKind.SLOW_FIRST_EVENT}, call,
                            request.prompt)
        control = next((f for f in faults if f.kind in _CONTROL), None)
        if control is not None and control.at_generate:
            self.record(control, call, f"generate() raised {type(control.error()).__name__}")
            raise control.error()
        inner = self.inner.generate(request)
        if not faults:
            return inner
        gen = FaultyGeneration(self, inner, request, faults, call)
        self._live.add(gen)
        return gen

    async def close(self) -> None:
        """Release every faulty stream (a restart kills whatever hung), then the engine."""
        for gen in list(self._live):
            gen.release()
        await self.inner.close()


class FaultyGeneration(Generation):
    """A real generation whose stream is altered by the faults chosen for its request."""

    def __init__(self, engine: FaultyEngine, inner: Generation, request: GenerationRequest,
                 faults: list[Fault], call: int) -> None:
        self.request = request
        self.engine = engine
        self.inner = inner
        self.call = call
        self.control = next((f for f in faults if f.kind in _CONTROL), None)
        self.delay = sum(f.seconds for f in faults if f.kind is FaultKind.SLOW_FIRST_EVENT)
        for f in faults:
            if f.kind is FaultKind.SLOW_FIRST_EVENT:
                engine.record(f, call, f"first event delayed {f.seconds:g} s")
        self.text_fault: dict[int, Fault] = {}
        for i in range(request.n):
            hit = next((f for f in faults if f.kind in _TEXT and f.covers(i)), None)
            if hit is not None:
                self.text_fault[i] = hit
        for f in {id(f): f for f in self.text_fault.values()}.values():
            affected = [i for i, g in self.text_fault.items() if g is f]
            engine.record(f, call, f"{f.kind.value} on samples {affected}")
        self.rng = random.Random(call)
        self.finished: set[int] = set()
        self.queued: set[int] = set()
        """Samples whose final event waits in ``oob``."""
        self.cancelled: set[int] = set()
        self.tokens = [0] * request.n
        self.injected: set[int] = set()
        self.oob: deque[SampleEvent] = deque()
        self.wake = asyncio.Event()
        self.hanging = False
        self.deaf_until = 0.0
        self.released = False
        self.inner_done = False

    # -- consumer side -------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[SampleEvent]:
        return self._events()

    def cancel(self, index: int | None = None) -> None:
        indices = range(self.request.n) if index is None else [index]
        self.cancelled.update(indices)
        if self._deaf():
            return  # ignored now; applied when the deafness ends
        self._apply_cancels()

    async def aclose(self) -> None:
        self.cancel()
        wait = self.deaf_until - _now()
        if self._deaf() and wait > 0:
            await asyncio.sleep(wait)  # a backend that will not let go
        self._apply_cancels()
        await self.inner.aclose()

    def release(self) -> None:
        """The engine is being closed: every stream ends now, deaf or not."""
        self.released = True
        self.deaf_until = 0.0
        self.cancelled.update(range(self.request.n))
        self._apply_cancels()

    # -- internals -----------------------------------------------------------------------------
    def _deaf(self) -> bool:
        return self.hanging and _now() < self.deaf_until

    def _apply_cancels(self) -> None:
        """Forward cancellations; samples the wrapper owns get their final event from here."""
        owned = self.hanging or self.released
        for i in sorted(self.cancelled - self.finished - self.queued):
            if owned or i in self.injected or self._is_endless_tail(i):
                self.oob.append(SampleEvent(i, "", self.tokens[i], True, FinishReason.CANCELLED))
                self.queued.add(i)
            with contextlib.suppress(Exception):
                self.inner.cancel(i)
        self.wake.set()

    def _is_endless_tail(self, i: int) -> bool:
        fault = self.text_fault.get(i)
        return fault is not None and fault.kind is FaultKind.ENDLESS and self.inner_done

    def _emit(self, event: SampleEvent) -> SampleEvent:
        if event.finished:
            self.finished.add(event.index)
        self.tokens[event.index] = max(self.tokens[event.index], event.tokens)
        return event

    def _all_done(self) -> bool:
        return not self.oob and len(self.finished) >= self.request.n

    def _transform(self, ev: SampleEvent) -> list[SampleEvent]:
        """Apply the sample's text fault to one inner event."""
        i = ev.index
        if i in self.finished:
            return []
        fault = self.text_fault.get(i)
        if fault is None:
            return [ev]
        kind = fault.kind
        if kind is FaultKind.INJECT:
            if i in self.injected:
                return []
            self.injected.add(i)
            text = fault.texts[i % len(fault.texts)] if fault.texts else ""
            with contextlib.suppress(Exception):
                self.inner.cancel(i)
            tokens = max(1, len(text) // 4)
            return [SampleEvent(i, text, tokens, True, FinishReason.STOP)]
        if kind is FaultKind.EMPTY:
            return [SampleEvent(i, "", ev.tokens, ev.finished, ev.finish_reason, ev.error)]
        if kind is FaultKind.GARBAGE:
            junk = "".join(self.rng.choice(_JUNK) for _ in range(len(ev.delta)))
            return [SampleEvent(i, junk, ev.tokens, ev.finished, ev.finish_reason, ev.error)]
        # ENDLESS: filler instead of the model's text; its end is swallowed unless cancelled
        delta = _FILLER if ev.delta else ""
        if ev.finished and i not in self.cancelled:
            return [SampleEvent(i, delta, ev.tokens)]
        return [SampleEvent(i, delta, ev.tokens, ev.finished, ev.finish_reason, ev.error)]

    async def _fire_control(self) -> list[SampleEvent]:
        """Fire the control fault; returns final events to yield (ERROR events), if any."""
        fault = self.control
        assert fault is not None
        self.control = None
        kind = fault.kind
        if kind is FaultKind.BLOCK_LOOP:
            self.engine.record(fault, self.call, f"event loop blocked {fault.seconds:g} s")
            time.sleep(fault.seconds)  # deliberately blocks the loop's thread
            return []
        if kind in (FaultKind.RAISE, FaultKind.OOM):
            error = fault.error()
            with contextlib.suppress(Exception):
                self.inner.cancel()
            if fault.as_events:
                self.engine.record(fault, self.call, f"samples ended with {type(error).__name__}")
                message = f"{type(error).__name__}: {error}"
                return [SampleEvent(i, "", self.tokens[i], True, FinishReason.ERROR, message)
                        for i in range(self.request.n) if i not in self.finished]
            self.engine.record(fault, self.call, f"stream raised {type(error).__name__}")
            raise error
        # HANG / HANG_DEAF: the wrapper takes the samples over and goes silent
        self.engine.record(fault, self.call, f"{kind.value} after {fault.after_events} events")
        self.hanging = True
        with contextlib.suppress(Exception):
            self.inner.cancel()  # a hung engine computes nothing more for this request
        if kind is FaultKind.HANG_DEAF and not self.released:
            self.deaf_until = _now() + fault.seconds
        else:
            self._apply_cancels()
        return []

    async def _events(self) -> AsyncIterator[SampleEvent]:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        passed = 0
        it = self.inner.__aiter__()
        while True:
            if self.control is not None and passed >= self.control.after_events:
                for ev in await self._fire_control():
                    yield self._emit(ev)
            if self.hanging:
                break
            while self.oob:
                yield self._emit(self.oob.popleft())
            if self._all_done():
                return
            try:
                ev = await it.__anext__()
            except StopAsyncIteration:
                self.inner_done = True
                if self.control is not None:  # the stream ended first: the fault fires now
                    passed = self.control.after_events
                    continue
                break
            for out in self._transform(ev):
                yield self._emit(out)
            passed += 1
        if self.hanging:
            async for ev in self._hang():
                yield ev
            return
        async for ev in self._endless_tail():
            yield ev

    async def _hang(self) -> AsyncIterator[SampleEvent]:
        """Silence; only cancellation (once heard) produces the samples' final events."""
        while not self._all_done():
            while self.oob:
                yield self._emit(self.oob.popleft())
            if self._all_done():
                return
            self.wake.clear()
            deaf_left = self.deaf_until - _now()
            if deaf_left > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), deaf_left)
                if not self._deaf():
                    self._apply_cancels()
            else:
                await self.wake.wait()

    async def _endless_tail(self) -> AsyncIterator[SampleEvent]:
        """After the real stream ended, endless samples keep talking until cancelled."""
        self._apply_cancels()
        interval = 0.01
        while True:
            while self.oob:
                yield self._emit(self.oob.popleft())
            open_ = [i for i in range(self.request.n) if i not in self.finished | self.queued]
            if not open_:
                return
            for i in open_:
                self.tokens[i] += _ENDLESS_TOKENS
                yield self._emit(SampleEvent(i, _FILLER, self.tokens[i]))
            self.wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), interval)
