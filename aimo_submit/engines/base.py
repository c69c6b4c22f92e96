"""The one engine protocol every backend implements (transformers, vLLM, replay; the fault
wrapper of the tests and benches, ``bench/faulty.py``).

The solver and the simulator talk only to this interface, so a policy measured in simulation is
the policy that runs on Kaggle. A generation is ``n`` samples of one prompt, streamed as events;
any sample (or all) can be cancelled at any time, and a cancelled sample still ends with one final
event so the consumer never waits on it.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass


class FinishReason(str, enum.Enum):
    """Why a sample ended. ``STOP`` covers both a stop string and the end-of-sequence token."""

    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True)
class GenerationRequest:
    """``n`` samples of one already-formatted prompt.

    ``stop`` strings end a sample; the stop string itself is kept at the end of the text when
    ``include_stop`` is true (the solver wants to see ``</think>``). ``seed`` makes sampling
    reproducible where the backend supports it (sample ``i`` uses ``seed + i``).
    """

    prompt: str
    n: int = 1
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    include_stop: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"GenerationRequest.n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"GenerationRequest.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"GenerationRequest.temperature must be >= 0, got {self.temperature}")


@dataclass(frozen=True)
class SampleEvent:
    """One step of one sample's stream.

    ``delta`` is new text since the sample's previous event; ``tokens`` is the sample's
    cumulative count of generated tokens. The last event of a sample has ``finished=True`` and a
    ``finish_reason``; after it the sample emits nothing more.
    """

    index: int
    delta: str
    tokens: int
    finished: bool = False
    finish_reason: FinishReason | None = None
    error: str | None = None


class Generation(abc.ABC):
    """Handle on a running request: iterate it for events, cancel samples through it.

    Iteration ends once every sample has emitted its final event. ``cancel`` is idempotent and
    safe to call from the consuming task at any time; ``aclose`` cancels everything and waits
    until the backend has released its resources.
    """

    request: GenerationRequest

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[SampleEvent]: ...

    @abc.abstractmethod
    def cancel(self, index: int | None = None) -> None:
        """Cancel one sample, or all outstanding samples when ``index`` is None."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Engine(abc.ABC):
    """A text-generation backend.

    ``format_prompt`` applies the model's chat template so prompts are built one way for every
    backend; ``generate`` must return quickly (work happens in the background) and may be called
    again while earlier generations are still running (tool-integrated reasoning continues a
    single sample as a new request).
    """

    name: str = "engine"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load weights / warm up. Called once before the first ``generate``."""

    @abc.abstractmethod
    def format_prompt(self, messages: list[dict[str, str]]) -> str: ...

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> Generation: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model. Idempotent."""

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
