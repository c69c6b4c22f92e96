"""vLLM's settings: the one schema of a manifest entry's ``engine_settings`` for vLLM.

``VLLMSettings`` is what the engine is started with, and its fields and their types are what
``manifest.py`` accepts under ``engine_settings`` (``settings_schema``), so a key the engine
supports can never be refused by the manifest, nor the other way round. Value checks (ranges,
choices) are in ``__post_init__`` and the manifest runs them too, naming the entry. This
module imports nothing outside the standard library: the manifest is read by the notebook's
preflight before any wheel is installed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DP_BACKENDS", "KV_CACHE_DTYPES", "QUANTIZATIONS", "VLLMSettings", "settings_schema"]

QUANTIZATIONS = (None, "awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "compressed-tensors")
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16")
DP_BACKENDS = ("vllm", "replicas")


@dataclass(frozen=True)
class VLLMSettings:
    """Everything that decides how vLLM is started; the manifest's ``engine_settings`` keys.

    The first block is vLLM's own engine arguments; the rest are ours and default to what suits
    one-sample-per-request streaming. Every field but ``model`` may appear in the manifest.
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
    replica_stall_s: float = 60.0
    """With several replicas: one that sends nothing for this long while it has samples, and
    another replica does not, is hung; its samples fail, the router avoids it, and with
    ``dp_backend="replicas"`` it is restarted alone (vLLM's own DP cannot restart one rank)."""
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
        if self.replica_stall_s <= 0:
            raise ValueError(f"replica_stall_s must be > 0, got {self.replica_stall_s}")
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


_JSON_TYPES: dict[Any, tuple[type, ...]] = {
    int: (int,), float: (float,), str: (str,), bool: (bool,), type(None): (type(None),),
    tuple: (list,), Mapping: (dict,), dict: (dict,),
}


def settings_schema(cls: type = VLLMSettings, exclude: tuple[str, ...] = ("model",)
                    ) -> dict[str, tuple[type, ...]]:
    """The JSON types each field of ``cls`` accepts (a tuple is a JSON list, a mapping an
    object), read from its annotations; ``model`` is not a manifest key (the path comes from
    the entry's source)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[type, ...]] = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        hint = hints[f.name]
        parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        accepted: list[type] = []
        for part in parts:
            origin = typing.get_origin(part) or part
            accepted.extend(_JSON_TYPES[origin])
        out[f.name] = tuple(accepted)
    return out
