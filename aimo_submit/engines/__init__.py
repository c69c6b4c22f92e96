"""Interchangeable generation backends behind one protocol (see ``base``)."""

from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
    SampleState,
)

__all__ = [
    "Engine",
    "FinishReason",
    "Generation",
    "GenerationRequest",
    "SampleEvent",
    "SampleState",
]
