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
* **vLLM is imported inside ``start``** only, so this module (settings, memory arithmetic, output
  mapping) imports and is tested on CPU machines without vLLM.

Layout. ``tensor_parallel_size`` x ``data_parallel_size`` GPUs. Data parallel replicas are either
vLLM's own (``dp_backend="vllm"``: one ``AsyncLLM``, ``data_parallel_size`` engine-core processes
started in parallel; for dense models vLLM runs them independently, and we pick the replica of
every request through ``data_parallel_rank``) or separate ``AsyncLLM`` objects pinned with
``CUDA_VISIBLE_DEVICES`` (``dp_backend="replicas"``, started one after the other; a fallback).

Memory arithmetic (``memory_plan``; numbers from ``QWEN25_14B`` and ``L4_BYTES``), for
DeepSeek-R1-Distill-Qwen-14B AWQ (4-bit, group 128, fp16 scales + 4-bit zeros = 4.156 bits a
weight; embeddings and lm_head stay fp16) on one L4 (23,034 MiB usable), utilization 0.92,
2 GiB reserved for activations / CUDA graphs / non-torch memory (measured on the H100 with vLLM
0.26: 1.5 GiB activation peak at 2048 batched tokens, 0.22 non-torch, 0.24 CUDA graphs):

===========================  ==================  ==================
                             fp16 KV cache       fp8 KV cache
===========================  ==================  ==================
weights (13.21 B linear +     9.29 GiB            9.29 GiB
1.56 B embedding params)
KV bytes per token           192 KiB             96 KiB
KV budget                    9.40 GiB            9.40 GiB
max KV tokens                51,336              102,672
32k-token sequences          1                   3
16k-token sequences          3                   6
===========================  ==================  ==================

(per-token KV = 2 x 48 layers x 8 KV heads x 128 x bytes). One L4 holds the model but only a few
long samples: at 32 samples of ~16k tokens per problem, 4 data-parallel replicas with fp8 KV
hold 4 x 103k = 411k tokens where 512k are needed, so vLLM preempts. Tensor parallel over 4 L4s
stores the weights once: 2.32 GiB a GPU, 16.37 GiB of KV a GPU, 715k tokens in all with fp8 KV
(21 sequences of 32k, 43 of 16k). Checked against vLLM on the H100 (bench/results/vllm_h100.md):
14B with online fp8 weights at utilization 0.42 was predicted 88,720 KV tokens and got 84,000;
the gap is the weights (16.15 GiB measured against 15.21 GiB computed), so read the plan as
about 5% optimistic.

Defaults for 4x L4 (``VLLMSettings.for_l4x4``): tensor parallel 4, AWQ weights, fp8 KV cache,
prefix caching on, CUDA graphs on, max_model_len 32768, utilization 0.92, max_num_seqs 64.
Decode is memory-bandwidth bound (L4: ~300 GB/s). A decode step over a batch reads the weights
once plus the batch's KV: data parallel reads 9.29 GiB of weights per GPU per step, tensor parallel
2.3 GiB, and pays 2 all-reduces per layer (96 per step) over PCIe (no NVLink), roughly 5-10 ms.
At 32 samples of 8k average context that is ~55 ms a step for DP (16.4 GB per GPU) against
~30 ms + all-reduce for TP, and TP has 1.7x the KV room, so TP=4 is the default; ``layout="dp"``
(``for_l4x4(model, layout="dp")``) is one switch away and is the layout to measure against on
Kaggle (``bench/bench_vllm.py``), since PCIe all-reduce speed on Kaggle's hosts is not known here.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import dataclasses
import itertools
import os
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
    TokenStats,
)

GIB = 1 << 30
MIB = 1 << 20

# --------------------------------------------------------------------------------------------
# Memory arithmetic
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's shape (Qwen2/Llama family: GQA attention, gated MLP)."""

    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    intermediate: int
    tie_embeddings: bool = False
    qkv_bias: bool = True

    @property
    def linear_params(self) -> int:
        """Parameters of the quantizable projections (attention q/k/v/o and the MLP)."""
        q = self.hidden * self.n_heads * self.head_dim
        kv = 2 * self.hidden * self.n_kv_heads * self.head_dim
        o = self.n_heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        return self.n_layers * (q + kv + o + mlp)

    @property
    def embedding_params(self) -> int:
        """Input embedding plus lm_head (one matrix when tied); quantizers leave them fp16."""
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    @property
    def small_params(self) -> int:
        """Norms and biases: kept in 16 bits, a rounding error next to the rest."""
        norms = (2 * self.n_layers + 1) * self.hidden
        bias = (self.n_heads + 2 * self.n_kv_heads) * self.head_dim if self.qkv_bias else 0
        return norms + self.n_layers * bias

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params + self.small_params


QWEN25_14B = ModelShape(
    n_layers=48, hidden=5120, n_heads=40, n_kv_heads=8, head_dim=128, vocab=152064,
    intermediate=13824,
)
"""Qwen2.5-14B, the shape of DeepSeek-R1-Distill-Qwen-14B (14.77 B parameters)."""

L4_BYTES = 23034 * MIB
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


def weight_bytes(shape: ModelShape, fmt: WeightFormat, tensor_parallel: int = 1) -> int:
    """Bytes of weights on each GPU; vLLM shards linear layers and the vocabulary over TP."""
    linear = shape.linear_params * fmt.bits_per_weight / 8
    embed = shape.embedding_params * fmt.embedding_bits / 8
    return int((linear + embed) / tensor_parallel + shape.small_params * 2)


def kv_bytes_per_token(shape: ModelShape, kv_dtype: str = "auto", tensor_parallel: int = 1) -> int:
    """K and V of every layer for one token on one GPU (KV heads are split, or replicated)."""
    try:
        elem = KV_BYTES[kv_dtype]
    except KeyError:
        raise ValueError(f"unknown kv dtype {kv_dtype!r}; known: {sorted(KV_BYTES)}") from None
    heads = max(1, shape.n_kv_heads // tensor_parallel)
    return 2 * shape.n_layers * heads * shape.head_dim * elem


def memory_plan(
    shape: ModelShape,
    fmt: WeightFormat | str,
    *,
    gpu_bytes: int = L4_BYTES,
    utilization: float = 0.92,
    reserve_bytes: int = 2 * GIB,
    kv_dtype: str = "auto",
    tensor_parallel: int = 1,
) -> MemoryPlan:
    """What vLLM will have for KV cache: ``gpu x utilization - weights - reserve``.

    ``reserve_bytes`` stands for the activation peak of a prefill chunk, CUDA graphs and
    non-torch memory (NCCL, cuBLAS workspaces); vLLM measures it at start-up and logs the real
    KV size ("GPU KV cache size"), which is the number to trust once it exists.
    """
    if isinstance(fmt, str):
        fmt = WEIGHT_FORMATS[fmt]
    if not 0 < utilization <= 1:
        raise ValueError("utilization must be in (0, 1]")
    if tensor_parallel < 1:
        raise ValueError("tensor_parallel must be >= 1")
    w = weight_bytes(shape, fmt, tensor_parallel)
    per_token = kv_bytes_per_token(shape, kv_dtype, tensor_parallel)
    budget = max(0, int(gpu_bytes * utilization) - w - reserve_bytes)
    return MemoryPlan(w, per_token, budget, budget // per_token, tensor_parallel)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------

QUANTIZATIONS = (None, "awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "compressed-tensors")
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16")
DP_BACKENDS = ("vllm", "replicas")


@dataclass(frozen=True)
class VLLMSettings:
    """Everything that decides how vLLM is started; the manifest's ``engine_settings`` keys.

    The first block mirrors the manifest's vLLM schema; the rest are ours and default to what
    suits one-sample-per-request streaming.
    """

    model: str
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    max_model_len: int = 32768
    gpu_memory_utilization: float = 0.92
    max_num_seqs: int = 64
    enforce_eager: bool = False
    """False keeps CUDA graphs: decode of small batches is launch-bound without them."""
    enable_prefix_caching: bool = True
    """TIR continuations and the n samples of a prompt share prefixes; never turn off."""
    dtype: str = "auto"
    seed: int | None = 0

    tokenizer: str | None = None
    dp_backend: str = "vllm"
    gpu_ids: tuple[int, ...] | None = None
    """GPUs to use (default 0..tp*dp-1); replicas take consecutive groups of tp."""
    max_num_batched_tokens: int | None = None
    stream_interval: int = 1
    """Tokens vLLM buffers before sending an output; >1 trades stream latency for host time."""
    load_format: str = "auto"
    affinity_slack: int = 4
    """A continuation goes to its prefix's replica unless that one has this many more samples."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Further ``AsyncEngineArgs`` keywords, passed through unchecked."""
    sampling_extra: Mapping[str, Any] = field(default_factory=dict)
    """``SamplingParams`` keywords the protocol lacks (``min_p``, ``ignore_eos`` for benches)."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model path is empty")
        for name in ("tensor_parallel_size", "data_parallel_size", "max_num_seqs",
                     "stream_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_model_len < 16:
            raise ValueError(f"max_model_len must be >= 16, got {self.max_model_len}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization {self.quantization!r} not in {QUANTIZATIONS}")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise ValueError(f"kv_cache_dtype {self.kv_cache_dtype!r} not in {KV_CACHE_DTYPES}")
        if self.dp_backend not in DP_BACKENDS:
            raise ValueError(f"dp_backend {self.dp_backend!r} not in {DP_BACKENDS}")
        if self.gpu_ids is not None:
            if len(self.gpu_ids) != self.n_gpus:
                raise ValueError(f"gpu_ids names {len(self.gpu_ids)} GPUs; tensor_parallel_size x"
                                 f" data_parallel_size = {self.n_gpus}")
            if len(set(self.gpu_ids)) != len(self.gpu_ids):
                raise ValueError(f"gpu_ids repeats a GPU: {self.gpu_ids}")
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < 1:
            raise ValueError("max_num_batched_tokens must be >= 1")

    @property
    def n_gpus(self) -> int:
        return self.tensor_parallel_size * self.data_parallel_size

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VLLMSettings:
        """Build from a manifest-like mapping; unknown keys are refused, not ignored."""
        data = dict(data)
        if "model" not in data and "path" in data:
            data["model"] = data.pop("path")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown vLLM settings: {', '.join(unknown)}; known: {sorted(known)}")
        data["model"] = str(data["model"])
        if data.get("gpu_ids") is not None:
            data["gpu_ids"] = tuple(data["gpu_ids"])
        return cls(**data)

    @classmethod
    def for_l4x4(cls, model: str, layout: str = "tp", **overrides: Any) -> VLLMSettings:
        """Kaggle's 4x L4 defaults for a 14B AWQ model (reasoning in the module docstring)."""
        if layout not in ("tp", "dp"):
            raise ValueError("layout must be 'tp' or 'dp'")
        base: dict[str, Any] = dict(
            model=str(model),
            tensor_parallel_size=4 if layout == "tp" else 1,
            data_parallel_size=1 if layout == "tp" else 4,
            quantization="awq_marlin",
            kv_cache_dtype="fp8",
            max_model_len=32768,
            gpu_memory_utilization=0.92,
            max_num_seqs=64 if layout == "tp" else 16,
            enforce_eager=False,
            enable_prefix_caching=True,
            dtype="float16",
        )
        base.update(overrides)
        return cls.from_dict(base)

    def replace(self, **changes: Any) -> VLLMSettings:
        return dataclasses.replace(self, **changes)

    @property
    def n_replicas(self) -> int:
        return self.data_parallel_size

    def replica_gpus(self, replica: int) -> tuple[int, ...]:
        """GPU ids of one replica (its tensor-parallel group)."""
        ids = self.gpu_ids or tuple(range(self.n_gpus))
        tp = self.tensor_parallel_size
        return tuple(ids[replica * tp : (replica + 1) * tp])

    def engine_kwargs(self, replica: int | None = None) -> dict[str, Any]:
        """``AsyncEngineArgs`` keywords: for the one vLLM-DP engine, or for one pinned replica."""
        kw: dict[str, Any] = dict(
            model=self.model,
            tokenizer=self.tokenizer or self.model,
            quantization=self.quantization,
            kv_cache_dtype=self.kv_cache_dtype,
            max_model_len=self.max_model_len,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_num_seqs=self.max_num_seqs,
            enforce_eager=self.enforce_eager,
            enable_prefix_caching=self.enable_prefix_caching,
            dtype=self.dtype,
            tensor_parallel_size=self.tensor_parallel_size,
            load_format=self.load_format,
            disable_log_stats=True,
        )
        if self.seed is not None:
            kw["seed"] = self.seed
        if self.max_num_batched_tokens is not None:
            kw["max_num_batched_tokens"] = self.max_num_batched_tokens
        if self.stream_interval != 1:
            kw["stream_interval"] = self.stream_interval
        if self.dp_backend == "vllm" and self.data_parallel_size > 1:
            kw["data_parallel_size"] = self.data_parallel_size
        kw.update(self.extra)
        return kw

    def visible_devices(self, replica: int | None = None) -> str | None:
        """``CUDA_VISIBLE_DEVICES`` for starting an engine (None: leave the variable alone)."""
        if replica is not None and self.dp_backend == "replicas":
            return ",".join(map(str, self.replica_gpus(replica)))
        if self.gpu_ids is not None:
            return ",".join(map(str, self.gpu_ids))
        return None


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
        self.slack = slack
        self.memory = memory
        self._seen: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._turn = itertools.count()

    def least_loaded(self) -> int:
        n = len(self.loads)
        start = next(self._turn) % n
        return min(((start + k) % n for k in range(n)), key=lambda r: self.loads[r])

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
        if home is not None and self.loads[home] - self.loads[least] <= self.slack:
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
        try:
            stream = self._engine._submit(self.request, i, self.request_ids[i], replica,
                                          self.prompt_ids)
            async for output in stream:
                for event in tracker.events(output):
                    self._put(event)
        except asyncio.CancelledError:
            pass  # vLLM's generate aborted the request on the way out
        except Exception as exc:  # noqa: BLE001 - any engine failure ends the sample, not the run
            if not tracker.finished:
                self._put(tracker.finish(FinishReason.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            self._engine._router.release(replica)
            if not tracker.finished:
                self._put(tracker.finish(FinishReason.CANCELLED))
            elif tracker.tokens:
                self._engine._router.remember(self.request.prompt + tracker.text, replica)
                if self.prompt_ids is not None and tracker.text:
                    self._engine._prompt_tokens().remember(
                        self.request.prompt, self.prompt_ids, tracker.text, tracker.token_ids)

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
        if s.dp_backend == "replicas" and s.data_parallel_size > 1:
            for r in range(s.data_parallel_size):
                with _visible_devices(s.visible_devices(r)):
                    client = AsyncLLM.from_engine_args(AsyncEngineArgs(**s.engine_kwargs(r)))
                self._clients.append(client)
                self._replicas.append(_Replica(client))
        else:
            with _visible_devices(s.visible_devices()):
                client = AsyncLLM.from_engine_args(AsyncEngineArgs(**s.engine_kwargs()))
            self._clients.append(client)
            dp = s.data_parallel_size if s.dp_backend == "vllm" else 1
            self._replicas = [_Replica(client, r if dp > 1 else None) for r in range(dp)]
        self.startup_s = time.monotonic() - t0

    async def close(self) -> None:
        clients, self._clients, self._replicas = self._clients, [], []
        for client in clients:
            with contextlib.suppress(Exception):
                client.shutdown()

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


def model_shape_from_config(path: str | os.PathLike[str]) -> ModelShape:
    """``ModelShape`` from a Hugging Face ``config.json`` (file or model folder)."""
    import json

    p = Path(path)
    cfg = json.loads((p / "config.json" if p.is_dir() else p).read_text())
    heads = cfg["num_attention_heads"]
    return ModelShape(
        n_layers=cfg["num_hidden_layers"],
        hidden=cfg["hidden_size"],
        n_heads=heads,
        n_kv_heads=cfg.get("num_key_value_heads", heads),
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
        vocab=cfg["vocab_size"],
        intermediate=cfg["intermediate_size"],
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )


__all__: Sequence[str] = (
    "KV_BYTES", "L4_BYTES", "QWEN25_14B", "MemoryPlan", "ModelShape", "ReplicaRouter",
    "PromptTokens", "SampleTracker", "VLLMEngine", "VLLMGeneration", "VLLMSettings", "WeightFormat",
    "kv_bytes_per_token", "map_finish_reason", "memory_plan", "model_shape_from_config",
    "sample_request_ids", "sample_seeds", "sampling_kwargs", "token_stats", "weight_bytes",
)
