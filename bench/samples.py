"""Stream bookkeeping for tests and benchmarks, kept out of the package a submission imports.

The solver keeps richer per-sample records of its own (``solver.SampleRecord``); this is the
minimal fold of a sample's events that engine tests and ``bench_vllm`` check streams with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aimo_submit.engines.base import FinishReason, SampleEvent

__all__ = ["SampleState"]


@dataclass
class SampleState:
    """What a consumer of an engine stream accumulates for one sample (tests and benches)."""

    index: int
    text: str = ""
    tokens: int = 0
    finished: bool = False
    finish_reason: FinishReason | None = None
    error: str | None = None
    meta: dict = field(default_factory=dict)

    def apply(self, event: SampleEvent) -> None:
        self.text += event.delta
        self.tokens = max(self.tokens, event.tokens)
        if event.finished:
            self.finished = True
            self.finish_reason = event.finish_reason
            self.error = event.error
