"""Preflight: is this machine able to run the submission, checked before anything is installed.

The notebook's first cell runs it, so a wrong accelerator, a driver too old for the CUDA 13
wheels, a full disk or a missing dataset shows up as one clear message in the first seconds,
not as an install or engine failure minutes later. In the interactive run it stops there; in a
competition rerun it only reports (the server must start whatever happens: ``predict`` then
answers the fallback) and leaves the report in ``aimo_preflight.json``.

Standard library only (with :mod:`aimo_submit.manifest` and
:mod:`aimo_submit.engines.vllm_settings`, also standard library): it is imported
from the attached library dataset before the wheels are installed.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aimo_submit.engines.vllm_settings import VLLMSettings
from aimo_submit.manifest import (
    ManifestError,
    ModelEntry,
    load_manifest,
    resolve_model_path,
    sha256_file,
    verify,
)

WHEELS_CUDA_DRIVER = {13: "R580", 12: "R525"}
"""Oldest driver branch per CUDA major (NVIDIA's compatibility table), for the message."""
SMALL_FILE_BYTES = 64 << 20
"""Files up to this size get their sha256 checked (cheap); larger ones only their size."""
INSTALL_SPACE_FACTOR = 2.5
"""Installed packages take about this many times the wheels' size on disk."""
MIN_WORKDIR_FREE = 1 << 30
"""Room for the submission, the run log and the sandbox's files."""
REPORT_FILE = "aimo_preflight.json"


class PreflightError(RuntimeError):
    """The machine cannot run this submission; the message says what is wrong."""


@dataclass
class GpuInfo:
    names: list[str]
    driver: str | None
    cuda: tuple[int, int] | None
    """The newest CUDA version the driver supports (``nvidia-smi`` header)."""


@dataclass
class PreflightReport:
    facts: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [f"preflight: {k}: {v}" for k, v in self.facts.items()]
        lines += [f"preflight PROBLEM: {p}" for p in self.problems]
        lines.append("preflight: OK" if self.ok else
                     f"preflight: {len(self.problems)} problem(s)")
        return "\n".join(lines)

    def enforce(self, rerun: bool, workdir: str | Path = ".") -> None:
        """Interactive run: raise :class:`PreflightError` naming every problem. Rerun: never
        raise; print why the run may answer the fallback and keep the report on disk."""
        try:
            Path(workdir).mkdir(parents=True, exist_ok=True)
            (Path(workdir) / REPORT_FILE).write_text(json.dumps(asdict(self), indent=1,
                                                               default=str))
        except OSError:
            pass  # a report we cannot write must not stop the run
        if self.ok:
            return
        message = "; ".join(self.problems)
        if rerun:
            print(f"preflight (competition rerun, serving anyway: predict answers the fallback"
                  f" where the model cannot run): {message}", flush=True)
            return
        raise PreflightError(f"this machine cannot run the submission: {message}")


def query_gpus(nvidia_smi: str = "nvidia-smi") -> GpuInfo | None:
    """GPU names, driver and its CUDA version from ``nvidia-smi``; None without one."""
    exe = shutil.which(nvidia_smi)
    if exe is None:
        return None
    try:
        listing = subprocess.run(
            [exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=60, check=True).stdout
        header = subprocess.run([exe], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return GpuInfo([], None, None)
    rows = [[c.strip() for c in line.split(",")] for line in listing.splitlines() if line.strip()]
    cuda = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header)
    return GpuInfo([r[0] for r in rows], rows[0][1] if rows and len(rows[0]) > 1 else None,
                   (int(cuda.group(1)), int(cuda.group(2))) if cuda else None)


_CUDA_WHEEL = re.compile(
    r"^(?:nvidia_cuda_runtime_cu(?P<suffix>\d+)-|nvidia_cuda_runtime-(?P<major>\d+)\.)")
_TORCH_LOCAL = re.compile(r"^torch-[^-]+\+cu(?P<tag>\d+)-")


def wheels_cuda_major(wheels_dir: str | Path | None) -> int | None:
    """The CUDA major the wheels are built for, read off their file names (the CUDA runtime
    wheel, or torch's ``+cuXYZ`` tag); None when they do not say."""
    if not wheels_dir:
        return None
    majors = set()
    for path in glob.glob(os.path.join(str(wheels_dir), "*.whl")):
        name = os.path.basename(path)
        m = _CUDA_WHEEL.match(name)
        if m:
            majors.add(int(m.group("suffix") or m.group("major")))
        t = _TORCH_LOCAL.match(name)
        if t:
            majors.add(int(t.group("tag")[:-1]))
    return max(majors) if majors else None


def gpus_needed(entry: ModelEntry) -> int:
    """GPUs the model's engine settings ask for (0: runs on CPU too)."""
    if entry.engine != "vllm":
        return 0
    return VLLMSettings.from_dict({"model": entry.name, **entry.engine_settings}).n_gpus


def _check_model(entry: ModelEntry, roots: Sequence[Path], report: PreflightReport) -> None:
    try:
        path = resolve_model_path(entry, roots)
    except ManifestError as exc:
        first = str(exc).splitlines()[0].removesuffix(" Looked in:")
        report.problems.append(f"{first}: attach the model's input (`python -m aimo_submit"
                               f" manifest verify {entry.name}` lists where it looked)")
        return
    found = verify(entry, path, "fast")
    report.facts["model"] = f"{entry.name} at {path} ({len(found.checked)} file(s) sized)"
    if not found.ok:
        report.problems.append(f"model files of {entry.name} at {path} do not match the"
                               f" manifest: " + "; ".join(found.summary().splitlines()[1:]))
        return
    for rec in entry.files:
        if rec.sha256 and rec.size is not None and rec.size <= SMALL_FILE_BYTES:
            digest = sha256_file(path / rec.path)
            if digest != rec.sha256:
                report.problems.append(f"model file {path / rec.path} has sha256 "
                                       f"{digest[:12]}..., the manifest says {rec.sha256[:12]}...")


def _folder_size(folder: str | Path) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(str(folder), "*.whl")))


def preflight(
    model: str,
    *,
    wheels_dir: str | Path | None = None,
    search_roots: Sequence[str | Path] = (),
    workdir: str | Path = ".",
    manifest_path: str | Path | None = None,
    nvidia_smi: str = "nvidia-smi",
    install_dir: str | Path | None = None,
) -> PreflightReport:
    """Check GPUs, driver against the wheels' CUDA, free disk, wheels and model files."""
    report = PreflightReport()
    try:
        entry = load_manifest(manifest_path).get(model)
    except (ManifestError, KeyError, OSError) as exc:
        report.problems.append(f"model {model!r}: {exc}")
        entry = None

    need = gpus_needed(entry) if entry is not None else 0
    info = query_gpus(nvidia_smi)
    if info is None:
        report.facts["gpus"] = "none (no nvidia-smi)"
        if need:
            report.problems.append(f"{model} needs {need} GPU(s) but there is no nvidia-smi:"
                                   " turn the notebook's accelerator on")
    else:
        report.facts["gpus"] = f"{len(info.names)}: {', '.join(info.names) or '?'}"
        report.facts["driver"] = f"{info.driver} (CUDA {'.'.join(map(str, info.cuda or ()))})"
        if len(info.names) < need:
            report.problems.append(f"{model} needs {need} GPU(s), found {len(info.names)}"
                                   f" ({', '.join(info.names) or 'none answered'}): pick the"
                                   " accelerator with enough GPUs")

    if entry is not None and entry.engine == "vllm" and not wheels_dir \
            and importlib.util.find_spec("vllm") is None:
        report.problems.append("no offline wheels attached and vLLM is not installed: attach"
                               " the aimo-submit-wheels dataset (built by `make package`)")
    wheels_major = wheels_cuda_major(wheels_dir)
    if wheels_dir:
        report.facts["wheels"] = f"{wheels_dir} (CUDA {wheels_major or 'not stated'})"
    if wheels_major and info is not None and info.cuda and info.cuda[0] < wheels_major:
        report.problems.append(
            f"the wheels are CUDA {wheels_major} builds but the driver ({info.driver}) supports"
            f" CUDA {info.cuda[0]}.{info.cuda[1]} only: they need driver"
            f" {WHEELS_CUDA_DRIVER.get(wheels_major, 'newer')} or newer")

    target = Path(install_dir or sysconfig.get_paths()["purelib"])
    if wheels_dir:
        need_bytes = int(_folder_size(wheels_dir) * INSTALL_SPACE_FACTOR)
        free = shutil.disk_usage(target).free
        report.facts["install space"] = f"{free / 2**30:.1f} GiB free at {target}"
        if free < need_bytes:
            report.problems.append(f"installing the wheels needs about {need_bytes / 2**30:.1f}"
                                   f" GiB at {target}, {free / 2**30:.1f} GiB free")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    report.facts["workdir space"] = f"{free / 2**30:.1f} GiB free at {work}"
    if free < MIN_WORKDIR_FREE:
        report.problems.append(f"only {free / 2**20:.0f} MiB free at {work}; the run needs"
                               f" {MIN_WORKDIR_FREE / 2**30:.0f} GiB")

    if entry is not None:
        _check_model(entry, [Path(r) for r in search_roots], report)
    return report
