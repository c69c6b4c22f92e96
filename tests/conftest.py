"""Shared fixtures: the kaggle_evaluation stand-ins (tests/fixtures/kaggle/<profile>).

``KAGGLE_REAL_DATA_AIMO2`` / ``KAGGLE_REAL_DATA_AIMO3`` may point at folders holding Kaggle's
real ``kaggle_evaluation`` (0.3.0 / 0.9.0, not in this repository): the tests marked for it then
run against the real package too (local mode only: its rerun gateway dials the host
``inference_server``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "tests" / "fixtures" / "kaggle"
STANDIN_MODULES = ("kaggle_evaluation", "kaggle_standin", "aimo_2_gateway", "aimo_3_gateway",
                   "kaggle_evaluation_pb2", "kaggle_evaluation_pb2_grpc")
REAL_ENV = {"aimo2": "KAGGLE_REAL_DATA_AIMO2", "aimo3": "KAGGLE_REAL_DATA_AIMO3"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def data_folders(real: bool = False) -> list:
    """pytest params: the stand-in of each profile, and the real package where configured."""
    out = [pytest.param(name, STANDINS / name, id=f"{name}-standin") for name in REAL_ENV]
    if real:
        for name, env in REAL_ENV.items():
            folder = os.environ.get(env)
            out.append(pytest.param(name, Path(folder) if folder else None, id=f"{name}-real",
                                    marks=pytest.mark.skipif(not folder, reason=f"no ${env}")))
    return out


@dataclass
class Standin:
    log: Path
    port: int

    def events(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def env(self) -> dict[str, str]:
        """Variables a second process needs to meet this test's server and log."""
        return {"KAGGLE_EVALUATION_STANDIN_LOG": str(self.log),
                "KAGGLE_EVALUATION_STANDIN_PORTS": str(self.port)}


def _purge() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in STANDIN_MODULES:
            del sys.modules[name]


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    """A fresh import of the package per test, a port of its own (tests on one machine never
    meet), its event log, and the working directory where the gateway writes its files."""
    saved_path = list(sys.path)
    _purge()
    box = Standin(tmp_path / "standin.jsonl", free_port())
    for key, value in box.env().items():
        monkeypatch.setenv(key, value)
    for key in ("KAGGLE_IS_COMPETITION_RERUN", "KAGGLE_EVALUATION_STANDIN_TEST_CSV",
                "KAGGLE_EVALUATION_STANDIN_STARTUP_LIMIT_S",
                "KAGGLE_EVALUATION_STANDIN_RESPONSE_TIMEOUT_S"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    yield box
    _purge()
    sys.path[:] = saved_path
