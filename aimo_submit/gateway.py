"""Serving problems to ``predict``: Kaggle's real gateway when present, our own otherwise.

The contract (read off Kaggle's AIMO2 gateway): problems come one at a time in a random order;
each is a one-row polars DataFrame with columns ``id`` and ``problem`` that the gateway splats
into ``predict(*row)``, so ``predict`` receives two polars Series (``.item(0)`` gives the
value); it must return a one-row DataFrame (polars or pandas) with ``id`` and ``answer``. The
gateway writes ``submission.parquet``. :class:`LocalGateway` enforces exactly that, plus the
whole-run time limit, and fails with a clear :class:`GatewayError` where Kaggle would fail the
submission.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import sys
import time
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
def kaggle_search_paths(
    profile: CompetitionProfile, extra: Sequence[str | Path] = ()
) -> list[Path]:
    """Folders that may hold the ``kaggle_evaluation`` package, most specific first."""
    paths = [Path(p) for p in extra]
    paths.append(Path("/kaggle/input") / profile.competition_slug)
    return paths


def find_kaggle_evaluation(
    profile: CompetitionProfile, extra: Sequence[str | Path] = ()
) -> Path | None:
    """The folder containing ``kaggle_evaluation/``, or None when it is nowhere to be found."""
    for folder in kaggle_search_paths(profile, extra):
        if (folder / "kaggle_evaluation" / "__init__.py").is_file():
            return folder
    return None


def make_inference_server(predict: Predict, profile: CompetitionProfile, folder: Path) -> Any:
    """Import ``kaggle_evaluation`` from ``folder`` and wrap ``predict`` in the profile's server."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    # The competition's server module imports its gateway as a top-level module.
    pkg_dir = folder / "kaggle_evaluation"
    if str(pkg_dir) not in sys.path:
        sys.path.insert(1, str(pkg_dir))
    try:
        module = importlib.import_module(profile.server_module)
    except ImportError as exc:
        raise GatewayError(
            f"{folder} has kaggle_evaluation but not {profile.server_module}: wrong competition"
            f" profile ({profile.name})? ({exc})"
        ) from exc
    server_cls = getattr(module, profile.server_class, None)
    if server_cls is None:
        raise GatewayError(f"{profile.server_module} has no {profile.server_class}")
    return server_cls(predict)


def is_competition_rerun() -> bool:
    return bool(os.getenv("KAGGLE_IS_COMPETITION_RERUN"))


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

    On a competition rerun the real server's ``serve()`` blocks for the whole run; otherwise its
    ``run_local_gateway`` rehearses over ``test_csv`` (the competition's ``test.csv`` by
    default). Returns our own result object only for the local gateway.
    """
    folder = find_kaggle_evaluation(profile, [kaggle_data] if kaggle_data else [])
    if folder is not None:
        server = make_inference_server(predict, profile, folder)
        if is_competition_rerun():
            log.info("competition rerun: serving %s", profile.server_class)
            server.serve()
            return None
        csv = Path(test_csv) if test_csv else folder / "test.csv"
        log.info("rehearsing with Kaggle's gateway from %s over %s", folder, csv)
        server.run_local_gateway((str(csv),))
        return None
    if is_competition_rerun():
        raise GatewayError(
            "KAGGLE_IS_COMPETITION_RERUN is set but kaggle_evaluation was not found under"
            f" {[str(p) for p in kaggle_search_paths(profile)]}: attach the competition data"
        )
    if test_csv is None:
        raise GatewayError("no kaggle_evaluation package found and no test CSV given")
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
