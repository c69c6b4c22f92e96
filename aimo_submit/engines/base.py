"""The one engine protocol every backend implements (transformers, vLLM, replay, fault wrappers).

The solver and the simulator talk only to this interface, so a policy measured in simulation is
the policy that runs on Kaggle. A generation is ``n`` samples of one prompt, streamed as events;
any sample (or all) can be cancelled at any time, and a cancelled sample still ends with one final
event so the consumer never waits on it.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


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
    logprobs: int = 0
    """Top-k log-probabilities per generated token (0: none). They cost decode throughput on
    some backends, so only a policy that reads confidence asks for them."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"GenerationRequest.n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"GenerationRequest.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"GenerationRequest.temperature must be >= 0, got {self.temperature}")
        if self.logprobs < 0:
            raise ValueError(f"GenerationRequest.logprobs must be >= 0, got {self.logprobs}")


@dataclass(frozen=True)
class TokenStats:
    """Per-token statistics of the tokens an event covers, in generation order.

    ``confidence[i]`` is ``-(1/k) * sum of the top-k log-probabilities`` at that position (see
    ``confidence.py``); ``logprob[i]`` is the chosen token's log-probability. Small tuples per
    event (the tokens since the previous event), so no large array is copied per token.
    """

    confidence: tuple[float, ...]
    logprob: tuple[float, ...]


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
    stats: TokenStats | None = None
    """Statistics of the tokens generated since the previous event, when the request asked
    for ``logprobs`` and the backend reports them; None otherwise."""


@dataclass
class SampleState:
    """What a consumer accumulates for one sample; shared by solver, simulator and tests."""

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
