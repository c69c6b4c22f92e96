"""Serving problems to ``predict``: Kaggle's real gateway when present, our own otherwise.

The contract, read off the public ``kaggle_evaluation`` packages of the AIMO gateways (0.3.0 for
AIMO2, 0.9.0 for AIMO3): the gateway reads the test CSV with polars (types inferred, so an id
like ``001`` arrives as the integer 1), shuffles it and sends one row at a time over gRPC,
splatted into ``predict(*row)``: ``predict`` receives an ``id`` and a ``problem`` polars Series.
The answer is a one-row DataFrame (polars or pandas) with ``id`` and ``answer``. 0.3.0 checks the
row count and that ``id`` equals the Series it sent (values and type); 0.9.0 checks the row count
only and writes its own ids into ``submission.parquet``. The server registers endpoints by
``__name__``, and 0.9.0 accepts plain Python functions only; the first call may take as long as
it needs, later ones have the profile's response timeout.

:class:`LocalGateway` enforces that contract plus the whole-run time limit, and fails with a
clear :class:`GatewayError` where Kaggle would fail the submission. :class:`KagglePredict`
adapts our ``predict`` to the real server, and :func:`serve` picks one or the other.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import random
import shutil
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from aimo_submit.competition import CompetitionProfile

log = logging.getLogger("aimo_submit.gateway")

Predict = Callable[..., Any]


class GatewayError(RuntimeError):
    """The submission would fail on Kaggle for this reason."""


# -- input --------------------------------------------------------------------------------------
def load_problems(csv_path: str | Path) -> pl.DataFrame:
    """Read a competition CSV (``id,problem[,answer]``) with clear errors for bad files."""
    path = Path(csv_path)
    if not path.is_file():
        raise GatewayError(f"problem CSV not found: {path}")
    try:
        frame = pl.read_csv(path, infer_schema_length=0)  # all strings: ids like 000aaa stay
    except Exception as exc:
        raise GatewayError(f"cannot read {path} as CSV: {exc}") from exc
    missing = [c for c in ("id", "problem") if c not in frame.columns]
    if missing:
        raise GatewayError(f"{path} lacks column(s) {missing}; it has {frame.columns}")
    if frame.height == 0:
        raise GatewayError(f"{path} has no problems")
    dupes = frame.filter(pl.col("id").is_duplicated())["id"].unique().to_list()
    if dupes:
        raise GatewayError(f"{path} repeats id(s) {dupes[:5]}")
    if "answer" in frame.columns:
        frame = frame.with_columns(pl.col("answer").cast(pl.Int64, strict=False))
    return frame


# -- output validation --------------------------------------------------------------------------
def validate_prediction(pred: Any, expected_id: str, profile: CompetitionProfile) -> int:
    """Check one ``predict`` return value the way the gateway does; return the answer."""
    if pred is None:
        raise GatewayError(f"predict returned None for id {expected_id}")
    frame: pl.DataFrame
    if isinstance(pred, pl.DataFrame):
        frame = pred
    else:
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas ships with the requirements
            pd = None
        if pd is not None and isinstance(pred, pd.DataFrame):
            frame = pl.from_pandas(pred)
        else:
            raise GatewayError(
                f"predict must return a polars or pandas DataFrame, got {type(pred).__name__}"
                f" for id {expected_id}"
            )
    if frame.height != 1:
        raise GatewayError(f"expected 1 prediction row for id {expected_id}, got {frame.height}")
    for col in ("id", "answer"):
        if col not in frame.columns:
            raise GatewayError(f"prediction for id {expected_id} lacks column {col!r}")
    got_id = frame["id"].item(0)
    if str(got_id) != str(expected_id):
        raise GatewayError(f"prediction id {got_id!r} does not match problem id {expected_id!r}")
    value = frame["answer"].item(0)
    try:
        return profile.validate_answer(value)
    except ValueError as exc:
        raise GatewayError(f"id {expected_id}: {exc}") from None


# -- the local gateway -------------------------------------------------------------------------
@dataclass
class GatewayRow:
    id: str
    answer: int
    truth: int | None
    seconds: float
    order: int

    @property
    def correct(self) -> bool | None:
        return None if self.truth is None else self.answer == self.truth


@dataclass
class GatewayResult:
    rows: list[GatewayRow]
    seconds: float
    time_limit_s: float | None
    submission_path: Path

    @property
    def scored(self) -> list[GatewayRow]:
        return [r for r in self.rows if r.truth is not None]

    @property
    def n_correct(self) -> int:
        return sum(1 for r in self.scored if r.correct)


class LocalGateway:
    """A faithful stand-in for Kaggle's gateway, for rehearsals on any machine.

    ``seed`` fixes the random order (None: a fresh order each run, like Kaggle). The truth
    column, if any, is held back from ``predict`` (Kaggle's gateway would splat it in as a third
    argument; we do not) and used only for scoring.
    """

    def __init__(
        self,
        problems: pl.DataFrame,
        predict: Predict,
        profile: CompetitionProfile,
        *,
        time_limit_s: float | None = None,
        seed: int | None = None,
        out_dir: str | Path = ".",
        progress: bool = True,
    ) -> None:
        self.problems = problems
        self.predict = predict
        self.profile = profile
        self.time_limit_s = time_limit_s
        self.seed = seed
        self.out_dir = Path(out_dir)
        self.progress = progress

    def order(self) -> list[int]:
        rng = random.Random(self.seed) if self.seed is not None else random.SystemRandom()
        idx = list(range(self.problems.height))
        rng.shuffle(idx)
        return idx

    def run(self) -> GatewayResult:
        from tqdm.auto import tqdm

        has_truth = "answer" in self.problems.columns
        rows: list[GatewayRow] = []
        t_start = time.monotonic()
        order = self.order()
        bar = tqdm(order, desc="problems", unit="problem", disable=not self.progress)
        for k, i in enumerate(bar):
            row = self.problems.slice(i, 1)
            pid = str(row["id"].item(0))
            served = row.select("id", "problem")
            t0 = time.monotonic()
            pred = self.predict(*served)  # exactly as Kaggle: columns splatted as Series
            seconds = time.monotonic() - t0
            answer = validate_prediction(pred, pid, self.profile)
            elapsed = time.monotonic() - t_start
            if self.time_limit_s is not None and elapsed > self.time_limit_s:
                raise GatewayError(
                    f"time limit exceeded: {elapsed:.1f} s used of {self.time_limit_s:.1f} s"
                    f" after {k + 1} of {len(order)} problems"
                )
            truth = row["answer"].item(0) if has_truth else None
            rows.append(GatewayRow(pid, answer, truth, seconds, k))
            if has_truth:
                bar.set_postfix(correct=f"{sum(1 for r in rows if r.correct)}/{len(rows)}")
        bar.close()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "submission.parquet"
        pl.DataFrame(
            {"id": [r.id for r in rows], "answer": [r.answer for r in rows]},
            schema={"id": pl.String, "answer": pl.Int64},
        ).write_parquet(path)
        return GatewayResult(rows, time.monotonic() - t_start, self.time_limit_s, path)


# -- Kaggle's real gateway ---------------------------------------------------------------------
KAGGLE_INPUT = Path("/kaggle/input")


def kaggle_search_paths(
    profile: CompetitionProfile, extra: Sequence[str | Path] = ()
) -> list[Path]:
    """Folders that may hold the ``kaggle_evaluation`` package, most specific first."""
    paths = [Path(p) for p in extra]
    paths.append(KAGGLE_INPUT / profile.competition_slug)
    return paths


def find_kaggle_evaluation(
    profile: CompetitionProfile, extra: Sequence[str | Path] = ()
) -> Path | None:
    """The folder containing ``kaggle_evaluation/``, or None when it is nowhere to be found.

    After the named folders, any attached input whose ``kaggle_evaluation`` has the profile's
    server module (the competition mounted under another name) will do.
    """
    for folder in kaggle_search_paths(profile, extra):
        if (folder / "kaggle_evaluation" / "__init__.py").is_file():
            return folder
    module_file = profile.server_module.rsplit(".", 1)[-1] + ".py"
    if KAGGLE_INPUT.is_dir():
        for hit in sorted(KAGGLE_INPUT.glob(f"*/kaggle_evaluation/{module_file}")):
            return hit.parent.parent
    return None


def make_inference_server(predict: Predict, profile: CompetitionProfile, folder: Path) -> Any:
    """Import ``kaggle_evaluation`` from ``folder`` and wrap ``predict`` in the profile's server.

    The server registers ``predict`` under its ``__name__``, the gateway asks for the endpoint
    ``predict``, and 0.9.0 refuses anything but a plain function: pass a function named
    ``predict`` (:meth:`KagglePredict.endpoint` makes one).
    """
    if not isinstance(predict, types.FunctionType) or predict.__name__ != "predict":
        raise GatewayError(
            "Kaggle's server takes plain Python functions only and the gateway calls 'predict';"
            f" got {type(predict).__name__} named {getattr(predict, '__name__', None)!r}"
            " (wrap it with KagglePredict(...).endpoint())"
        )
    folder = folder.resolve()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    # The server module imports its gateway as a top-level module; the real package's __init__
    # appends its own folder to sys.path for that, this covers copies that do not.
    pkg_dir = str(folder / "kaggle_evaluation")
    if pkg_dir not in sys.path:
        sys.path.append(pkg_dir)
    try:
        module = importlib.import_module(profile.server_module)
    except SystemExit as exc:  # the real __init__ exits when its generated gRPC files are gone
        raise GatewayError(
            f"importing kaggle_evaluation from {folder} exited ({exc.code}): is the package"
            " complete (core/generated/kaggle_evaluation_pb2.py)?"
        ) from None
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing and not missing.startswith(("kaggle_evaluation", "aimo_")):
            raise GatewayError(
                f"kaggle_evaluation from {folder} needs the module {missing!r}, which is not"
                " installed here (Kaggle's image has it); for a local rehearsal run:"
                " .venv/bin/pip install grpcio protobuf"
            ) from exc
        raise GatewayError(
            f"{folder} has kaggle_evaluation but not {profile.server_module}: wrong competition"
            f" profile ({profile.name})? ({exc})"
        ) from exc
    server_cls = getattr(module, profile.server_class, None)
    if server_cls is None:
        raise GatewayError(f"{profile.server_module} has no {profile.server_class}")
    log.info("using %s.%s from %s", profile.server_module, profile.server_class, folder)
    return server_cls(predict)


def _frame_columns(value: Any) -> tuple[Any, Any] | None:
    """``(id, problem)`` Series when ``value`` is a problem row frame, else None."""
    columns = getattr(value, "columns", None)
    if columns is None or "id" not in columns or "problem" not in columns:
        return None
    if isinstance(value, pl.DataFrame):
        return value["id"], value["problem"]
    try:
        return pl.Series("id", value["id"].to_list()), pl.Series("problem", value["problem"])
    except Exception:
        return None


class KagglePredict:
    """``predict`` as Kaggle's inference server must see it.

    - :meth:`endpoint` is the plain function named ``predict`` that the server registers:
      0.9.0's relay refuses any other callable, and every version looks endpoints up by name.
    - It accepts the one-row frame splatted into ``id`` and ``problem`` Series (what both real
      AIMO gateways send), and also a whole ``(row_frame, ...)`` first argument (seen in an
      edited public copy), and hands ``predict`` the two Series either way.
    - The returned ``id`` column is the very Series the gateway sent: 0.3.0 compares it value
      and type for type, and reads the CSV with inferred types, so an all-digit id arrives as
      an integer that a string answer would not match (0.9.0 overwrites it anyway).
    - It records each call (answer, seconds) for the rehearsal report, keyed by the id as the
      gateway typed it.
    """

    __name__ = "predict"

    def __init__(self, predict: Predict) -> None:
        self.inner = predict
        self.rows: list[GatewayRow] = []

    def endpoint(self) -> types.FunctionType:
        """The plain function Kaggle's server registers (by its name, ``predict``)."""

        def predict(*args: Any) -> Any:
            return self(*args)

        return predict

    def __call__(self, *args: Any) -> Any:
        t0 = time.monotonic()
        call_args: tuple[Any, ...] = args
        sent_id: pl.Series | None = None
        if args:
            split = _frame_columns(args[0])
            if split is not None:
                call_args = split  # (row, sample_submission): the sample adds nothing
            if isinstance(call_args[0], pl.Series):
                sent_id = call_args[0]
        pred = self.inner(*call_args)
        pred = self._restore_id(pred, sent_id)
        self._record(pred, sent_id, time.monotonic() - t0)
        return pred

    @staticmethod
    def _restore_id(pred: Any, sent_id: pl.Series | None) -> Any:
        if sent_id is None or sent_id.len() != 1:
            return pred
        try:
            frame = pred if isinstance(pred, pl.DataFrame) else pl.from_pandas(pred)
            if frame.height != 1 or "id" not in frame.columns:
                return pred
            if str(frame["id"].item(0)) != str(sent_id.item(0)):
                return pred  # a wrong id stays wrong: the gateway must reject it
            others = [c for c in frame.columns if c != "id"]
            return frame.select(others).insert_column(0, sent_id.alias("id"))
        except Exception:  # never cost an answer over bookkeeping
            return pred

    def _record(self, pred: Any, sent_id: pl.Series | None, seconds: float) -> None:
        try:
            pid = str(sent_id.item(0)) if sent_id is not None else str(pred["id"][0])
            answer = int(pred["answer"][0])
        except Exception:
            return
        self.rows.append(GatewayRow(pid, answer, None, seconds, len(self.rows)))


def is_competition_rerun() -> bool:
    """Kaggle's own test: the variable is set, whatever its value (even empty)."""
    return os.getenv("KAGGLE_IS_COMPETITION_RERUN") is not None


def _gateway_csv(test_csv: Path, out_dir: Path) -> tuple[Path, dict[str, int | None]]:
    """The CSV for Kaggle's gateway and the truth per id, keyed as the gateway types ids.

    Kaggle's gateway splats every column into ``predict``; a ``reference.csv`` would hand it
    the answers. Like the hidden ``test.csv``, the copy it gets has only ``id`` and ``problem``.
    The gateway reads it with inferred types (``001`` becomes the integer 1), so the truth is
    keyed by the text of each id as the gateway will send it.
    """
    problems = load_problems(test_csv)
    csv = test_csv
    if problems.columns != ["id", "problem"]:
        out_dir.mkdir(parents=True, exist_ok=True)
        csv = out_dir / "gateway_test.csv"
        problems.select("id", "problem").write_csv(csv)
    try:
        sent_ids = [str(v) for v in pl.read_csv(csv, columns=["id"])["id"]]
    except Exception as exc:  # the gateway would fail the same way: say so before serving
        raise GatewayError(f"Kaggle's gateway cannot read the ids of {csv}: {exc}") from None
    answers = problems["answer"] if "answer" in problems.columns else [None] * problems.height
    return csv, dict(zip(sent_ids, answers, strict=True))


def _collect_submission(out_dir: Path, since: float) -> Path:
    """Kaggle's gateway writes ``submission.parquet`` in the working directory: move it to
    ``out_dir`` beside the run log."""
    written = Path.cwd() / "submission.parquet"
    if not written.is_file() or written.stat().st_mtime < since - 1:
        raise GatewayError(f"Kaggle's gateway finished but wrote no {written}")
    target = out_dir / "submission.parquet"
    if written.resolve() != target.resolve():
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(written), target)
    return target


def run_kaggle_gateway(
    predict: Predict,
    profile: CompetitionProfile,
    folder: Path,
    *,
    test_csv: str | Path | None = None,
    time_limit_s: float | None = None,
    out_dir: str | Path = ".",
) -> GatewayResult | None:
    """Serve ``predict`` through the real ``kaggle_evaluation`` found in ``folder``.

    On a competition rerun, ``serve()`` blocks while the hidden gateway runs; otherwise
    ``run_local_gateway`` rehearses over ``test_csv`` (the competition's ``test.csv`` by
    default) and the calls are summed up like :class:`LocalGateway`'s.
    """
    adapted = KagglePredict(predict)
    server = make_inference_server(adapted.endpoint(), profile, folder)
    if is_competition_rerun():
        print(f"gateway: Kaggle's {profile.server_class}.serve() (competition rerun)", flush=True)
        server.serve()
        return None
    out = Path(out_dir)
    csv, truth = _gateway_csv(Path(test_csv) if test_csv else folder / "test.csv", out)
    print(f"gateway: Kaggle's {profile.server_class}.run_local_gateway over {csv}"
          f" (kaggle_evaluation from {folder})", flush=True)
    t_wall, t0 = time.time(), time.monotonic()
    try:
        server.run_local_gateway((str(csv),))
    except Exception as exc:
        if type(exc).__name__ != "GatewayRuntimeError":
            raise
        kind = getattr(getattr(exc, "error_type", None), "name", "error")
        raise GatewayError(f"Kaggle's gateway failed: {kind}:"
                           f" {getattr(exc, 'error_details', exc)}") from exc
    seconds = time.monotonic() - t0
    path = _collect_submission(out, t_wall)
    rows = [GatewayRow(r.id, r.answer, truth.get(r.id), r.seconds, r.order)
            for r in adapted.rows]
    return _timed_result(rows, seconds, time_limit_s, path)


def _timed_result(rows: list[GatewayRow], seconds: float, time_limit_s: float | None,
                  path: Path) -> GatewayResult:
    """The run's result, or the error Kaggle's time limit would have given."""
    if time_limit_s is not None and seconds > time_limit_s:
        raise GatewayError(f"time limit exceeded: {seconds:.1f} s used of {time_limit_s:.1f} s"
                           f" for {len(rows)} problems")
    return GatewayResult(rows, seconds, time_limit_s, path)


def rehearse_rerun(
    predict: Predict,
    profile: CompetitionProfile,
    folder: Path,
    test_csv: str | Path,
    out_dir: str | Path = ".",
    time_limit_s: float | None = None,
) -> GatewayResult:
    """A competition rerun on this machine: ``serve()`` blocks in a thread of this process
    (Kaggle's rerun flag set) while the gateway module's ``__main__`` runs in another process,
    connects over gRPC and writes ``submission.parquet`` and ``result.json`` in ``out_dir``.

    For the stand-ins of ``tests/fixtures/kaggle``: they read the problems from
    ``$KAGGLE_EVALUATION_STANDIN_TEST_CSV`` and dial localhost. Kaggle's real gateway reads
    ``/kaggle/input/...`` and dials the host ``inference_server``, so it cannot run this way.
    ``time_limit_s``: as for the local gateway, a run past it is an error.
    """
    import subprocess
    import threading

    out = Path(out_dir)
    csv, truth = _gateway_csv(Path(test_csv), out)
    adapted = KagglePredict(predict)
    os.environ.setdefault("KAGGLE_IS_COMPETITION_RERUN", "1")
    server = make_inference_server(adapted.endpoint(), profile, folder)
    threading.Thread(target=server.serve, name="kaggle-serve", daemon=True).start()
    module = profile.server_module.replace("inference_server", "gateway")
    env = dict(os.environ, PYTHONPATH=str(folder.resolve()),
               KAGGLE_EVALUATION_STANDIN_TEST_CSV=str(Path(csv).resolve()))
    print(f"gateway: {module} in another process (competition rerun), {profile.server_class}"
          f".serve() here", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", module], cwd=out, env=env)
    seconds = time.monotonic() - t0
    result_file = out / "result.json"
    if proc.returncode or not result_file.is_file():
        raise GatewayError(f"the gateway process exited {proc.returncode} without result.json")
    outcome = json.loads(result_file.read_text())
    if not outcome.get("Succeeded"):
        raise GatewayError(f"Kaggle's gateway failed: {outcome.get('ErrorName')}:"
                           f" {outcome.get('ErrorDetails')}")
    rows = [GatewayRow(r.id, r.answer, truth.get(r.id), r.seconds, r.order)
            for r in adapted.rows]
    return _timed_result(rows, seconds, time_limit_s, out / "submission.parquet")


def serve(
    predict: Predict,
    profile: CompetitionProfile,
    *,
    test_csv: str | Path | None = None,
    kaggle_data: str | Path | None = None,
    time_limit_s: float | None = None,
    seed: int | None = None,
    out_dir: str | Path = ".",
    progress: bool = True,
) -> GatewayResult | None:
    """Serve with Kaggle's gateway when its package is found, else with :class:`LocalGateway`.

    ``kaggle_data`` names a folder that must hold ``kaggle_evaluation/`` (an error otherwise:
    asking for the real gateway and silently getting ours would mislead); without it the
    competition's input folder on Kaggle is searched. Returns None only on a competition rerun.
    """
    folder = find_kaggle_evaluation(profile, [kaggle_data] if kaggle_data else [])
    if kaggle_data and (folder is None or folder != Path(kaggle_data)):
        raise GatewayError(f"{kaggle_data} has no kaggle_evaluation/__init__.py: point it at the"
                           " competition's data folder (the one holding kaggle_evaluation/)")
    if folder is not None:
        return run_kaggle_gateway(predict, profile, folder, test_csv=test_csv,
                                  time_limit_s=time_limit_s, out_dir=out_dir)
    if is_competition_rerun():
        raise GatewayError(
            "KAGGLE_IS_COMPETITION_RERUN is set but kaggle_evaluation was not found under"
            f" {[str(p) for p in kaggle_search_paths(profile)]}: attach the competition data"
        )
    if test_csv is None:
        raise GatewayError("no kaggle_evaluation package found and no test CSV given")
    print("gateway: aimo_submit's LocalGateway (no kaggle_evaluation found)", flush=True)
    problems = load_problems(test_csv)
    gateway = LocalGateway(
        problems,
        predict,
        profile,
        time_limit_s=time_limit_s,
        seed=seed,
        out_dir=out_dir,
        progress=progress,
    )
    return gateway.run()
