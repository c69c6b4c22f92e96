"""Named policies as data: the two public AIMO2 references and ours, side by side.

Each preset is a complete :class:`PolicyConfig`; the simulator and a submission both take one by
name (``--policy NAME``) so that what was measured is exactly what runs. Every preset uses the
project's scheduler for deadlines (hard per-problem deadlines are what keep a run inside 5 h);
the references are otherwise kept to their published rules:

* ``aimo2-baseline``: the public AIMO2 baseline notebook family: 32 samples, 12k tokens, 2/3
  of that (8k) once behind a linear schedule (first problem due by 3 h, last by 4 h 45), plain
  majority of everything that finished (no early stop, no soft-deadline stop);
* ``aimo2-winner``: NemoSkills' winning submission (arXiv 2504.16891): 12 samples, stop as
  soon as 4 agree (no other early stop);
* ``ours``: the project's own rules (agreement, unbeatable leader, soft-deadline stop when
  settled, time saved flowing to later problems) with settings tuned in simulation
  (``python -m aimo_submit simulate``; results in ``bench/results/policies.md``);
* ``ours-defaults``: the same rules with :class:`PolicyConfig`'s defaults, kept to show what
  the tuning bought.

``max_tokens`` is the Kaggle model's manifest cap (12288) except where a reference fixes its own.
"""

from __future__ import annotations

from typing import Any

from aimo_submit.policy import PolicyConfig

__all__ = ["PRESETS", "get_preset", "preset_names"]

_MODEL_MAX_TOKENS = 12288
"""``max_tokens`` of deepseek-r1-distill-qwen-14b-awq in weights_manifest.json."""

_NO_SOFT_STOP = {"soft_fraction": PolicyConfig().extend_factor}
"""Soft deadline at the hard one: a problem never stops early for being merely 'settled'."""

PRESETS: dict[str, PolicyConfig] = {
    "aimo2-baseline": PolicyConfig(
        n_samples=32,
        max_tokens=12000,
        behind_schedule_max_tokens=8000,
        behind_schedule_start=0.6,
        behind_schedule_end=0.95,
        early_stop_agree=33,  # never: more votes than samples
        early_stop_unbeatable=False,
        temperature=1.0,
        **_NO_SOFT_STOP,
        extra={"source": "public AIMO2 baseline notebooks (cutoff_times / 'speedrun' rule)"},
    ),
    "aimo2-winner": PolicyConfig(
        n_samples=12,
        max_tokens=_MODEL_MAX_TOKENS,
        early_stop_agree=4,
        early_stop_unbeatable=False,
        temperature=0.6,
        **_NO_SOFT_STOP,
        extra={"source": "NemoSkills AIMO2 winning solution, arXiv 2504.16891"},
    ),
    "ours-defaults": PolicyConfig(
        max_tokens=_MODEL_MAX_TOKENS,
        temperature=0.6,
        extra={"source": "PolicyConfig defaults (the starting point of the tuning)"},
    ),
    "ours": PolicyConfig(
        # Tuned in simulation (bench/results/policies.md): on 4x L4 decode is bound by reading
        # the weights, so 32 concurrent samples cost little more per sample than 8, and the
        # more samples run, the sooner three of them agree (short samples are right more often).
        n_samples=32,
        early_stop_agree=3,
        max_tokens=_MODEL_MAX_TOKENS,
        temperature=0.6,
        extra={"source": "aimo-submit, tuned with python -m aimo_submit simulate"},
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str, **overrides: Any) -> PolicyConfig:
    """The named preset, optionally with fields replaced (``KeyError`` lists the names)."""
    try:
        policy = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown policy preset {name!r}; known: {preset_names()}") from None
    return policy.replace(**overrides) if overrides else policy
