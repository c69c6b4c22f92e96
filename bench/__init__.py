"""Benchmarks behind ``make bench``: each ``bench_*.py`` module exposes ``run() -> list[dict]``."""
