"""Competition profiles as data: answer range, problem count, time limit, hardware.

Nothing else in the package hard-codes 1000 or 5 hours; it asks the profile.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CompetitionProfile:
    name: str
    answer_modulus: int
    """Answers are integers in ``0 .. answer_modulus - 1``; model integers are reduced by ``%``."""
    n_problems: int
    time_limit_s: float
    """Whole-run budget for answering every problem (the notebook's run time)."""
    startup_limit_s: float
    """How long the gateway waits for the inference server before giving up."""
    response_timeout_s: float
    """How long the gateway waits for one ``predict`` answer (after the first one)."""
    hardware: str
    """In words; the numbers (GPUs, memory, bandwidth) are ``hardware.SETUPS[setup]``."""
    server_module: str
    """Module of ``kaggle_evaluation`` holding the inference server class."""
    server_class: str
    competition_slug: str
    """Folder name under ``/kaggle/input`` where the competition data is mounted."""
    default_model: str | None = None
    """Manifest entry the notebook runs unless told otherwise (None: the manifest's Kaggle
    default)."""
    setup: str = "l4x4-tp4"
    """The machine and model layout the simulator models (a key of ``hardware.SETUPS``)."""
    default_preset: str = "ours-aimo2"
    """The policy a submission runs unless told otherwise (a key of ``presets.PRESETS``): the
    one the simulator benchmarked on this competition's traces."""

    @property
    def max_answer(self) -> int:
        return self.answer_modulus - 1

    def validate_answer(self, answer: object) -> int:
        """Return ``answer`` as an int in range, or raise ValueError saying what is wrong."""
        if isinstance(answer, bool) or not isinstance(answer, int):
            # numpy integers and the like: accept anything that is exactly an integer
            try:
                as_int = int(answer)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                kind = type(answer).__name__
                raise ValueError(f"answer must be an integer, got {kind}") from None
            if isinstance(answer, bool) or as_int != answer:
                raise ValueError(f"answer must be an integer, got {answer!r}")
            answer = as_int
        if not 0 <= answer < self.answer_modulus:
            raise ValueError(f"answer {answer} outside 0..{self.max_answer} ({self.name})")
        return answer


AIMO2 = CompetitionProfile(
    name="aimo2",
    answer_modulus=1000,
    n_problems=50,
    time_limit_s=5 * 3600,
    startup_limit_s=15 * 60,
    response_timeout_s=30 * 60,  # AIMO2 gateway: set_response_timeout_seconds(60 * 30)
    hardware="4x NVIDIA L4 (24 GB each, ~300 GB/s, FP8, no NVLink)",
    server_module="kaggle_evaluation.aimo_2_inference_server",
    server_class="AIMO2InferenceServer",
    competition_slug="ai-mathematical-olympiad-progress-prize-2",
    setup="l4x4-tp4",  # weights_manifest.json: the 14B AWQ model with tensor parallel 4
    default_preset="ours-aimo2",
)

AIMO3 = CompetitionProfile(
    # Public write-ups: 50 problems, 5 h on one H100 80 GB, answers are 5-digit (0..99999); the
    # private leaderboard runs the notebook twice (README). Server module/class as in the public
    # AIMO3 notebooks (kaggle_evaluation.aimo_3_inference_server.AIMO3InferenceServer); the
    # top solutions ran gpt-oss-120b (harmony format, python tool) under vLLM.
    name="aimo3",
    answer_modulus=100000,
    n_problems=50,
    time_limit_s=5 * 3600,
    startup_limit_s=15 * 60,
    response_timeout_s=9 * 3600,  # AIMO3 gateway sets 9 h, i.e. no per-problem limit
    hardware="1x NVIDIA H100 80 GB",
    server_module="kaggle_evaluation.aimo_3_inference_server",
    server_class="AIMO3InferenceServer",
    competition_slug="ai-mathematical-olympiad-progress-prize-3",
    default_model="gpt-oss-120b",
    setup="h100-gpt-oss-120b",
    default_preset="ours-aimo3",
)

PROFILES: dict[str, CompetitionProfile] = {p.name: p for p in (AIMO2, AIMO3)}


def get_profile(name: str) -> CompetitionProfile:
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise KeyError(f"unknown competition profile {name!r}; known: {sorted(PROFILES)}") from None
