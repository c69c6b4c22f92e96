"""GPU facts, model shapes, memory and decode throughput: the one hardware model.

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
  competition machine by :class:`ScaledThroughput` with one of two stated rules
  (:data:`SCALING_RULES`).

  **split** (the default). A measured step is the time its bytes take plus a remainder. The
  bytes are what :func:`step_bytes` says the step reads per GPU: the weights touched, streamed
  at :data:`WEIGHT_STREAM_EFFICIENCY` of the datasheet bandwidth (0.566, measured by a width
  sweep on the H200), and the resident KV, at :data:`STREAM_EFFICIENCY` (0.886, fitted from
  the 14B table's one-sequence rows over context). The remainder is what does not stream
  memory: kernel launches and their latency chains, sampling, scheduling. On the target GPU
  the bytes part is carried by the ratio of bytes per GPU (tensor parallelism splits them;
  the setup's KV dtype) and of bandwidths, at the same efficiencies; the remainder by the
  ratio of SMs x boost clock (H200 132 x 1.98 GHz; H100 the same die, factor 1.00; L4 58 x
  2.04 GHz, factor 2.21, which also covers a host CPU up to 2.2x slower than the H200's); the
  step is at least the target's matmul time; tensor parallelism over PCIe adds
  :data:`PCIE_ALLREDUCE_S`. Where a row is faster than its modelled bytes allow (shared-prefix
  KV served from L2, dummy MoE weights touching fewer experts than uniform routing), its whole
  step counts as bytes, so the split rule is never more pessimistic than the old one and never
  faster than the bytes alone. The L4's 24 GB bounds the KV cache: the table's speed applies
  to the sequences that fit, the rest wait (the same rule as the roofline).

  Why, and the checks: the 14B AWQ table at one sequence runs 149.6 tok/s, 6.7 ms a step, of
  which its 10 GB of weights take 3.7 ms at the swept efficiency; 3.0 ms remain, which is what
  the width sweep measured independently as its fixed cost (3.0 ms, the intercept over three
  widths of one layer count: two measurements, one split). The old rule multiplied all 6.7 ms
  by 4.8/1.2 = 4 for 4x L4 at TP 4 (26.7 ms + 3 ms all-reduce: 33.6 tok/s); the split rule
  gives 14.9 + 6.6 + 3 = 24.4 ms (41 tok/s); the roofline, 55 tok/s. At 8 sequences and 8k
  context: 30 tok/s (old 27, roofline 30). Gpt-oss-120b on the H100 at one sequence: 194
  tok/s (old 160). Two judgements remain: the remainder factor is a datasheet ratio, not a
  measurement on an L4; and the L4 is assumed to stream weights at the H200's small-batch
  efficiency, although its 16x lower bandwidth needs 16x fewer bytes in flight (if it streamed
  at the KV efficiency instead, 45 tok/s). No public 4x L4 vLLM decode number for this model
  was found to check against (the nearest public facts are of other models and GPUs: a 31B
  AWQ model at TP 4 over PCIe on 4x RTX 3090, 936 GB/s each, decodes one stream at 77-81
  tok/s, 12-13 ms a step where its bytes take about 5 by our estimate: a remainder of several
  ms there too, ollama.linkworksinc.com/posts/vllm-tp4-3090-benchmark). Our own H100 run says
  the remainder belongs to the kernels, not to every step: the same 14B shape with fp8
  weights decoded 139 tok/s at one sequence (bench/results/vllm_h100.md), 7.2 ms for 16.3 GB.
  The policy tables show the curves under both rules.

  **bandwidth** (the earlier rule, a sensitivity check): every measured step takes ``4.8 /
  3.35`` times as long on the H100 and ``4.8 / 0.3`` on one L4 (``4.8 / 1.2`` for the four
  L4s of TP 4, which stream a quarter of the bytes each, plus the all-reduce); with data
  parallel each L4 runs its share of the sequences. It scales the remainder by the bandwidth
  ratio too, so at low concurrency it is about 1.35x pessimistic on 4x L4 at TP 4 and 2.2x on
  one L4.

  A table measured in the setup's own layout on 4 H200s (``h200x4_<model>_<layout>.json``,
  layout ``tp4``, ``dp4`` or ``tp2dp2``, written by ``bench/layouts.py``) is preferred for
  the 4x L4 setups, looked up at the machine's concurrency (its rows count every sequence of
  the layout); the NVLink all-reduce inside its steps is carried as remainder (pessimistic)
  and the PCIe all-reduce is added. The width sweep (``h200_width_sweep.json``: one layer
  count, several widths; ``bench_hardware widths``) measures the weight-stream efficiency and
  the fixed cost directly (:func:`width_sweep_efficiency`).
  ``describe()`` says which model and rule run.

Memory (:func:`memory_plan`, :meth:`Setup.memory_plan`): what vLLM has for KV cache per GPU is
``reported memory x gpu_memory_utilization - weights/TP - reserve`` (:data:`RESERVE_BYTES`);
a token's KV is ``2 x full-attention layers x KV heads x head_dim x bytes`` (split over TP).
The configuration is the manifest's (``weights_manifest.json``: TP, DP, utilization, KV dtype);
this module only computes from it (``SETUPS``). For the AIMO2 entry (14B AWQ, fp16 KV,
utilization 0.92, ``max_model_len`` 18432) on 4x L4 with TP 4: 2.32 GiB of weights and 16.37
GiB of KV a GPU, 357,628 tokens, 19 full-length samples at once; one L4 alone (DP) holds
51,336 tokens, 2 full-length samples. For gpt-oss-120b on the H100 (fp8 KV, utilization 0.96):
13.9 GiB of KV, 811k tokens (only its 18 full-attention layers grow with context). Checked
against vLLM on the H100 (bench/results/vllm_h100.md): the plan is about 5% optimistic.

GPU numbers are datasheet values (memory as the driver reports it); model shapes come from each
model's ``config.json``; the efficiencies and overheads are assumptions, stated where they are
defined. The replay engine (``engines/replay.py``), the simulator, the vLLM benchmark and the
tests read only this module.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aimo_submit.engines.vllm_settings import VLLMSettings

__all__ = [
    "DEFAULT_SCALING",
    "GIB",
    "GPUS",
    "HARDWARE_PRESETS",
    "KV_BYTES",
    "L4_BYTES",
    "MIB",
    "MODELS",
    "QWEN25_14B",
    "RESERVE_BYTES",
    "SCALING_RULES",
    "SETUPS",
    "STREAM_EFFICIENCY",
    "WEIGHT_FORMATS",
    "WEIGHT_STREAM_EFFICIENCY",
    "GPUSpec",
    "MeasuredThroughput",
    "MemoryPlan",
    "ModelShape",
    "RooflineThroughput",
    "ScaledThroughput",
    "Setup",
    "ThroughputModel",
    "WeightFormat",
    "fit_bandwidth",
    "hardware_for_trace",
    "kv_bytes",
    "kv_bytes_per_token",
    "layout_name",
    "layout_table_for",
    "layout_table_name",
    "load_throughput",
    "memory_plan",
    "model_shape_from_config",
    "step_bytes",
    "table_for",
    "table_name",
    "throughput_for",
    "weight_bytes",
    "width_sweep_efficiency",
]

TABLES_DIR = Path(__file__).resolve().parents[1] / "bench" / "results" / "throughput"
"""Where measured H200 tables live (``h200_<model>.json``), as data the simulator reads."""
LAYOUT_TABLE_GPUS = 4
"""The per-layout tables are measured on a machine of this many GPUs (Kaggle's 4x L4)."""
PCIE_ALLREDUCE_S = 0.003
"""Per decode step cost of tensor-parallel all-reduce over PCIe (L4s have no NVLink). Assumed:
two all-reduces a layer (after attention and after the MLP), 96 a step for the 48-layer 14B,
of a few KiB each, so latency-bound at about 30 us each over PCIe."""
STREAM_EFFICIENCY = 0.886
"""Share of datasheet bandwidth at which a decode step streams its KV cache, measured: the
concurrency-1 rows of ``h200_r1-distill-qwen-14b.json`` grow 1.46 ms from 1k to 32k context
while the KV read grows 6.2 GB, a fitted 4.25 TB/s of the H200's 4.8 (:func:`fit_bandwidth`;
a test recomputes it from the table). Assumed the same share on the H100 and the L4."""
WEIGHT_STREAM_EFFICIENCY = 0.566
"""Share of datasheet bandwidth at which a one-sequence decode step streams its weights,
measured by the width sweep ``h200_width_sweep.json`` (48 layers, AWQ, hidden 2560/5120/7680 at
concurrency 1): step time grows with the weight bytes :meth:`ModelShape.step_weight_gb` counts
at 2.72 TB/s of 4.8, above a 3.0 ms fixed cost (:func:`width_sweep_efficiency`; a test
recomputes both from the file). Small-batch 4-bit kernels keep too few bytes in flight to
saturate HBM3e. Assumed the same share on the H100 and the L4: pessimistic for the L4, whose
16x lower bandwidth needs 16x fewer bytes in flight."""
SCALING_RULES = ("split", "bandwidth")
"""How :class:`ScaledThroughput` carries a measured step to another GPU: ``split`` (the
default: bandwidth part by bytes, the remainder by SMs x clock) or ``bandwidth`` (the earlier
rule, kept as a sensitivity check: the whole step by the bandwidth ratio)."""
DEFAULT_SCALING = SCALING_RULES[0]
"""The rule used unless one is named (the simulator's ``--scaling``, the policy tables)."""


# -- facts ---------------------------------------------------------------------------------------
GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class GPUSpec:
    name: str
    memory_bytes: int
    """Total memory as the driver reports it (what vLLM's ``gpu_memory_utilization`` takes a
    share of), not the marketing size."""
    bandwidth_tbs: float
    peak_tflops: float
    """Dense 16-bit tensor throughput."""
    sms: int
    """Streaming multiprocessors."""
    boost_clock_ghz: float
    """Datasheet boost clock."""

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    @property
    def sm_ghz(self) -> float:
        """SMs x boost clock: how fast the GPU runs work that is not waiting on memory
        (kernel launch chains, sampling, dequantization ALU work) when it fills the GPU."""
        return self.sms * self.boost_clock_ghz


GPUS: dict[str, GPUSpec] = {
    # Datasheets: NVIDIA H200 (141 GB HBM3e, 4.8 TB/s), H100 SXM (80 GB HBM3, 3.35 TB/s,
    # 989 TFLOPS dense BF16), L4 (24 GB GDDR6, 300 GB/s, 121 TFLOPS dense FP16). Memory as
    # reported: L4 23,034 MiB; H100 81,559 MiB (bench/results/vllm_h100.md); H200 143,771 MiB.
    # SMs and boost clock: H100 SXM5 and H200 are both the GH100 die with 132 SMs at 1,980
    # MHz; the L4 is AD104 with 58 SMs (7,424 CUDA cores) at 2,040 MHz boost (795 MHz base,
    # 72 W: under a sustained load it may hold less than boost).
    "h200": GPUSpec("H200", 143771 * MIB, 4.8, 989.0, sms=132, boost_clock_ghz=1.98),
    "h100": GPUSpec("H100 80 GB", 81559 * MIB, 3.35, 989.0, sms=132, boost_clock_ghz=1.98),
    "l4": GPUSpec("L4", 23034 * MIB, 0.3, 121.0, sms=58, boost_clock_ghz=2.04),
}
L4_BYTES = GPUS["l4"].memory_bytes
"""What an NVIDIA L4 (sold as 24 GB) reports as total memory."""


@dataclass(frozen=True)
class WeightFormat:
    """How linear weights are stored: ``bits`` a weight plus per-group scale/zero overhead."""

    bits: float
    group_size: int = 0
    """Weights sharing one scale (and zero point); 0 for per-channel/per-tensor scales."""
    scale_bits: int = 16
    zero_bits: int = 0
    embedding_bits: int = 16

    @property
    def bits_per_weight(self) -> float:
        if not self.group_size:
            return float(self.bits)
        return self.bits + (self.scale_bits + self.zero_bits) / self.group_size


WEIGHT_FORMATS: dict[str, WeightFormat] = {
    "awq": WeightFormat(bits=4, group_size=128, scale_bits=16, zero_bits=4),
    "gptq": WeightFormat(bits=4, group_size=128, scale_bits=16, zero_bits=4),
    "fp8": WeightFormat(bits=8),
    "bf16": WeightFormat(bits=16),
    "fp16": WeightFormat(bits=16),
}
KV_BYTES = {"auto": 2, "fp16": 2, "bf16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
"""Bytes of one K or V element per vLLM ``kv_cache_dtype`` ("auto": the model's 16-bit dtype)."""


@dataclass(frozen=True)
class ModelShape:
    """What memory and decode depend on (from ``config.json``): layers, attention, weights.

    ``heads``, ``vocab`` and ``intermediate`` give the parameter count of a dense model (Qwen2 /
    Llama family: GQA attention, gated MLP), from which :func:`weight_bytes` computes the
    weights of a quantization format; the mixture-of-experts shapes state their weights.
    """

    name: str
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    weight_gb: float = 0.0
    """Weights resident in memory (all experts included); 0: compute from a format."""
    dense_read_gb: float = 0.0
    """Weights every step reads whatever the batch (all of a dense model)."""
    active_params_b: float = 0.0
    """Parameters used per token (for the compute bound)."""
    heads: int = 0
    vocab: int = 0
    intermediate: int = 0
    tie_embeddings: bool = False
    qkv_bias: bool = True
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
    def linear_params(self) -> int:
        """Parameters of the quantizable projections (attention q/k/v/o and the MLP)."""
        q = self.hidden * self.heads * self.head_dim
        kv = 2 * self.hidden * self.kv_heads * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        return self.layers * (q + kv + o + mlp)

    @property
    def embedding_params(self) -> int:
        """Input embedding plus lm_head (one matrix when tied); quantizers leave them fp16."""
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    @property
    def small_params(self) -> int:
        """Norms and biases: kept in 16 bits, a rounding error next to the rest."""
        norms = (2 * self.layers + 1) * self.hidden
        bias = (self.heads + 2 * self.kv_heads) * self.head_dim if self.qkv_bias else 0
        return norms + self.layers * bias

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params + self.small_params

    def kv_bytes_per_token(self, kv_dtype: str = "auto", tensor_parallel: int = 1) -> int:
        """K and V of one more context token on one GPU (full-attention layers only; KV heads
        are split over tensor parallel, or replicated when fewer than its size)."""
        full = self.layers if self.full_attention_layers is None else self.full_attention_layers
        heads = max(1, self.kv_heads // tensor_parallel)
        return 2 * full * heads * self.head_dim * kv_bytes(kv_dtype)

    def window_kv_bytes(self, kv_dtype: str = "auto") -> float:
        """KV bytes of the sliding-window layers of one sequence (a constant per sequence)."""
        if self.full_attention_layers is None:
            return 0.0
        windowed = self.layers - self.full_attention_layers
        return 2.0 * windowed * self.kv_heads * self.head_dim * kv_bytes(kv_dtype) * (
            self.sliding_window)

    def step_weight_gb(self, batch: float) -> float:
        """Weights one decode step reads for ``batch`` sequences: a batch touches more experts."""
        if not self.experts:
            return self.dense_read_gb
        touched = self.experts * (1.0 - (1.0 - self.experts_per_token / self.experts) ** batch)
        return self.dense_read_gb + self.layers * touched * self.expert_gb


def kv_bytes(kv_dtype: str) -> int:
    try:
        return KV_BYTES[kv_dtype]
    except KeyError:
        raise ValueError(f"unknown kv dtype {kv_dtype!r}; known: {sorted(KV_BYTES)}") from None


def weight_bytes(shape: ModelShape, fmt: WeightFormat | str | None = None,
                 tensor_parallel: int = 1) -> int:
    """Bytes of weights on each GPU; vLLM shards linear layers and the vocabulary over TP.

    ``fmt`` None: the shape's stated ``weight_gb`` (split evenly)."""
    if fmt is None:
        return int(shape.weight_gb * 1e9 / tensor_parallel)
    if isinstance(fmt, str):
        fmt = WEIGHT_FORMATS[fmt]
    linear = shape.linear_params * fmt.bits_per_weight / 8
    embed = shape.embedding_params * fmt.embedding_bits / 8
    return int((linear + embed) / tensor_parallel + shape.small_params * 2)


def kv_bytes_per_token(shape: ModelShape, kv_dtype: str = "auto", tensor_parallel: int = 1) -> int:
    """K and V of every full-attention layer for one token on one GPU."""
    return shape.kv_bytes_per_token(kv_dtype, tensor_parallel)


def step_bytes(shape: ModelShape, batch: float, mean_context: float, kv_dtype: str = "auto",
               tensor_parallel: int = 1, *, weights_only: bool = False) -> float:
    """Bytes each GPU of a tensor-parallel group reads in one decode step of ``batch``
    sequences: the weights the step touches and every sequence's resident KV cache
    (``weights_only``: the weights alone)."""
    if weights_only:
        return shape.step_weight_gb(batch) * 1e9 / tensor_parallel
    kv = batch * (max(1.0, mean_context) * shape.kv_bytes_per_token(kv_dtype)
                  + shape.window_kv_bytes(kv_dtype))
    return (shape.step_weight_gb(batch) * 1e9 + kv) / tensor_parallel


def fit_bandwidth(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """``(fixed seconds, bytes per second)`` of the least-squares line ``step = fixed +
    bytes / bandwidth`` through ``(bytes read, step seconds)`` points that differ only in the
    bytes read (one concurrency over contexts, or one layer count over widths)."""
    if len(points) < 2:
        raise ValueError("fitting a bandwidth needs at least two points")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        raise ValueError("the points must differ in bytes read")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if slope <= 0:
        raise ValueError("step time does not grow with bytes read: no bandwidth to fit")
    return my - slope * mx, 1.0 / slope


RESERVE_BYTES = 2 * GIB
"""Per GPU, outside weights and KV: the activation peak of a prefill chunk, CUDA graphs and
non-torch memory (measured on the H100 with vLLM 0.26: 1.5 GiB activations at 2048 batched
tokens, 0.22 GiB non-torch, 0.24 GiB CUDA graphs)."""


@dataclass(frozen=True)
class MemoryPlan:
    """Per-GPU memory budget of one engine (for tensor parallel: of each of its GPUs)."""

    weight_bytes: int
    kv_bytes_per_token: int
    kv_budget_bytes: int
    max_kv_tokens: int
    tensor_parallel: int = 1

    def max_sequences(self, seq_len: int) -> int:
        """Sequences of ``seq_len`` tokens (prompt + generated) whose KV fits at once."""
        if seq_len < 1:
            raise ValueError("seq_len must be >= 1")
        return self.max_kv_tokens // seq_len

    def summary(self) -> str:
        return (
            f"weights {self.weight_bytes / GIB:.2f} GiB/GPU,"
            f" KV {self.kv_bytes_per_token / 1024:.0f} KiB/token/GPU,"
            f" KV budget {self.kv_budget_bytes / GIB:.2f} GiB/GPU,"
            f" {self.max_kv_tokens:,} tokens (TP {self.tensor_parallel})"
        )


def memory_plan(
    shape: ModelShape,
    fmt: WeightFormat | str | None = None,
    *,
    gpu_bytes: int = L4_BYTES,
    utilization: float = 0.92,
    reserve_bytes: int = RESERVE_BYTES,
    kv_dtype: str = "auto",
    tensor_parallel: int = 1,
) -> MemoryPlan:
    """What vLLM will have for KV cache: ``gpu x utilization - weights - reserve``.

    vLLM measures the reserve at start-up and logs the real KV size ("GPU KV cache size"),
    which is the number to trust once it exists: on the H100 the plan was about 5% optimistic
    (bench/results/vllm_h100.md: 88,720 predicted, 84,000 allocated).
    """
    if not 0 < utilization <= 1:
        raise ValueError("utilization must be in (0, 1]")
    if tensor_parallel < 1:
        raise ValueError("tensor_parallel must be >= 1")
    w = weight_bytes(shape, fmt, tensor_parallel)
    per_token = kv_bytes_per_token(shape, kv_dtype, tensor_parallel)
    budget = max(0, int(gpu_bytes * utilization) - w - reserve_bytes)
    return MemoryPlan(w, per_token, budget, budget // per_token, tensor_parallel)


def model_shape_from_config(path: str | Path) -> ModelShape:
    """``ModelShape`` of a dense model from its Hugging Face ``config.json`` (file or folder)."""
    p = Path(path)
    cfg = json.loads((p / "config.json" if p.is_dir() else p).read_text())
    heads = cfg["num_attention_heads"]
    return ModelShape(
        name=str(cfg.get("_name_or_path") or (p if p.is_dir() else p.parent).name),
        layers=cfg["num_hidden_layers"],
        hidden=cfg["hidden_size"],
        heads=heads,
        kv_heads=cfg.get("num_key_value_heads", heads),
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
        vocab=cfg["vocab_size"],
        intermediate=cfg["intermediate_size"],
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )


QWEN25_14B = ModelShape(
    "qwen2.5-14b", layers=48, hidden=5120, kv_heads=8, head_dim=128, heads=40, vocab=152064,
    intermediate=13824, active_params_b=14.8)
"""Qwen2.5-14B, the shape of DeepSeek-R1-Distill-Qwen-14B (14.77 B parameters)."""


def _quantized(shape: ModelShape, name: str, fmt: str) -> ModelShape:
    """``shape`` with its weights computed for ``fmt`` (all of them read every step)."""
    gb = weight_bytes(shape, fmt) / 1e9
    return dataclasses.replace(shape, name=name, weight_gb=gb, dense_read_gb=gb)


MODELS: dict[str, ModelShape] = {
    # DeepSeek-R1-Distill-Qwen-14B as 4-bit AWQ (group 128, fp16 scales + 4-bit zeros = 4.156
    # bits a weight; embeddings and lm_head stay fp16): 9.98 GB (9.29 GiB).
    # Its measured H200 table is named after the bench config: h200_r1-distill-qwen-14b.json.
    "deepseek-r1-distill-qwen-14b-awq": dataclasses.replace(_quantized(
        QWEN25_14B, "deepseek-r1-distill-qwen-14b-awq", "awq"), table="r1-distill-qwen-14b"),
    # gpt-oss-120b config.json: 36 layers alternating sliding-window (128) and full attention,
    # hidden 2880, 8 KV heads of 64, 128 experts (4 per token) of 3 x 2880 x 2880 MXFP4 weights
    # (4.25 bits: 13.2 MB per expert and layer); attention, router and unembedding in BF16
    # (about 3.1 GB read per step); 5.1B active parameters; about 65 GB resident. Its KV dtype
    # (FP8) comes from the manifest entry that configures the setup, not from here.
    "gpt-oss-120b": ModelShape(
        "gpt-oss-120b", layers=36, hidden=2880, kv_heads=8, head_dim=64, weight_gb=65.0,
        dense_read_gb=3.1, active_params_b=5.1, full_attention_layers=18, sliding_window=128,
        experts=128, experts_per_token=4, expert_gb=0.0132),
    # gpt-oss-20b config.json: 24 layers (12 full attention), 32 experts (4 per token) of the
    # same size, 3.6B active parameters, about 13 GB resident.
    "gpt-oss-20b": ModelShape(
        "gpt-oss-20b", layers=24, hidden=2880, kv_heads=8, head_dim=64, weight_gb=13.0,
        dense_read_gb=2.4, active_params_b=3.6, full_attention_layers=12, sliding_window=128,
        experts=32, experts_per_token=4, expert_gb=0.0132),
}


@dataclass(frozen=True)
class Setup:
    """A machine layout serving one model, configured as a manifest entry configures vLLM."""

    name: str
    gpu: str
    model: str
    tensor_parallel: int
    data_parallel: int
    memory_utilization: float
    kv_cache_dtype: str
    reserve_bytes: int = RESERVE_BYTES
    bandwidth_efficiency: float = 0.7
    """Achievable share of datasheet bandwidth in decode. Assumed."""
    compute_efficiency: float = 0.5
    """Achievable share of peak tensor throughput. Assumed."""
    step_overhead_s: float = 0.003
    """Per-step sampling, scheduling and launch time. Assumed."""

    @classmethod
    def from_engine_settings(cls, name: str, gpu: str, model: str,
                             settings: Mapping[str, Any], **assumptions: Any) -> Setup:
        """The setup a manifest entry's vLLM ``engine_settings`` describe (the configuration
        is the manifest's, read as the engine reads it, defaults included; this module only
        computes from it)."""
        vllm = VLLMSettings.from_dict({"model": model, **settings})
        return cls(name, gpu, model, vllm.tensor_parallel_size, vllm.data_parallel_size,
                   vllm.gpu_memory_utilization, vllm.kv_cache_dtype, **assumptions)

    @property
    def spec(self) -> GPUSpec:
        return GPUS[self.gpu]

    @property
    def shape(self) -> ModelShape:
        return MODELS[self.model]

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.data_parallel

    @property
    def replicas(self) -> int:
        return self.data_parallel

    @property
    def table_model(self) -> str:
        """The model name its one-GPU measured table is filed under (:func:`table_name`)."""
        return self.shape.table or self.model

    @property
    def kv_bytes_per_token(self) -> int:
        """KV bytes one more context token costs a replica (all of its GPUs)."""
        return self.shape.kv_bytes_per_token(self.kv_cache_dtype)

    def memory_plan(self) -> MemoryPlan:
        """Each GPU's weights, reserve and KV budget (:func:`memory_plan`)."""
        return memory_plan(self.shape, None, gpu_bytes=self.spec.memory_bytes,
                           utilization=self.memory_utilization,
                           reserve_bytes=self.reserve_bytes, kv_dtype=self.kv_cache_dtype,
                           tensor_parallel=self.tensor_parallel)

    @property
    def kv_capacity_tokens(self) -> float:
        """Context tokens one replica's KV cache holds (its memory minus weights and reserve)."""
        return float(self.memory_plan().max_kv_tokens)

    def compute_s(self, batch: float) -> float:
        """Matmul time of one decode step of ``batch`` sequences on each GPU of a replica."""
        return batch * 2 * self.shape.active_params_b * 1e9 / self.tensor_parallel / (
            self.spec.peak_tflops * 1e12 * self.compute_efficiency)

    @property
    def allreduce_s(self) -> float:
        """Per-step tensor-parallel all-reduce over PCIe (none for one GPU a replica)."""
        return PCIE_ALLREDUCE_S if self.tensor_parallel > 1 else 0.0

    def resident(self, concurrency: float, mean_context: float) -> tuple[float, float]:
        """(sequences per replica, share of them whose KV cache fits and so decodes)."""
        per_replica = max(1.0, concurrency / self.replicas)
        window = self.shape.window_kv_bytes(self.kv_cache_dtype) / self.kv_bytes_per_token
        demand = per_replica * (max(1.0, mean_context) + window)
        return per_replica, min(1.0, self.kv_capacity_tokens / demand)

    def describe(self) -> str:
        layout = (f"TP={self.tensor_parallel}" if self.replicas == 1
                  else f"TP={self.tensor_parallel}, {self.replicas} replicas")
        return (f"{self.name}: {self.gpus}x {self.spec.name} ({self.spec.memory_gib:.1f} GiB, "
                f"{self.spec.bandwidth_tbs * 1000:.0f} GB/s), {layout}, {self.model} "
                f"({self.shape.weight_gb:.3g} GB weights, "
                f"{self.kv_bytes_per_token / 1024:.0f} KiB KV/token ({self.kv_cache_dtype}), "
                f"{self.kv_capacity_tokens / 1000:.0f}k KV tokens per replica)")


def _setups() -> dict[str, Setup]:
    """The simulated machines, each configured by the manifest entry that runs on it."""
    from aimo_submit.manifest import package_manifest

    manifest = package_manifest()
    r1 = manifest.get("deepseek-r1-distill-qwen-14b-awq").engine_settings
    oss = manifest.get("gpt-oss-120b").engine_settings
    model = "deepseek-r1-distill-qwen-14b-awq"
    return {
        # AIMO2: the manifest's 14B AWQ entry, one copy split over 4 L4s.
        "l4x4-tp4": Setup.from_engine_settings("l4x4-tp4", "l4", model, r1),
        # The alternative layout of the same entry: one copy per L4, 4 data-parallel replicas.
        "l4x4-dp4": Setup.from_engine_settings(
            "l4x4-dp4", "l4", model,
            {**r1, "tensor_parallel_size": 1, "data_parallel_size": 4}),
        # And between them: two replicas, each split over two L4s (issue 18).
        "l4x4-tp2dp2": Setup.from_engine_settings(
            "l4x4-tp2dp2", "l4", model,
            {**r1, "tensor_parallel_size": 2, "data_parallel_size": 2}),
        # AIMO3: one H100 80 GB serving gpt-oss-120b as its manifest entry says (or, with the
        # same settings, the 20b model of some holdout traces).
        "h100-gpt-oss-120b": Setup.from_engine_settings(
            "h100-gpt-oss-120b", "h100", "gpt-oss-120b", oss, step_overhead_s=0.002),
        "h100-gpt-oss-20b": Setup.from_engine_settings(
            "h100-gpt-oss-20b", "h100", "gpt-oss-20b", oss, step_overhead_s=0.002),
    }


SETUPS: dict[str, Setup] = _setups()


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
        read = step_bytes(m, batch, mean_context, s.kv_cache_dtype, tp)
        t_mem = read / (s.spec.bandwidth_tbs * 1e12 * s.bandwidth_efficiency)
        step = max(t_mem, s.compute_s(batch)) + s.step_overhead_s + s.allreduce_s
        return share / step

    def describe(self) -> str:
        return f"roofline model (no measured table) of {self.setup.describe()}"


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
    """A table measured on H200s (one model copy, or 4 GPUs in a layout), carried to a
    :class:`Setup` by one of :data:`SCALING_RULES` (the module docstring states both)."""

    table: MeasuredThroughput
    setup: Setup
    measured_on: str = "h200"
    measured_tp: int = 1
    """Tensor parallel of the measured layout (1: one GPU, one model copy)."""
    measured_dp: int = 1
    """Replicas of the measured layout: its rows count the sequences of all of them."""
    rule: str = DEFAULT_SCALING
    """One of :data:`SCALING_RULES`."""
    measured_kv_dtype: str = "auto"
    """KV dtype the table was measured with (the benchmarks use the model's 16-bit dtype)."""

    def __post_init__(self) -> None:
        if self.rule not in SCALING_RULES:
            raise ValueError(f"unknown scaling rule {self.rule!r}; known: {SCALING_RULES}")

    @property
    def name(self) -> str:
        return self.setup.name

    @property
    def step_factor(self) -> float:
        """The ``bandwidth`` rule: how much longer a whole step takes on the setup's
        tensor-parallel group than measured (the bandwidth ratio)."""
        group_bw = self.setup.spec.bandwidth_tbs * self.setup.tensor_parallel
        return GPUS[self.measured_on].bandwidth_tbs * self.measured_tp / group_bw

    @property
    def rest_factor(self) -> float:
        """The ``split`` rule: how much longer the part of a step that is not streaming
        memory takes on the setup's GPU (SMs x clock of the measured GPU over the setup's)."""
        return GPUS[self.measured_on].sm_ghz / self.setup.spec.sm_ghz

    def split_step(self, batch: float, mean_context: float,
                   measured_step_s: float) -> tuple[float, float, float]:
        """(bandwidth part measured, remainder measured, step on the setup) in seconds, for
        ``batch`` sequences decoding on each replica.

        The bandwidth part is the time the step's bytes per GPU (:func:`step_bytes`) take on
        the measured GPU, the weights at :data:`WEIGHT_STREAM_EFFICIENCY` and the KV at
        :data:`STREAM_EFFICIENCY` of its bandwidth, at most the whole measured step (where a
        row is faster than its modelled bytes allow, e.g. shared-prefix KV served from L2, or
        dummy MoE weights routing to fewer experts than uniform routing, all of that step
        counts as bandwidth: the earlier rule). It is carried by the ratio of bytes per GPU
        (the setup's TP split and KV dtype) and of bandwidths; the remainder by
        :attr:`rest_factor`. The setup's step is at least its matmul time, plus
        the PCIe all-reduce under tensor parallelism."""
        shape, setup = self.setup.shape, self.setup
        measured_bw = GPUS[self.measured_on].bandwidth_tbs * 1e12
        w_m, w_s = (step_bytes(shape, batch, 0.0, self.measured_kv_dtype, tp, weights_only=True)
                    for tp in (self.measured_tp, setup.tensor_parallel))
        kv_m = step_bytes(shape, batch, mean_context, self.measured_kv_dtype,
                          self.measured_tp) - w_m
        kv_s = step_bytes(shape, batch, mean_context, setup.kv_cache_dtype,
                          setup.tensor_parallel) - w_s
        t_w = w_m / (measured_bw * WEIGHT_STREAM_EFFICIENCY)
        t_kv = kv_m / (measured_bw * STREAM_EFFICIENCY)
        clip = min(1.0, measured_step_s / (t_w + t_kv))
        t_bw_m = (t_w + t_kv) * clip
        rest_m = measured_step_s - t_bw_m
        ratio = GPUS[self.measured_on].bandwidth_tbs / setup.spec.bandwidth_tbs
        t_bw_s = clip * ratio * (t_w * w_s / w_m + (t_kv * kv_s / kv_m if kv_m > 0 else 0.0))
        step = max(t_bw_s + rest_m * self.rest_factor, setup.compute_s(batch))
        return t_bw_m, rest_m, step + setup.allreduce_s

    def tokens_per_s(self, concurrency: int, mean_context: float) -> float:
        per_replica, share = self.setup.resident(concurrency, mean_context)
        batch = max(1.0, per_replica * share)
        measured = 1.0 / self.table.tokens_per_s(math.ceil(batch * self.measured_dp),
                                                 mean_context)
        if self.rule == "bandwidth":
            step = self.step_factor * measured + self.setup.allreduce_s
        else:
            step = self.split_step(batch, mean_context, measured)[2]
        return share / step

    def describe(self) -> str:
        where = GPUS[self.measured_on].name
        if self.measured_tp * self.measured_dp > 1:
            where = (f"{self.measured_tp * self.measured_dp}x {where} in layout "
                     f"{layout_name(self.measured_tp, self.measured_dp)}")
        if self.rule == "bandwidth":
            how = f"steps x{self.step_factor:.2f} (bandwidth ratio; the earlier rule)"
        else:
            how = (f"split rule: weights at {WEIGHT_STREAM_EFFICIENCY:.0%} and KV at "
                   f"{STREAM_EFFICIENCY:.0%} of each GPU's bandwidth, "
                   f"the rest of each step x{self.rest_factor:.2f} (SMs x clock)")
        if self.setup.allreduce_s:
            how += f", + {self.setup.allreduce_s * 1000:g} ms PCIe all-reduce"
        return (f"{self.table.describe()} measured on {where}, "
                f"scaled to {self.setup.describe()}: {how}")


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
    # Named from the repository root when it lies inside it: reports carry no machine paths.
    root = Path(__file__).resolve().parent.parent
    source = p.resolve().relative_to(root) if p.resolve().is_relative_to(root) else p
    return MeasuredThroughput(tuple(rows), scale if scale is not None else file_scale,
                              str(source))


def width_sweep_efficiency(path: str | Path, gpu: str = "h200",
                           weight_format: str = "awq") -> tuple[float, float]:
    """``(fixed seconds, share of datasheet bandwidth)`` from a width sweep
    (``bench_hardware widths``): models of one layer count and several widths, each with its
    ``shape`` (layers, hidden, heads, kv_heads, intermediate, vocab) and rows of ``step_ms``
    (or ``tokens_per_s_per_seq``) at concurrency 1 and one short context. The slope of step
    time over the weight bytes this module counts for the shape (:func:`weight_bytes` in
    ``weight_format``, the same count the split rule uses) is the bandwidth at which weights
    stream; the intercept is the per-step cost no width changes (launches, sampling,
    scheduling). Calibrates :data:`WEIGHT_STREAM_EFFICIENCY`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    points = []
    for m in data.get("models", []) if isinstance(data, dict) else []:
        sh = m["shape"]
        heads = int(sh["heads"])
        shape = ModelShape(f"width-{sh['hidden']}", layers=int(sh["layers"]),
                           hidden=int(sh["hidden"]), kv_heads=int(sh["kv_heads"]),
                           head_dim=int(sh["hidden"]) // heads, heads=heads,
                           vocab=int(sh["vocab"]), intermediate=int(sh["intermediate"]))
        read = _quantized(shape, shape.name, weight_format).step_weight_gb(1) * 1e9
        for r in m.get("rows", []):
            if float(r.get("concurrency", 1)) != 1:
                continue
            ms = r.get("step_ms")
            step = (float(ms["median"] if isinstance(ms, dict) else ms) / 1e3 if ms
                    else 1.0 / float(r["tokens_per_s_per_seq"]))
            points.append((read, step))
    fixed, bw = fit_bandwidth(points)
    return fixed, bw / (GPUS[gpu].bandwidth_tbs * 1e12)


def table_name(model: str) -> str:
    """File name of a table measured on one H200 (``bench/bench_hardware.py tables``)."""
    return f"h200_{model}.json"


def table_for(model: str, tables_dir: str | Path | None = None) -> Path | None:
    """The measured H200 table of ``model``, if one was delivered."""
    folder = Path(tables_dir) if tables_dir is not None else TABLES_DIR
    path = folder / table_name(model)
    return path if path.is_file() else None


def layout_name(tensor_parallel: int, data_parallel: int) -> str:
    """How the per-layout tables name a layout: ``tp4``, ``dp4``, ``tp2dp2``."""
    if data_parallel == 1:
        return f"tp{tensor_parallel}"
    if tensor_parallel == 1:
        return f"dp{data_parallel}"
    return f"tp{tensor_parallel}dp{data_parallel}"


def layout_table_name(model: str, layout: str) -> str:
    """File name of a table measured on 4 H200s in ``layout`` (``bench/layouts.py``)."""
    return f"h200x{LAYOUT_TABLE_GPUS}_{model}_{layout}.json"


def layout_table_for(setup: Setup, tables_dir: str | Path | None = None) -> Path | None:
    """The table measured in ``setup``'s own layout on 4 GPUs, if one was delivered."""
    if setup.gpus != LAYOUT_TABLE_GPUS:
        return None
    folder = Path(tables_dir) if tables_dir is not None else TABLES_DIR
    path = folder / layout_table_name(
        setup.model, layout_name(setup.tensor_parallel, setup.data_parallel))
    return path if path.is_file() else None


def throughput_for(name: str, tables_dir: str | Path | None = None,
                   rule: str = DEFAULT_SCALING) -> ThroughputModel:
    """The best model of setup ``name``: a table measured in its layout, else its one-GPU
    H200 table, scaled by ``rule`` (:data:`SCALING_RULES`); else the roofline."""
    try:
        setup = SETUPS[name]
    except KeyError:
        raise KeyError(f"unknown hardware {name!r}; known: {sorted(SETUPS)}") from None
    path = layout_table_for(setup, tables_dir)
    if path is not None:
        return ScaledThroughput(load_throughput(path), setup, measured_tp=setup.tensor_parallel,
                                measured_dp=setup.data_parallel, rule=rule)
    path = table_for(setup.table_model, tables_dir)
    if path is None:
        return HARDWARE_PRESETS[name]
    return ScaledThroughput(load_throughput(path), setup, rule=rule)


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
