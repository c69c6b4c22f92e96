"""Benchmarks behind ``make bench``: each ``bench_*.py`` module exposes ``run() -> list[dict]``."""

from __future__ import annotations

from typing import Any


def markdown_rows(rows: list[dict[str, Any]], missing: object = "") -> str:
    """A markdown table of ``rows`` (columns in first-seen key order) for ``bench/results``.

    ``missing`` fills absent keys and ``None``; a ``|`` inside a cell becomes ``/``.
    """
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: object) -> str:
        return str(missing if v is None else v).replace("|", "/")

    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
