"""How the ``ours-*`` presets were chosen: a grid over preset fields on ONE top-level trace file.

Every candidate (the profile's default preset with the grid's fields replaced) plays the whole
budget curve (x1/4, 1/3, 1/2, 1 of the scaled clock) on the TUNING seeds, paired with the
published references on the same seeds; each cell prints ``solved (gap to the best reference
+- 95 % half-width)``. The seeds differ from the ones ``bench_policies`` reports, and the holdout
files are refused: they are for reporting only.

    python -m bench.tune_policies --traces ../shared/traces/qwen3-30b-a3b_aime2025_n8.jsonl \\
        --grid '{"early_stop_agree": [2, 3], "min_useful_tokens": [10000, 16000]}'

Not part of ``make bench`` (its name does not start with ``bench_``): a grid of a dozen
candidates takes a few minutes on 2 CPUs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimo_submit.competition import get_profile
from aimo_submit.hardware import DEFAULT_SCALING, SCALING_RULES
from aimo_submit.policy import PolicyConfig
from aimo_submit.presets import PRESETS, policies_for
from aimo_submit.simulate import compare, paired_interval, settings_for
from bench.bench_policies import CHUNK_TOKENS, CLOCK_SCALES, JOBS, TUNING_SEEDS, profile_of


def solved(path: Path, profile: str, policies: dict[str, PolicyConfig],
           seeds: list[int], scaling: str = DEFAULT_SCALING) -> dict[str, dict[float, list[int]]]:
    """Problems solved per policy, clock scale and seed (in seed order)."""
    out: dict[str, dict[float, list[int]]] = {}
    for scale in CLOCK_SCALES:
        settings = settings_for(str(path), profile, clock_scale=scale, chunk_tokens=CHUNK_TOKENS,
                                scaling=scaling)
        by = {(r.policy, r.seed): r.solved for r in compare(policies, seeds, settings, jobs=JOBS)}
        for name in policies:
            out.setdefault(name, {})[scale] = [by[(name, s)] for s in seeds]
    return out


def cell(ours: list[int], refs: dict[str, list[int]]) -> str:
    """``mean (gap +- half-width)`` against the reference with the best mean."""
    best = max(refs.values(), key=statistics.fmean)
    gap, half = paired_interval([a - b for a, b in zip(ours, best, strict=True)])
    return f"{statistics.fmean(ours):5.2f} ({gap:+.2f} +- {half:.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.tune_policies", description=__doc__.split("\n")[0])
    ap.add_argument("--traces", required=True, help="one top-level trace file (.jsonl)")
    ap.add_argument("--grid", required=True, help='JSON: {"field": [values, ...], ...}')
    ap.add_argument("--scaling", default=DEFAULT_SCALING, choices=SCALING_RULES,
                    help="how the measured table is carried to the machine (hardware.py)")
    args = ap.parse_args(argv)
    path = Path(args.traces)
    if "holdout" in path.parts:
        print("error: holdout files are for reporting only", file=sys.stderr)
        return 2
    profile = profile_of(path)
    base = PRESETS[get_profile(profile).default_preset]
    grid: dict[str, list] = json.loads(args.grid)
    candidates = {", ".join(f"{k}={v}" for k, v in zip(grid, values, strict=True)):
                  base.replace(**dict(zip(grid, values, strict=True)))
                  for values in itertools.product(*grid.values())}
    seeds = list(TUNING_SEEDS)
    refs = solved(path, profile, {k: v for k, v in policies_for(profile).items() if k != "ours"},
                  seeds, args.scaling)
    print(f"{path.name} ({profile}, scaling {args.scaling}); seeds {seeds[0]}..{seeds[-1]}; "
          "clocks "
          + ", ".join(f"x{s:.2f}" for s in CLOCK_SCALES))
    for name, results in solved(path, profile, candidates, seeds, args.scaling).items():
        cells = [cell(results[s], {r: refs[r][s] for r in refs}) for s in CLOCK_SCALES]
        print(f"{name}: " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
