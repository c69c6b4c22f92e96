"""hardware.py: GPU facts, the roofline model, measured 2-D tables and their scaling rules."""

from __future__ import annotations

import json

import pytest

from aimo_submit.hardware import (
    GPUS,
    HARDWARE_PRESETS,
    PCIE_ALLREDUCE_S,
    SETUPS,
    STREAM_EFFICIENCY,
    TABLES_DIR,
    WEIGHT_STREAM_EFFICIENCY,
    MeasuredThroughput,
    ModelShape,
    RooflineThroughput,
    ScaledThroughput,
    fit_bandwidth,
    hardware_for_trace,
    load_throughput,
    step_bytes,
    table_for,
    throughput_for,
    weight_bytes,
    width_sweep_efficiency,
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


def test_bandwidth_rule_h200_to_h100_and_l4(tmp_path):
    """The earlier rule (kept as a sensitivity check): the whole step x the bandwidth ratio."""
    table = load_throughput(_g_table(tmp_path))
    h100 = ScaledThroughput(table, SETUPS["h100-gpt-oss-120b"], rule="bandwidth")
    assert h100.tokens_per_s(8, 8192) == pytest.approx(table.tokens_per_s(8, 8192) * 3.35 / 4.8)
    tp4 = ScaledThroughput(table, SETUPS["l4x4-tp4"], rule="bandwidth")
    expected = 1 / ((4.8 / 1.2) / table.tokens_per_s(8, 8192) + PCIE_ALLREDUCE_S)
    assert tp4.tokens_per_s(8, 8192) == pytest.approx(expected)
    dp4 = ScaledThroughput(table, SETUPS["l4x4-dp4"], rule="bandwidth")  # 8 sequences: 2 per L4
    assert dp4.tokens_per_s(8, 1024) == pytest.approx(table.tokens_per_s(2, 1024) * 0.3 / 4.8)
    # the L4's memory caps the KV cache: 64 long sequences do not all run at once
    assert dp4.tokens_per_s(64, 32768) < table.tokens_per_s(16, 32768) * 0.3 / 4.8 * 0.5
    assert GPUS["h200"].bandwidth_tbs == 4.8 and GPUS["h100"].bandwidth_tbs == 3.35
    with pytest.raises(ValueError, match="scaling rule"):
        ScaledThroughput(table, SETUPS["l4x4-tp4"], rule="magic")


def _modelled_s(shape, c: float, ctx: float, tp: int = 1, bw: float = 4.8e12) -> float:
    """Seconds the split rule says a step's bytes take: weights at WEIGHT_STREAM_EFFICIENCY,
    KV at STREAM_EFFICIENCY of ``bw``."""
    w = step_bytes(shape, c, ctx, tensor_parallel=tp, weights_only=True)
    kv = step_bytes(shape, c, ctx, tensor_parallel=tp) - w
    return w / (bw * WEIGHT_STREAM_EFFICIENCY) + kv / (bw * STREAM_EFFICIENCY)


def _dense_table(fixed_s: float, setup: str = "l4x4-tp4") -> MeasuredThroughput:
    """An H200 table of the setup's model whose every step is ``fixed_s`` plus its bytes at
    the stream efficiencies of 4.8 TB/s: what the split rule assumes, so it must recover both."""
    shape = SETUPS[setup].shape
    rows = [(c, ctx, 1 / (fixed_s + _modelled_s(shape, c, ctx)))
            for c in (1, 4, 8) for ctx in (1024, 4096)]
    return MeasuredThroughput(tuple(rows))


def test_split_rule_scales_bytes_by_bandwidth_and_the_rest_by_sms_times_clock():
    fixed = 0.004
    table = _dense_table(fixed)
    tp4 = ScaledThroughput(table, SETUPS["l4x4-tp4"])
    assert tp4.rule == "split"
    assert tp4.rest_factor == pytest.approx(132 * 1.98 / (58 * 2.04))  # 2.21
    shape = SETUPS["l4x4-tp4"].shape
    t_bw, rest, step = tp4.split_step(4, 4096, 1 / table.tokens_per_s(4, 4096))
    assert t_bw == pytest.approx(_modelled_s(shape, 4, 4096))
    assert rest == pytest.approx(fixed)
    # each L4 of TP 4 reads a quarter of the bytes at 0.3 TB/s; the rest x 2.21; + all-reduce
    expected = _modelled_s(shape, 4, 4096, tp=4, bw=0.3e12) + fixed * tp4.rest_factor
    assert step == pytest.approx(expected + PCIE_ALLREDUCE_S)
    assert tp4.tokens_per_s(4, 4096) == pytest.approx(1 / step)
    # the H100 is the same die (132 SMs, 1.98 GHz): only the bytes slow down (4.8 / 3.35)
    assert ScaledThroughput(table, SETUPS["h100-gpt-oss-120b"]).rest_factor == 1.0
    assert "x2.21 (SMs x clock)" in tp4.describe() and "3 ms PCIe" in tp4.describe()


def test_split_rule_lies_between_the_old_rule_and_pure_bandwidth():
    """Never more pessimistic than scaling the whole step by bandwidth, never faster than the
    bytes alone allow; with no fixed part both rules agree."""
    for fixed in (0.0, 0.002, 0.006):
        table = _dense_table(fixed)
        for setup in ("l4x4-tp4", "l4x4-dp4", "l4x4-tp2dp2"):
            split = ScaledThroughput(table, SETUPS[setup])
            old = ScaledThroughput(table, SETUPS[setup], rule="bandwidth")
            for c, ctx in ((1, 1024), (4, 4096), (8, 2048)):
                assert split.tokens_per_s(c, ctx) >= old.tokens_per_s(c, ctx) * (1 - 1e-9)
                if fixed == 0.0:
                    assert split.tokens_per_s(c, ctx) == pytest.approx(old.tokens_per_s(c, ctx))
                else:
                    assert split.tokens_per_s(c, ctx) > old.tokens_per_s(c, ctx) * 1.01


def test_split_rule_falls_back_to_the_old_rule_where_a_row_beats_its_bytes():
    """A row faster than its modelled bytes allow (shared-prefix KV in L2, dummy MoE routing)
    has no measurable remainder: all of it is carried as bandwidth, as the old rule does."""
    table = MeasuredThroughput(((1, 1024, 1000.0), (8, 1024, 900.0)))  # 1 ms: < 10 GB's time
    split = ScaledThroughput(table, SETUPS["l4x4-tp4"])
    old = ScaledThroughput(table, SETUPS["l4x4-tp4"], rule="bandwidth")
    assert split.split_step(1, 1024, 0.001)[1] == 0.0
    assert split.tokens_per_s(8, 1024) == pytest.approx(old.tokens_per_s(8, 1024))


def test_split_rule_floors_at_the_setups_matmul_time():
    setup = SETUPS["l4x4-tp4"]
    table = MeasuredThroughput(((1, 1024, 1000.0), (64, 1024, 1000.0)))
    step = ScaledThroughput(table, setup).split_step(64, 1024, 0.001)[2]
    assert step >= setup.compute_s(64) + PCIE_ALLREDUCE_S


def test_fit_bandwidth_recovers_a_line_and_refuses_nonsense():
    points = [(b, 0.004 + b / 4.25e12) for b in (1e9, 3e9, 7e9)]
    fixed, bw = fit_bandwidth(points)
    assert fixed == pytest.approx(0.004) and bw == pytest.approx(4.25e12)
    for bad in ([(1e9, 0.01)], [(1e9, 0.01), (1e9, 0.02)], [(1e9, 0.02), (2e9, 0.01)]):
        with pytest.raises(ValueError):
            fit_bandwidth(bad)


def test_stream_efficiency_is_what_the_14b_table_measures():
    """STREAM_EFFICIENCY is the KV-read bandwidth the committed H200 table shows: its c=1 rows
    over context, fitted (a fact recomputed here, not restated)."""
    path = table_for(SETUPS["l4x4-tp4"].table_model)
    assert path is not None
    table = load_throughput(path)
    per_token = SETUPS["l4x4-tp4"].shape.kv_bytes_per_token("auto")
    points = [(ctx * per_token, 1 / table.tokens_per_s(1, ctx)) for ctx in table.contexts]
    fixed, bw = fit_bandwidth(points)
    assert bw / 4.8e12 == pytest.approx(STREAM_EFFICIENCY, abs=0.01)
    # and most of a one-sequence step is not streaming weights: ~4.3 of its 6.7 ms
    weights_s = SETUPS["l4x4-tp4"].shape.dense_read_gb * 1e9 / bw
    assert 0.003 < fixed - weights_s < 0.006


def test_width_sweep_calibrates_the_weight_stream(tmp_path):
    """A synthetic sweep built as fixed + weight bytes at 0.8 of 4.8 TB/s is recovered; the
    committed H200 sweep gives WEIGHT_STREAM_EFFICIENCY and a fixed cost that matches what the
    split rule leaves of the 14B table's one-sequence step (two measurements, one story)."""
    models = []
    for hidden, inter in ((2560, 6912), (5120, 13824), (7680, 20736)):
        shape = {"layers": 48, "hidden": hidden, "heads": hidden // 128, "kv_heads": 8,
                 "intermediate": inter, "vocab": 152064}
        read = weight_bytes(ModelShape("w", layers=48, hidden=hidden, kv_heads=8, head_dim=128,
                                       heads=hidden // 128, vocab=152064, intermediate=inter),
                            "awq")
        rows = [{"concurrency": 1, "context": 1024,
                 "step_ms": {"median": 1e3 * (0.005 + read / (0.8 * 4.8e12))}},
                {"concurrency": 8, "context": 1024, "step_ms": {"median": 1.0}}]  # not fitted
        models.append({"hidden": hidden, "shape": shape, "rows": rows})
    path = tmp_path / "h200_width_sweep.json"
    path.write_text(json.dumps({"models": models}))
    fixed, eff = width_sweep_efficiency(path)
    assert fixed == pytest.approx(0.005) and eff == pytest.approx(0.8)

    committed = TABLES_DIR / "h200_width_sweep.json"
    if not committed.is_file():
        pytest.skip("no committed width sweep")
    fixed, eff = width_sweep_efficiency(committed)
    assert eff == pytest.approx(WEIGHT_STREAM_EFFICIENCY, abs=0.005)
    table = load_throughput(table_for(SETUPS["l4x4-tp4"].table_model))
    tp4 = ScaledThroughput(table, SETUPS["l4x4-tp4"])
    _, rest, _ = tp4.split_step(1, 1024, 1 / table.tokens_per_s(1, 1024))
    assert rest == pytest.approx(fixed, abs=0.0005)


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
    split = throughput_for("l4x4-dp4", tmp_path)
    dp4 = throughput_for("l4x4-dp4", tmp_path, rule="bandwidth")
    assert split.tokens_per_s(16, 4096) > dp4.tokens_per_s(16, 4096)
    assert isinstance(dp4, ScaledThroughput) and (dp4.measured_tp, dp4.measured_dp) == (1, 4)
    assert dp4.step_factor == pytest.approx(4.8 / 0.3)
    # 16 sequences on the machine, 4 per L4, all fit at 4k: the table's row for 16
    assert dp4.tokens_per_s(16, 4096) == pytest.approx(table.tokens_per_s(16, 4096) * 0.3 / 4.8)
    tp2dp2 = throughput_for("l4x4-tp2dp2", tmp_path, rule="bandwidth")
    expected = 1 / ((4.8 / 0.3) / table.tokens_per_s(16, 4096) + PCIE_ALLREDUCE_S)
    assert tp2dp2.tokens_per_s(16, 4096) == pytest.approx(expected)
    assert "4x H200 in layout tp2dp2" in tp2dp2.describe()
    # the L4's 24 GB still bounds the KV cache: 64 sequences of 16k do not all run on DP 4
    assert dp4.tokens_per_s(64, 16384) < 0.5 * table.tokens_per_s(64, 16384) * 0.3 / 4.8
    # no table in its own layout: the one-GPU table of the model, scaled as before
    tp4 = throughput_for("l4x4-tp4", tmp_path)
    assert isinstance(tp4, ScaledThroughput) and tp4.measured_tp == 1
