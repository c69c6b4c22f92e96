"""GPU facts and decode-throughput models: the one place the simulator learns how fast a machine is.

A *setup* is a machine (GPU kind x count, tensor/data parallel layout) serving one model shape.
Its throughput model answers one question: while ``c`` sequences decode with a mean context of
``L`` tokens, how many tokens per second does each of them get? Two models answer it:

* :class:`RooflineThroughput` (always available): decode is memory-bound, so a step streams the
  weights the step touches (all of a dense model; for a mixture of experts the dense part plus
  the experts the batch routes to) and the resident KV cache once, at ``bandwidth x efficiency``;
  or takes the matmul time if larger; plus a fixed per-step overhead and, under tensor
  parallelism over PCIe, an all-reduce cost. A replica whose sequences' KV cache exceeds its
  free memory runs only the part that fits (vLLM preempts the rest).
* :class:`MeasuredThroughput`: a table of tokens/s per sequence measured on an H200 over
  concurrency (1..64) AND context (1k..32k), interpolated bilinearly, read from
  ``bench/results/throughput/h200_<model>.json`` (:func:`load_throughput`), and carried to the
  competition machine by :class:`ScaledThroughput` with these stated rules:

  - **H200 -> H100 80 GB**: decode time per step scales with memory bandwidth, so every step
    takes ``4.8 / 3.35`` times as long (H200 4.8 TB/s HBM3e, H100 SXM 3.35 TB/s HBM3).
  - **H200 -> L4**: a step takes ``4.8 / 0.3`` times as long on one L4 (300 GB/s GDDR6); with
    tensor parallel 4 the four L4s stream a quarter of the bytes each (``4.8 / 1.2``) and pay
    the all-reduce of :data:`PCIE_ALLREDUCE_S` per step (no NVLink); with data parallel 4 each
    L4 runs a quarter of the sequences. The L4's 24 GB bounds the KV cache: the table's speed
    applies to the sequences that fit, the rest wait (the same rule as the roofline).

  The bandwidth rule scales the fixed per-step overhead too (it is CPU time, not memory time),
  so a scaled table is slightly pessimistic at low concurrency; the roofline is the check.

GPU numbers are datasheet values; model shapes come from each model's ``config.json``; the
efficiencies and overheads are assumptions, stated where they are defined. The replay engine
(``engines/replay.py``) and the simulator read only this module.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "GPUS",
    "HARDWARE_PRESETS",
    "MODELS",
    "SETUPS",
    "GPUSpec",
    "HardwareThroughput",
    "MeasuredThroughput",
    "ModelShape",
    "RooflineThroughput",
    "ScaledThroughput",
    "Setup",
    "ThroughputModel",
    "hardware_for_trace",
    "load_throughput",
    "throughput_for",
]

TABLES_DIR = Path(__file__).resolve().parents[1] / "bench" / "results" / "throughput"
"""Where measured H200 tables live (``h200_<model>.json``), as data the simulator reads."""
PCIE_ALLREDUCE_S = 0.003
"""Per decode step cost of tensor-parallel all-reduce over PCIe (L4s have no NVLink). Assumed."""


# -- facts ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GPUSpec:
    name: str
    memory_gb: float
    bandwidth_tbs: float
    peak_tflops: float
    """Dense 16-bit tensor throughput."""


GPUS: dict[str, GPUSpec] = {
    # Datasheets: NVIDIA H200 (141 GB HBM3e, 4.8 TB/s), H100 SXM (80 GB HBM3, 3.35 TB/s,
    # 989 TFLOPS dense BF16), L4 (24 GB GDDR6, 300 GB/s, 121 TFLOPS dense FP16).
    "h200": GPUSpec("H200", 141.0, 4.8, 989.0),
    "h100": GPUSpec("H100 80 GB", 80.0, 3.35, 989.0),
    "l4": GPUSpec("L4", 24.0, 0.3, 121.0),
}


@dataclass(frozen=True)
class ModelShape:
    """What decode reads per step: dense weights, experts, KV cache (from ``config.json``)."""

    name: str
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    weight_gb: float
    """Weights resident in memory (all experts included)."""
    dense_read_gb: float
    """Weights every step reads whatever the batch (all of a dense model)."""
    active_params_b: float
    """Parameters used per token (for the compute bound)."""
    kv_dtype_bytes: int = 2
    full_attention_layers: int | None = None
    """Layers attending to the whole context (None: all); the others use a sliding window."""
    sliding_window: int = 0
    experts: int = 0
    experts_per_token: int = 0
    expert_gb: float = 0.0
    """Bytes of one expert in one layer (GB)."""
    table: str = ""
    """Name of its measured table (``h200_<table>.json``); empty: the model's name."""

    @property
    def kv_bytes_per_token(self) -> float:
        """KV bytes one more context token costs (full-attention layers only)."""
        full = self.layers if self.full_attention_layers is None else self.full_attention_layers
        return 2.0 * full * self.kv_heads * self.head_dim * self.kv_dtype_bytes

    def window_kv_bytes(self) -> float:
        """KV bytes of the sliding-window layers of one sequence (a constant per sequence)."""
        if self.full_attention_layers is None:
            return 0.0
        windowed = self.layers - self.full_attention_layers
        return 2.0 * windowed * self.kv_heads * self.head_dim * self.kv_dtype_bytes * (
            self.sliding_window)

    def step_weight_gb(self, batch: float) -> float:
        """Weights one decode step reads for ``batch`` sequences: a batch touches more experts."""
        if not self.experts:
            return self.dense_read_gb
        touched = self.experts * (1.0 - (1.0 - self.experts_per_token / self.experts) ** batch)
        return self.dense_read_gb + self.layers * touched * self.expert_gb


MODELS: dict[str, ModelShape] = {
    # DeepSeek-R1-Distill-Qwen-14B config.json: 48 layers, hidden 5120, 8 KV heads of 128;
    # 14.8B parameters, about 9.5 GB as 4-bit AWQ with fp16 embeddings (the manifest's
    # kv_cache_dtype "auto" = fp16 KV).
    "deepseek-r1-distill-qwen-14b-awq": ModelShape(
        "deepseek-r1-distill-qwen-14b-awq", layers=48, hidden=5120, kv_heads=8, head_dim=128,
        weight_gb=9.5, dense_read_gb=9.5, active_params_b=14.8, table="r1-distill-qwen-14b"),
    # gpt-oss-120b config.json: 36 layers alternating sliding-window (128) and full attention,
    # hidden 2880, 8 KV heads of 64, 128 experts (4 per token) of 3 x 2880 x 2880 MXFP4 weights
    # (4.25 bits: 13.2 MB per expert and layer); attention, router and unembedding in BF16
    # (about 3.1 GB read per step); 5.1B active parameters; about 65 GB resident. KV cache in
    # FP8, as weights_manifest.json configures it (kv_cache_dtype fp8_e4m3).
    "gpt-oss-120b": ModelShape(
        "gpt-oss-120b", layers=36, hidden=2880, kv_heads=8, head_dim=64, weight_gb=65.0,
        dense_read_gb=3.1, active_params_b=5.1, full_attention_layers=18, sliding_window=128,
        experts=128, experts_per_token=4, expert_gb=0.0132, kv_dtype_bytes=1),
    # gpt-oss-20b config.json: 24 layers (12 full attention), 32 experts (4 per token) of the
    # same size, 3.6B active parameters, about 13 GB resident.
    "gpt-oss-20b": ModelShape(
        "gpt-oss-20b", layers=24, hidden=2880, kv_heads=8, head_dim=64, weight_gb=13.0,
        dense_read_gb=2.4, active_params_b=3.6, full_attention_layers=12, sliding_window=128,
        experts=32, experts_per_token=4, expert_gb=0.0132),
}


@dataclass(frozen=True)
class Setup:
    """A machine layout serving one model."""

    name: str
    gpu: str
    gpus: int
    tensor_parallel: int
    model: str
    memory_utilization: float = 0.92
    activation_reserve_gb: float = 1.5
    bandwidth_efficiency: float = 0.7
    """Achievable share of datasheet bandwidth in decode. Assumed."""
    compute_efficiency: float = 0.5
    """Achievable share of peak tensor throughput. Assumed."""
    step_overhead_s: float = 0.003
    """Per-step sampling, scheduling and launch time. Assumed."""

    @property
    def spec(self) -> GPUSpec:
        return GPUS[self.gpu]

    @property
    def shape(self) -> ModelShape:
        return MODELS[self.model]

    @property
    def replicas(self) -> int:
        return max(1, self.gpus // self.tensor_parallel)

    @property
    def kv_capacity_tokens(self) -> float:
        """Context tokens one replica's KV cache holds (its memory minus weights and reserve)."""
        tp = self.tensor_parallel
        free_gb = (self.spec.memory_gb * self.memory_utilization - self.activation_reserve_gb
                   - self.shape.weight_gb / tp) * tp
        return max(0.0, free_gb * 1e9 / self.shape.kv_bytes_per_token)

    def resident(self, concurrency: float, mean_context: float) -> tuple[float, float]:
        """(sequences per replica, share of them whose KV cache fits and so decodes)."""
        per_replica = max(1.0, concurrency / self.replicas)
        window = self.shape.window_kv_bytes() / self.shape.kv_bytes_per_token
        demand = per_replica * (max(1.0, mean_context) + window)
        return per_replica, min(1.0, self.kv_capacity_tokens / demand)

    def describe(self) -> str:
        layout = (f"TP={self.tensor_parallel}" if self.replicas == 1
                  else f"TP={self.tensor_parallel}, {self.replicas} replicas")
        return (f"{self.name}: {self.gpus}x {self.spec.name} ({self.spec.memory_gb:.0f} GB, "
                f"{self.spec.bandwidth_tbs * 1000:.0f} GB/s), {layout}, {self.model} "
                f"({self.shape.weight_gb:g} GB weights, "
                f"{self.shape.kv_bytes_per_token / 1024:.0f} KiB KV/token, "
                f"{self.kv_capacity_tokens / 1000:.0f}k KV tokens per replica)")


SETUPS: dict[str, Setup] = {
    # What weights_manifest.json configures for the AIMO2 model: one copy split over 4 L4s.
    "l4x4-tp4": Setup("l4x4-tp4", "l4", 4, 4, "deepseek-r1-distill-qwen-14b-awq"),
    # The alternative layout: one AWQ copy per L4, 4 data-parallel replicas.
    "l4x4-dp4": Setup("l4x4-dp4", "l4", 4, 1, "deepseek-r1-distill-qwen-14b-awq"),
    # AIMO3: one H100 80 GB serving gpt-oss-120b (or the 20b model of some holdout traces).
    # (memory utilisation as the manifest's gpt-oss-120b entry: 0.96)
    "h100-gpt-oss-120b": Setup("h100-gpt-oss-120b", "h100", 1, 1, "gpt-oss-120b",
                               memory_utilization=0.96, step_overhead_s=0.002),
    "h100-gpt-oss-20b": Setup("h100-gpt-oss-20b", "h100", 1, 1, "gpt-oss-20b",
                              step_overhead_s=0.002),
}


# -- throughput models -----------------------------------------------------------------------------
class ThroughputModel(Protocol):
    """Decode speed of one sequence (tokens/s) while ``concurrency`` sequences run."""

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class RooflineThroughput:
    """The roofline decode model of a :class:`Setup` (see the module docstring)."""

    setup: Setup

    @property
    def name(self) -> str:
        return self.setup.name

    @property
    def replicas(self) -> int:
        return self.setup.replicas

    @property
    def kv_capacity_tokens(self) -> float:
        return self.setup.kv_capacity_tokens

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float:
        s, m = self.setup, self.setup.shape
        per_replica, share = s.resident(concurrency, mean_context)
        batch = per_replica * share
        tp = s.tensor_parallel
        kv = batch * (max(1.0, mean_context) * m.kv_bytes_per_token + m.window_kv_bytes())
        step_bytes = (m.step_weight_gb(batch) * 1e9 + kv) / tp
        t_mem = step_bytes / (s.spec.bandwidth_tbs * 1e12 * s.bandwidth_efficiency)
        t_compute = batch * 2 * m.active_params_b * 1e9 / tp / (
            s.spec.peak_tflops * 1e12 * s.compute_efficiency)
        step = max(t_mem, t_compute) + s.step_overhead_s + (PCIE_ALLREDUCE_S if tp > 1 else 0.0)
        return share / step

    def describe(self) -> str:
        return f"roofline model (no measured table) of {self.setup.describe()}"


HardwareThroughput = RooflineThroughput
"""The name the replay engine used before this module existed."""


@dataclass(frozen=True)
class MeasuredThroughput:
    """A measured table of tokens/s per sequence over concurrency (and context), interpolated.

    ``rows`` are ``(concurrency, context, tokens/s per sequence)``; a table measured at one
    context (the older 1-D format ``(concurrency, speed)``) ignores context. Between grid points
    the speed is interpolated bilinearly; below the first concurrency the first speed holds,
    beyond the last the last row's *aggregate* speed is shared by more sequences; outside the
    measured contexts the nearest context holds below, and above the step time (1/speed) is
    extrapolated linearly in context, since KV reads grow linearly with it. ``scale``
    multiplies every speed.
    """

    rows: tuple[tuple[float, ...], ...]
    scale: float = 1.0
    source: str = ""
    _grid: dict[float, tuple[tuple[float, ...], tuple[float, ...]]] = field(
        default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError("a throughput table needs at least one row")
        rows = tuple(tuple(float(x) for x in (r if len(r) == 3 else (r[0], 0.0, r[1])))
                     for r in self.rows)
        if any(c <= 0 or t <= 0 or ctx < 0 for c, ctx, t in rows):
            raise ValueError("throughput rows need positive concurrency and speed")
        object.__setattr__(self, "rows", tuple(sorted(rows)))
        by_ctx: dict[float, list[tuple[float, float]]] = {}
        for c, ctx, t in self.rows:
            by_ctx.setdefault(ctx, []).append((c, t))
        for ctx, pts in by_ctx.items():
            self._grid[ctx] = (tuple(p[0] for p in pts), tuple(p[1] for p in pts))

    @property
    def contexts(self) -> list[float]:
        return sorted(self._grid)

    def _at_context(self, ctx: float, c: float) -> float:
        xs, ts = self._grid[ctx]
        if c <= xs[0]:
            return ts[0]
        if c >= xs[-1]:
            return ts[-1] * xs[-1] / c
        i = bisect.bisect_right(xs, c)
        c0, c1, t0, t1 = xs[i - 1], xs[i], ts[i - 1], ts[i]
        return t0 + (t1 - t0) * (c - c0) / (c1 - c0)

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float:
        c = max(1.0, float(concurrency))
        ctxs = self.contexts
        if len(ctxs) == 1:
            return self._at_context(ctxs[0], c) * self.scale
        x = float(mean_context)
        if x <= ctxs[0]:  # shorter contexts than measured: hold the nearest (conservative)
            speed = self._at_context(ctxs[0], c)
        elif x <= ctxs[-1]:
            i = bisect.bisect_left(ctxs, x)
            x0, x1 = ctxs[i - 1], ctxs[i]
            w = (x - x0) / (x1 - x0)
            speed = (1 - w) * self._at_context(x0, c) + w * self._at_context(x1, c)
        else:  # longer: the step time grows linearly in context (KV reads), from the last two
            x0, x1 = ctxs[-2], ctxs[-1]
            s0, s1 = 1.0 / self._at_context(x0, c), 1.0 / self._at_context(x1, c)
            speed = 1.0 / max(s1, s1 + (s1 - s0) * (x - x1) / (x1 - x0))
        return speed * self.scale

    def describe(self) -> str:
        ctx = (f"contexts {', '.join(f'{x / 1000:g}k' for x in self.contexts)}"
               if len(self.contexts) > 1 else "one context")
        conc = sorted({r[0] for r in self.rows})
        return (f"measured table {self.source or ''} (x{self.scale:g}; concurrency "
                f"{conc[0]:g}..{conc[-1]:g}, {ctx})")


@dataclass(frozen=True)
class ScaledThroughput:
    """A table measured on one H200 (one model copy), carried to a :class:`Setup`."""

    table: MeasuredThroughput
    setup: Setup
    measured_on: str = "h200"

    @property
    def name(self) -> str:
        return self.setup.name

    @property
    def step_factor(self) -> float:
        """How much longer a step takes on the setup's tensor-parallel group than measured."""
        group_bw = self.setup.spec.bandwidth_tbs * self.setup.tensor_parallel
        return GPUS[self.measured_on].bandwidth_tbs / group_bw

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float:
        per_replica, share = self.setup.resident(concurrency, mean_context)
        batch = max(1.0, per_replica * share)
        step = self.step_factor / self.table.tokens_per_s(math.ceil(batch), mean_context)
        if self.setup.tensor_parallel > 1:
            step += PCIE_ALLREDUCE_S
        return share / step

    def describe(self) -> str:
        return (f"{self.table.describe()} measured on {GPUS[self.measured_on].name}, "
                f"scaled to {self.setup.describe()}: steps x{self.step_factor:.2f} "
                "(bandwidth ratio)")


HARDWARE_PRESETS: dict[str, RooflineThroughput] = {
    name: RooflineThroughput(setup) for name, setup in SETUPS.items()}
"""The roofline model of every setup (what the simulator uses where no table was measured)."""


# -- tables as data --------------------------------------------------------------------------------
_CONC_KEYS = ("concurrency", "num_seqs", "batch", "n", "max_num_seqs")
_CTX_KEYS = ("context", "context_tokens", "mean_context")
_SPEED_KEYS = ("tokens_per_s_per_seq", "per_seq_tokens_per_s", "tokens_per_s_per_sequence")
_AGG_KEYS = ("aggregate_tokens_per_s", "total_tokens_per_s", "output_tokens_per_s")


def _pick(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((record[k] for k in keys if record.get(k) not in (None, "")), None)


def _row(record: dict[str, Any]) -> tuple[float, ...] | None:
    conc = _pick(record, _CONC_KEYS)
    if conc is None:
        return None
    c = float(conc)
    ctx = _pick(record, _CTX_KEYS)
    speed = _pick(record, _SPEED_KEYS)
    if speed is None:
        agg = _pick(record, _AGG_KEYS)
        if agg is None:
            return None
        speed = float(agg) / c
    return (c, float(speed)) if ctx is None else (c, float(ctx), float(speed))


def load_throughput(path: str | Path, scale: float | None = None) -> MeasuredThroughput:
    """Read a measured table (JSON or CSV).

    The measuring benchmark's JSON: ``{"device", "model", "shape", "layers_measured",
    "layers_full", "layer_scale", "quantization", "kv_cache_dtype", "command", "date",
    "rows": [{"concurrency", "context", "tokens_per_s_per_seq", "first_token_ms"}, ...]}``,
    speeds already scaled to the full layer count. Also accepted: rows as ``[concurrency,
    speed]`` pairs, aggregate speeds (``aggregate_tokens_per_s``, divided by concurrency), a
    bare list, or a CSV with those column names. ``scale`` overrides the file's ``scale``.
    """
    p = Path(path)
    file_scale = 1.0
    rows: list[tuple[float, ...]] = []
    if p.suffix.lower() == ".json":
        data = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            file_scale = float(data.get("scale", 1.0))
            data = data.get("rows", data.get("results", []))
        for item in data:
            if isinstance(item, (list, tuple)) and len(item) >= 2:
                rows.append(tuple(float(x) for x in item[:3]))
            elif isinstance(item, dict) and (row := _row(item)) is not None:
                rows.append(row)
    else:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = [row for record in csv.DictReader(fh) if (row := _row(record)) is not None]
    if not rows:
        raise ValueError(f"{p}: no (concurrency, tokens/s) rows found")
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"{p}: rows mix tables with and without a context column")
    return MeasuredThroughput(tuple(rows), scale if scale is not None else file_scale, str(p))


def table_for(model: str, tables_dir: str | Path | None = None) -> Path | None:
    """The measured H200 table of ``model`` (``h200_<model>*.json``), if one was delivered."""
    folder = Path(tables_dir) if tables_dir is not None else TABLES_DIR
    hits = sorted(folder.glob(f"h200_{model}*.json")) if folder.is_dir() else []
    return hits[0] if hits else None


def throughput_for(name: str, tables_dir: str | Path | None = None) -> ThroughputModel:
    """The best model of setup ``name``: its measured H200 table scaled, else the roofline."""
    try:
        setup = SETUPS[name]
    except KeyError:
        raise KeyError(f"unknown hardware {name!r}; known: {sorted(SETUPS)}") from None
    path = table_for(setup.shape.table or setup.model, tables_dir)
    if path is None:
        return HARDWARE_PRESETS[name]
    return ScaledThroughput(load_throughput(path), setup)


_TRACE_HARDWARE = (("gpt-oss-120b", "h100-gpt-oss-120b"), ("gpt-oss-20b", "h100-gpt-oss-20b"))
"""Trace model prefixes whose recordings ran on a known machine: the gpt-oss traces come from
AIMO3 set-ups (one H100 80 GB, per the traces' README and the AIMO3 rules)."""


def hardware_for_trace(model: str | None, profile_default: str) -> str:
    """The setup a trace file was recorded on where known, else the profile's hardware."""
    text = (model or "").lower()
    for prefix, setup in _TRACE_HARDWARE:
        if text.startswith(prefix):
            return setup
    return profile_default
