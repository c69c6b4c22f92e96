"""``bench_hardware engine`` (the overhead table of issue 15) end to end on CPU, against the fake
vLLM of ``bench/fake_vllm.py``: every mode runs, every run makes exactly c x tokens tokens on the
same prompt, and the summary carries each ratio with its spread. The GPU numbers it produced are
in ``bench/results/hardware_h200.md``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
from bench import bench_hardware, fake_vllm  # noqa: E402


def test_engine_bench_runs_every_mode_on_equal_work(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name, module in fake_vllm.modules(step_s=0.002).items():
        monkeypatch.setitem(sys.modules, name, module)
    bench_hardware.main(["engine", "--model", "r1-distill-qwen-14b", "--format", "awq",
                         "--concurrency", "1,4", "--tokens", "12", "--prompt-len", "32",
                         "--reps", "2", "--out", str(tmp_path / "out"),
                         "--workdir", str(tmp_path / "work")])
    data = json.loads((tmp_path / "out" / "engine_r1-distill-qwen-14b.json").read_text())
    assert data["prompt_ids_identical"] is True
    assert data["modes"] == ["plain", "async", "wrapper", "solver"]
    assert len(data["runs"]) == 2 * 2 * 4
    assert all(r["tokens"] == r["concurrency"] * 12 and "short" not in r for r in data["runs"])
    # the order of modes rotates between repetitions
    first = [r["mode"] for r in data["runs"] if r["rep"] == 0 and r["concurrency"] == 1]
    second = [r["mode"] for r in data["runs"] if r["rep"] == 1 and r["concurrency"] == 1]
    assert first != second and sorted(first) == sorted(second)
    for row in data["summary"]:
        for mode in ("async", "wrapper", "solver"):
            spread = row[f"ratio_{mode}"]
            assert spread["min"] <= spread["median"] <= spread["max"]
            assert 0.5 < spread["median"] < 1.5  # same fake step time in every mode
        assert row["wrapper_first_token_ms"]["median"] > 0
