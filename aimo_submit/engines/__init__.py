"""Interchangeable generation backends behind one protocol (see ``base``)."""

from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
)

__all__ = [
    "Engine",
    "FinishReason",
    "Generation",
    "GenerationRequest",
    "SampleEvent",
    "create_engine",
]


def create_engine(kind: str, model_path: object, settings: dict | None = None) -> Engine:
    """Build the backend named in a manifest entry; imports it lazily (vLLM is GPU-only)."""
    settings = dict(settings or {})
    if kind == "transformers":
        from aimo_submit.engines.transformers_engine import TransformersEngine

        return TransformersEngine(model_path, **settings)
    if kind == "vllm":
        from aimo_submit.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model_path, **settings)
    raise ValueError(f"unknown engine {kind!r}; known: transformers, vllm")
