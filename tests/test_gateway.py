"""The local gateway enforces Kaggle's contract exactly, with clear errors."""

import time

import pandas as pd
import polars as pl
import pytest

from aimo_submit.competition import AIMO2, AIMO3
from aimo_submit.gateway import (
    GatewayError,
    LocalGateway,
    find_kaggle_evaluation,
    load_problems,
    serve,
    validate_prediction,
)
from aimo_submit.report import format_table, report_rows, write_plot


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "problems.csv"
    frame = pl.DataFrame(
        {
            "id": [f"p{i:02d}" for i in range(12)],
            "problem": [f"What is {i} + {i}?" for i in range(12)],
            "answer": [2 * i for i in range(12)],
        }
    )
    frame.write_csv(path)
    return path


def solver_like(calls):
    def predict(id_, problem):
        assert isinstance(id_, pl.Series) and isinstance(problem, pl.Series)
        assert id_.len() == 1 and problem.len() == 1
        calls.append((id_.item(0), problem.item(0)))
        n = int(problem.item(0).split()[2])
        answer = 2 * n if n % 3 else 999  # wrong on multiples of 3
        return pl.DataFrame({"id": [id_.item(0)], "answer": [answer]})

    return predict


def test_serves_every_problem_once_in_shuffled_order_and_scores(csv, tmp_path):
    calls = []
    gw = LocalGateway(load_problems(csv), solver_like(calls), AIMO2, seed=3, out_dir=tmp_path,
                      progress=False)
    result = gw.run()
    ids = [c[0] for c in calls]
    assert sorted(ids) == [f"p{i:02d}" for i in range(12)]
    assert ids != sorted(ids)  # shuffled
    assert result.n_correct == 8 and len(result.scored) == 12
    sub = pl.read_parquet(result.submission_path)
    assert sub.columns == ["id", "answer"] and sub.height == 12
    assert dict(zip(sub["id"], sub["answer"], strict=True))["p04"] == 8


def test_order_depends_on_seed_and_is_random_without_one(csv, tmp_path):
    problems = load_problems(csv)
    orders = {tuple(LocalGateway(problems, None, AIMO2, seed=s).order()) for s in range(5)}
    assert len(orders) > 1
    unseeded = {tuple(LocalGateway(problems, None, AIMO2).order()) for _ in range(5)}
    assert len(unseeded) > 1


def test_truth_is_never_passed_to_predict(csv, tmp_path):
    seen = []

    def predict(*args):
        seen.append(len(args))
        return pl.DataFrame({"id": [args[0].item(0)], "answer": [0]})

    LocalGateway(load_problems(csv), predict, AIMO2, out_dir=tmp_path, progress=False).run()
    assert set(seen) == {2}


def test_pandas_predictions_are_accepted(csv, tmp_path):
    def predict(id_, problem):
        return pd.DataFrame({"id": [id_.item(0)], "answer": [7]})

    result = LocalGateway(load_problems(csv), predict, AIMO2, out_dir=tmp_path,
                          progress=False).run()
    assert {r.answer for r in result.rows} == {7}


@pytest.mark.parametrize(
    "pred, message",
    [
        (None, "returned None"),
        (5, "must return a polars or pandas DataFrame"),
        (pl.DataFrame({"id": ["x", "x"], "answer": [1, 2]}), "expected 1 prediction row"),
        (pl.DataFrame({"id": ["x"]}), "lacks column 'answer'"),
        (pl.DataFrame({"answer": [1]}), "lacks column 'id'"),
        (pl.DataFrame({"id": ["y"], "answer": [1]}), "does not match"),
        (pl.DataFrame({"id": ["x"], "answer": [1000]}), "outside 0..999"),
        (pl.DataFrame({"id": ["x"], "answer": [-1]}), "outside 0..999"),
        (pl.DataFrame({"id": ["x"], "answer": [1.5]}), "must be an integer"),
        (pl.DataFrame({"id": ["x"], "answer": ["12"]}), "must be an integer"),
        (pl.DataFrame({"id": ["x"], "answer": [True]}), "must be an integer"),
    ],
)
def test_invalid_predictions_fail_clearly(pred, message):
    with pytest.raises(GatewayError, match=message):
        validate_prediction(pred, "x", AIMO2)


def test_integral_float_is_accepted_and_profiles_differ():
    assert validate_prediction(pl.DataFrame({"id": ["x"], "answer": [12.0]}), "x", AIMO2) == 12
    big = pl.DataFrame({"id": ["x"], "answer": [12345]})
    assert validate_prediction(big, "x", AIMO3) == 12345
    with pytest.raises(GatewayError):
        validate_prediction(big, "x", AIMO2)


def test_invalid_prediction_stops_the_run(csv, tmp_path):
    def predict(id_, problem):
        return pl.DataFrame({"id": [id_.item(0)], "answer": [5000]})

    with pytest.raises(GatewayError, match="outside"):
        LocalGateway(load_problems(csv), predict, AIMO2, out_dir=tmp_path, progress=False).run()


def test_total_time_limit_is_enforced(csv, tmp_path):
    def slow(id_, problem):
        time.sleep(0.05)
        return pl.DataFrame({"id": [id_.item(0)], "answer": [0]})

    gw = LocalGateway(load_problems(csv), slow, AIMO2, time_limit_s=0.2, out_dir=tmp_path,
                      progress=False)
    with pytest.raises(GatewayError, match="time limit exceeded"):
        gw.run()


@pytest.mark.parametrize(
    "content, message",
    [
        ("id,question\n1,x\n", "lacks column"),
        ("id,problem\n", "no problems"),
        ("id,problem\na,x\na,y\n", "repeats id"),
    ],
)
def test_bad_csv_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(GatewayError, match=message):
        load_problems(path)


def test_missing_csv(tmp_path):
    with pytest.raises(GatewayError, match="not found"):
        load_problems(tmp_path / "nope.csv")


def test_ids_keep_leading_zeros(tmp_path):
    path = tmp_path / "z.csv"
    path.write_text("id,problem,answer\n000aaa,x,1\n")
    assert load_problems(path)["id"].item(0) == "000aaa"


def test_serve_falls_back_to_local_gateway_and_requires_csv(csv, tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    assert find_kaggle_evaluation(AIMO2, [tmp_path]) is None
    calls = []
    result = serve(solver_like(calls), AIMO2, test_csv=csv, out_dir=tmp_path, progress=False)
    assert result is not None and len(calls) == 12
    with pytest.raises(GatewayError, match="no test CSV"):
        serve(solver_like([]), AIMO2, out_dir=tmp_path)
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    with pytest.raises(GatewayError, match="kaggle_evaluation was not found"):
        serve(solver_like([]), AIMO2, test_csv=csv, out_dir=tmp_path)


def test_report_table_and_plot(csv, tmp_path):
    result = LocalGateway(load_problems(csv), solver_like([]), AIMO2, seed=1, out_dir=tmp_path,
                          progress=False).run()
    records = {r.id: {"votes": {str(r.answer): 3, "1": 1}, "tokens": 40, "stop_reason": "agree"}
               for r in result.rows}
    rows = report_rows(result, records)
    table = format_table(rows)
    assert "agree" in table and len(table.splitlines()) == 14
    assert rows[0]["votes"].endswith("x1")
    png = write_plot(result, records, tmp_path / "plot.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
