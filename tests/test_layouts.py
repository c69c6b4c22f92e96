"""bench/layouts.py on CPU: layouts -> vLLM settings, the multicast-off environment, the refusal
on too few GPUs, the per-layout table format and its reading by the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aimo_submit.engines.vllm_settings import VLLMSettings
from aimo_submit.hardware import (
    SETUPS,
    RooflineThroughput,
    ScaledThroughput,
    load_throughput,
    throughput_for,
)
from aimo_submit.manifest import load_manifest
from bench import layouts
from bench.layouts import Layout, LayoutError

BASE = VLLMSettings(model="/m", quantization="awq_marlin", max_model_len=16640)


@pytest.mark.parametrize(("name", "tp", "dp", "replica_gpus", "visible"), [
    ("tp4", 4, 1, [[0, 1, 2, 3]], [None]),
    ("dp4", 1, 4, [[0], [1], [2], [3]], ["0", "1", "2", "3"]),
    ("tp2dp2", 2, 2, [[0, 1], [2, 3]], ["0,1", "2,3"]),
])
def test_layout_to_vllm_settings(name, tp, dp, replica_gpus, visible) -> None:
    layout = Layout.named(name)
    assert (layout.tp, layout.dp, layout.gpus) == (tp, dp, 4)
    s = layout.settings(BASE, "replicas")
    assert (s.tensor_parallel_size, s.data_parallel_size, s.n_replicas) == (tp, dp, dp)
    desc = layout.describe(s)
    assert desc["replica_gpus"] == replica_gpus
    if dp > 1:  # each replica is its own engine on its own GPUs
        assert desc["visible_devices"] == visible
        assert "data_parallel_size" not in s.engine_kwargs(0)
        assert s.engine_kwargs(0)["tensor_parallel_size"] == tp
    vllm_dp = layout.settings(BASE, "vllm")  # one engine, vLLM's own data parallel
    kw = vllm_dp.engine_kwargs()
    assert kw["tensor_parallel_size"] == tp
    assert kw.get("data_parallel_size", 1) == dp
    assert vllm_dp.visible_devices() is None and vllm_dp.quantization == "awq_marlin"


def test_layout_names_agree_with_the_hardware_setups() -> None:
    from aimo_submit.hardware import layout_name

    for name, (tp, dp) in layouts.LAYOUTS.items():
        assert layout_name(tp, dp) == name
        setup = SETUPS[f"l4x4-{name}"]
        assert (setup.tensor_parallel, setup.data_parallel) == (tp, dp)
    with pytest.raises(LayoutError, match="unknown layout"):
        Layout.named("tp8")


def test_refuses_a_layout_that_needs_more_gpus() -> None:
    with pytest.raises(LayoutError, match=r"needs 4 GPUs \(TP 2 x DP 2\); this machine has 1"):
        layouts.check_gpus(Layout.named("tp2dp2"), 1)
    layouts.check_gpus(Layout.named("dp4"), 4)  # enough: no error


def test_the_command_refuses_clearly_without_the_gpus(monkeypatch, capsys) -> None:
    monkeypatch.setattr(layouts, "gpu_count", lambda: 2)
    assert layouts.main(["tables", "--layout", "tp4"]) == 2
    assert "needs 4 GPUs" in capsys.readouterr().err


def test_runner_refuses_before_starting_anything(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(layouts, "gpu_count", lambda: 0)
    assert layouts.main(["runner", "--layouts", "dp4", "--out", str(tmp_path)]) == 2
    assert "this machine has 0" in capsys.readouterr().err
    assert not (tmp_path / "runner_layouts.json").exists()


def test_no_multicast_overrides_and_reaches_child_processes(monkeypatch) -> None:
    env = {"NCCL_NVLS_ENABLE": "1"}
    with pytest.raises(LayoutError, match="NVLink multicast must stay off"):
        layouts.assert_no_multicast(env)
    got = layouts.no_multicast(env)
    assert env["NCCL_NVLS_ENABLE"] == "0" and got["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
    for key in (*layouts.NO_MULTICAST, *layouts.ALSO_OFF):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NVSHMEM_DISABLE_NVLS", "0")
    layouts.no_multicast()
    child = subprocess.run(
        [sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
        capture_output=True, text=True, check=True)
    seen = json.loads(child.stdout)
    assert {k: seen[k] for k in layouts.NO_MULTICAST} == layouts.NO_MULTICAST
    assert os.environ["NVSHMEM_DISABLE_NVLS"] == "1"


def _doc(layout: Layout, speed: float = 100.0) -> dict:
    rows = [{"concurrency": c, "context": ctx, "first_token_ms": 30.0,
             "tokens_per_s_per_seq": speed / (1 + c / 64) * (1 - ctx / 40_000),
             "total_tokens_per_s": 1.0}
            for c in layouts.CONCURRENCY for ctx in layouts.CONTEXTS]
    return layouts.table_document(
        model=layouts.hardware_model("r1-distill-qwen-14b", "awq"), layout=layout,
        settings=layout.settings(BASE), rows=rows,
        meta={"device": "4x NVIDIA H200", "quantization": "awq", "startup_s": 80.0})


def test_table_writer_format_and_the_simulator_reads_it(tmp_path) -> None:
    assert isinstance(throughput_for("l4x4-tp4", tmp_path), RooflineThroughput)  # none yet
    layout = Layout.named("tp4")
    path = layouts.write_table(tmp_path, _doc(layout))
    assert path.name == "h200x4_deepseek-r1-distill-qwen-14b-awq_tp4.json"
    doc = json.loads(path.read_text())
    assert doc["layout"]["name"] == "tp4" and doc["layout"]["tensor_parallel"] == 4
    assert doc["quantization"] == "awq" and len(doc["rows"]) == 20
    table = load_throughput(path)
    assert table.contexts == [1024, 4096, 8192, 16384]
    model = throughput_for("l4x4-tp4", tmp_path)
    assert isinstance(model, ScaledThroughput) and model.measured_tp == 4
    assert "layout tp4" in model.describe()
    # only the layout it was measured in reads it
    assert isinstance(throughput_for("l4x4-dp4", tmp_path), RooflineThroughput)
    with pytest.raises(ValueError, match="lacks"):
        layouts.table_document(model="m", layout=layout, settings=BASE,
                               rows=[{"concurrency": 8}], meta={})


def test_tiny_layout_manifest_is_valid(tmp_path) -> None:
    for name in layouts.LAYOUTS:
        path = layouts.layout_manifest(Layout.named(name), "replicas", tmp_path, 10.0)
        entry = load_manifest(path).get("tiny-qwen2-math-vllm")
        s = VLLMSettings.from_dict({"model": "/m", **entry.engine_settings})
        assert (s.tensor_parallel_size, s.data_parallel_size) == layouts.LAYOUTS[name]
        assert s.n_gpus == 4 and s.dp_backend == "replicas" and s.replica_stall_s == 10.0


def test_engine_core_pids_reads_vllm_internals_or_nothing() -> None:
    class P:
        pid = 42

    class Ns:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    client = Ns(engine_core=Ns(resources=Ns(engine_manager=Ns(processes=[P()]))))
    assert layouts.engine_core_pids(client) == [42]
    assert layouts.engine_core_pids(object()) == []
