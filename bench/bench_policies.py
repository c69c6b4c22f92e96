"""Policy benchmark: real recorded traces decide; synthetic scenarios are stress tests.

``run()`` plays, per trace file (one model and setup each, never pooled), the profile's
references and ``ours`` on the same seeds (same problems, pool orders and problem order per
seed) and writes ``bench/results/policies.md`` plus one JSON summary per file
(``bench/results/policies/<file>.json``, the ``simulate --summary`` schema):

* **top level** (``shared/traces/*.jsonl``, the files ours was tuned on): each file under its own
  profile (aimo3 for the AIMO3-style gpt-oss file, aimo2 for the AIME file), all its problems,
  the clock scaled to 5 h x problems / 50, and the score-vs-budget curve at x1/4, 1/3, 1/2, 1
  of that clock, with the issue's criteria checked in the text; the curve again under the
  earlier hardware scaling rule (``SENSITIVITY_SCALING``) as a sensitivity check;
* **holdout** (``shared/traces/holdout/``, never used to choose anything): each file under
  aimo3, 10 problems, clock 1 h;
* **synthetic** (the calibrated generator, AIMO2): one stress-test table.

The replay never uses a recorded sample twice within a problem (``engines/replay.py``): a
policy asking more samples than a pool holds runs the pool. Skips the real-trace tables when
``shared/traces`` is absent. Run as ``python -m bench`` (all benchmarks) or ``python -m
bench.bench_policies``; sized for under 5 minutes on 2 CPUs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimo_submit.hardware import DEFAULT_SCALING
from aimo_submit.presets import PRESETS, policies_for
from aimo_submit.simulate import (
    CompetitionResult,
    SimSettings,
    compare,
    format_table,
    paired,
    settings_for,
    summarize,
    summary_json,
)
from aimo_submit.traces import default_traces_dir, trace_files

# -- configuration (data) ------------------------------------------------------------------------
TOP_SEEDS = 20
"""Competitions per policy and clock on each top-level file (seeds 0..19; 10 until the split
scaling rule, which met the criteria on 10 as well)."""
SENSITIVITY_SCALING = "bandwidth"
"""The earlier hardware scaling rule, whose curves are printed beside the default's."""
TUNING_SEEDS = range(100, 120)
"""The seeds the presets were tuned on (``tune_policies``; stated in the report; never the
reported ones)."""
CLOCK_SCALES = (0.25, 1 / 3, 0.5, 1.0)
HOLDOUT_SEEDS = 100
"""Competitions per policy on each holdout file (seeds 0..99). A file's 10 problems make the
paired gap noisy (a seed's gap has an sd of about 0.9 problems), so 100 seeds bring its
standard error to about 0.09, well under the 0.25 problems of noise the criterion allows;
at 10 seeds (until 2026-12-02) the error, 0.28, was larger than the allowance itself and a
verdict said more about the seeds than the policy. Cheap: about 10 s per file."""
SYNTHETIC_SEEDS = 6
CHUNK_TOKENS = 1024
"""Coarser event chunks than the default 256 keep real-trace runs fast; speeds are re-evaluated
at every chunk boundary and every join or finish, so timing changes by well under a second."""
NOISE = 0.25
"""Problems of noise allowed on the holdout criterion (the issue's)."""
JOBS = min(2, os.cpu_count() or 1)
RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "make bench  (= python -m bench; this part alone: python -m bench.bench_policies)"


def profile_of(path: Path) -> str:
    """The competition a trace file stands for: files on AIMO3-style problems (their names say
    ``aimo3``) are judged 0..99999 under aimo3; the AIME file under aimo2 (answers 0..999)."""
    return "aimo3" if "aimo3" in path.name else "aimo2"


def _play(settings: SimSettings, seeds: list[int]) -> tuple[list[dict[str, Any]],
                                                            list[CompetitionResult], dict]:
    policies = policies_for(settings.profile)
    results = compare(policies, seeds, settings, jobs=JOBS)
    rows = summarize(results, settings, seeds)
    return rows, results, summary_json(results, settings, seeds, policies)


def _gap_lines(results: list[CompetitionResult]) -> list[str]:
    return [f"- ours - {name}: {g['gap']:+.2f} (95% CI {g['ci95'][0]:+.2f} .. "
            f"{g['ci95'][1]:+.2f}; ours ahead on {g['ahead']} seeds)"
            for name, g in paired(results, "ours").items()]


def _best_ref(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return max((r for r in rows if r["policy"] != "ours"), key=lambda r: r["solved_mean"])


def _curve(path: Path, profile: str, seeds: list[int], scaling: str) -> tuple[list, Any]:
    """The score-vs-budget curve of one file under one scaling rule, and the full clock's
    (rows, results, summary, settings) for the main table."""
    curve, full = [], None
    for scale in CLOCK_SCALES:
        settings = settings_for(str(path), profile, clock_scale=scale, chunk_tokens=CHUNK_TOKENS,
                                scaling=scaling)
        rows, results, doc = _play(settings, seeds)
        ours = next(r for r in rows if r["policy"] == "ours")
        best = _best_ref(rows)
        oracle = ours["oracle_majority"]
        gap = paired(results, "ours")[best["policy"]]
        curve.append((scale, ours, best, gap, best["solved_mean"] < 0.9 * oracle, oracle))
        if scale == 1.0:
            full = (rows, results, doc, settings)
    return curve, full


def _curve_table(curve: list) -> list[str]:
    md = ["| clock | oracle | ours | best reference | gap (95% CI) | clock binds | criterion |",
          "| ---: | ---: | ---: | --- | ---: | --- | --- |"]
    for scale, ours, best, gap, binds, oracle in curve:
        if ours["overrun_rate"] > 0:
            verdict = "FAIL (overruns)"
        elif binds:
            verdict = "met" if gap["ci95"][0] > 0 else "NOT met (CI not above 0)"
        else:
            verdict = "met" if gap["gap"] >= 0 else "NOT met (behind)"
        if scale == 1.0:
            share = ours["solved_mean"] / oracle
            verdict += f"; ours {share:.0%} of oracle{' (< 90%)' if share < 0.9 else ''}"
        md.append(f"| x{scale:.2f} | {oracle:.2f} | {ours['solved_mean']:.2f} | "
                  f"{best['policy']} {best['solved_mean']:.2f} | {gap['gap']:+.2f} "
                  f"({gap['ci95'][0]:+.2f} .. {gap['ci95'][1]:+.2f}) | "
                  f"{'yes' if binds else 'no'} | {verdict} |")
    return md + [""]


def _top_level(path: Path, md: list[str], out: list[dict[str, Any]]) -> None:
    profile = profile_of(path)
    seeds = list(range(TOP_SEEDS))
    for scaling in (DEFAULT_SCALING, SENSITIVITY_SCALING):
        curve, (rows, results, doc, settings) = _curve(path, profile, seeds, scaling)
        if scaling == DEFAULT_SCALING:
            (RESULTS / "policies").mkdir(exist_ok=True)
            (RESULTS / "policies" / f"{path.stem}.json").write_text(json.dumps(doc, indent=1))
            md += [f"### {path.name} ({profile}, {settings.n_problems} problems, "
                   f"{settings.total_s / 3600:.2f} h)", "",
                   f"- throughput: {settings.throughput().describe()}", "",
                   format_table(rows), "", *_gap_lines(results), "",
                   "Score vs budget (the scaled clock times the factor; best reference and the "
                   "paired gap of ours to it):", "", *_curve_table(curve)]
        else:
            md += [f"Sensitivity: the same curve under the earlier scaling rule (every measured "
                   f"step x the bandwidth ratio; `--scaling {scaling}`), which is slower on "
                   f"this machine:", "", f"- throughput: {settings.throughput().describe()}",
                   "", *_curve_table(curve)]
        for scale, ours, best, gap, _, oracle in curve:
            out.append({"set": "top" if scaling == DEFAULT_SCALING else f"top ({scaling} rule)",
                        "file": path.stem, "profile": profile, "clock": round(scale, 3),
                        "oracle": oracle, "ours": ours["solved_mean"],
                        "best_ref": best["policy"], "best_ref_solved": best["solved_mean"],
                        "gap": gap["gap"], "ci_lo": gap["ci95"][0],
                        "overruns": ours["overrun_rate"]})


def _holdout(path: Path, md: list[str], out: list[dict[str, Any]]) -> float:
    settings = settings_for(str(path), "aimo3", chunk_tokens=CHUNK_TOKENS)
    seeds = list(range(HOLDOUT_SEEDS))
    rows, results, doc = _play(settings, seeds)
    (RESULTS / "policies").mkdir(exist_ok=True)
    (RESULTS / "policies" / f"holdout_{path.stem}.json").write_text(json.dumps(doc, indent=1))
    ours = next(r for r in rows if r["policy"] == "ours")
    best = _best_ref(rows)
    gap = ours["solved_mean"] - best["solved_mean"]
    md += [f"### holdout/{path.name} (aimo3, {settings.n_problems} problems, "
           f"{settings.total_s / 3600:.2f} h)", "",
           f"- throughput: {settings.throughput().describe()}", "",
           format_table(rows), "", *_gap_lines(results), "",
           f"Criterion (not behind the best reference by more than {NOISE}): "
           f"{'met' if gap >= -NOISE else 'NOT met'} (ours - {best['policy']} = {gap:+.2f}).", ""]
    out.append({"set": "holdout", "file": path.stem, "profile": "aimo3", "clock": 1.0,
                "oracle": ours["oracle_majority"], "ours": ours["solved_mean"],
                "best_ref": best["policy"], "best_ref_solved": best["solved_mean"],
                "gap": round(gap, 2), "ci_lo": paired(results, "ours")[best["policy"]]["ci95"][0],
                "overruns": ours["overrun_rate"]})
    return gap


def plot_curves(rows: list[dict[str, Any]], path: Path) -> bool:
    """Score against budget, one panel per top-level file: ours and the best reference at each
    clock under the default scaling rule (solid) and the sensitivity rule (faint), the oracle
    as a ceiling and 90% of it. Reads the rows :func:`run` returns; False if there are none."""
    top = [r for r in rows if str(r.get("set", "")).startswith("top")]
    files = list(dict.fromkeys(r["file"] for r in top))
    if not files:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(files), figsize=(5.5 * len(files), 4), squeeze=False)
    for ax, name in zip(axes[0], files, strict=True):
        for rule_set, alpha, tag in (("top", 1.0, ""),
                                     (f"top ({SENSITIVITY_SCALING} rule)", 0.35,
                                      f" ({SENSITIVITY_SCALING} rule)")):
            pts = sorted((r for r in top if r["file"] == name and r["set"] == rule_set),
                         key=lambda r: r["clock"])
            if not pts:
                continue
            x = [r["clock"] for r in pts]
            ax.plot(x, [r["ours"] for r in pts], "o-", color="tab:blue", alpha=alpha,
                    label=f"ours{tag}")
            ax.plot(x, [r["best_ref_solved"] for r in pts], "s--", color="tab:orange",
                    alpha=alpha, label=f"best reference{tag}")
        oracle = next(r["oracle"] for r in top if r["file"] == name)
        ax.axhline(oracle, color="grey", lw=1, label="oracle (majority of the whole pool)")
        ax.axhline(0.9 * oracle, color="grey", lw=1, ls=":", label="90% of the oracle")
        ax.set_xscale("log", base=2)
        ax.set_xticks(CLOCK_SCALES, [f"x{c:.2g}" for c in CLOCK_SCALES])
        ax.set_xlabel("clock, as a multiple of the profile's 5 h x problems / 50")
        ax.set_ylabel("problems solved (mean over seeds)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def run() -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out: list[dict[str, Any]] = []
    md = ["# Policy benchmark: recorded traces decide, synthetic traces stress-test", "",
          f"Command: `{COMMAND}`  ",
          "One file: `python -m aimo_submit simulate --traces FILE --profile P --seeds N "
          "--summary OUT.json`.", "",
          "Each run: every problem of one trace file in random order, each problem's pool in "
          "random order (same for every policy of a seed: paired), the clock scaled to the "
          "profile's 5 h x problems / 50, model loading scaled the same way first; the "
          "unchanged solver and scheduler on the replay engine (a fake of the GPU's timing) in "
          "virtual time. A recorded sample is used at most once per problem: a policy asking "
          "more samples than a pool holds runs the pool (no sample model is used in these "
          "tables). Oracle: majority over the whole pool, no clock (ties count fractionally).",
          "", "Hardware: the measured H200 tables carried to each machine by the split rule "
          "(`aimo_submit/hardware.py`: a step's weights and KV at their measured streaming "
          "efficiencies by the bandwidth ratio, the rest of the step by SMs x clock, plus the "
          "PCIe all-reduce under tensor parallelism); each top-level file is shown again "
          "under the earlier, more pessimistic rule (the whole step by the bandwidth ratio) "
          f"as a sensitivity check. Seeds: {TOP_SEEDS} per clock on the top-level files, "
          f"{HOLDOUT_SEEDS} on each holdout file, {SYNTHETIC_SEEDS} on the synthetic set.",
          "", "Policies (each with its own time rule, `aimo_submit/presets.py`): "
          "`aimo2-baseline` (32 samples, 12k/8k caps by schedule, each problem to completion), "
          "`aimo2-winner` (NemoSkills: 12 samples, stop at 4 agreeing, fair share of the time "
          "left), `aimo3-baseline` (8 attempts, vote at the end, fixed share), `winner@N` (the "
          "winner's rules with ours' sample count), `ours` (the profile's default preset: what "
          "the notebook runs).", "",
          "`ours` was tuned on the top-level files only, over the whole budget curve, on seeds "
          f"{TUNING_SEEDS[0]}..{TUNING_SEEDS[-1]} (other problem orders and pool orders than "
          f"the seeds 0..{TOP_SEEDS - 1} reported here; the grid tool: "
          "`python -m bench.tune_policies`); the holdout files never chose anything. Its "
          f"rules: stop at {PRESETS['ours-aimo2'].early_stop_agree} agreeing answers (AIMO2; "
          f"{PRESETS['ours-aimo3'].early_stop_agree} for AIMO3); a disagreeing problem may run "
          "to 6x its fair "
          "share; triage (`min_useful_tokens`: each problem gets the time a useful-length "
          "sample needs, and on a tight clock fewer samples, down to `tight_min_samples`); "
          "past its soft deadline a problem stops as soon as it is settled, e.g. at a lone answer "
          "(`settle_late`); AIMO3 only: the soft deadline is at 2x the fair share.", ""]
    top = trace_files(default_traces_dir())
    if top:
        md += ["## Top level (tuned on these files)", ""]
        for path in top:
            _top_level(path, md, out)
        hold = trace_files(default_traces_dir() / "holdout")
        gaps = []
        md += ["## Holdout (reported only; never used to choose a setting)", ""]
        for path in hold:
            gaps.append(_holdout(path, md, out))
        if gaps:
            mean = round(sum(gaps) / len(gaps), 2)  # 0.3 - 0.3 is not 'ahead'
            md += [f"Mean over holdout files of ours - best reference: {mean:+.2f} "
                   f"({'ahead' if mean > 0 else 'NOT ahead'}).", ""]
    else:
        md += ["(no shared/traces folder on this machine: real-trace tables skipped)", ""]
    syn = SimSettings(traces="synthetic", profile="aimo2")
    seeds = list(range(SYNTHETIC_SEEDS))
    rows, results, _ = _play(syn, seeds)
    md += ["## Synthetic stress test (calibrated generator, AIMO2, 50 problems, 5 h)", "",
           f"- throughput: {syn.throughput().describe()}", "", format_table(rows), "",
           *_gap_lines(results), ""]
    out += [{"set": "synthetic", "file": syn.trace_model, "profile": "aimo2", "clock": 1.0,
             "oracle": r["oracle_majority"], "ours": r["solved_mean"] if r["policy"] == "ours"
             else None, "best_ref": r["policy"], "best_ref_solved": r["solved_mean"]}
            for r in rows]
    if plot_curves(out, RESULTS / "policies_curves.png"):
        md += ["Score against budget on the top-level files: `policies_curves.png`.", ""]
    md += [f"Wall time of this benchmark: {time.perf_counter() - t0:.0f} s on {JOBS} worker(s)."]
    (RESULTS / "policies.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    from bench.__main__ import format_rows

    print(format_rows(run()))
