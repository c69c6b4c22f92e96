"""hardware.py: GPU facts, the roofline model, measured 2-D tables and their scaling rules."""

from __future__ import annotations

import json

import pytest

from aimo_submit.hardware import (
    GPUS,
    HARDWARE_PRESETS,
    PCIE_ALLREDUCE_S,
    SETUPS,
    MeasuredThroughput,
    RooflineThroughput,
    ScaledThroughput,
    hardware_for_trace,
    load_throughput,
    throughput_for,
)


def _g_table(tmp_path, model: str = "gpt-oss-120b", rows=None):
    """A table in the format the GPU benchmark delivers (tokens/s already per full model)."""
    rows = rows or [
        {"concurrency": c, "context": ctx, "tokens_per_s_per_seq": 400.0 / (1 + c / 16)
         * (1 - ctx / 64_000), "first_token_ms": None}
        for c in (1, 8, 32, 64) for ctx in (1024, 8192, 32768)]
    doc = {"device": "NVIDIA H200", "model": model, "shape": {"layers": 36},
           "layers_measured": 4, "layers_full": 36, "layer_scale": 0.111, "quantization": "mxfp4",
           "kv_cache_dtype": "auto", "command": "test", "date": "2026-01-01", "rows": rows}
    path = tmp_path / f"h200_{model}.json"
    path.write_text(json.dumps(doc))
    return path


def test_roofline_speeds_fall_with_concurrency_and_context():
    for name in ("l4x4-tp4", "l4x4-dp4", "h100-gpt-oss-120b"):
        hw = HARDWARE_PRESETS[name]
        speeds = [hw.tokens_per_s(c, 4000) for c in (1, 4, 8, 16, 32, 64)]
        assert speeds == sorted(speeds, reverse=True), name
        aggregate = [c * hw.tokens_per_s(c, 4000) for c in (1, 4, 8, 16)]
        assert aggregate == sorted(aggregate), name
        assert hw.tokens_per_s(8, 30_000) < hw.tokens_per_s(8, 2000), name


def test_roofline_bounds_from_datasheets():
    # one sequence per L4 is bounded by reading the 9.98 GB of AWQ weights: 300 GB/s / 9.98 GB
    assert 15 < HARDWARE_PRESETS["l4x4-dp4"].tokens_per_s(1, 1000) < 300 / 9.98
    assert HARDWARE_PRESETS["l4x4-tp4"].replicas == 1
    assert HARDWARE_PRESETS["l4x4-dp4"].replicas == 4
    # the 24 GB L4 holds far less KV per replica than 4 of them under TP
    assert SETUPS["l4x4-dp4"].kv_capacity_tokens < 0.2 * SETUPS["l4x4-tp4"].kv_capacity_tokens
    # gpt-oss-120b on an H100 reads ~5 GB per single-sequence step (experts are sparse)
    one = HARDWARE_PRESETS["h100-gpt-oss-120b"].tokens_per_s(1, 1000)
    assert 100 < one < 3350 / 5.0
    assert "roofline" in HARDWARE_PRESETS["h100-gpt-oss-120b"].describe()


def test_kv_overflow_runs_only_what_fits():
    dp = RooflineThroughput(SETUPS["l4x4-dp4"])
    per_replica, share = SETUPS["l4x4-dp4"].resident(64, 16_000)
    assert per_replica == 16 and share < 0.5
    assert dp.tokens_per_s(64, 16_000) < 0.5 * dp.tokens_per_s(8, 16_000)


def test_measured_table_interpolates_over_concurrency_and_context():
    rows = ((1, 1000, 100.0), (9, 1000, 60.0), (1, 9000, 50.0), (9, 9000, 30.0))
    t = MeasuredThroughput(rows)
    assert t.tokens_per_s(1, 1000) == pytest.approx(100.0)
    assert t.tokens_per_s(5, 1000) == pytest.approx(80.0)
    assert t.tokens_per_s(5, 5000) == pytest.approx((80.0 + 40.0) / 2)
    assert t.tokens_per_s(18, 1000) == pytest.approx(60.0 * 9 / 18)  # aggregate kept
    assert t.tokens_per_s(1, 100) == pytest.approx(100.0)  # below the measured contexts: hold
    # above: the step time grows linearly in context (1/50 -> 1/30 s per 8k for one sequence)
    assert t.tokens_per_s(1, 17_000) == pytest.approx(1 / (1 / 50 + (1 / 50 - 1 / 100)))
    one_d = MeasuredThroughput(((8, 40.0), (1, 60.0), (32, 20.0)), scale=0.5)
    assert one_d.tokens_per_s(4.5, 123) == pytest.approx(25.0)
    with pytest.raises(ValueError):
        MeasuredThroughput(((1, 0, -1.0),))


def test_loader_reads_the_benchmark_format(tmp_path):
    table = load_throughput(_g_table(tmp_path))
    assert len(table.rows) == 12 and table.contexts == [1024, 8192, 32768]
    assert table.tokens_per_s(1, 1024) == pytest.approx(400 / (1 + 1 / 16) * (1 - 1024 / 64_000))
    (tmp_path / "t.csv").write_text("concurrency,aggregate_tokens_per_s\n1,50\n8,320\n")
    assert load_throughput(tmp_path / "t.csv").tokens_per_s(8, 0) == pytest.approx(40.0)
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError):
        load_throughput(tmp_path / "bad.csv")


def test_scaling_rules_h200_to_h100_and_l4(tmp_path):
    table = load_throughput(_g_table(tmp_path))
    h100 = ScaledThroughput(table, SETUPS["h100-gpt-oss-120b"])
    assert h100.tokens_per_s(8, 8192) == pytest.approx(table.tokens_per_s(8, 8192) * 3.35 / 4.8)
    tp4 = ScaledThroughput(table, SETUPS["l4x4-tp4"])
    expected = 1 / ((4.8 / 1.2) / table.tokens_per_s(8, 8192) + PCIE_ALLREDUCE_S)
    assert tp4.tokens_per_s(8, 8192) == pytest.approx(expected)
    dp4 = ScaledThroughput(table, SETUPS["l4x4-dp4"])  # 8 sequences: 2 per L4
    assert dp4.tokens_per_s(8, 1024) == pytest.approx(table.tokens_per_s(2, 1024) * 0.3 / 4.8)
    # the L4's memory caps the KV cache: 64 long sequences do not all run at once
    assert dp4.tokens_per_s(64, 32768) < table.tokens_per_s(16, 32768) * 0.3 / 4.8 * 0.5
    assert GPUS["h200"].bandwidth_tbs == 4.8 and GPUS["h100"].bandwidth_tbs == 3.35


def test_simulator_uses_a_delivered_table_else_says_roofline(tmp_path):
    assert isinstance(throughput_for("h100-gpt-oss-120b", tmp_path), RooflineThroughput)
    _g_table(tmp_path)
    model = throughput_for("h100-gpt-oss-120b", tmp_path)
    assert isinstance(model, ScaledThroughput)
    assert "measured table" in model.describe() and "H200" in model.describe()
    assert isinstance(throughput_for("l4x4-tp4", tmp_path), RooflineThroughput)  # no 14B table
    with pytest.raises(KeyError):
        throughput_for("tpu", tmp_path)


def test_hardware_defaults_to_where_a_trace_was_recorded():
    assert hardware_for_trace("gpt-oss-120b (CoT, no tools)", "l4x4-tp4") == "h100-gpt-oss-120b"
    assert hardware_for_trace("gpt-oss-20b (tool-integrated)", "x") == "h100-gpt-oss-20b"
    assert hardware_for_trace("qwen/qwen3-30b-a3b", "l4x4-tp4") == "l4x4-tp4"
    assert hardware_for_trace(None, "h100-gpt-oss-120b") == "h100-gpt-oss-120b"


def test_a_table_measured_in_the_setups_layout_is_scaled_per_gpu(tmp_path):
    """4 H200s in layout X -> 4 L4s in layout X: steps x 4.8/0.3, the machine's concurrency,
    the PCIe all-reduce under TP; preferred over a one-GPU table of the same model."""
    model = SETUPS["l4x4-dp4"].model
    rows = [{"concurrency": c, "context": ctx,
             "tokens_per_s_per_seq": 150.0 / (1 + c / 64) * (1 - ctx / 40_000)}
            for c in (8, 16, 32, 64, 128) for ctx in (1024, 4096, 8192, 16384)]
    for layout in ("dp4", "tp2dp2"):
        (tmp_path / f"h200x4_{model}_{layout}.json").write_text(json.dumps(
            {"model": model, "layout": {"name": layout}, "rows": rows}))
    # a one-GPU table too (named as the bench names it): the layout table wins
    _g_table(tmp_path, model=SETUPS["l4x4-dp4"].shape.table or model)
    table = load_throughput(tmp_path / f"h200x4_{model}_dp4.json")
    dp4 = throughput_for("l4x4-dp4", tmp_path)
    assert isinstance(dp4, ScaledThroughput) and (dp4.measured_tp, dp4.measured_dp) == (1, 4)
    assert dp4.step_factor == pytest.approx(4.8 / 0.3)
    # 16 sequences on the machine, 4 per L4, all fit at 4k: the table's row for 16
    assert dp4.tokens_per_s(16, 4096) == pytest.approx(table.tokens_per_s(16, 4096) * 0.3 / 4.8)
    tp2dp2 = throughput_for("l4x4-tp2dp2", tmp_path)
    expected = 1 / ((4.8 / 0.3) / table.tokens_per_s(16, 4096) + PCIE_ALLREDUCE_S)
    assert tp2dp2.tokens_per_s(16, 4096) == pytest.approx(expected)
    assert "4x H200 in layout tp2dp2" in tp2dp2.describe()
    # the L4's 24 GB still bounds the KV cache: 64 sequences of 16k do not all run on DP 4
    assert dp4.tokens_per_s(64, 16384) < 0.5 * table.tokens_per_s(64, 16384) * 0.3 / 4.8
    # no table in its own layout: the one-GPU table of the model, scaled as before
    tp4 = throughput_for("l4x4-tp4", tmp_path)
    assert isinstance(tp4, ScaledThroughput) and tp4.measured_tp == 1
