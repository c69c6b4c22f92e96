"""``make package`` without network: folder layout, metadata, and that the copy imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from aimo_submit import packaging
from aimo_submit.competition import AIMO2
from aimo_submit.manifest import load_manifest
from aimo_submit.notebook import LIB_DATASET, WHEELS_DATASET

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A copy of the repo's inputs to the build, with clutter that must not be packaged."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "aimo_submit", root / "aimo_submit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "weights_manifest.json", root / "weights_manifest.json")
    shutil.copy2(REPO / "requirements.txt", root / "requirements.txt")
    (root / "notebooks").mkdir()
    shutil.copy2(REPO / "notebooks" / "submission_template.py", root / "notebooks")
    junk = root / "aimo_submit" / "__pycache__"
    junk.mkdir()
    (junk / "x.cpython-311.pyc").write_bytes(b"junk")
    (root / "aimo_submit" / "tests").mkdir()
    (root / "aimo_submit" / "tests" / "test_x.py").write_text("assert False\n")
    (root / "aimo_submit" / ".hidden").write_text("x")
    return root


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def check_dataset_metadata(path: Path, user: str, slug: str) -> None:
    meta = read_json(path)
    assert meta["id"] == f"{user}/{slug}"
    assert 6 <= len(meta["title"]) <= 50  # Kaggle's limits
    assert 20 <= len(meta["subtitle"]) <= 80
    assert len(meta["licenses"]) == 1 and meta["licenses"][0]["name"]


def test_package_layout_and_metadata(fake_root, tmp_path):
    result = packaging.build_package(tmp_path / "out", wheels=False, kaggle_user="alice",
                                     root=fake_root)
    lib = tmp_path / "out" / LIB_DATASET
    assert result.lib_dir == lib
    for name in ("aimo_submit/__init__.py", "aimo_submit/manifest.py",
                 "aimo_submit/engines/base.py", "weights_manifest.json", "requirements.txt",
                 "BUILD_INFO.json", "dataset-metadata.json"):
        assert (lib / name).is_file(), name
    # nothing that Kaggle should not see
    everything = [p.relative_to(lib).as_posix() for p in lib.rglob("*")]
    assert not [p for p in everything if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in everything if p.startswith("aimo_submit/tests") or "/." in "/" + p]
    check_dataset_metadata(lib / "dataset-metadata.json", "alice", LIB_DATASET)
    assert load_manifest(lib / "weights_manifest.json").names == load_manifest(
        REPO / "weights_manifest.json").names
    if (REPO / "aimo_submit" / "assets" / "tiny-model" / "config.json").is_file():
        assert (lib / "aimo_submit" / "assets" / "tiny-model" / "config.json").is_file()

    # no requirements-gpu.txt in this root: no wheels dataset, and a note saying so
    assert result.wheels_dir is None
    assert not (tmp_path / "out" / WHEELS_DATASET).exists()
    assert any("requirements-gpu.txt not found" in n for n in result.notes)

    nb_dir = result.notebook_dir
    assert nb_dir is not None
    kmeta = read_json(nb_dir / "kernel-metadata.json")
    assert kmeta["id"] == "alice/aimo-submit"
    assert kmeta["title"].lower().replace(" ", "-") == kmeta["id"].split("/")[1]
    assert (nb_dir / kmeta["code_file"]).is_file()
    assert kmeta["language"] == "python" and kmeta["kernel_type"] == "notebook"
    assert kmeta["enable_gpu"] is True and kmeta["enable_internet"] is False
    assert kmeta["machine_shape"] == "NvidiaL4"
    assert kmeta["competition_sources"] == [AIMO2.competition_slug]
    assert kmeta["dataset_sources"] == [f"alice/{LIB_DATASET}"]
    default = load_manifest(REPO / "weights_manifest.json").default("kaggle")
    assert kmeta["model_sources"] == [default.source.handle]
    nb = nbformat.read(nb_dir / kmeta["code_file"], as_version=4)
    nbformat.validate(nb)
    assert f'DEFAULT_MODEL = "{default.name}"' in "".join(c.source for c in nb.cells)

    text = "\n".join(result.commands)
    assert f"kaggle datasets create -p {lib} --dir-mode zip" in text
    assert f"kaggle datasets version -p {lib} -m" in text
    assert f"kaggle kernels push -p {nb_dir}" in text
    assert f"kaggle competitions submit {AIMO2.competition_slug} -k alice/aimo-submit" in text


def test_built_library_imports_from_its_folder(fake_root, tmp_path):
    result = packaging.build_package(tmp_path / "out", wheels=False, kaggle_user="alice",
                                     root=fake_root)
    lib = result.lib_dir
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import aimo_submit, aimo_submit.manifest as m, aimo_submit.runner\n"
        "from pathlib import Path\n"
        "assert Path(aimo_submit.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve())\n"
        "man = m.load_manifest()\n"
        "assert man.path.resolve() == (Path(sys.argv[1]) / 'weights_manifest.json').resolve()\n"
        "print(man.get('tiny-qwen2-math').source.path)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AIMO_MANIFEST")}
    proc = subprocess.run([sys.executable, "-c", code, str(lib)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "aimo_submit/assets/tiny-model"


def test_wheels_are_downloaded_for_kaggles_python(fake_root, tmp_path):
    (fake_root / "requirements-gpu.txt").write_text("vllm==0.0.0\n")
    calls: list[list[str]] = []

    def fake_pip(cmd: list[str]) -> None:
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / "vllm-0.0.0-cp38-abi3-manylinux_2_28_x86_64.whl").write_bytes(b"wheel")

    result = packaging.build_package(tmp_path / "out", wheels=True, kaggle_user="alice",
                                     root=fake_root, runner=fake_pip)
    (cmd,) = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.11"
    platforms = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--platform"]
    assert {"manylinux_2_31_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64"} <= set(
        platforms)
    assert cmd[cmd.index("-r") + 1] == str(fake_root / "requirements-gpu.txt")
    wheels = tmp_path / "out" / WHEELS_DATASET
    assert result.wheels_dir == wheels
    assert (wheels / "requirements-gpu.txt").read_text() == "vllm==0.0.0\n"
    check_dataset_metadata(wheels / "dataset-metadata.json", "alice", WHEELS_DATASET)
    assert (result.lib_dir / "requirements-gpu.txt").is_file()
    kmeta = read_json(result.notebook_dir / "kernel-metadata.json")
    assert kmeta["dataset_sources"] == [f"alice/{LIB_DATASET}", f"alice/{WHEELS_DATASET}"]
    assert f"kaggle datasets create -p {wheels}" in "\n".join(result.commands)


def test_no_wheels_flag_skips_download_but_still_attaches_the_dataset(fake_root, tmp_path):
    (fake_root / "requirements-gpu.txt").write_text("vllm==0.0.0\n")

    def no_pip(cmd: list[str]) -> None:
        raise AssertionError("pip must not run with wheels=False")

    result = packaging.build_package(tmp_path / "out", wheels=False, kaggle_user="alice",
                                     root=fake_root, runner=no_pip)
    assert result.wheels_dir is None
    assert any("--no-wheels" in n for n in result.notes)
    kmeta = read_json(result.notebook_dir / "kernel-metadata.json")
    assert f"alice/{WHEELS_DATASET}" in kmeta["dataset_sources"]


def test_failed_download_is_reported(fake_root, tmp_path):
    (fake_root / "requirements-gpu.txt").write_text("vllm==0.0.0\n")
    with pytest.raises(packaging.PackagingError, match="no wheels"):
        packaging.build_package(tmp_path / "out", kaggle_user="alice", root=fake_root,
                                runner=lambda cmd: None)


def test_own_dataset_model_and_placeholder_user(fake_root, tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    result = packaging.build_package(tmp_path / "out", wheels=False, root=fake_root,
                                     model="openmath-nemotron-14b")
    assert result.username == "USERNAME"
    assert any("--kaggle-user" in n for n in result.notes)
    assert any("unverified" in n for n in result.notes)
    kmeta = read_json(result.notebook_dir / "kernel-metadata.json")
    assert kmeta["model_sources"] == []
    assert "USERNAME/openmath-nemotron-14b" in kmeta["dataset_sources"]
    monkeypatch.setenv("KAGGLE_USERNAME", "bob")
    result = packaging.build_package(tmp_path / "out", wheels=False, root=fake_root,
                                     model="openmath-nemotron-14b")
    kmeta = read_json(result.notebook_dir / "kernel-metadata.json")
    assert "bob/openmath-nemotron-14b" in kmeta["dataset_sources"]
    with pytest.raises(packaging.PackagingError, match="no model 'nope'"):
        packaging.build_package(tmp_path / "out", wheels=False, root=fake_root, model="nope")


def test_cli(tmp_path, capsys):
    out = tmp_path / "kaggle"
    assert packaging.main(["--out", str(out), "--no-wheels", "--kaggle-user", "alice"]) == 0
    printed = capsys.readouterr().out
    assert "kaggle kernels push -p" in printed and "kaggle datasets create -p" in printed
    assert (out / LIB_DATASET / "aimo_submit" / "__init__.py").is_file()
    assert packaging.main(["--out", str(out), "--no-wheels", "--kaggle-user", "bad name!"]) == 1


def test_aimo3_package_runs_gpt_oss_on_one_h100_with_the_vocabulary(fake_root, tmp_path):
    from aimo_submit import harmony
    from aimo_submit.competition import AIMO3

    result = packaging.build_package(tmp_path / "out", wheels=False, kaggle_user="alice",
                                     profile="aimo3", root=fake_root)
    assert result.model == AIMO3.default_model == "gpt-oss-120b"
    kmeta = read_json(result.notebook_dir / "kernel-metadata.json")
    assert kmeta["machine_shape"] == "NvidiaH100"
    assert kmeta["competition_sources"] == [AIMO3.competition_slug]
    entry = load_manifest(REPO / "weights_manifest.json").get("gpt-oss-120b")
    assert kmeta["model_sources"] == [entry.source.handle]
    nb = nbformat.read(result.notebook_dir / kmeta["code_file"], as_version=4)
    code = "".join(c.source for c in nb.cells)
    assert 'DEFAULT_MODEL = "gpt-oss-120b"' in code and 'DEFAULT_PROFILE = "aimo3"' in code
    assert nb.metadata["kaggle"]["accelerator"] == "nvidiaH100"
    assert any("unverified" in note for note in result.notes)
    # the library dataset carries the vocabulary, and the packaged harmony.py finds it there
    vocab = result.lib_dir / harmony.VOCAB_DIR / harmony.VOCAB_FILE
    assert harmony._sha256(vocab) == harmony.VOCAB_SHA256
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from aimo_submit import harmony\n"
            "print(harmony.find_vocab())\n")
    env = {k: v for k, v in os.environ.items() if k != harmony.VOCAB_ENV}
    out = subprocess.run([sys.executable, "-c", code, str(result.lib_dir)], env=env,
                         capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == vocab


def test_harmony_model_without_the_vocabulary_is_refused(fake_root, tmp_path, monkeypatch):
    monkeypatch.setattr(packaging, "find_vocab", lambda: None)
    with pytest.raises(packaging.PackagingError, match="o200k_base.tiktoken not found"):
        packaging.build_package(tmp_path / "out", wheels=False, profile="aimo3", root=fake_root)
    result = packaging.build_package(tmp_path / "out2", wheels=False, root=fake_root)
    assert any("cannot run harmony models" in note for note in result.notes)
