"""The adapter to Kaggle's ``kaggle_evaluation``, run against our stand-ins over real gRPC.

``tests/fixtures/kaggle/aimo2`` (0.3.0-like) and ``.../aimo3`` (0.9.0-like) play competition
data folders; see ``tests/fixtures/kaggle_standin`` for what they reproduce. Tests marked with
``data_folders(real=True)`` also run against Kaggle's real packages when ``conftest.py``'s
variables point at them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO, STANDINS, data_folders

from aimo_submit.competition import AIMO2, get_profile
from aimo_submit.gateway import (
    GatewayError,
    KagglePredict,
    find_kaggle_evaluation,
    is_competition_rerun,
    make_inference_server,
    rehearse_rerun,
    serve,
)

PROBLEMS = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"
TINY_MODEL = REPO / "aimo_submit" / "assets" / "tiny-model"


def _csv(tmp_path: Path, ids: list[str], name: str = "problems.csv") -> Path:
    path = tmp_path / name
    path.write_text("id,problem,answer\n" + "".join(
        f"{pid},What is {i} + {i}?,{2 * i}\n" for i, pid in enumerate(ids)))
    return path


def _adding(calls: list[tuple]):
    """Answers 'What is i + i?' correctly and returns the id as a string, as our runner does."""

    def predict(id_, problem, *extra):
        calls.append((id_, problem, extra))
        n = int(problem.item(0).split()[2])
        return pl.DataFrame({"id": [str(id_.item(0))], "answer": [2 * n]},
                            schema={"id": pl.String, "answer": pl.Int64})

    return predict


def test_finds_the_package_only_where_it_is(tmp_path):
    assert find_kaggle_evaluation(AIMO2, [tmp_path, STANDINS / "aimo2"]) == STANDINS / "aimo2"
    assert find_kaggle_evaluation(AIMO2, [tmp_path]) is None


def test_rerun_is_any_set_value(monkeypatch):
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    assert not is_competition_rerun()
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "")  # as Kaggle's own test: set is enough
    assert is_competition_rerun()


@pytest.mark.parametrize(("profile", "folder"), data_folders(real=True))
def test_rehearsal_goes_through_run_local_gateway_without_the_answers(standin, tmp_path,
                                                                      profile, folder):
    calls: list[tuple] = []
    csv = _csv(tmp_path, ["a1", "b2", "c3", "d4"])
    out = tmp_path / "run"
    result = serve(_adding(calls), get_profile(profile), test_csv=csv, kaggle_data=folder,
                   out_dir=out, time_limit_s=60)
    # the truth column never reaches predict: exactly (id, problem) one-row Series
    assert len(calls) == 4 and all(not extra for _, _, extra in calls)
    assert all(isinstance(i, pl.Series) and isinstance(p, pl.Series) and i.len() == 1
               for i, p, _ in calls)
    assert sorted(p.item(0) for _, p, _ in calls) == [f"What is {i} + {i}?" for i in range(4)]
    assert result is not None and result.n_correct == 4 and len(result.scored) == 4
    assert sorted(r.order for r in result.rows) == [0, 1, 2, 3]
    assert result.submission_path == out / "submission.parquet"
    assert not (tmp_path / "submission.parquet").exists()
    sub = pl.read_parquet(result.submission_path)
    assert sub.columns == ["id", "answer"]
    assert dict(zip(sub["id"], sub["answer"], strict=True)) == {"a1": 0, "b2": 2, "c3": 4,
                                                                "d4": 6}
    if folder.parent == STANDINS:
        events = standin.events()
        assert [e["event"] for e in events][:3] == ["run_local_gateway", "data_paths",
                                                    "problems"]
        assert events[0]["server"] == get_profile(profile).server_class
        assert events[0]["port"] == standin.port  # a real gRPC server on this test's port
        assert events[2]["columns"] == ["id", "problem"]


@pytest.mark.parametrize(("profile", "folder"), data_folders(real=True))
def test_digit_only_ids_are_typed_by_the_gateway_and_still_scored(standin, tmp_path, profile,
                                                                  folder):
    """The gateway infers id types: ``001`` arrives as the integer 1. The adapter answers with
    the id it was sent, and the truth is keyed the same way, so the score line stays."""
    csv = _csv(tmp_path, ["001", "002", "003"])
    result = serve(_adding([]), get_profile(profile), test_csv=csv, kaggle_data=folder,
                   out_dir=tmp_path / "ok")
    sub = pl.read_parquet(result.submission_path)
    assert sub.schema["id"] == pl.Int64 and sorted(sub["id"]) == [1, 2, 3]
    assert sorted(r.id for r in result.rows) == ["1", "2", "3"]
    assert {r.truth for r in result.rows} == {0, 2, 4} and result.n_correct == 3


@pytest.mark.parametrize(("profile", "folder"), data_folders(real=True))
def test_unadapted_string_ids_fail_on_aimo2_and_are_overwritten_on_aimo3(standin, tmp_path,
                                                                        profile, folder):
    csv = _csv(tmp_path, ["101", "102"])
    server = make_inference_server(_adding([]), get_profile(profile), folder)  # no adapter
    if profile == "aimo2":
        with pytest.raises(Exception, match="Invalid values for id") as info:
            server.run_local_gateway((str(csv),))
        assert type(info.value).__name__ == "GatewayRuntimeError"
    else:
        server.run_local_gateway((str(csv),))
        sub = pl.read_parquet(tmp_path / "submission.parquet")
        assert sub.schema["id"] == pl.Int64 and sorted(sub["id"]) == [101, 102]


@pytest.mark.parametrize(("profile", "folder"), data_folders(real=True))
def test_only_a_plain_function_named_predict_is_served(standin, profile, folder):
    prof = get_profile(profile)
    adapter = KagglePredict(_adding([]))
    endpoint = adapter.endpoint()
    assert isinstance(endpoint, types.FunctionType) and endpoint.__name__ == "predict"
    make_inference_server(endpoint, prof, folder).server.stop(0)
    for wrong in (adapter, lambda i, p: None, print):
        with pytest.raises(GatewayError, match="plain Python functions only"):
            make_inference_server(wrong, prof, folder)
    # what the adapter used to hand over: the real 0.9.0 relay refuses it, 0.3.0 took it
    module = __import__(prof.server_module, fromlist=[prof.server_class])
    server_cls = getattr(module, prof.server_class)
    if profile == "aimo3":
        with pytest.raises(ValueError, match="must be functions"):
            server_cls(adapter)
    else:
        server_cls(adapter).server.stop(0)


def test_gateway_rejections_and_bad_folders_are_clear(standin, tmp_path):
    def predict(id_, problem):
        return pl.DataFrame({"id": ["not-" + id_.item(0)], "answer": [1]})

    csv = _csv(tmp_path, ["a", "b"])
    with pytest.raises(GatewayError, match="Kaggle's gateway failed: INVALID_SUBMISSION"):
        serve(predict, AIMO2, test_csv=csv, kaggle_data=STANDINS / "aimo2", out_dir=tmp_path)
    with pytest.raises(GatewayError, match="has no kaggle_evaluation"):
        serve(predict, AIMO2, test_csv=csv, kaggle_data=tmp_path, out_dir=tmp_path)


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
        make_inference_server(KagglePredict(print).endpoint(), AIMO2, tmp_path / "data")


@pytest.mark.parametrize("profile", ["aimo2", "aimo3"])
def test_gateway_in_another_process_reaches_the_blocking_server(standin, tmp_path,
                                                                monkeypatch, profile):
    """A rerun as Kaggle runs it: ``serve()`` blocks in this process while the gateway, started
    by its module's ``__main__`` in another process, connects over gRPC and writes its files."""
    import threading

    prof = get_profile(profile)
    hidden = _csv(tmp_path, ["h1", "h2", "h3"], "hidden.csv")
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "")
    calls: list[tuple] = []
    # the CSV argument is a rehearsal knob: on a rerun the hidden gateway picks the problems
    thread = threading.Thread(target=serve, args=(_adding(calls), prof),
                              kwargs={"test_csv": PROBLEMS, "kaggle_data": STANDINS / profile},
                              daemon=True)
    thread.start()
    gate_dir = tmp_path / "gateway"
    gate_dir.mkdir()
    env = dict(os.environ, **standin.env(), PYTHONPATH=str(STANDINS / profile),
               KAGGLE_IS_COMPETITION_RERUN="1", KAGGLE_EVALUATION_STANDIN_TEST_CSV=str(hidden))
    gateway_module = prof.server_module.replace("inference_server", "gateway")
    proc = subprocess.run([sys.executable, "-m", gateway_module], cwd=gate_dir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((gate_dir / "result.json").read_text()) == {"Succeeded": True}
    assert sorted(c[0].item(0) for c in calls) == ["h1", "h2", "h3"]
    assert pl.read_parquet(gate_dir / "submission.parquet").height == 3
    assert thread.is_alive()  # serve() never returns on a rerun: Kaggle ends the container
    events = standin.events()
    pids = {e["event"]: e["pid"] for e in events}
    assert pids["serve"] == os.getpid() != pids["result"]


def test_a_rerun_rehearsal_past_its_time_limit_is_an_error(standin, tmp_path, monkeypatch):
    """`--rerun` holds the budget as the local gateway does: every problem is answered through
    the gateway process, and then the run is judged against the limit."""
    # rehearse_rerun sets the flag for its own process; undo it for the tests after this one
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    calls: list[tuple] = []
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(GatewayError, match=r"time limit exceeded: [\d.]+ s used of 0.0 s "
                                           r"for 2 problems"):
        rehearse_rerun(_adding(calls), AIMO2, STANDINS / "aimo2", _csv(tmp_path, ["r1", "r2"]),
                       out, time_limit_s=1e-6)
    assert sorted(c[0].item(0) for c in calls) == ["r1", "r2"]
    assert pl.read_parquet(out / "submission.parquet").height == 2


@pytest.mark.skipif(not (TINY_MODEL / "config.json").is_file(), reason="no tiny model")
@pytest.mark.parametrize("profile", ["aimo2", "aimo3"])
def test_cli_rehearsal_through_the_standin(standin, tmp_path, profile):
    """`make local-gateway PROFILE=... GATEWAY=standin`: the tiny model through the stand-in."""
    csv = tmp_path / "four.csv"
    pl.read_csv(PROBLEMS, infer_schema_length=0).head(4).write_csv(csv)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **standin.env())
    env.pop("KAGGLE_IS_COMPETITION_RERUN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "aimo_submit", "local-gateway", "--kaggle-data",
         str(STANDINS / profile), "--profile", profile, "--csv", str(csv), "--time-budget",
         "120", "--quiet", "--workdir", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    prof = get_profile(profile)
    assert f"gateway: Kaggle's {prof.server_class}.run_local_gateway" in proc.stdout
    assert "LocalGateway" not in proc.stdout
    events = standin.events()
    assert [e["event"] for e in events] == ["run_local_gateway", "data_paths", "problems",
                                            "submission", "result"]
    assert events[0]["startup_s"] < 120 and not events[0]["over_limit"]
    assert re.search(r"score: (\d+)/4 correct", proc.stdout), proc.stdout[-2000:]
    sub = pl.read_parquet(out / "submission.parquet")
    assert sorted(sub["id"]) == sorted(pl.read_csv(csv, infer_schema_length=0)["id"])
    assert sub["answer"].is_between(0, prof.max_answer).all()
    assert len((out / "aimo_runlog.jsonl").read_text().splitlines()) == 4
