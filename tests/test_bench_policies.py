"""The policy benchmark's plot: drawn from the rows the benchmark returns, skipped without them."""

from __future__ import annotations

from bench.bench_policies import CLOCK_SCALES, plot_curves


def _rows(file: str, rule_set: str, ours: float) -> list[dict]:
    return [{"set": rule_set, "file": file, "clock": round(c, 3), "oracle": 20.0,
             "ours": ours * c, "best_ref_solved": 0.8 * ours * c} for c in CLOCK_SCALES]


def test_plot_curves_draws_one_panel_per_top_level_file(tmp_path):
    rows = (_rows("a", "top", 18.0) + _rows("a", "top (bandwidth rule)", 15.0)
            + _rows("b", "top", 30.0) + [{"set": "holdout", "file": "h", "clock": 1.0}])
    path = tmp_path / "curves.png"
    assert plot_curves(rows, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_plot_curves_without_top_level_rows_writes_nothing(tmp_path):
    path = tmp_path / "curves.png"
    assert not plot_curves([{"set": "synthetic", "file": "s", "clock": 1.0}], path)
    assert not path.exists()
