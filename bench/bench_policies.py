"""Policy benchmark: the AIMO2 references vs ours, in simulated 5-hour competitions.

``run()`` plays every policy on the same seeds (same problems, sample pools and order per
seed), returns one row per policy and writes ``bench/results/policies.md`` (tables, settings,
the exact command) and ``bench/results/policies_vs_budget.png`` (problems solved against the
total time budget). Run as ``python -m bench`` (all benchmarks) or ``python -m
bench.bench_policies``. Sized to take about a minute or two on 2 CPUs.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimo_submit.presets import get_preset
from aimo_submit.simulate import (
    CompetitionResult,
    SimSettings,
    compare,
    format_table,
    paired_gaps,
    problem_set,
    summarize,
)
from aimo_submit.traces import CALIBRATED, DEFAULT_MODEL, fit_report
from bench import markdown_rows

# -- configuration (data) ------------------------------------------------------------------------
POLICIES = ("aimo2-baseline", "aimo2-winner", "ours-defaults", "ours")
SEEDS = 20
"""Competitions per policy for the main table."""
CURVE_HOURS = (1.0, 2.0, 3.0, 4.0, 5.0)
CURVE_SEEDS = 6
SENSITIVITY = {"hardware": "l4x4-tp4"}
"""A second machine model (the manifest's tensor-parallel vLLM set-up) for the same policies."""
SENSITIVITY_SEEDS = 6
JOBS = min(2, os.cpu_count() or 1)
RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "make bench  (= python -m bench; this part alone: python -m bench.bench_policies)"
CLI_EQUIVALENT = f"python -m aimo_submit simulate --seeds {SEEDS} --jobs {JOBS}"


def _curve(settings: SimSettings) -> dict[str, list[tuple[float, float, float]]]:
    """Per policy: (hours, mean solved, standard error) at each total budget."""
    policies = {name: get_preset(name) for name in POLICIES}
    seeds = list(range(CURVE_SEEDS))
    out: dict[str, list[tuple[float, float, float]]] = {name: [] for name in POLICIES}
    for hours in CURVE_HOURS:
        results = compare(policies, seeds, replace(settings, total_s=hours * 3600), jobs=JOBS)
        for name in POLICIES:
            solved = [r.solved for r in results if r.policy == name]
            se = statistics.pstdev(solved) / len(solved) ** 0.5 if len(solved) > 1 else 0.0
            out[name].append((hours, statistics.fmean(solved), se))
    return out


def _plot(curve: dict[str, list[tuple[float, float, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in curve.items():
        hours = [p[0] for p in points]
        ax.errorbar(hours, [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                    capsize=3, label=name)
    ax.set_xlabel("total time budget (hours)")
    ax.set_ylabel(f"problems solved of 50 (mean of {CURVE_SEEDS} runs, ± s.e.)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _gap_lines(results: list[CompetitionResult], n_seeds: int) -> list[str]:
    return [f"- ours - {name}: {gap:+.2f} problems per run (ours ahead on {wins}/{n_seeds} seeds)"
            for name, (gap, wins) in paired_gaps(results, "ours").items()]


def _stop_reasons(results: list[CompetitionResult]) -> list[dict[str, Any]]:
    rows = []
    for name in POLICIES:
        recs = [rec for r in results if r.policy == name for rec in r.records]
        counts: dict[str, int] = {}
        for rec in recs:
            counts[rec.stop_reason] = counts.get(rec.stop_reason, 0) + 1
        rows.append({"policy": name,
                     "mean_s_per_problem": round(statistics.fmean(x.seconds for x in recs), 1),
                     "mean_tokens_per_problem": round(statistics.fmean(x.tokens for x in recs)),
                     **{k: round(v / len(recs), 3) for k, v in sorted(counts.items())}})
    return rows


def run() -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = SimSettings(traces="auto")
    seeds = list(range(SEEDS))
    _, source = problem_set(0, settings)
    policies = {name: get_preset(name) for name in POLICIES}

    results = compare(policies, seeds, settings, jobs=JOBS)
    rows = summarize(results, settings, seeds)

    sens_settings = replace(settings, **SENSITIVITY)
    sens_seeds = list(range(SENSITIVITY_SEEDS))
    sens_results = compare(policies, sens_seeds, sens_settings, jobs=JOBS)
    sens_rows = summarize(sens_results, sens_settings, sens_seeds)

    curve = _curve(settings)
    png = RESULTS / "policies_vs_budget.png"
    _plot(curve, png, f"{source}; hardware {settings.hardware} (see policies.md)")
    elapsed = time.perf_counter() - t0

    md = [
        "# Policy benchmark (simulated AIMO2 competitions)",
        "",
        f"Command: `{COMMAND}`  ",
        f"Same main table from the CLI: `{CLI_EQUIVALENT}`  ",
        f"Wall time of this benchmark: {elapsed:.0f} s on {JOBS} worker(s).",
        "",
        "Each run: 50 problems in random order, 5 h budget (scheduler margin included), "
        f"{settings.startup_s:.0f} s of model loading first; the unchanged solver and scheduler "
        "on the replay engine (a fake of the GPU's timing) in virtual time. Policies are paired: "
        "same problems, sample pools and order for every policy on a seed.",
        "",
        f"- traces: {source}",
        f"- throughput: {settings.throughput().describe()}",
        "- oracle maj@pool: majority over all 64 pool samples with no time limit (not a strict "
        "bound: stopping on early agreement favours short samples, which are right more often); "
        "coverage: the gold answer occurs in the pool at all (a strict bound for voting).",
        "",
        f"## {SEEDS} competitions per policy, 5 h",
        "",
        format_table(rows),
        "",
        *_gap_lines(results, SEEDS),
        "",
        "Where the time went (share of problems by stop reason):",
        "",
        markdown_rows(_stop_reasons(results), missing=0),
        "",
        f"## Sensitivity: {sens_settings.throughput().describe()} ({SENSITIVITY_SEEDS} runs)",
        "",
        format_table(sens_rows),
        "",
        *_gap_lines(sens_results, SENSITIVITY_SEEDS),
        "",
        f"## Score vs total time budget ({CURVE_SEEDS} runs per point)",
        "",
        "![score vs budget](policies_vs_budget.png)",
        "",
        "| hours | " + " | ".join(POLICIES) + " |",
        "| ---: |" + " ---: |" * len(POLICIES),
        *[f"| {h:g} | " + " | ".join(f"{curve[n][i][1]:.2f}" for n in POLICIES) + " |"
          for i, h in enumerate(CURVE_HOURS)],
        "",
        "## Policies",
        "",
        *[f"- `{name}`: " + ", ".join(
            f"{k}={v}" for k, v in policies[name].to_dict().items()
            if k in ("n_samples", "early_stop_agree", "early_stop_unbeatable", "max_tokens",
                     "behind_schedule_max_tokens", "soft_fraction", "extend_factor",
                     "settled_share")) for name in POLICIES],
        "",
        "## Trace calibration",
        "",
    ]
    if source.startswith("synthetic"):
        model = CALIBRATED[settings.trace_model]
        name, bench = settings.trace_model.split("/")
        md += [fit_report(model, name, bench), "",
               f"Parameters: `{model!r}`", "",
               "Sources: Fast-Math-R1-14B model card (pass@1 and mean output tokens at 8k-32k "
               "token budgets); DeepSeek-R1 model card (R1-Distill-Qwen-14B AIME 2024 pass@1 69.7, "
               "cons@64 80.0) for the spread of per-problem difficulty."]
    else:
        md += [f"Recorded traces ({source}); default synthetic model would be {DEFAULT_MODEL}."]
    (RESULTS / "policies.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":
    from bench.__main__ import format_rows

    print(format_rows(run()))
