"""The submission object and the rehearsal command, end to end on the real tiny model.

``Submission.predict`` is called the way Kaggle's gateway calls it (two one-element polars
Series); the CLI test runs ``python -m aimo_submit local-gateway`` as ``make local-gateway`` does,
in a subprocess, and checks everything a user relies on: the score line, the parquet file, the
run log and the plot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from aimo_submit.runner import Submission

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "aimo_submit" / "assets" / "tiny-model"
PROBLEMS = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"

pytestmark = pytest.mark.skipif(
    not (MODEL / "config.json").is_file(), reason="tiny model not trained (make tiny-model)"
)


@pytest.fixture(scope="module")
def submission(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("sub")
    sub = Submission.create(
        workdir=workdir, total_s=120.0, n_problems=4, policy_overrides={"n_samples": 6}
    )
    assert sub.wait_ready(timeout=60), sub._ready.exception()
    yield sub
    sub.close()


def _rows(n: int) -> list[dict[str, str]]:
    return pl.read_csv(PROBLEMS, infer_schema_length=0).head(n).to_dicts()


def test_predict_follows_the_gateway_contract(submission: Submission) -> None:
    row = _rows(1)[0]
    out = submission.predict(pl.Series("id", [row["id"]]), pl.Series("problem", [row["problem"]]))
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["id", "answer"] and out.height == 1
    assert out["id"].item() == row["id"]
    answer = out["answer"].item()
    assert isinstance(answer, int) and 0 <= answer < 1000
    record = submission.records[row["id"]]
    assert record["answer"] == answer
    assert record["n_voted"] > 0 and record["tokens"] > 0
    assert record["budget"]["hard_s"] > 0


def test_predict_accepts_pandas_series(submission: Submission) -> None:
    row = _rows(2)[1]
    out = submission.predict(pd.Series([row["id"]]), pd.Series([row["problem"]]))
    assert out["id"].item() == row["id"]
    assert 0 <= out["answer"].item() < 1000


def test_run_log_has_one_json_line_per_problem(submission: Submission) -> None:
    lines = submission.runlog.path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == list(submission.records)
    for rec in records:
        for key in ("answer", "votes", "tokens", "seconds", "faults", "stop_reason"):
            assert key in rec, f"run log record lacks {key}: {rec}"


def test_time_left_shrinks_as_problems_are_answered(submission: Submission) -> None:
    before = submission.scheduler.usable_left()
    row = _rows(3)[2]
    submission.predict(pl.Series("id", [row["id"]]), pl.Series("problem", [row["problem"]]))
    assert submission.scheduler.usable_left() < before
    assert submission.scheduler.problems_done == 3


def test_preset_then_overrides_precedence(tmp_path: Path) -> None:
    sub = Submission.create(
        workdir=tmp_path, total_s=30.0, n_problems=1, preset="ours",
        policy_overrides={"n_samples": 5},
    )
    try:
        assert sub.policy.n_samples == 5  # the user's override wins
        assert sub.policy.early_stop_agree == 2  # from the preset
        assert sub.policy.max_tokens == 256  # the preset's 12k capped at the tiny model's cap
        assert sub.policy.temperature == 0.6  # the preset's sampling over the model card's
    finally:
        sub.close()


def test_default_policy_is_the_profiles_benchmarked_preset(tmp_path: Path) -> None:
    from aimo_submit.presets import get_preset

    sub = Submission.create(workdir=tmp_path, total_s=30.0, n_problems=1)
    try:  # the preset as benchmarked, its token cap bounded by the tiny model's
        assert sub.policy.to_dict() == {**get_preset("ours-aimo2").to_dict(), "max_tokens": 256}
    finally:
        sub.close()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "aimo_submit", "local-gateway", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


def test_rehearsal_command_end_to_end(tmp_path: Path) -> None:
    """What ``make local-gateway`` runs, on six problems: score line, parquet, log, plot."""
    csv = tmp_path / "six.csv"
    pl.read_csv(PROBLEMS, infer_schema_length=0).head(6).write_csv(csv)
    out = tmp_path / "run"
    proc = _cli("--csv", str(csv), "--time-budget", "120", "--seed", "3", "--quiet",
                "--workdir", str(out), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    score = re.search(r"score: (\d+)/(\d+) correct", proc.stdout)
    assert score, proc.stdout[-2000:]
    assert int(score.group(2)) == 6
    assert int(score.group(1)) >= 3  # the voted tiny model gets ~90% of these right
    sub = pl.read_parquet(out / "submission.parquet")
    truth = pl.read_csv(csv, infer_schema_length=0)
    assert sorted(sub["id"].to_list()) == sorted(truth["id"].to_list())
    assert sub["answer"].is_between(0, 999).all()
    assert len((out / "aimo_runlog.jsonl").read_text().splitlines()) == 6
    assert (out / "rehearsal.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"time used: [\d.]+ s of 120 s", proc.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv", "no/such.csv"], "problem CSV not found"),
        (["--model", "no-such-model"], "no-such-model"),
        (["--preset", "no-such-preset"], "unknown policy preset"),
        (["--set", "n_samplez=3"], "unknown policy keys"),
        (["--set", "n_samples=abc"], "n_samples='abc' (wants int)"),
        (["--policy", "no/such.json"], "--policy no/such.json"),
        (["--rerun"], "GATEWAY=standin RERUN=1"),
    ],
)
def test_rehearsal_command_explains_bad_options(
    tmp_path: Path, args: list[str], message: str
) -> None:
    proc = _cli(*args, "--quiet", "--workdir", str(tmp_path / "w"), cwd=REPO)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_top_level_help_names_every_command_with_a_line(capsys) -> None:
    from aimo_submit.cli import DELEGATED, SUMMARIES, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ["local-gateway", *DELEGATED]:
        assert re.search(rf"^  {command} +{re.escape(SUMMARIES[command])}$", out, re.M)
    assert main([]) == 2  # no command: the same text, and a failing exit status
