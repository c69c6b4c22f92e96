"""The preflight, run for real: fake ``nvidia-smi`` programs on PATH, wheels and model folders
in temp dirs, and the failure each check reports."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from aimo_submit import preflight as pf
from aimo_submit.preflight import PreflightError, preflight, wheels_cuda_major

REPO = Path(__file__).resolve().parents[1]
TINY = "tiny-qwen2-math"
GPU_MODEL = "deepseek-r1-distill-qwen-14b-awq"  # vLLM, tensor_parallel_size 4


def _fake_nvidia_smi(bin_dir: Path, gpus: list[str], driver: str, cuda: str) -> str:
    """An executable answering the two queries preflight makes, like the real one."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"echo '{name}, {driver}'" for name in gpus)
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--query-gpu=name,driver_version" ]; then\n'
        f"{rows or 'true'}\n"
        "  exit 0\nfi\n"
        f"echo '| NVIDIA-SMI {driver}   Driver Version: {driver}   CUDA Version: {cuda}   |'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _wheels(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"PK")
    return folder


CU13 = ["nvidia_cuda_runtime-13.0.96-py3-none-manylinux_2_27_x86_64.whl",
        "torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl"]


def test_wheels_cuda_major_from_file_names(tmp_path):
    assert wheels_cuda_major(_wheels(tmp_path / "a", CU13)) == 13
    assert wheels_cuda_major(_wheels(tmp_path / "b", [
        "nvidia_cuda_runtime_cu12-12.8.90-py3-none-manylinux2014_x86_64.whl"])) == 12
    assert wheels_cuda_major(_wheels(tmp_path / "c", [
        "torch-2.11.0+cu130-cp311-cp311-manylinux_2_28_x86_64.whl"])) == 13
    assert wheels_cuda_major(_wheels(tmp_path / "d", ["polars-1.0-py3-none-any.whl"])) is None
    assert wheels_cuda_major(None) is None


def test_tiny_model_on_cpu_passes(tmp_path):
    report = preflight(TINY, nvidia_smi=str(tmp_path / "absent"), workdir=tmp_path)
    assert report.ok, report.text()
    assert report.facts["gpus"] == "none (no nvidia-smi)"
    assert "7 file(s) sized" in report.facts["model"]
    report.enforce(rerun=False, workdir=tmp_path)  # nothing to stop for
    assert json.loads((tmp_path / pf.REPORT_FILE).read_text())["problems"] == []


def test_no_gpu_for_a_gpu_model(tmp_path):
    report = preflight(GPU_MODEL, nvidia_smi=str(tmp_path / "absent"), workdir=tmp_path)
    assert any("needs 4 GPU(s) but there is no nvidia-smi" in p for p in report.problems)


def test_too_few_gpus_are_named(tmp_path):
    smi = _fake_nvidia_smi(tmp_path / "bin", ["NVIDIA L4"], "580.65", "13.0")
    report = preflight(GPU_MODEL, nvidia_smi=smi, workdir=tmp_path)
    assert report.facts["gpus"] == "1: NVIDIA L4"
    assert any("needs 4 GPU(s), found 1 (NVIDIA L4)" in p for p in report.problems)


def test_driver_too_old_for_the_cuda13_wheels(tmp_path):
    wheels = _wheels(tmp_path / "wheels", CU13)
    old = _fake_nvidia_smi(tmp_path / "old", ["NVIDIA L4"] * 4, "570.86", "12.8")
    report = preflight(GPU_MODEL, nvidia_smi=old, wheels_dir=wheels, workdir=tmp_path)
    msg = [p for p in report.problems if "driver" in p]
    assert msg == ["the wheels are CUDA 13 builds but the driver (570.86) supports CUDA 12.8"
                   " only: they need driver R580 or newer"]
    assert not any("GPU(s)" in p for p in report.problems)  # four GPUs: enough
    new = _fake_nvidia_smi(tmp_path / "new", ["NVIDIA L4"] * 4, "580.65", "13.0")
    report = preflight(GPU_MODEL, nvidia_smi=new, wheels_dir=wheels, workdir=tmp_path)
    assert not any("driver" in p for p in report.problems)
    assert report.facts["driver"] == "580.65 (CUDA 13.0)"


def test_not_enough_disk_to_install_the_wheels(tmp_path):
    wheels = _wheels(tmp_path / "wheels", CU13)
    with open(wheels / CU13[1], "r+b") as fh:  # sparse: a huge wheel that takes no space
        fh.truncate(shutil.disk_usage(tmp_path).free)
    report = preflight(TINY, nvidia_smi=str(tmp_path / "absent"), wheels_dir=wheels,
                       workdir=tmp_path, install_dir=tmp_path)
    assert any(p.startswith("installing the wheels needs about") for p in report.problems)


def test_not_enough_disk_in_the_workdir(tmp_path, monkeypatch):
    monkeypatch.setattr(pf, "MIN_WORKDIR_FREE", shutil.disk_usage(tmp_path).free * 4)
    report = preflight(TINY, nvidia_smi=str(tmp_path / "absent"), workdir=tmp_path)
    assert any("free at" in p and "the run needs" in p for p in report.problems)


def _manifest_with_copy(tmp_path: Path, edit) -> tuple[Path, Path]:
    """A manifest whose one model is a copy of the tiny model in ``tmp_path/models``."""
    data = json.loads((REPO / "weights_manifest.json").read_text())
    entry = next(m for m in data["models"] if m["name"] == TINY)
    entry["source"] = {"kind": "kaggle_dataset", "handle": "someone/tiny-copy",
                       "path": "tiny-copy"}
    data["models"] = [entry]
    data["defaults"] = {"local": TINY, "kaggle": TINY}
    models = tmp_path / "models"
    shutil.copytree(REPO / "aimo_submit" / "assets" / "tiny-model", models / "tiny-copy")
    edit(models / "tiny-copy")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    return path, models


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda folder: shutil.rmtree(folder), "weights of model 'tiny-qwen2-math'"),
        (lambda folder: (folder / "tokenizer.json").unlink(), "missing: tokenizer.json"),
        (lambda folder: (folder / "config.json").write_text("{}"), "wrong size: config.json"),
        (lambda folder: (folder / "TRAINING.json").write_bytes(
            (folder / "TRAINING.json").read_bytes().replace(b"{", b"[", 1)),
         "TRAINING.json has sha256"),
    ],
    ids=["absent", "file-missing", "wrong-size", "wrong-sha256"],
)
def test_model_files_against_the_manifest(tmp_path, edit, problem):
    manifest, models = _manifest_with_copy(tmp_path, edit)
    report = preflight(TINY, nvidia_smi=str(tmp_path / "absent"), workdir=tmp_path,
                       manifest_path=manifest, search_roots=[models])
    assert len(report.problems) == 1 and problem in report.problems[0], report.problems


def test_unknown_model_is_a_problem_not_a_crash(tmp_path):
    report = preflight("no-such-model", nvidia_smi=str(tmp_path / "absent"), workdir=tmp_path)
    assert report.problems and "no-such-model" in report.problems[0]


def test_interactive_stops_with_every_problem_rerun_only_reports(tmp_path, capsys):
    smi = _fake_nvidia_smi(tmp_path / "bin", [], "570.86", "12.8")
    report = preflight(GPU_MODEL, nvidia_smi=smi, wheels_dir=_wheels(tmp_path / "w", CU13),
                       workdir=tmp_path)
    assert len(report.problems) >= 2
    with pytest.raises(PreflightError, match="cannot run the submission: .*needs 4 GPU.*R580"):
        report.enforce(rerun=False, workdir=tmp_path)
    report.enforce(rerun=True, workdir=tmp_path)  # never raises on a rerun
    out = capsys.readouterr().out
    assert "competition rerun, serving anyway" in out and "R580" in out
    saved = json.loads((tmp_path / pf.REPORT_FILE).read_text())
    assert saved["problems"] == report.problems


def test_a_rerun_without_a_submission_still_answers_every_problem(standin, tmp_path):
    """What the notebook serves on a rerun when Submission.create fails (weights missing):
    the fallback for every problem through Kaggle's server, and the log says why."""
    from conftest import STANDINS

    from aimo_submit.manifest import ManifestError
    from aimo_submit.runner import FallbackSubmission, Submission

    manifest, models = _manifest_with_copy(tmp_path, lambda folder: shutil.rmtree(folder))
    with pytest.raises(ManifestError) as info:
        Submission.create(TINY, "aimo3", manifest_path=manifest, search_roots=[models])
    csv = tmp_path / "p.csv"
    csv.write_text("id,problem\n001,What is 1 + 1?\nb2,What is 2 + 2?\n")
    sub = FallbackSubmission("aimo3", f"ManifestError: {info.value}", workdir=tmp_path / "w")
    result = sub.serve(test_csv=csv, kaggle_data=STANDINS / "aimo3")
    assert sorted(r.id for r in result.rows) == ["001", "b2"]  # a mixed column stays text
    assert {r.answer for r in result.rows} == {sub.answer}
    lines = [json.loads(x) for x in (tmp_path / "w" / "aimo_runlog.jsonl").read_text().splitlines()
             if x]
    assert len(lines) == 2 and all("not found" in r["faults"][0] for r in lines)
