"""A JSON-lines run log, one line per problem, flushed to disk at once.

If a Kaggle run dies, the notebook's output folder still holds every problem answered so far:
answer, votes, tokens, seconds and faults, enough to see what went wrong.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class RunLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; never raises (a full disk must not cost the answer)."""
        line = json.dumps({"ts": round(time.time(), 3), **record}, default=str)
        try:
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            pass

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
