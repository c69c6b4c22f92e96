"""The one engine protocol every backend implements (transformers, vLLM, replay, fault wrappers).

The solver and the simulator talk only to this interface, so a policy measured in simulation is
the policy that runs on Kaggle. A generation is ``n`` samples of one prompt, streamed as events;
any sample (or all) can be cancelled at any time, and a cancelled sample still ends with one final
event so the consumer never waits on it.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Sequence
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
    # -- token statistics (confidence signals; see TokenStats) --------------------------------
    logprobs: int = 0
    """Top-k log-probabilities per generated token for ``SampleEvent.stats`` (0: off, the
    default, since vLLM's per-token logprob output costs front-end CPU)."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"GenerationRequest.n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"GenerationRequest.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"GenerationRequest.temperature must be >= 0, got {self.temperature}")
        if not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise ValueError(
                f"GenerationRequest.logprobs must be in 0..{MAX_LOGPROBS}, got {self.logprobs}"
            )


MAX_LOGPROBS = 20
"""Largest top-k a request may ask for (vLLM's default ``max_logprobs``)."""


@dataclass(frozen=True)
class TokenStats:
    """Per-token statistics of the tokens that one ``SampleEvent`` adds, computed in the engine.

    Both tuples have one entry per new token, in generation order, so ``len(confidence)`` is
    the event's token increase. They are what confidence-aware selection needs (DeepConf,
    Fu et al. 2025) and nothing more: the engine reduces the top-k log-probabilities to two
    floats a token, so no per-token dictionaries or vocab-sized arrays travel with events.

    * ``confidence``: token confidence ``C_t = -(1/k) * sum_{j=1..k} log p_t(j)``, where
      ``log p_t(1..k)`` are the ``k`` (``GenerationRequest.logprobs``) largest log-probabilities
      of the model's next-token distribution at step ``t``. High when the distribution is
      peaked (the top-1 log-probability is near 0 and the others very negative), low when it is
      flat. Group or tail confidence is the mean of ``C_t`` over a window of tokens.
    * ``logprob``: ``log p_t(x_t)`` of the token actually sampled (<= 0); its negative sum is
      the sample's negative log-likelihood.

    Log-probabilities are of the model's raw distribution (before temperature and top-p), as
    vLLM reports them by default; both engines follow that rule, so the values agree between
    backends. A consumer that keeps a sample's history appends the tuples (two floats a token).
    """

    confidence: tuple[float, ...]
    logprob: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.confidence) != len(self.logprob):
            raise ValueError("TokenStats.confidence and .logprob must have equal lengths")

    def __len__(self) -> int:
        return len(self.confidence)

    def __add__(self, other: TokenStats) -> TokenStats:
        return TokenStats(self.confidence + other.confidence, self.logprob + other.logprob)


def token_confidence(top_logprobs: Sequence[float]) -> float:
    """DeepConf token confidence ``-(1/k) * sum(top_logprobs)`` of one step's top-k values."""
    if not top_logprobs:
        raise ValueError("token_confidence needs at least one log-probability")
    return -sum(top_logprobs) / len(top_logprobs)


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
    """Statistics of the tokens this event adds; None unless the request asked for
    ``logprobs``. An event may add tokens with no text (held back by the detokenizer) or text
    with no tokens (a final flush), so ``len(stats)`` follows ``tokens``, not ``delta``."""


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
