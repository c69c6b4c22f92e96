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
samples join after ``request_latency_s`` (prefill). See :class:`HardwareThroughput` for the
default model and :class:`MeasuredThroughput` / :func:`load_throughput` for measured tables.
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
)
from aimo_submit.traces import TraceProblem, TraceSample

__all__ = [
    "HARDWARE_PRESETS",
    "HardwareThroughput",
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


# -- throughput models -------------------------------------------------------------------------
class ThroughputModel(Protocol):
    """Decode speed of one sequence (tokens/s) while ``concurrency`` sequences run."""

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class HardwareThroughput:
    """Roofline decode model of the competition machine (default: 4x L4, one model per GPU).

    Decode is memory-bound: every step each GPU streams its share of the weights once plus the
    KV cache of the sequences it runs, so a step takes ``bytes / (bandwidth * efficiency)``
    (or the matmul time, if larger) plus a fixed overhead; each sequence gains one token per
    step. ``gpus / tensor_parallel`` replicas share the sequences evenly. When the KV cache of
    a replica's sequences exceeds its free memory, only the part that fits runs (vLLM preempts
    the rest), so per-sequence speed drops by that fraction.

    Sources: L4 datasheet (24 GB GDDR6, 300 GB/s, 121 TFLOPS dense FP16 tensor);
    DeepSeek-R1-Distill-Qwen-14B config.json (48 layers, 8 KV heads of 128: 2*48*8*128*2 bytes
    = 192 KiB of fp16 KV per token; 14.8B parameters). Assumed: 9.5 GB of 4-bit AWQ weights
    read per step, 70 % achievable bandwidth, 50 % matmul efficiency, 3 ms of per-step
    overhead (sampling, scheduling, launches), 1.5 GB activation reserve, 3 ms per step of
    all-reduce over PCIe when ``tensor_parallel > 1`` (no NVLink on L4).
    """

    gpus: int = 4
    tensor_parallel: int = 1
    gpu_memory_gb: float = 24.0
    memory_utilization: float = 0.92
    bandwidth_gbs: float = 300.0
    bandwidth_efficiency: float = 0.7
    weight_gb: float = 9.5
    kv_bytes_per_token: float = 2 * 48 * 8 * 128 * 2
    activation_reserve_gb: float = 1.5
    peak_tflops: float = 121.0
    compute_efficiency: float = 0.5
    flops_per_token: float = 2 * 14.8e9
    step_overhead_s: float = 0.003
    allreduce_s: float = 0.003
    name: str = "l4x4-dp4"

    @property
    def replicas(self) -> int:
        return max(1, self.gpus // self.tensor_parallel)

    @property
    def kv_capacity_tokens(self) -> float:
        """KV tokens one replica can hold (its GPUs' memory minus weights and reserve)."""
        free_gb = (self.gpu_memory_gb * self.memory_utilization - self.activation_reserve_gb
                   - self.weight_gb / self.tensor_parallel) * self.tensor_parallel
        return max(0.0, free_gb * 1e9 / self.kv_bytes_per_token)

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float:
        per_replica = max(1.0, concurrency / self.replicas)
        demand = per_replica * max(1.0, mean_context)
        resident = per_replica * min(1.0, self.kv_capacity_tokens / demand)
        tp = self.tensor_parallel
        step_bytes = (self.weight_gb * 1e9 + resident * mean_context * self.kv_bytes_per_token) / tp
        t_mem = step_bytes / (self.bandwidth_gbs * 1e9 * self.bandwidth_efficiency)
        t_compute = resident * self.flops_per_token / tp / (
            self.peak_tflops * 1e12 * self.compute_efficiency)
        step = max(t_mem, t_compute) + self.step_overhead_s + (self.allreduce_s if tp > 1 else 0)
        return (resident / per_replica) / step

    def describe(self) -> str:
        return (f"{self.name}: {self.gpus}x {self.gpu_memory_gb:.0f} GB at "
                f"{self.bandwidth_gbs:.0f} GB/s, TP={self.tensor_parallel} "
                f"({self.replicas} replicas), weights {self.weight_gb} GB, "
                f"KV {self.kv_bytes_per_token / 1024:.0f} KiB/token, "
                f"{self.kv_capacity_tokens / 1000:.0f}k KV tokens per replica")


HARDWARE_PRESETS: dict[str, HardwareThroughput] = {
    # The default: one AWQ copy per L4, 4 data-parallel replicas.
    "l4x4-dp4": HardwareThroughput(),
    # What weights_manifest.json configures for vLLM: one copy split over 4 GPUs.
    "l4x4-tp4": HardwareThroughput(tensor_parallel=4, name="l4x4-tp4"),
}


@dataclass(frozen=True)
class MeasuredThroughput:
    """A measured table of (concurrency, tokens/s per sequence), linearly interpolated.

    Below the first row the first speed holds; beyond the last row the *aggregate* speed of
    the last row holds (more sequences share it). ``scale`` converts a table measured on other
    hardware (e.g. an H100 -> L4: roughly the bandwidth ratio 300/3350). Context is ignored:
    the table is whatever mix of contexts the measurement ran.
    """

    rows: tuple[tuple[float, float], ...]
    scale: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError("a throughput table needs at least one row")
        if any(c <= 0 or t <= 0 for c, t in self.rows):
            raise ValueError("throughput rows must have positive concurrency and speed")
        object.__setattr__(self, "rows", tuple(sorted((float(c), float(t)) for c, t in self.rows)))

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float:
        c = max(1.0, float(concurrency))
        xs = [r[0] for r in self.rows]
        if c <= xs[0]:
            speed = self.rows[0][1]
        elif c >= xs[-1]:
            speed = self.rows[-1][1] * xs[-1] / c
        else:
            i = bisect.bisect_right(xs, c)
            (c0, t0), (c1, t1) = self.rows[i - 1], self.rows[i]
            speed = t0 + (t1 - t0) * (c - c0) / (c1 - c0)
        return speed * self.scale

    def describe(self) -> str:
        pts = ", ".join(f"{c:g}:{t:g}" for c, t in self.rows)
        return f"measured {self.source or 'table'} (x{self.scale:g}): {pts}"


_CONC_KEYS = ("concurrency", "num_seqs", "batch", "n", "max_num_seqs")
_SPEED_KEYS = ("tokens_per_s_per_seq", "per_seq_tokens_per_s", "tokens_per_s_per_sequence")
_AGG_KEYS = ("aggregate_tokens_per_s", "total_tokens_per_s", "output_tokens_per_s")


def _row(record: dict) -> tuple[float, float] | None:
    conc = next((record[k] for k in _CONC_KEYS if record.get(k) not in (None, "")), None)
    if conc is None:
        return None
    c = float(conc)
    speed = next((record[k] for k in _SPEED_KEYS if record.get(k) not in (None, "")), None)
    if speed is not None:
        return c, float(speed)
    agg = next((record[k] for k in _AGG_KEYS if record.get(k) not in (None, "")), None)
    return (c, float(agg) / c) if agg is not None else None


def load_throughput(path: str | Path, scale: float | None = None) -> MeasuredThroughput:
    """Read a measured table from JSON or CSV.

    JSON: ``{"rows": [...], "scale": 1.0}`` or a bare list; rows are ``[concurrency, speed]``
    pairs or objects. CSV: a header row. Column/key names: concurrency (``concurrency``,
    ``num_seqs``, ``batch``) and either per-sequence speed (``tokens_per_s_per_seq``) or
    aggregate speed (``aggregate_tokens_per_s``, ``total_tokens_per_s``), divided by
    concurrency. ``scale`` overrides the file's own.
    """
    p = Path(path)
    file_scale = 1.0
    rows: list[tuple[float, float]] = []
    if p.suffix.lower() == ".json":
        data = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            file_scale = float(data.get("scale", 1.0))
            data = data.get("rows", data.get("results", []))
        for item in data:
            if isinstance(item, (list, tuple)) and len(item) >= 2:
                rows.append((float(item[0]), float(item[1])))
            elif isinstance(item, dict) and (row := _row(item)) is not None:
                rows.append(row)
    else:
        with p.open(newline="", encoding="utf-8") as fh:
            for record in csv.DictReader(fh):
                if (row := _row(record)) is not None:
                    rows.append(row)
    if not rows:
        raise ValueError(f"{p}: no (concurrency, tokens/s) rows found")
    return MeasuredThroughput(tuple(rows), scale if scale is not None else file_scale, str(p))


# -- the engine --------------------------------------------------------------------------------
_EPS = 1e-6
_FILLER = "."


class _Seq:
    """One sample being decoded."""

    __slots__ = ("boundary", "final_text", "gen", "index", "progress", "reason", "state", "target")

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
    marker of :func:`problem_text`. Each request takes the problem's next ``n`` samples from
    its pool (wrapping around), so every policy sees the same samples in the same order.
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
        self.busy_s = 0.0
        """Clock seconds during which at least one sequence was decoding."""

    # -- protocol ---------------------------------------------------------------------------------
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
        start = self._cursor.get(problem.id, 0)
        self._cursor[problem.id] = start + request.n
        pool = problem.samples
        for i in range(request.n):
            gen.seqs.append(self._make_seq(gen, i, pool[(start + i) % len(pool)], request))
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
            return _Seq(gen, i, max(1, sample.tokens), FinishReason.STOP, box, self.chunk_tokens)
        target = max(1, min(sample.tokens, limit))
        return _Seq(gen, i, target, FinishReason.LENGTH, "", self.chunk_tokens)

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
                seq.gen._push(SampleEvent(seq.index, "", int(seq.progress)))
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
                seq.gen._push(SampleEvent(seq.index, _FILLER, stop))
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
        seq.gen._push(SampleEvent(seq.index, delta, tokens, finished=True, finish_reason=reason))

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
