"""What a person reads after a rehearsal: a per-problem table, the score, a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aimo_submit.gateway import GatewayResult


def _votes_text(votes: dict[str, int] | None, limit: int = 4) -> str:
    if not votes:
        return "-"
    ranked = sorted(votes.items(), key=lambda kv: -kv[1])[:limit]
    return " ".join(f"{a}x{n}" for a, n in ranked)


def report_rows(result: GatewayResult, records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in sorted(result.rows, key=lambda r: r.order):
        rec = records.get(r.id, {})
        rows.append(
            {
                "#": r.order + 1,
                "id": r.id,
                "answer": r.answer,
                "truth": "-" if r.truth is None else r.truth,
                "ok": "" if r.truth is None else ("yes" if r.correct else "no"),
                "votes": _votes_text(rec.get("votes")),
                "tokens": rec.get("tokens", 0),
                "code": rec.get("code_calls", 0),
                "seconds": f"{r.seconds:.1f}",
                "stop": rec.get("stop_reason", "-"),
                "faults": len(rec.get("faults", [])),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no problems)"
    cols = list(rows[0])
    width = {c: max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in cols}
    line = "  ".join(str(c).ljust(width[c]) for c in cols)
    out = [line, "  ".join("-" * width[c] for c in cols)]
    out += ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in rows]
    return "\n".join(out)


def print_report(
    result: GatewayResult,
    records: dict[str, dict[str, Any]],
    *,
    startup_s: float | None = None,
    timeline: dict[str, Any] | None = None,
) -> None:
    print()
    print(format_table(report_rows(result, records)))
    print()
    scored = result.scored
    if scored:
        print(f"score: {result.n_correct}/{len(scored)} correct")
    limit = f" of {result.time_limit_s:.0f} s" if result.time_limit_s else ""
    print(f"time used: {result.seconds:.1f} s{limit}" + (
        f" (model load {startup_s:.1f} s)" if startup_s is not None else ""))
    if timeline:
        print("from the start: " + ", ".join(
            f"{k.removesuffix('_s').replace('_', ' ')} {v:.1f} s"
            for k, v in timeline.items() if v is not None))
    print(f"submission: {result.submission_path}")


def write_plot(
    result: GatewayResult, records: dict[str, dict[str, Any]], path: str | Path
) -> Path:
    """Seconds per problem (bars, coloured by correctness) and leader's vote share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result.rows, key=lambda r: r.order)
    xs = list(range(1, len(rows) + 1))
    colours = [
        "tab:gray" if r.truth is None else ("tab:green" if r.correct else "tab:red") for r in rows
    ]
    shares = []
    for r in rows:
        votes = records.get(r.id, {}).get("votes") or {}
        total = sum(votes.values())
        shares.append(max(votes.values()) / total if total else 0.0)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(6, len(rows) * 0.25), 6), sharex=True)
    ax1.bar(xs, [r.seconds for r in rows], color=colours)
    ax1.set_ylabel("seconds")
    ax1.set_title(
        f"rehearsal: {result.n_correct}/{len(result.scored)} correct, {result.seconds:.0f} s"
        " (green correct, red wrong)"
    )
    ax2.bar(xs, shares, color="tab:blue")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("leader vote share")
    ax2.set_xlabel("problem (served order)")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
