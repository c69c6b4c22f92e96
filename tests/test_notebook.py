"""The thin notebook: built from its template, up to date, and runnable end to end on CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import polars as pl
import pytest

from aimo_submit import notebook
from aimo_submit.competition import AIMO2
from aimo_submit.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / notebook.TEMPLATE
TINY = "tiny-qwen2-math"


def test_split_cells():
    src = (
        "# header for maintainers, not copied\nimport nothing\n"
        "# %% [markdown]\n# # Title\n#\n# text\n"
        "# %% step one\nx = 1\n\n\n"
        "# %%\n\n"  # empty cell: dropped
        "# %%\ny = x + 1\n"
    )
    assert notebook.split_cells(src) == [
        ("markdown", "# Title\n\ntext"),
        ("code", "# step one\nx = 1"),
        ("code", "y = x + 1"),
    ]
    with pytest.raises(notebook.NotebookError, match="no '# %%' cells"):
        notebook.split_cells("x = 1\n")
    with pytest.raises(notebook.NotebookError, match="not a comment"):
        notebook.split_cells("# %% [markdown]\nnot a comment\n")


def test_render_template_sets_default_model():
    src = TEMPLATE.read_text()
    assert 'DEFAULT_MODEL = "tiny-qwen2-math"' in notebook.render_template(src, TINY)
    assert notebook.render_template(src) == src
    with pytest.raises(notebook.NotebookError, match="DEFAULT_MODEL"):
        notebook.render_template("x = 1\n", TINY)
    assert 'DEFAULT_PROFILE = "aimo3"' in notebook.render_template(src, None, "aimo3")
    with pytest.raises(notebook.NotebookError, match="DEFAULT_PROFILE"):
        notebook.render_template('DEFAULT_MODEL = "x"\n', TINY, "aimo3")


def test_template_is_thin_and_uses_only_the_runner_contract():
    code = "\n".join(t for k, t in notebook.split_cells(TEMPLATE.read_text()) if k == "code")
    imports = [line.strip() for line in code.splitlines()
               if line.strip().startswith(("import ", "from "))]
    assert [i for i in imports if "aimo_submit" in i] == [
        "import aimo_submit", "from aimo_submit.runner import Submission"]
    assert "Submission.create(" in code and "submission.serve(" in code
    assert "pip\", \"install\", \"--no-index\", \"--find-links\"" in code


def test_committed_notebook_and_metadata_are_up_to_date(tmp_path):
    """Edit notebooks/submission_template.py, then run `make notebook`."""
    default = load_manifest(REPO / "weights_manifest.json").default("kaggle")
    built = notebook.build_notebook(TEMPLATE, tmp_path / "nb.ipynb", default_model=default.name)
    committed = REPO / notebook.NOTEBOOK
    assert committed.is_file(), "run: make notebook"
    assert json.loads(committed.read_text()) == json.loads(built.read_text()), "run: make notebook"
    nbformat.validate(nbformat.read(committed, as_version=4))

    meta = json.loads((REPO / notebook.KERNEL_METADATA).read_text())
    assert meta == notebook.kernel_metadata(notebook.USER_PLACEHOLDER, default)
    assert (REPO / notebook.KERNEL_METADATA).parent.joinpath(meta["code_file"]) == committed
    assert meta["enable_gpu"] is True and meta["enable_internet"] is False
    assert meta["competition_sources"] == [AIMO2.competition_slug]
    assert meta["model_sources"] == [default.source.handle]


def test_build_notebook_cli(tmp_path, capsys):
    out, meta = tmp_path / "x.ipynb", tmp_path / "kernel-metadata.json"
    rc = notebook.main(["--out", str(out), "--metadata", str(meta), "--kaggle-user", "alice",
                        "--model", TINY])
    assert rc == 0
    assert json.loads(meta.read_text())["id"] == "alice/aimo-submit"
    assert json.loads(meta.read_text())["code_file"] == "x.ipynb"
    assert f'DEFAULT_MODEL = "{TINY}"' in out.read_text().replace('\\"', '"')
    assert notebook.main(["--out", str(out), "--metadata", str(meta), "--model", "nope"]) == 2
    assert "no model 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Execute the notebook: tiny model on CPU, local gateway over a few problems
# ---------------------------------------------------------------------------------------------


def _kernel_for_this_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that runs ``sys.executable`` (the venv's python under `make test`), found
    through JUPYTER_PATH so no system or user kernel named python3 can get in the way."""
    name = "aimo-submit-test-kernel"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "aimo-submit tests",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return name


def _tiny_problems(tmp_path: Path, n: int = 3) -> Path:
    src = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"
    if src.is_file():
        df = pl.read_csv(src).head(n)
    else:  # the tiny model can answer this kind of problem; any text works for the plumbing
        df = pl.DataFrame({"id": [f"p{i}" for i in range(n)],
                           "problem": [f"What is {i + 2} + {i + 5}?" for i in range(n)],
                           "answer": [2 * i + 7 for i in range(n)]})
    path = tmp_path / "problems.csv"
    df.write_csv(path)
    return path


@pytest.mark.slow
def test_notebook_executes_on_cpu_and_writes_a_submission(tmp_path, monkeypatch):
    pytest.importorskip("aimo_submit.runner", reason="aimo_submit.runner not available yet")
    from nbclient import NotebookClient

    entry = load_manifest(REPO / "weights_manifest.json").get(TINY)
    if not (REPO / entry.source.path / "config.json").is_file():
        pytest.skip(f"the tiny model is not in {entry.source.path} yet (make tiny-model)")

    csv = _tiny_problems(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {
        "AIMO_SUBMIT_ROOT": str(REPO),
        "AIMO_MODEL": TINY,
        "AIMO_TEST_CSV": str(csv),
        "AIMO_TIME_BUDGET_S": "240",
        "AIMO_POLICY": json.dumps({"n_samples": 2, "early_stop_agree": 2}),
        "AIMO_WORKDIR": str(workdir),
        "AIMO_SKIP_WHEELS": "1",
        "AIMO_KAGGLE_INPUT": str(tmp_path / "kaggle_input"),  # never the real /kaggle/input
        "OMP_NUM_THREADS": "2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AIMO_MANIFEST", "AIMO_KAGGLE_DATA", "AIMO_SEARCH_ROOTS",
                "KAGGLE_IS_COMPETITION_RERUN"):
        monkeypatch.delenv(key, raising=False)
    kernel = _kernel_for_this_interpreter(tmp_path, monkeypatch)

    nb_path = notebook.build_notebook(TEMPLATE, tmp_path / "aimo_submit.ipynb")
    nb = nbformat.read(nb_path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name=kernel,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError with the cell's traceback on any failure

    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "no offline wheels attached" in outputs
    assert f"from {REPO / 'aimo_submit'}" in outputs

    sub = workdir / "submission.parquet"
    assert sub.is_file(), f"no submission.parquet in {workdir}: {sorted(workdir.iterdir())}"
    df = pl.read_parquet(sub)
    problems = pl.read_csv(csv)
    assert {"id", "answer"} <= set(df.columns)
    assert sorted(df["id"].cast(pl.String).to_list()) == sorted(
        problems["id"].cast(pl.String).to_list())
    answers = df["answer"].to_list()
    assert all(isinstance(a, int) and 0 <= a <= AIMO2.max_answer for a in answers), answers
