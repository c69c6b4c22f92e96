"""The adapter to Kaggle's real ``kaggle_evaluation``, run against a stand-in package.

``tests/fixtures`` plays a competition data folder: ``kaggle_evaluation/`` (a stand-in written
from the documented AIMO contract, see its ``__init__``) and a ``test.csv``. The stand-in logs
each entry point to ``$KAGGLE_EVALUATION_STANDIN_LOG``, so these tests can tell which path the
adapter took, and it validates predictions the way the real gateway does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from aimo_submit.competition import AIMO2, AIMO3
from aimo_submit.gateway import (
    GatewayError,
    KagglePredict,
    find_kaggle_evaluation,
    make_inference_server,
    serve,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
PROBLEMS = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"
TINY_MODEL = REPO / "aimo_submit" / "assets" / "tiny-model"
STANDIN_MODULES = ("aimo_2_gateway", "aimo_3_gateway")


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """A fresh import of the stand-in per test (it reads the rerun flag at import time), its
    log file, and the working directory where the gateway writes submission.parquet."""

    def purge() -> None:
        for name in list(sys.modules):
            if name == "kaggle_evaluation" or name.startswith(("kaggle_evaluation.",
                                                               *STANDIN_MODULES)):
                del sys.modules[name]

    saved_path = list(sys.path)
    purge()
    log = tmp_path / "standin.jsonl"
    monkeypatch.setenv("KAGGLE_EVALUATION_STANDIN_LOG", str(log))
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    monkeypatch.delenv("KAGGLE_EVALUATION_STANDIN_TEST_CSV", raising=False)
    monkeypatch.chdir(tmp_path)

    def events() -> list[dict]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    yield events
    purge()
    sys.path[:] = saved_path


def _csv(tmp_path: Path, ids: list[str], name: str = "problems.csv") -> Path:
    path = tmp_path / name
    path.write_text("id,problem,answer\n" + "".join(
        f"{pid},What is {i} + {i}?,{2 * i}\n" for i, pid in enumerate(ids)))
    return path


def _adding_predict(calls: list[tuple]) -> KagglePredict:
    """Answers 'What is i + i?' correctly and returns the id as a string, as our runner does."""

    def predict(id_, problem, *extra):
        calls.append((id_, problem, extra))
        n = int(problem.item(0).split()[2])
        return pl.DataFrame({"id": [str(id_.item(0))], "answer": [2 * n]},
                            schema={"id": pl.String, "answer": pl.Int64})

    return KagglePredict(predict)


def test_finds_the_package_only_where_it_is(tmp_path):
    assert find_kaggle_evaluation(AIMO2, [tmp_path, FIXTURES]) == FIXTURES
    assert find_kaggle_evaluation(AIMO2, [tmp_path]) is None


def test_rehearsal_goes_through_run_local_gateway_without_the_answers(standin, tmp_path):
    calls: list[tuple] = []
    csv = _csv(tmp_path, ["a1", "b2", "c3", "d4"])
    out = tmp_path / "run"
    result = serve(_adding_predict(calls).inner, AIMO2, test_csv=csv, kaggle_data=FIXTURES,
                   out_dir=out, time_limit_s=60)
    names = [e["event"] for e in standin()]
    assert names[0] == "run_local_gateway" and "serve" not in names
    assert standin()[0]["server"] == "AIMO2InferenceServer"
    problems = next(e for e in standin() if e["event"] == "problems")
    assert problems["columns"] == ["id", "problem"]  # the truth never reaches predict
    assert all(not extra for _, _, extra in calls) and len(calls) == 4
    assert all(isinstance(i, pl.Series) and isinstance(p, pl.Series) for i, p, _ in calls)
    # scored like the local gateway, the parquet moved beside the run log
    assert result is not None and result.n_correct == 4 and len(result.scored) == 4
    assert sorted(r.order for r in result.rows) == [0, 1, 2, 3]
    assert result.submission_path == out / "submission.parquet"
    assert not (tmp_path / "submission.parquet").exists()
    sub = pl.read_parquet(result.submission_path)
    assert sub.columns == ["id", "answer"]
    assert dict(zip(sub["id"], sub["answer"], strict=True)) == {"a1": 0, "b2": 2, "c3": 4,
                                                                "d4": 6}


def test_all_digit_ids_come_back_with_the_type_the_gateway_sent(standin, tmp_path):
    """The gateway infers id types; our runner answers with string ids. Without the adapter
    the gateway rejects the first answer, with it the submission goes through."""
    csv = _csv(tmp_path, ["101", "102", "103"])
    result = serve(_adding_predict([]).inner, AIMO2, test_csv=csv, kaggle_data=FIXTURES,
                   out_dir=tmp_path / "ok")
    assert next(e for e in standin() if e["event"] == "problems")["id_dtype"] == "Int64"
    sub = pl.read_parquet(result.submission_path)
    assert sub.schema["id"] == pl.Int64 and sorted(sub["id"]) == [101, 102, 103]
    assert {r.truth for r in result.rows} == {0, 2, 4} and result.n_correct == 3

    raw = _adding_predict([]).inner
    server = make_inference_server(raw, AIMO2, FIXTURES)  # the unadapted function
    with pytest.raises(Exception, match="Invalid values for id") as info:
        server.run_local_gateway((str(csv),))
    assert type(info.value).__name__ == "GatewayRuntimeError"


def test_aimo3_row_and_sample_submission_are_split_into_id_and_problem(standin, tmp_path):
    calls: list[tuple] = []

    def predict(id_, problem, *extra):
        calls.append((id_, problem, extra))
        return pl.DataFrame({"id": [id_.item(0)], "answer": [12345]})

    csv = _csv(tmp_path, ["x1", "x2"])
    result = serve(predict, AIMO3, test_csv=csv, kaggle_data=FIXTURES, out_dir=tmp_path / "r")
    assert standin()[0]["server"] == "AIMO3InferenceServer"
    assert len(calls) == 2 and all(not extra for _, _, extra in calls)
    assert {p.item(0) for _, p, _ in calls} == {"What is 0 + 0?", "What is 1 + 1?"}
    assert pl.read_parquet(result.submission_path)["answer"].to_list() == [12345, 12345]


def test_competition_rerun_blocks_in_serve(standin, tmp_path, monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    monkeypatch.setenv("KAGGLE_EVALUATION_STANDIN_TEST_CSV",
                       str(_csv(tmp_path, ["h1", "h2", "h3"], "hidden.csv")))
    # the CSV argument is a rehearsal knob: on a rerun the hidden gateway picks the problems
    assert serve(_adding_predict(calls).inner, AIMO2, test_csv=PROBLEMS,
                 kaggle_data=FIXTURES) is None
    names = [e["event"] for e in standin()]
    assert names[0] == "serve" and "run_local_gateway" not in names
    assert sorted(c[0].item(0) for c in calls) == ["h1", "h2", "h3"]
    assert json.loads((tmp_path / "result.json").read_text()) == {"Succeeded": True}
    assert pl.read_parquet(tmp_path / "submission.parquet").height == 3


def test_gateway_rejections_and_bad_folders_are_clear(standin, tmp_path):
    def predict(id_, problem):
        return pl.DataFrame({"id": ["not-" + id_.item(0)], "answer": [1]})

    csv = _csv(tmp_path, ["a", "b"])
    with pytest.raises(GatewayError, match="Kaggle's gateway failed: INVALID_SUBMISSION"):
        serve(predict, AIMO2, test_csv=csv, kaggle_data=FIXTURES, out_dir=tmp_path)
    with pytest.raises(GatewayError, match="has no kaggle_evaluation"):
        serve(predict, AIMO2, test_csv=csv, kaggle_data=tmp_path, out_dir=tmp_path)
    with pytest.raises(GatewayError, match="registers endpoints by name"):
        make_inference_server(lambda i, p: None, AIMO2, FIXTURES)


@pytest.mark.parametrize(
    ("init", "server", "message"),
    [
        ("import sys\nsys.exit(1)\n", "", "is the package complete"),
        ("", "import grpc_not_installed_here\n", "pip install grpcio protobuf"),
        ("", None, "wrong competition profile"),
    ],
)
def test_broken_or_foreign_packages_fail_with_a_reason(standin, tmp_path, init, server,
                                                      message):
    pkg = tmp_path / "data" / "kaggle_evaluation"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(init)
    if server is not None:
        (pkg / "aimo_2_inference_server.py").write_text(server)
    with pytest.raises(GatewayError, match=message):
        make_inference_server(KagglePredict(print), AIMO2, tmp_path / "data")


@pytest.mark.skipif(not (TINY_MODEL / "config.json").is_file(), reason="no tiny model")
def test_cli_rehearsal_with_kaggle_data_uses_the_real_package(tmp_path):
    """`make local-gateway KAGGLE_DATA=...`: the tiny model through Kaggle's server."""
    csv = tmp_path / "four.csv"
    pl.read_csv(PROBLEMS, infer_schema_length=0).head(4).write_csv(csv)
    log, out = tmp_path / "standin.jsonl", tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               KAGGLE_EVALUATION_STANDIN_LOG=str(log))
    env.pop("KAGGLE_IS_COMPETITION_RERUN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "aimo_submit", "local-gateway", "--kaggle-data", str(FIXTURES),
         "--csv", str(csv), "--time-budget", "120", "--quiet", "--workdir", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gateway: Kaggle's AIMO2InferenceServer.run_local_gateway" in proc.stdout
    assert "LocalGateway" not in proc.stdout
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["run_local_gateway", "data_paths", "problems",
                                            "submission"]
    assert events[0]["startup_s"] < 120 and not events[0]["over_limit"]
    assert events[-1]["rows"] == 4
    score = re.search(r"score: (\d+)/4 correct", proc.stdout)
    assert score, proc.stdout[-2000:]
    sub = pl.read_parquet(out / "submission.parquet")
    assert sorted(sub["id"]) == sorted(pl.read_csv(csv, infer_schema_length=0)["id"])
    assert sub["answer"].is_between(0, AIMO2.max_answer).all()
    assert len((out / "aimo_runlog.jsonl").read_text().splitlines()) == 4
