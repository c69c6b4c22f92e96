"""``Sandbox``: a bounded pool that runs code for asyncio callers without blocking the loop."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from aimo_submit.sandbox.options import DEFAULT_OPTIONS, SandboxOptions
from aimo_submit.sandbox.process import CancelToken, _execute
from aimo_submit.sandbox.result import ExecResult
from aimo_submit.sandbox.session import PythonSession

log = logging.getLogger("aimo_submit.sandbox")


def inactive_protections(protections: Mapping[str, str]) -> dict[str, str]:
    """The hardening steps that did not take effect (switched off on purpose is not missing)."""
    return {k: v for k, v in protections.items()
            if not v.startswith("ok") and v != "skipped: disabled"}


class Sandbox:
    """A bounded pool running code concurrently for asyncio callers.

    At most ``workers`` runs are in flight (the rest wait on a semaphore); each blocks a worker
    thread in ``select``, so the event loop stays responsive. Cancelling an awaiting task kills
    the run's processes before the cancellation propagates. ``session()`` gives a persistent
    interpreter whose calls share the same slots, limits and uid pool.
    """

    def __init__(
        self,
        workers: int = 4,
        *,
        timeout_s: float = 10.0,
        memory_mb: int = 2048,
        max_output_chars: int = 2000,
        options: SandboxOptions | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.max_output_chars = max_output_chars
        self.options = options or DEFAULT_OPTIONS
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox")
        self._sem: asyncio.Semaphore | None = None
        self._tokens: set[CancelToken] = set()
        self._closed = False
        self._logged = False
        self._sessions: weakref.WeakSet[PythonSession] = weakref.WeakSet()

    def _slot(self) -> asyncio.Semaphore:
        """The semaphore bounding runs in flight (one-shot runs and session calls alike)."""
        if self._closed:
            raise RuntimeError("Sandbox is closed")
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.workers)
        return self._sem

    def session(self) -> PythonSession:
        """A persistent interpreter for one attempt (end it with ``await session.aclose()``)."""
        if self._closed:
            raise RuntimeError("Sandbox is closed")
        session = PythonSession(self)
        self._sessions.add(session)
        return session

    async def run(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        async with self._slot():
            token = CancelToken()
            self._tokens.add(token)
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(
                self._executor, _execute, code, timeout_s or self.timeout_s, self.memory_mb,
                self.max_output_chars, self.options, token,
            )
            try:
                result = await asyncio.shield(fut)
            except asyncio.CancelledError:
                token.cancel()
                # Let the worker thread reap and clean up before the cancellation propagates.
                await asyncio.wait({fut}, timeout=self.options.grace_s + 2.0)
                raise
            finally:
                self._tokens.discard(token)
        self._log_protections(result)
        return result

    def _log_protections(self, result: ExecResult) -> None:
        if self._logged or not result.protections:
            return
        self._logged = True
        log.info("sandbox protections: %s", dict(result.protections))
        missing = inactive_protections(result.protections)
        if missing:
            log.warning("sandbox protections not active here: %s", missing)

    def close(self) -> None:
        """Kill runs in flight, end every session and stop the worker threads."""
        self._closed = True
        for token in list(self._tokens):
            token.cancel()
        for session in list(self._sessions):
            session.close_now()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
