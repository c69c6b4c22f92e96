"""``make package``: the three folders a Kaggle submission is uploaded from.

Kaggle runs the notebook without internet, so everything it imports must arrive as attached
inputs: the library (this package, the tiny model and the weights manifest) as one dataset, the
GPU wheels missing from Kaggle's image as another, and the thin notebook with a
kernel-metadata.json that attaches both, the competition and the model. The build prints the
``kaggle`` commands that upload them.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aimo_submit
from aimo_submit.competition import get_profile
from aimo_submit.harmony import VOCAB_DIR, VOCAB_FILE, find_vocab
from aimo_submit.manifest import MANIFEST_FILENAME, ManifestError, load_manifest, package_root
from aimo_submit.notebook import (
    KERNEL,
    LIB_DATASET,
    TEMPLATE,
    USER_PLACEHOLDER,
    WHEELS_DATASET,
    NotebookError,
    build_notebook,
    kaggle_username,
    kernel_metadata,
    write_json,
)

NOTEBOOK_DIR = "aimo-submit-notebook"
NOTEBOOK_FILE = "aimo_submit.ipynb"
REQUIREMENTS = ("requirements.txt", "requirements-gpu.txt")
GPU_REQUIREMENTS = "requirements-gpu.txt"

WHEEL_TARGET = {
    "python_version": "3.11",
    "implementation": "cp",
    "abis": ("cp311", "abi3", "none"),
    "platforms": (
        *(f"manylinux_2_{minor}_x86_64" for minor in range(35, 16, -1)),
        "manylinux2014_x86_64",
        "linux_x86_64",
    ),
}
"""Kaggle's image: CPython 3.11 on x86-64 Ubuntu 22.04 (glibc 2.35, so manylinux_2_17 up to
manylinux_2_35 wheels run; llguidance 1.7.6, for one, ships only manylinux_2_31)."""

DATASETS = {
    LIB_DATASET: {
        "title": "aimo-submit library",
        "subtitle": "The aimo_submit package, its tiny model and the weights manifest",
        "description": "Library for the aimo-submit notebook: put this folder on sys.path. "
        "Built by 'make package' from the aimo-submit repository; license as stated there. "
        f"{VOCAB_DIR}/{VOCAB_FILE} is OpenAI's tiktoken vocabulary (MIT licence), which "
        "openai-harmony needs offline for gpt-oss.",
        "licenses": [{"name": "other"}],
    },
    WHEELS_DATASET: {
        "title": "aimo-submit offline wheels",
        "subtitle": "GPU inference wheels for pip install --no-index on Kaggle",
        "description": "Wheels pinned by requirements-gpu.txt of the aimo-submit repository "
        "(vLLM and its dependencies), for offline installation. Each wheel keeps its own "
        "license.",
        "licenses": [{"name": "other"}],
    },
}
"""dataset-metadata.json content per dataset (the id is added with the user name)."""

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*", "tests", "*.egg-info")

Runner = Callable[[list[str]], None]


class PackagingError(RuntimeError):
    """The package could not be built; the message says which step failed and why."""


@dataclass
class PackageResult:
    """What was built, and the commands that upload it."""

    out_dir: Path
    lib_dir: Path
    wheels_dir: Path | None = None
    notebook_dir: Path | None = None
    username: str = USER_PLACEHOLDER
    model: str = ""
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise PackagingError(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n{tail}")


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def dataset_metadata(slug: str, username: str) -> dict[str, object]:
    return {"id": f"{username}/{slug}", **DATASETS[slug]}


def pip_download_command(requirements: Path, dest: Path,
                         target: dict[str, object] | None = None) -> list[str]:
    """``pip download`` of binary wheels for Kaggle's Python and platform, whatever runs it."""
    t = {**WHEEL_TARGET, **(target or {})}
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:",
           "--python-version", str(t["python_version"]),
           "--implementation", str(t["implementation"])]
    for abi in t["abis"]:  # type: ignore[attr-defined]
        cmd += ["--abi", abi]
    for platform in t["platforms"]:  # type: ignore[attr-defined]
        cmd += ["--platform", platform]
    return [*cmd, "-r", str(requirements), "-d", str(dest)]


def build_lib(root: Path, lib_dir: Path, username: str) -> Path:
    """The library dataset: ``aimo_submit/`` (with its assets), the manifest, requirements."""
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    lib_dir.mkdir(parents=True)
    shutil.copytree(root / "aimo_submit", lib_dir / "aimo_submit", ignore=_IGNORE)
    shutil.copy2(root / MANIFEST_FILENAME, lib_dir / MANIFEST_FILENAME)
    for name in REQUIREMENTS:
        if (root / name).is_file():
            shutil.copy2(root / name, lib_dir / name)
    write_json(lib_dir / "BUILD_INFO.json", {
        "version": aimo_submit.__version__,
        "commit": _git_commit(root),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    write_json(lib_dir / "dataset-metadata.json", dataset_metadata(LIB_DATASET, username))
    return lib_dir


def build_wheels(root: Path, wheels_dir: Path, username: str, *, runner: Runner = _run,
                 target: dict[str, object] | None = None) -> Path:
    """The wheels dataset: ``pip download`` of requirements-gpu.txt, plus that file itself
    (the notebook installs with ``pip install --no-index --find-links DIR -r it``)."""
    req = root / GPU_REQUIREMENTS
    wheels_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(req, wheels_dir / GPU_REQUIREMENTS)
    runner(pip_download_command(req, wheels_dir, target))
    if not list(wheels_dir.glob("*.whl")):
        raise PackagingError(f"pip download left no wheels in {wheels_dir}")
    write_json(wheels_dir / "dataset-metadata.json", dataset_metadata(WHEELS_DATASET, username))
    return wheels_dir


def build_package(
    out_dir: str | Path = "build/kaggle",
    *,
    wheels: bool = True,
    kaggle_user: str | None = None,
    model: str | None = None,
    profile: str = "aimo2",
    root: str | Path | None = None,
    runner: Runner | None = None,
    wheel_target: dict[str, object] | None = None,
) -> PackageResult:
    """Build the library, wheels and notebook folders under ``out_dir``.

    ``wheels=False`` skips the download (tests, or when the wheels dataset is already up);
    the notebook still attaches the wheels dataset when requirements-gpu.txt exists.
    ``model`` picks the notebook's default model (else the profile's default model, else the
    manifest's Kaggle default).
    """
    root = Path(root) if root is not None else package_root()
    out = Path(out_dir)
    if not out.is_absolute():
        out = root / out
    try:
        user = kaggle_username(kaggle_user)
        manifest = load_manifest(root / MANIFEST_FILENAME)
        prof = get_profile(profile)
        entry = manifest.for_profile(prof, model)
    except (NotebookError, ManifestError, KeyError) as exc:
        raise PackagingError(str(exc)) from exc
    result = PackageResult(out, out / LIB_DATASET, username=user, model=entry.name)

    build_lib(root, result.lib_dir, user)
    vocab = find_vocab()
    if vocab is not None:
        (result.lib_dir / VOCAB_DIR).mkdir()
        shutil.copyfile(vocab, result.lib_dir / VOCAB_DIR / VOCAB_FILE)
    elif entry.prompt_format == "harmony":
        raise PackagingError(f"{VOCAB_FILE} not found: {entry.name} speaks harmony and "
                             "openai-harmony cannot download it on Kaggle; install "
                             "requirements-data.txt (its litellm wheel carries the file; "
                             "make venv does it)")
    else:
        result.notes.append(f"{VOCAB_FILE} not found: the library dataset cannot run harmony "
                            "models (gpt-oss)")

    has_gpu_req = (root / GPU_REQUIREMENTS).is_file()
    wheels_dir = out / WHEELS_DATASET
    if not has_gpu_req:
        result.notes.append(f"{GPU_REQUIREMENTS} not found in {root}: no wheels dataset built, "
                            "and the notebook will use the packages of Kaggle's image")
    elif not wheels:
        result.notes.append(f"wheels skipped (--no-wheels): upload {WHEELS_DATASET} from an "
                            "earlier build, or build again without --no-wheels")
    else:
        result.wheels_dir = build_wheels(root, wheels_dir, user, runner=runner or _run,
                                         target=wheel_target)

    template = root / TEMPLATE
    if template.is_file():
        nb_dir = out / NOTEBOOK_DIR
        if nb_dir.exists():
            shutil.rmtree(nb_dir)
        build_notebook(template, nb_dir / NOTEBOOK_FILE, default_model=entry.name,
                       profile=prof.name)
        write_json(nb_dir / "kernel-metadata.json",
                   kernel_metadata(user, entry, profile=prof.name, code_file=NOTEBOOK_FILE,
                                   wheels=has_gpu_req))
        result.notebook_dir = nb_dir
    else:
        result.notes.append(f"{template} not found: no notebook folder built")

    if user == USER_PLACEHOLDER:
        result.notes.append(f"no Kaggle user given: the metadata files say {USER_PLACEHOLDER!r}; "
                            "rebuild with --kaggle-user NAME (or set KAGGLE_USERNAME)")
    if not entry.verified:
        result.notes.append(f"model {entry.name!r} is marked unverified in the manifest: "
                            f"{entry.note}")
    result.commands = kaggle_commands(result, prof.competition_slug, has_gpu_req)
    return result


def kaggle_commands(result: PackageResult, competition: str, with_wheels: bool) -> list[str]:
    """The upload commands, in order; ``#`` lines explain when each applies."""
    q = shlex.quote
    lib, wheels = str(result.lib_dir), str(result.out_dir / WHEELS_DATASET)
    msg = f"aimo-submit {aimo_submit.__version__}"
    lines = ["# first upload of the datasets"]
    lines.append(f"kaggle datasets create -p {q(lib)} --dir-mode zip")
    if with_wheels:
        lines.append(f"kaggle datasets create -p {q(wheels)}")
    lines.append("# later uploads: a new version of each dataset that changed")
    lines.append(f"kaggle datasets version -p {q(lib)} -m {q(msg)} --dir-mode zip")
    if with_wheels:
        lines.append(f"kaggle datasets version -p {q(wheels)} -m {q(msg)}")
    if result.notebook_dir is not None:
        lines.append("# push and run the notebook (wait until its datasets finish processing)")
        lines.append(f"kaggle kernels push -p {q(str(result.notebook_dir))}")
        lines.append("# once that version ran without errors: submit it (N = its version)")
        lines.append(f"kaggle competitions submit {competition} -k "
                     f"{result.username}/{KERNEL['slug']} -v N -f submission.parquet -m {q(msg)}")
    return lines


def _tree(folder: Path, max_files: int = 12) -> list[str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    lines = [f"  {p.relative_to(folder.parent)}" for p in files[:max_files]]
    if len(files) > max_files:
        lines.append(f"  ... {len(files) - max_files} more file(s)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aimo_submit package``."""
    ap = argparse.ArgumentParser(prog="python -m aimo_submit package",
                                 description="Build the Kaggle upload folders.")
    ap.add_argument("--out", default="build/kaggle", help="output folder (under the repo)")
    ap.add_argument("--kaggle-user", default=None,
                    help="your Kaggle user name (default $KAGGLE_USERNAME)")
    ap.add_argument("--model", default=None,
                    help="the notebook's model (default: the profile's, else the manifest's "
                    "Kaggle default)")
    ap.add_argument("--profile", default="aimo2")
    ap.add_argument("--no-wheels", action="store_true", help="skip pip download of GPU wheels")
    ap.add_argument("--python-version", default=WHEEL_TARGET["python_version"],
                    help="Python of the Kaggle image the wheels are for")
    args = ap.parse_args(list(argv) if argv is not None else None)
    try:
        result = build_package(args.out, wheels=not args.no_wheels, kaggle_user=args.kaggle_user,
                               model=args.model, profile=args.profile,
                               wheel_target={"python_version": args.python_version,
                                             "abis": (f"cp{args.python_version.replace('.', '')}",
                                                      "abi3", "none")})
    except (PackagingError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"built {result.out_dir} (notebook model: {result.model})")
    for folder in (result.lib_dir, result.wheels_dir, result.notebook_dir):
        if folder is not None:
            print("\n".join(_tree(folder)))
    for note in result.notes:
        print(f"note: {note}")
    print("\nupload with:")
    print("\n".join(result.commands))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
