"""Solve one problem: sample, extract, vote, stop early, respect the deadline.

The same code runs against every engine (transformers, vLLM, the virtual-clock replay engine
and fault-injecting wrappers), so what the simulator measures is what the submission does. All
timing uses the running event loop's clock, which is real time in a submission and virtual
time in the simulator.

Flow: one generation of ``n`` samples is started; events from it (and from any continuation
generations of tool-integrated reasoning) are merged through one queue. A sample that writes a
complete ``\\boxed{}`` is done at once (when ``stop_on_boxed``); one that stops at ``CODE_STOP``
has its last Python block run in the sandbox and is continued as a new single-sample request;
otherwise its answer is extracted when it ends.

Models in the harmony format (gpt-oss; ``prompts.prompt_format``) take the same continuation
path with native tool calls: each request's text is read as one assistant turn
(``harmony.HarmonyChat.read_turn``). A call to ``python`` runs in the sample's own persistent
``PythonSession`` (opened at its first call, closed when the sample ends, is cancelled or the
problem ends), and the output goes back as a tool message; a call to any other tool, or one past
``max_code_calls``, is answered with an error message once. The vote comes only from a
``final`` channel message; a sample that ends without one (truncated, malformed, no final)
casts no vote, and its notes say why. After every vote the rules in ``vote.py``
decide whether to stop. At the soft deadline a settled problem stops (with ``settle_late``, also
at any later vote that settles it); at the hard deadline
everything is cancelled and the best answer so far is returned. A problem never ends without
an answer: partial texts are searched, then ``policy.fallback_answer`` is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from dataclasses import dataclass, field
from typing import Any

from aimo_submit.competition import AIMO2
from aimo_submit.confidence import SampleConfidence, is_doomed, percentile, weight_of
from aimo_submit.engines.base import (
    Engine,
    FinishReason,
    Generation,
    GenerationRequest,
    SampleEvent,
)
from aimo_submit.extract import extract_answer
from aimo_submit.harmony import PYTHON_TOOL, HarmonyChat, Turn, final_answer
from aimo_submit.policy import PolicyConfig
from aimo_submit.prompts import (
    CODE_STOP,
    HARMONY,
    build_messages,
    format_code_output,
    last_code_block,
    prompt_format,
    style_spec,
)
from aimo_submit.schedule import ProblemBudget
from aimo_submit.vote import Tally, is_settled, should_stop, tally

log = logging.getLogger("aimo_submit.solver")

_BOX_MARKERS = ("\\boxed", "\\fbox")
_TIME_EPS = 1e-6
_OOM_TYPES = ("OutOfMemoryError", "MemoryError")
_NATURAL_ENDS = ("boxed", "stop", "length")
"""Samples that ended by themselves: only they may set the online-termination threshold."""


def is_out_of_memory(error: BaseException | str | None) -> bool:
    """Is this engine error an out-of-memory one?

    Errors cross the engine protocol as ``"Type: message"`` text (``SampleEvent.error``), so
    the type name before the first colon decides; the message is read only for backends that
    raise a bare ``RuntimeError('CUDA out of memory ...')`` (older torch, some vLLM paths).
    """
    if error is None:
        return False
    if isinstance(error, BaseException):
        if isinstance(error, MemoryError) or type(error).__name__ in _OOM_TYPES:
            return True
        error = f"{type(error).__name__}: {error}"
    head = error.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    return head in _OOM_TYPES or "out of memory" in error.lower()


@dataclass
class SampleRecord:
    """Everything known about one sample, across its continuations."""

    index: int
    started: float
    text: str = ""
    tokens: int = 0
    answer: int | None = None
    finished: bool = False
    finish_reason: str | None = None
    ended: float | None = None
    code_calls: int = 0
    code_ok: int = 0
    code_seconds: float = 0.0
    error: str | None = None
    code_status: list[str] = field(default_factory=list)
    """Status of each code run that did not succeed (timeout, memory, killed, error)."""
    box_from: int = -1
    """Where the latest box opening was seen (so completion checks stay linear)."""
    segment_tokens: int = 0
    """Tokens counted so far in the current request (events report per-request totals)."""
    confidence: SampleConfidence | None = None
    """Streaming confidence signals (when the policy asks for log-probabilities)."""
    weight: float | None = None
    """The weight its vote carried (None: it cast no vote)."""
    segment_from: int = 0
    """Where the current request's text starts in ``text`` (a harmony turn is read from it)."""
    tool_channel: str | None = None
    """Channel of the harmony tool call being run (its reply goes on the same channel)."""
    limit_told: bool = False
    """The model was told that it reached ``max_code_calls`` (harmony)."""
    session_restarts: int = 0
    """Times this sample's python session was restarted after a limit killed it."""
    notes: list[str] = field(default_factory=list)
    """What was wrong with the sample's output format (malformed harmony, unknown tools)."""

    def summary(self) -> dict[str, Any]:
        conf = self.confidence
        return {
            "index": self.index,
            "answer": self.answer,
            "tokens": self.tokens,
            "finish": self.finish_reason,
            "code_calls": self.code_calls,
            "code_ok": self.code_ok,
            "code_status": self.code_status,
            "seconds": None if self.ended is None else round(self.ended - self.started, 3),
            "error": self.error,
            "session_restarts": self.session_restarts,
            "notes": self.notes,
            # Confidence signals and vote weight, so a recorded run replays with them.
            "confidence": ({**conf.summary().to_dict(), "blocks": conf.blocks().to_dict()}
                           if conf and conf.tokens else None),
            "weight": None if self.weight is None else round(self.weight, 6),
        }


@dataclass
class LiveProblem:
    """State of the problem being solved, readable from outside while it runs.

    The submission runner keeps a reference so that, if the solve task itself misses its
    deadline (a hung engine), it can still answer with the best vote so far.
    """

    modulus: int
    samples: dict[int, SampleRecord] = field(default_factory=dict)
    votes: list[tuple[int, float]] = field(default_factory=list)

    def tally(self) -> Tally:
        return tally([a for a, _ in self.votes], [w for _, w in self.votes])

    def best_answer(self) -> tuple[int | None, str]:
        """Leader of the votes; else an answer found in a partial text; else None."""
        leader = self.tally().leader()
        if leader is not None:
            return leader, "votes"
        partial = [
            extract_answer(s.text, self.modulus) for s in self.samples.values() if s.text
        ]
        leader = tally(partial).leader()
        if leader is not None:
            return leader, "partial"
        return None, "none"


@dataclass
class SolveResult:
    answer: int
    stop_reason: str
    votes: dict[int, int]
    n_samples: int
    n_voted: int
    tokens: int
    seconds: float
    code_calls: int
    tokens_per_s: float | None
    """Median per-sample decode speed of this problem (for the scheduler)."""
    samples: list[dict[str, Any]]
    faults: list[str]
    budget_max_tokens: int
    answer_source: str = "votes"
    engine_errors: int = 0
    """Samples that ended with an engine error (a failed generation or an ERROR event)."""
    out_of_memory: bool = False
    """One of those errors was an out-of-memory error."""
    retries: int = 0
    """Times the problem asked the engine again after every sample had failed."""
    confidence_threshold: float | None = None
    """Online termination's threshold, once the warm-up samples had set it."""
    low_confidence_stops: int = 0
    """Samples cancelled by online termination."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "stop_reason": self.stop_reason,
            "answer_source": self.answer_source,
            "votes": {str(k): v for k, v in self.votes.items()},
            "n_samples": self.n_samples,
            "n_voted": self.n_voted,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "code_calls": self.code_calls,
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 2),
            "budget_max_tokens": self.budget_max_tokens,
            "faults": list(self.faults),
            "engine_errors": self.engine_errors,
            "out_of_memory": self.out_of_memory,
            "retries": self.retries,
            "confidence_threshold": None if self.confidence_threshold is None
            else round(self.confidence_threshold, 4),
            "low_confidence_stops": self.low_confidence_stops,
            "samples": self.samples,
        }


class Solver:
    """Policy for one problem against any :class:`Engine`.

    ``sandbox`` is anything with ``async run(code) -> result`` where the result has
    ``to_model_text()`` and an ``ok`` flag (``sandbox.Sandbox``); without one, code blocks are
    not run. Harmony styles run code in ``sandbox.session()`` (one persistent interpreter per
    sample) when the sandbox has sessions. ``stop`` are the model's stop strings from the
    manifest; ``CODE_STOP`` (or harmony's end-of-call and end-of-turn) is added.
    """

    def __init__(
        self,
        engine: Engine,
        policy: PolicyConfig,
        *,
        modulus: int = AIMO2.answer_modulus,
        prompt_style: str = "r1",
        tir_prompt_style: str | None = None,
        stop: tuple[str, ...] = (),
        sandbox: Any = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.modulus = modulus
        self.prompt_style = prompt_style
        self.tir_prompt_style = tir_prompt_style
        self.stop = tuple(stop)
        self.sandbox = sandbox
        self._chat: HarmonyChat | None = None

    @property
    def tir_active(self) -> bool:
        return bool(self.policy.tir and self.sandbox is not None and self.tir_prompt_style)

    @property
    def style(self) -> str:
        """The prompt style in use: the TIR one when tool use is on."""
        return (self.tir_prompt_style if self.tir_active else None) or self.prompt_style

    @property
    def harmony(self) -> bool:
        return prompt_format(self.style) == HARMONY

    def chat(self) -> HarmonyChat:
        """The style's ``HarmonyChat`` (loaded at first use; raises ``HarmonyUnavailable``)."""
        if self._chat is None:
            self._chat = HarmonyChat.for_style(style_spec(self.style), tools=self.tir_active)
        return self._chat

    def build_prompt(self, problem: str) -> str:
        messages = build_messages(problem, self.style, self.modulus - 1)
        if self.harmony:
            return self.chat().render_prompt(messages).text
        return self.engine.format_prompt(messages)

    def stop_strings(self) -> tuple[str, ...]:
        """The manifest's stop strings plus the format's own."""
        if self.harmony:
            return self.stop + tuple(s for s in self.chat().stop if s not in self.stop)
        return self.stop + ((CODE_STOP,) if self.tir_active else ())

    async def solve(
        self, problem: str, budget: ProblemBudget, *, live: LiveProblem | None = None
    ) -> SolveResult:
        live = live if live is not None else LiveProblem(self.modulus)
        run = _ProblemRun(self, problem, budget, live)
        return await run.execute()


class _ProblemRun:
    """One problem's bookkeeping; lives only for the duration of ``Solver.solve``."""

    def __init__(
        self, solver: Solver, problem: str, budget: ProblemBudget, live: LiveProblem
    ) -> None:
        self.s = solver
        self.p = solver.policy
        self.problem = problem
        self.budget = budget
        self.live = live
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.gens: list[Generation] = []
        self.pumps: set[asyncio.Task[None]] = set()
        self.code_tasks: set[asyncio.Task[None]] = set()
        self.owner: dict[int, tuple[Generation, int]] = {}
        self.awaiting_code: set[int] = set()
        """Samples paused on a code run: their generation has ended but they have not."""
        self.faults: list[str] = []
        self.prompt = ""
        self.last_engine = self.loop.time()
        """When the engine last sent anything (or was last asked): silence is measured from it."""
        self.engine_errors = 0
        self.out_of_memory = False
        self.retries = 0
        self.round_size = 0
        """Samples started by the latest fresh request (the size a retry starts from)."""
        self.stop: tuple[str, ...] = ()
        self.harmony = solver.harmony
        self.sessions: dict[int, Any] = {}
        """Each harmony sample's persistent python session, from its first call to its end."""
        self.closers: set[asyncio.Task[None]] = set()
        self.stateless_noted = False
        self.logprobs = (self.p.confidence_topk
                         if self.p.uses_confidence or self.p.confidence_record else 0)
        self.warmup: list[float] = []
        """Lowest group confidences of the first samples that finished on their own."""
        self.conf_threshold: float | None = None
        self.low_confidence_stops = 0
        self.held_back: list[int] = []
        """Samples not started yet: they wait for the warm-up (``confidence_staged``)."""
        self.changes = 0
        """Bumped whenever a sample finishes, is added, or starts or ends a code run: the stop
        rules and the stall check read only that state (and, with a confidence vote, the
        weight bounds), so ``loop_events`` re-runs them only when it moved."""

    # -- helpers -------------------------------------------------------------------------------
    @property
    def samples(self) -> dict[int, SampleRecord]:
        return self.live.samples

    def outstanding(self) -> int:
        return sum(1 for s in self.samples.values() if not s.finished)

    def start_generation(self, prompt: str, sample_ids: list[int], max_tokens: int) -> None:
        seed = None
        if self.p.seed is not None:
            # A continuation gets a fresh stream: reusing the seed would replay the same draws.
            first = self.samples[sample_ids[0]]
            seed = self.p.seed + 7919 * sample_ids[0] + 104729 * first.code_calls
        request = GenerationRequest(
            prompt=prompt,
            n=len(sample_ids),
            max_tokens=max(1, max_tokens),
            stop=self.stop,
            temperature=self.p.temperature,
            top_p=self.p.top_p,
            seed=seed,
            include_stop=True,
            logprobs=self.logprobs,
        )
        self.last_engine = self.loop.time()
        try:
            gen = self.s.engine.generate(request)
        except Exception as exc:  # e.g. out of memory while admitting the request
            self.fail_samples(sample_ids, f"{type(exc).__name__}: {exc}")
            return
        self.gens.append(gen)
        for j, sid in enumerate(sample_ids):
            self.owner[sid] = (gen, j)
            self.samples[sid].segment_tokens = 0
            self.samples[sid].segment_from = len(self.samples[sid].text)
        task = asyncio.ensure_future(self._pump(gen, sample_ids))
        self.pumps.add(task)
        task.add_done_callback(self.pumps.discard)

    async def _pump(self, gen: Generation, sample_ids: list[int]) -> None:
        try:
            async for event in gen:
                self.queue.put_nowait(("event", sample_ids[event.index], gen, event))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # engine failure mid-stream: the samples end with an error
            self.queue.put_nowait(("gen_error", sample_ids, gen, f"{type(exc).__name__}: {exc}"))
            return
        self.queue.put_nowait(("gen_end", sample_ids, gen, None))

    def vote(self, sample: SampleRecord) -> None:
        if sample.answer is None:
            return
        weight = self.p.code_vote_weight if sample.code_ok > 0 else 1.0
        signal = self.p.confidence_vote
        if signal and sample.confidence is not None:
            value = sample.confidence.summary().signal(signal)
            weight *= weight_of(signal, value, self.p.confidence_topk, self.p.confidence_power)
        sample.weight = weight
        self.live.votes.append((sample.answer, weight))

    # -- confidence (issue 16) ---------------------------------------------------------------
    def max_vote_weight(self, sample: SampleRecord) -> float:
        """The true largest weight an unfinished sample can still add (for ``unbeatable``)."""
        most = max(1.0, self.p.code_vote_weight)
        signal = self.p.confidence_vote
        if signal and sample.confidence is not None:
            bound = sample.confidence.upper_bound(signal)
            most *= weight_of(signal, bound, self.p.confidence_topk, self.p.confidence_power)
        return most

    def outstanding_weight(self) -> float | None:
        """Sum of the unfinished samples' bounds, or None when every bound is the same constant
        (no confidence vote): runs on every event, so the per-sample walk is skipped then."""
        if not self.p.confidence_vote:
            return None
        return sum(self.max_vote_weight(s) for s in self.samples.values() if not s.finished)

    def track_confidence(self, sample: SampleRecord, event: SampleEvent) -> None:
        if event.stats is None or not event.stats.confidence:
            return
        if sample.confidence is None:
            sample.confidence = SampleConfidence(self.p.confidence_window, self.p.confidence_tail,
                                                 self.p.confidence_block)
        sample.confidence.add(event.stats.confidence, event.stats.logprob)

    def note_warmup(self, sample: SampleRecord) -> None:
        """The first finished samples set the online-termination threshold (DeepConf-online)."""
        if (self.p.confidence_stop_percentile <= 0 or self.conf_threshold is not None
                or sample.confidence is None or sample.finish_reason not in _NATURAL_ENDS):
            return
        low = sample.confidence.summary().signal(self.p.confidence_stop_signal)
        if low is None:
            return
        self.warmup.append(low)
        if len(self.warmup) >= self.p.confidence_warmup:
            self.conf_threshold = percentile(self.warmup, self.p.confidence_stop_percentile)

    def release_held_back(self) -> None:
        """Start the held-back samples once the threshold is set or the warm-up has ended."""
        if not self.held_back:
            return
        started = [s for s in self.samples.values() if s.index not in self.held_back]
        if self.conf_threshold is None and any(not s.finished for s in started):
            return
        ids, self.held_back = self.held_back, []
        now = self.loop.time()
        if now >= self.stop_at:
            return  # no time: they end as cancelled at shutdown
        for sid in ids:
            self.samples[sid].started = now
        self.start_generation(self.prompt, ids, self.budget.max_tokens)

    def maybe_terminate(self, sample: SampleRecord) -> bool:
        """Cancel a running sample whose group confidence fell below the threshold."""
        if sample.confidence is None or not is_doomed(
                sample.confidence, self.p.confidence_stop_signal, self.conf_threshold):
            return False
        self.low_confidence_stops += 1
        self.cancel_sample(sample.index)
        self.finish(sample, "low-confidence", extract=False)
        return True

    def note_engine_error(self, error: str) -> None:
        self.engine_errors += 1
        self.out_of_memory = self.out_of_memory or is_out_of_memory(error)

    def fail_samples(self, sample_ids: list[int], error: str) -> None:
        """A generation failed (``generate`` raised, or its stream broke): its open samples
        end with the error; maybe ask again."""
        for sid in sample_ids:
            sample = self.samples[sid]
            if not sample.finished:
                sample.error = error
                self.note_engine_error(error)
                self.finish(sample, "error")
        self.faults.append(f"generation failed: {error}")
        self.maybe_retry()

    def maybe_retry(self) -> None:
        """Every sample failed in the engine and nothing is left running: ask once more.

        After an out-of-memory error the retry starts fewer samples. Bounded by
        ``policy.engine_retries`` and by the time left.
        """
        if (
            self.retries >= self.p.engine_retries
            or self.engine_errors == 0
            or self.live.votes
            or self.outstanding() > 0
            or self.loop.time() >= self.stop_at
            or not self.prompt
        ):
            return
        self.retries += 1
        k = self.round_size or self.budget.n_samples
        if self.out_of_memory:
            k = max(1, int(k * self.p.oom_sample_factor))
        self.faults.append(
            f"engine failed every sample; retry {self.retries} with {k} sample(s)"
        )
        first = len(self.samples)
        ids = list(range(first, first + k))
        now = self.loop.time()
        for sid in ids:
            self.samples[sid] = SampleRecord(index=sid, started=now)
        self.changes += 1
        self.round_size = k
        self.start_generation(self.prompt, ids, self.budget.max_tokens)

    def finish(self, sample: SampleRecord, reason: str, *, extract: bool = True) -> None:
        if sample.finished:
            return
        sample.finished = True
        self.changes += 1
        sample.finish_reason = reason
        sample.ended = self.loop.time()
        if extract and sample.answer is None and not self.harmony:
            # Harmony answers come only from a final message (``on_turn_end``).
            sample.answer = extract_answer(sample.text, self.s.modulus)
        self.vote(sample)
        self.note_warmup(sample)
        self.release_held_back()
        self.close_session(sample.index)

    def close_session(self, sid: int) -> None:
        """End the sample's python session in the background (``shutdown`` waits for it)."""
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        self.samples[sid].session_restarts = int(getattr(session, "restarts", 0) or 0)
        task = asyncio.ensure_future(_safe_aclose(session))
        self.closers.add(task)
        task.add_done_callback(self.closers.discard)

    def cancel_sample(self, sid: int) -> None:
        gen, j = self.owner.get(sid, (None, 0))
        if gen is not None:
            with contextlib.suppress(Exception):
                gen.cancel(j)

    # -- event handling ------------------------------------------------------------------------
    def on_event(self, sid: int, gen: Generation, event: SampleEvent) -> None:
        sample = self.samples[sid]
        if sample.finished or self.owner.get(sid, (None, 0))[0] is not gen:
            return  # late events of a sample already decided (e.g. after its box completed)
        new_tokens = max(0, event.tokens - sample.segment_tokens)
        sample.segment_tokens = max(sample.segment_tokens, event.tokens)
        sample.tokens += new_tokens
        self.track_confidence(sample, event)
        if sample.tokens > self.budget.max_tokens and not event.finished:
            # The engine ignores the token cap: stop listening to this sample ourselves.
            self.faults.append(
                f"sample {sid}: engine went past max_tokens ({sample.tokens} > "
                f"{self.budget.max_tokens}); cancelled"
            )
            sample.text += event.delta
            self.cancel_sample(sid)
            self.finish(sample, "length")
            return
        if event.delta:
            before = len(sample.text)
            sample.text += event.delta
            if self.p.stop_on_boxed and not self.harmony:
                self.check_box(sample, before)
                if sample.finished:
                    return
        if not event.finished:
            self.maybe_terminate(sample)
            return
        reason = event.finish_reason or FinishReason.STOP
        if reason == FinishReason.ERROR:
            sample.error = event.error
            self.faults.append(f"sample {sid}: engine error: {event.error}")
            self.note_engine_error(event.error or "engine error")
        if self.harmony and reason in (FinishReason.STOP, FinishReason.LENGTH):
            self.on_turn_end(sample, reason)
            return
        if reason == FinishReason.STOP and self.wants_code(sample):
            self.run_code(sample)
            return
        self.finish(sample, FinishReason(reason).value)
        if reason == FinishReason.ERROR:
            self.maybe_retry()

    def check_box(self, sample: SampleRecord, before: int) -> None:
        """Linear-time detection of a newly completed box in the streamed text."""
        window_start = max(0, before - 8)
        for marker in _BOX_MARKERS:
            pos = sample.text.rfind(marker, window_start)
            if pos > sample.box_from:
                sample.box_from = pos
        if sample.box_from < 0 or "}" not in sample.text[max(before, sample.box_from):]:
            return
        answer = extract_answer(sample.text[sample.box_from :], self.s.modulus)
        if answer is not None:
            sample.answer = answer
            self.cancel_sample(sample.index)
            self.finish(sample, "boxed", extract=False)

    def wants_code(self, sample: SampleRecord) -> bool:
        return (
            self.s.tir_active
            and sample.text.rstrip().endswith(CODE_STOP)
            and sample.code_calls < self.p.max_code_calls
            and last_code_block(sample.text) is not None
        )

    def on_turn_end(self, sample: SampleRecord, reason: FinishReason) -> None:
        """A harmony request ended: a final answer, a tool call, or a turn that casts no vote."""
        turn = self.s.chat().read_turn(sample.text[sample.segment_from :],
                                       stopped=reason == FinishReason.STOP)
        sample.notes.extend(turn.notes)
        if turn.kind == "final":
            sample.answer = final_answer(turn.final_text, self.s.modulus)
            if sample.answer is None:
                sample.notes.append(f"final message holds no integer: {turn.final_text[:80]!r}")
            self.finish(sample, "stop")
        elif turn.kind == "call":
            call_token = self.s.chat().call_token
            if not sample.text.endswith(call_token):
                # The engine ended the call at its end-of-sequence token without writing it
                # out: the context the model continues from must still close the call.
                sample.text += call_token
            self.on_tool_call(sample, turn)
        else:
            self.finish(sample, "length" if reason == FinishReason.LENGTH else "no-final")

    def on_tool_call(self, sample: SampleRecord, turn: Turn) -> None:
        """Run a python call in the sample's session; answer anything else with an error."""
        if sample.code_calls >= self.p.max_code_calls:
            if sample.limit_told:
                sample.notes.append("tool call after the call-limit notice: sample ended")
                self.finish(sample, "code-limit")
                return
            sample.limit_told = True
            self.reply(sample, turn.recipient, turn.channel,
                       f"Error: the limit of {self.p.max_code_calls} tool calls is reached; no "
                       "more code will run. Give the final answer now.")
            return
        sample.code_calls += 1
        if not (self.s.tir_active and turn.recipient == PYTHON_TOOL):
            sample.notes.append(f"call to unknown tool {turn.recipient!r}")
            offer = ("The only tool is python." if self.s.tir_active
                     else "No tools are available: continue without them.")
            self.reply(sample, turn.recipient, turn.channel,
                       f"Error: there is no tool named {turn.recipient!r}. {offer}")
            return
        sample.tool_channel = turn.channel
        self.run_code(sample, turn.code)

    def reply(self, sample: SampleRecord, tool: str, channel: str | None, text: str) -> None:
        """Answer a harmony tool call with ``text`` and continue the sample."""
        sample.text += self.s.chat().tool_reply(tool, text, channel)
        self.continue_sample(sample)

    def continue_sample(self, sample: SampleRecord) -> None:
        """Resume a sample after a tool result, if tokens and time are left."""
        remaining = self.budget.max_tokens - sample.tokens
        if remaining < self.p.min_tokens // 4 or self.loop.time() >= self.stop_at:
            self.finish(sample, "length")
            return
        self.start_generation(self.prompt + sample.text, [sample.index], remaining)

    def run_code(self, sample: SampleRecord, code: str | None = None) -> None:
        """Run ``code`` (a harmony call, already counted) or the text's last ```python block."""
        if code is None:
            code = last_code_block(sample.text) or ""
            sample.code_calls += 1
        self.awaiting_code.add(sample.index)
        self.changes += 1
        task = asyncio.ensure_future(self._code(sample.index, code))
        self.code_tasks.add(task)
        task.add_done_callback(self.code_tasks.discard)

    async def _code(self, sid: int, code: str) -> None:
        started = self.loop.time()
        try:
            if self.harmony:
                result = await self.run_in_session(sid, code)
            else:
                result = await self.s.sandbox.run(code)
            text, ok = result.to_model_text(), bool(getattr(result, "ok", False))
            if not ok:
                status = getattr(result, "status", "error")
                self.samples[sid].code_status.append(str(getattr(status, "value", status)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken sandbox must not take the problem down
            text, ok = f"Error: sandbox failure ({type(exc).__name__})", False
            self.faults.append(f"sample {sid}: sandbox failure: {exc!r}")
        self.queue.put_nowait(("code_done", sid, text, ok, self.loop.time() - started))

    async def run_in_session(self, sid: int, code: str) -> Any:
        """Run ``code`` in sample ``sid``'s persistent session (opened at its first call)."""
        session = self.sessions.get(sid)
        if session is None:
            factory = getattr(self.s.sandbox, "session", None)
            if factory is None:
                if not self.stateless_noted:
                    self.stateless_noted = True
                    self.faults.append("the sandbox has no sessions: python state does not "
                                       "persist between calls")
                return await self.s.sandbox.run(code)
            session = factory()
            self.sessions[sid] = session
        return await session.run(code)

    def on_code_done(self, sid: int, text: str, ok: bool, seconds: float) -> None:
        self.awaiting_code.discard(sid)
        self.changes += 1
        sample = self.samples[sid]
        if sample.finished:
            return
        sample.code_seconds += seconds
        sample.code_ok += int(ok)
        if self.harmony:
            sample.text += self.s.chat().tool_reply(PYTHON_TOOL, text, sample.tool_channel)
        else:
            sample.text += format_code_output(text)
        self.continue_sample(sample)

    def on_gen_failure(self, sample_ids: list[int], gen: Generation, error: str | None) -> None:
        """A generation's stream ended (or broke) with samples still open: close them."""
        # A sample paused at CODE_STOP ended its stream on purpose (it resumes after the code);
        # one owned by a newer generation is no longer this stream's.
        mine = [sid for sid in sample_ids
                if sid not in self.awaiting_code and self.owner.get(sid, (None, 0))[0] is gen]
        if error:
            self.fail_samples(mine, error)
            return
        for sid in mine:
            self.finish(self.samples[sid], "lost")

    # -- main loop -----------------------------------------------------------------------------
    async def execute(self) -> SolveResult:
        t0 = self.loop.time()
        b = self.budget
        grace = min(self.p.answer_grace_s, max(0.0, (b.hard_deadline - b.start) / 4))
        self.stop_at = b.hard_deadline - grace
        stop_reason = "deadline"
        n = b.n_samples
        for i in range(n):
            self.samples[i] = SampleRecord(index=i, started=t0)
        try:
            if self.stop_at <= t0:
                stop_reason = "no-time"
            else:
                self.prompt = self.s.build_prompt(self.problem)
                self.stop = self.s.stop_strings()
                self.round_size = n
                first = n
                if self.p.confidence_staged and self.p.confidence_stop_percentile > 0:
                    first = min(n, self.p.confidence_warmup)
                    self.held_back = list(range(first, n))
                self.start_generation(self.prompt, list(range(first)), b.max_tokens)
                stop_reason = await self.loop_events()
        except asyncio.CancelledError:
            await self.shutdown()
            raise
        except Exception as exc:  # anything unexpected: answer with what we have
            self.faults.append(f"solver error: {type(exc).__name__}: {exc}")
            log.exception("solver error")
            stop_reason = "error"
        await self.shutdown()
        return self.result(stop_reason, t0)

    async def loop_events(self) -> str:
        """Handle queued items until a stop rule, a deadline or an engine stall ends the problem.

        Per item, the cost must stay far below a decode step's share (64 samples stream one
        event each per step): the stop rules and the stall count walk every sample, so they run
        again only after ``changes`` moved (always with a confidence vote, whose weight bounds
        move with every token), and an item already queued is taken without a timer.
        """
        soft_checked = False
        seen = -1
        t = tally([])
        waiting = 0
        while True:
            fresh = seen != self.changes or bool(self.p.confidence_vote)
            if fresh:
                seen = self.changes
                t = tally([a for a, _ in self.live.votes], [w for _, w in self.live.votes])
                decision = should_stop(
                    t,
                    self.outstanding(),
                    agree=self.p.early_stop_agree,
                    unbeatable=self.p.early_stop_unbeatable,
                    min_votes=self.p.min_votes,
                    max_weight_per_sample=max(1.0, self.p.code_vote_weight),
                    outstanding_weight=self.outstanding_weight(),
                )
                if decision.stop:
                    return decision.reason
                waiting = self.waiting_on_engine()
            now = self.loop.time()
            # with settle_late, checked again whenever the tally may have moved
            if now >= self.budget.soft_deadline and (
                    not soft_checked or (self.p.settle_late and fresh)):
                soft_checked = True
                if is_settled(t, self.p.settled_share, self.p.min_votes):
                    return "soft-deadline"
            target = self.stop_at if soft_checked else min(self.budget.soft_deadline, self.stop_at)
            if now >= self.stop_at:
                return "deadline"
            if waiting:
                stall_at = self.last_engine + self.p.engine_stall_s
                if now >= stall_at:
                    self.faults.append(
                        f"engine silent for {now - self.last_engine:.1f} s with "
                        f"{waiting} sample(s) outstanding: treated as hung"
                    )
                    return "engine-stalled"
                target = min(target, stall_at)
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                # Never wait less than a microsecond: a wait below the loop's clock resolution
                # returns at once without the clock moving (in virtual time: forever).
                try:
                    item = await asyncio.wait_for(self.queue.get(),
                                                  timeout=max(_TIME_EPS, target - now))
                except asyncio.TimeoutError:
                    continue
            kind = item[0]
            if kind != "code_done":
                self.last_engine = self.loop.time()
            if kind == "event":
                self.on_event(item[1], item[2], item[3])
            elif kind == "code_done":
                self.on_code_done(item[1], item[2], item[3], item[4])
            elif kind == "gen_error":
                self.on_gen_failure(item[1], item[2], item[3])
            elif kind == "gen_end":
                self.on_gen_failure(item[1], item[2], None)

    def waiting_on_engine(self) -> int:
        """Unfinished samples that wait for engine output (not for a code run)."""
        return sum(
            1 for s in self.samples.values() if not s.finished and s.index not in self.awaiting_code
        )

    def diagnose(self, stop_reason: str, source: str) -> None:
        """Faults that explain an answer not taken from votes, for the run log."""
        if stop_reason == "no-time":
            self.faults.append("no time left for this problem: answered without sampling")
            return
        samples = list(self.samples.values())
        if samples and all(s.finish_reason == "length" and s.tokens == 0 for s in samples):
            self.faults.append(
                "the engine generated nothing: every sample hit the length limit at once "
                "(is the prompt longer than the context window?)"
            )
        empty = sum(1 for s in samples if s.finish_reason in ("stop", "length") and not s.text)
        if empty:
            self.faults.append(f"{empty} sample(s) ended with no text")
        if source != "votes":
            self.faults.append(f"no sample produced an answer: answered from {source}")

    async def shutdown(self) -> None:
        """Cancel everything still running; wait a bounded time for the engine to let go."""
        for gen in self.gens:
            with contextlib.suppress(Exception):
                gen.cancel()
        for task in list(self.code_tasks):
            task.cancel()
        for sid in list(self.sessions):
            self.close_session(sid)
        closers = [asyncio.ensure_future(_safe_aclose(g)) for g in self.gens]
        waits: list[asyncio.Future[Any]] = [*closers, *self.closers]
        pending: set[asyncio.Future[Any]] = set()
        if waits:
            _, pending = await asyncio.wait(waits, timeout=max(0.05, self.p.answer_grace_s / 2))
        stuck_gens = sum(1 for c in closers if c in pending)
        if stuck_gens:
            self.faults.append(f"{stuck_gens} generation(s) did not release in time")
        if len(pending) > stuck_gens:
            self.faults.append(f"{len(pending) - stuck_gens} python session(s) did not close "
                               "in time")
        for task in list(self.pumps):
            task.cancel()
        now = self.loop.time()
        for sample in self.samples.values():
            if not sample.finished:
                sample.finished = True
                sample.finish_reason = "cancelled"
                sample.ended = now
                if sample.answer is None and not self.harmony:
                    sample.answer = extract_answer(sample.text, self.s.modulus)

    def result(self, stop_reason: str, t0: float) -> SolveResult:
        t = self.live.tally()
        answer, source = self.live.best_answer()
        if answer is None:
            answer, source = self.p.fallback_answer % self.s.modulus, "fallback"
        self.diagnose(stop_reason, source)
        rates = [
            s.tokens / (s.ended - s.started - s.code_seconds)
            for s in self.samples.values()
            if s.ended is not None and s.tokens >= 8 and s.ended - s.started - s.code_seconds > 0
        ]
        return SolveResult(
            answer=int(answer),
            stop_reason=stop_reason,
            votes=dict(t.counts),
            n_samples=len(self.samples),
            n_voted=len(self.live.votes),
            tokens=sum(s.tokens for s in self.samples.values()),
            seconds=self.loop.time() - t0,
            code_calls=sum(s.code_calls for s in self.samples.values()),
            tokens_per_s=statistics.median(rates) if rates else None,
            samples=[s.summary() for s in self.samples.values()],
            faults=self.faults,
            budget_max_tokens=self.budget.max_tokens,
            answer_source=source,
            engine_errors=self.engine_errors,
            out_of_memory=self.out_of_memory,
            retries=self.retries,
            confidence_threshold=self.conf_threshold,
            low_confidence_stops=self.low_confidence_stops,
        )


async def _safe_aclose(closable: Any) -> None:
    """``aclose`` of a generation or a python session; a failure to close is not an error."""
    with contextlib.suppress(Exception):
        await closable.aclose()
