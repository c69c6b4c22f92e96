"""Every policy knob in one place, with the reason for its default.

The solver, the scheduler and the simulator read only this dataclass, so a policy tuned in
simulation is exactly the one submitted. Load overrides from JSON with ``PolicyConfig.from_dict``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from aimo_submit.confidence import SIGNALS

TIME_RULES = ("adaptive", "fixed", "run")


@dataclass(frozen=True)
class PolicyConfig:
    # --- sampling -----------------------------------------------------------------------------
    n_samples: int = 8
    """Samples started per problem. AIMO2 winners ran 12-32 on 4x L4; 8 suits the tiny model."""
    temperature: float = 1.0
    """Distilled R1 models are tuned for T~0.6-1.0; diversity is what makes voting work."""
    top_p: float = 0.95
    seed: int | None = 0
    """Base seed (sample i uses seed + i; continuations after a tool call draw their own from
    it); None for non-reproducible sampling. AIMO3's private leaderboard runs the notebook twice
    and scores both runs (README): the same seed does not make the runs equal, since vLLM's
    batches differ with timing, and the expected score does not depend on it; set it per
    submission (``AIMO_POLICY='{"seed": 7}'``) to reproduce or to vary a rehearsal."""
    stop_on_boxed: bool = True
    """End a sample as soon as it writes a complete ``\\boxed{}``: its answer is known."""

    # --- voting and early stop -----------------------------------------------------------------
    early_stop_agree: int = 4
    """Stop when this many samples agree (the AIMO2 winner stopped at 4 agreeing of 12)."""
    early_stop_unbeatable: bool = True
    """Stop when the outstanding samples can no longer overtake the leader."""
    min_votes: int = 1
    """Votes required before any early stop; guards against stopping on one lucky sample."""
    code_vote_weight: float = 1.0
    """Vote weight of an answer reached after executed code (tool-integrated reasoning)."""
    settled_share: float = 0.6
    """At the soft deadline a problem whose leader holds this share of votes is settled."""

    # --- time ------------------------------------------------------------------------------------
    safety_margin_s: float = 300.0
    """Seconds kept back from the total budget for model load jitter and gateway overhead."""
    safety_margin_frac: float = 0.03
    """Extra margin as a fraction of the total budget (whichever of the two is larger wins)."""
    min_problem_s: float = 5.0
    """No problem is planned below this (unless the whole budget is gone)."""
    extend_factor: float = 1.6
    """A disagreeing problem may run to this multiple of its fair share (the hard deadline)."""
    soft_fraction: float = 1.0
    """The soft deadline is this fraction of the fair share: settled problems stop there."""
    answer_grace_s: float = 1.0
    """Seconds reserved inside a problem's deadline to cancel samples and return an answer."""

    # --- tokens ----------------------------------------------------------------------------------
    max_tokens: int = 512
    """Upper bound on tokens per sample; the manifest entry usually overrides it (32k for R1)."""
    min_tokens: int = 32
    """Lower bound so a late problem still gets a chance to answer."""
    initial_tokens_per_s: float = 50.0
    """Per-sample decode speed assumed before the first measurement (then measured online)."""
    throughput_ema: float = 0.5
    """Weight of the newest throughput measurement in the running average."""

    # --- tool-integrated reasoning ---------------------------------------------------------------
    tir: bool = True
    """Run fenced Python blocks the model writes and feed the output back."""
    max_code_calls: int = 4
    """Code executions allowed per sample; further blocks are not run."""
    code_timeout_s: float = 10.0
    """Wall-clock limit of one code execution."""
    code_workers: int = 4
    """Code executions running at once (a bounded pool; more wait their turn)."""

    # --- fallbacks -----------------------------------------------------------------------------
    fallback_answer: int = 0
    """Returned when no sample produced an answer at all; 0 is as good a guess as any."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes carried into run logs; not read by any policy code."""

    # --- appended for the simulator's policy presets (issue 7); defaults change nothing ----------
    behind_schedule_max_tokens: int = 0
    """Token cap while the run is behind a linear schedule; 0 turns the rule off. The public
    AIMO2 baseline drops to 2/3 of its tokens ("speedrun") once it falls behind."""
    behind_schedule_start: float = 0.6
    """The schedule: problem ``k`` of ``n`` (0-based) should start before ``start + (end -
    start) * k / n`` of the total budget has passed (the baseline: 3 h, then 4 h 45 of 5 h)."""
    behind_schedule_end: float = 0.95

    # --- fault handling (issue 8); defaults are what a submission runs ------------------------
    engine_stall_s: float = 60.0
    """An engine that sends no event for this long while samples are outstanding is hung: the
    problem stops waiting (answering from what it has) and the runner restarts the engine.
    Decode emits tokens many times a second and a long prefill takes seconds, so a minute of
    silence is not a slow step."""
    engine_retries: int = 1
    """Times one problem asks again after the engine failed every sample it had started."""
    oom_sample_factor: float = 0.5
    """After an out-of-memory failure, retries and later problems start this fraction of the
    samples (at least one): memory that ran out once runs out again at the same load."""
    engine_restart_after: int = 1
    """Consecutive problems the engine failed outright before it is restarted. One: a broken
    engine rarely heals by itself, and a reload costs less than every later problem."""
    retry_after_restart: bool = True
    """When the engine failed a whole problem without one vote, and the restart that this
    scheduled is expected to finish with at least ``min_problem_s`` of the problem's time left,
    solve the problem again on the fresh engine (the restart is expected to take as long as the
    last one measured, else as long as the start-up)."""
    engine_close_timeout_s: float = 30.0
    """How long a restart waits for the broken engine to let go before loading anew."""
    max_problem_chars: int = 20_000
    """Longer statements are cut in the middle (head and tail kept). Olympiad problems are a
    few hundred characters; a megabyte would only fill the context window and stall prefill."""

    # --- confidence (issue 16): signals in confidence.py; defaults change nothing --------------
    confidence_vote: str = ""
    """Weight each vote by this confidence signal (a name of ``confidence.SIGNALS``: "mean",
    "lowest_group", "tail" of token confidence, or "logprob_..." of the chosen token's
    log-probability; "" for plain votes). The weight is in [0, 1] (mapping in confidence.py);
    a sample without log-probabilities (an engine or trace without them) votes 1.0, i.e. the
    plain vote."""
    confidence_power: float = 1.0
    """Sharpness of the confidence weight (0: every weight 1)."""
    confidence_stop_percentile: float = 0.0
    """Online termination (DeepConf-online); 0 turns it off. Once ``confidence_warmup`` samples
    of a problem have finished, a running sample whose group confidence falls below this
    percentile of their lowest group confidences is cancelled and casts no vote. DeepConf's
    conservative setting keeps 90% (10), its aggressive one 10% (90)."""
    confidence_stop_signal: str = "lowest_group"
    """The lowest-group signal online termination compares ("lowest_group" or
    "logprob_lowest_group"): the running sample's current group against the warm-up's lowest."""
    confidence_warmup: int = 4
    """Finished samples of a problem that set the online-termination threshold."""
    confidence_staged: bool = False
    """Start only the warm-up samples, and the rest once they have finished (DeepConf's
    separate warm-up). Costs the warm-up's latency; without it all samples start together and
    the first to finish set the threshold, which saves nothing when samples are equally long."""
    confidence_window: int = 2048
    """Tokens per sliding window (group) of the group confidence; DeepConf uses 2048."""
    confidence_tail: int = 512
    """Tokens of the tail window before the answer (the ``tail`` signal)."""
    confidence_block: int = 64
    """Tokens per block of the recorded series (run log, traces): block means replay exactly
    at block boundaries; 64 keeps a 12k-token sample to 192 numbers per series."""
    confidence_topk: int = 5
    """k: top log-probabilities per token the engine reports when confidence is used."""
    confidence_record: bool = False
    """Ask for log-probabilities and log every sample's signals even when no rule uses them
    (traces for the simulator; costs engine throughput, see bench/results/confidence.md)."""

    @property
    def uses_confidence(self) -> bool:
        """Does any rule read confidence (so the engine must report log-probabilities)?"""
        return bool(self.confidence_vote) or self.confidence_stop_percentile > 0

    # --- time rules of published policies (issue 12); the default changes nothing -----------
    time_rule: str = "adaptive"
    """How a problem's deadline is set (``schedule.py``). ``adaptive``: the fair share of the
    time left, extendable to ``extend_factor`` x that when votes disagree (ours). ``fixed``: the
    same share for every problem, fixed at the first problem (a public AIMO3-style baseline).
    ``run``: no per-problem limit but the run's end (the public AIMO2 baseline, which generates
    each batch to completion and only shortens its token cap when behind)."""

    min_useful_tokens: int = 0
    """Triage (``adaptive`` rule only; 0: off). A problem's hard deadline is at least the time
    its samples need to write this many tokens at the measured speed, while the problems after
    it keep ``min_problem_s`` each. When the clock is too short for every problem to get that,
    the problems in turn get it and the last ones get the minimum: time split into slices in
    which no sample can reach an answer is wasted (the public AIMO2 baseline, which runs each
    problem to its token cap, beats an even split at tight clocks for that reason). Set it to
    about the length of a typical right answer of the model (the recorded traces say)."""

    tight_min_samples: int = 0
    """With triage on: when the fair share is shorter than the time ``min_useful_tokens``
    need, start fewer samples, in proportion (never fewer than this; 0: always ``n_samples``).
    On a memory-bound GPU fewer sequences decode faster each, and a problem then needs fewer
    tokens in all to reach agreeing answers, so more problems get a real chance."""

    settle_late: bool = False
    """Past the soft deadline, stop a problem as soon as it is settled (``settled_share``),
    not only if it was settled at that moment. A problem over its fair share that then gets
    a settling vote gains little from more samples but keeps taking time from every problem
    after it; without this, one whose first answer came just after the soft deadline runs on
    to ``early_stop_agree`` or its hard deadline."""

    def __post_init__(self) -> None:
        if self.time_rule not in TIME_RULES:
            raise ValueError(f"time_rule must be one of {TIME_RULES}, got {self.time_rule!r}")
        if self.n_samples < 1:
            raise ValueError("n_samples must be >= 1")
        if self.early_stop_agree < 1:
            raise ValueError("early_stop_agree must be >= 1")
        if not 0 < self.settled_share <= 1:
            raise ValueError("settled_share must be in (0, 1]")
        if self.extend_factor < 1:
            raise ValueError("extend_factor must be >= 1")
        if self.min_tokens < 1 or self.max_tokens < self.min_tokens:
            raise ValueError("need 1 <= min_tokens <= max_tokens")
        if self.behind_schedule_max_tokens < 0:
            raise ValueError("behind_schedule_max_tokens must be >= 0 (0: off)")
        if not 0 < self.oom_sample_factor <= 1:
            raise ValueError("oom_sample_factor must be in (0, 1]")
        if self.engine_stall_s <= 0 or self.engine_retries < 0 or self.engine_restart_after < 1:
            raise ValueError("need engine_stall_s > 0, engine_retries >= 0, "
                             "engine_restart_after >= 1")
        if self.tight_min_samples < 0:
            raise ValueError("tight_min_samples must be >= 0 (0: off)")
        if self.min_useful_tokens < 0:
            raise ValueError("min_useful_tokens must be >= 0 (0: off)")
        if self.max_problem_chars < 1:
            raise ValueError("max_problem_chars must be >= 1")
        if self.confidence_vote not in ("", *SIGNALS):
            raise ValueError(f"confidence_vote must be '' or one of {SIGNALS}")
        if self.confidence_stop_signal not in ("lowest_group", "logprob_lowest_group"):
            raise ValueError("confidence_stop_signal must be 'lowest_group' or "
                             "'logprob_lowest_group'")
        if self.confidence_power < 0 or not 0 <= self.confidence_stop_percentile <= 100:
            raise ValueError("need confidence_power >= 0 and 0 <= confidence_stop_percentile "
                             "<= 100")
        if (self.confidence_warmup < 1 or self.confidence_window < 1
                or self.confidence_tail < 1 or self.confidence_topk < 1
                or self.confidence_block < 1):
            raise ValueError("confidence_warmup, _window, _tail, _topk and _block must be >= 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        """Build from a mapping, refusing unknown keys so a typo never silently does nothing,
        and values of the wrong type (overrides come from JSON, a command line or an
        environment variable: ``"12"`` for ``n_samples`` is an error, not a string compare
        failing later), both as ``ValueError`` naming the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown policy keys: {', '.join(unknown)}; known: {sorted(known)}")
        wrong = [f"{key}={value!r} (wants {_FIELD_TYPES[key]})" for key, value in data.items()
                 if not _type_ok(_FIELD_TYPES[key], value)]
        if wrong:
            raise ValueError(f"policy values of the wrong type: {', '.join(wrong)}")
        return cls(**data)

    def replace(self, **changes: Any) -> PolicyConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(PolicyConfig)}
"""Each field's annotation as written (``from __future__`` keeps them as strings)."""


def _type_ok(annotation: str, value: Any) -> bool:
    """Does a JSON-loaded value fit a field's annotation? ints pass for floats (JSON writes
    1.0 as 1 in places); bools never pass for numbers (``True`` is an int in Python)."""
    if value is None:
        return annotation.endswith("| None")
    base = annotation.removesuffix(" | None")
    if isinstance(value, bool):
        return base == "bool"
    if base == "int":
        return isinstance(value, int)
    if base == "float":
        return isinstance(value, (int, float))
    if base == "str":
        return isinstance(value, str)
    if base.startswith("dict"):
        return isinstance(value, dict)
    return False  # a bool field given a non-bool, or a type this check does not know
