"""``PythonSession``: one persistent sandboxed interpreter per attempt, like a Jupyter kernel.

gpt-oss calls its python tool many times per attempt and expects notebook semantics: variables,
imports and functions survive from one call to the next, and the value of a final bare
expression is shown. A session is one launcher + worker (``launcher.py`` in ``"session"``
mode) hardened exactly like a one-shot run (rlimits, uid drop, namespaces, guards); the worker
runs cell after cell in one ``__main__`` namespace and its work dir persists between calls.

Limits per call: at the wall-clock timeout the call is interrupted (SIGINT, so
``KeyboardInterrupt`` inside the code) and the session lives on; if the call does not stop
within ``interrupt_grace_s`` (stuck in C code, or swallowing the interrupt), or floods its
output, or the interpreter dies (a kernel OOM kill, ``os._exit``), the interpreter is killed and
removed, the call answers with its error, and the next call runs in a fresh interpreter whose
output starts with ``RESTART_NOTE``. Cancelling the awaiting task ends the interpreter; so does
``aclose()``. Nothing is left behind: processes, uid lease and work dir go with it.

Not ``jupyter_client``/``ipykernel``: a kernel is a ZeroMQ server with its own process
management that would have to be re-wrapped in all of the layers above, and it costs far more
per attempt than a forked worker reading length-prefixed cells from a pipe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import selectors
import signal
import threading
import time
from typing import TYPE_CHECKING

from aimo_submit.sandbox.options import SandboxOptions
from aimo_submit.sandbox.process import (
    CancelToken,
    Capture,
    Launch,
    _result,
    kill_workers,
    oom_kills,
)
from aimo_submit.sandbox.result import ExecResult

if TYPE_CHECKING:
    from aimo_submit.sandbox.pool import Sandbox

RESTART_NOTE = (
    "[Note: the Python session was restarted after the previous interpreter was killed; "
    "variables, imports and functions from earlier calls are gone.]\n"
)
"""What the first call in a fresh interpreter prints before its own output."""


class Interpreter:
    """One persistent launcher + worker, driven by blocking calls (one at a time)."""

    def __init__(self, options: SandboxOptions, memory_mb: int) -> None:
        self.opts = options
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._launch: Launch | None = None
        self._status_buf = bytearray()
        self.closed = False

    def call(
        self, code: str, timeout_s: float, max_output_chars: int, cancel: CancelToken | None
    ) -> tuple[ExecResult, bool]:
        """Run one cell; the result and whether the interpreter is still alive afterwards."""
        with self._lock:
            if self.closed:
                raise RuntimeError("interpreter is closed")
            t0 = time.monotonic()
            opts = self.opts
            out, err = Capture(4 * max_output_chars), Capture(4 * opts.max_stderr_chars)
            oom_before = oom_kills()
            launch = self._launch
            if launch is None:
                launch = Launch(opts, self.memory_mb, opts.session_cpu_s, "session")
                self._launch = launch
                try:
                    launch.start()
                    assert launch.proc is not None
                    for stream in (launch.proc.stdin, launch.proc.stdout, launch.proc.stderr):
                        assert stream is not None
                        os.set_blocking(stream.fileno(), False)
                except BaseException:
                    self._end()
                    raise
            assert launch.proc is not None
            st = launch.st
            st.exc = st.etype = st.end = None
            reason: str | None = None
            try:
                if cancel is not None and cancel._attach(launch.proc.pid):
                    reason = "cancelled"
                else:
                    reason = self._pump(launch, code, out, err, t0 + timeout_s, cancel)
            finally:
                if cancel is not None:
                    cancel._attach(None)
            alive = st.end is not None and reason in (None, "timeout")
            view = dataclasses.replace(st, exit=st.end, signal=None) if alive else st
            returncode = None
            if not alive:
                self._end()
                returncode = launch.proc.returncode
            return _result(launch, reason, out, err, time.monotonic() - t0, timeout_s,
                           max_output_chars, oom_before, returncode, st=view), alive

    def _pump(
        self,
        launch: Launch,
        code: str,
        out: Capture,
        err: Capture,
        deadline: float,
        cancel: CancelToken | None,
    ) -> str | None:
        """Send one cell; read its output until ``end`` (or the worker's death); the reason if
        the call was stopped (``"timeout"``, ``"output"``, ``"cancelled"``), else None."""
        proc, st, opts = launch.proc, launch.st, launch.opts
        assert proc is not None and proc.stdin and proc.stdout and proc.stderr
        data = code.encode("utf-8", "surrogatepass")
        payload = memoryview(str(len(data)).encode() + b"\n" + data)
        stdin_fd, stdout_fd, stderr_fd = (proc.stdin.fileno(), proc.stdout.fileno(),
                                          proc.stderr.fileno())
        buf = self._status_buf

        def feed_status(chunk: bytes) -> None:
            if len(buf) < 256 * 1024:
                buf.extend(chunk)
                head, sep, _ = buf.rpartition(b"\n")
                if sep:
                    st.parse(bytes(head))
                    del buf[: len(head) + 1]

        readers = {stdout_fd: out.feed, stderr_fd: err.feed, launch.status_r: feed_status}
        sel = selectors.DefaultSelector()
        for fd in readers:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
        writing = True
        reason: str | None = None
        interrupt_end: float | None = None
        dying_end: float | None = None
        try:
            while True:
                now = time.monotonic()
                if cancel is not None and cancel.cancelled:
                    return "cancelled"
                if out.total + err.total > opts.max_output_bytes:
                    return "output"
                if st.end is not None:
                    _drain(readers, (stdout_fd, stderr_fd))
                    return reason
                dead = (st.exit is not None or st.signal is not None or st.fatal is not None
                        or st.done or stdout_fd not in readers)
                if dead and dying_end is None:
                    dying_end = now + opts.grace_s  # let the launcher report why, then sweep
                if dying_end is not None and (launch.status_r not in readers or now >= dying_end):
                    return reason
                if reason is None and now >= deadline:
                    reason = "timeout"
                    if st.pid is None:  # no worker yet: nothing to interrupt
                        return reason
                    try:
                        os.kill(proc.pid, signal.SIGUSR1)  # the launcher sends SIGINT to the worker
                    except OSError:
                        return reason
                    interrupt_end = now + opts.interrupt_grace_s
                if interrupt_end is not None and now >= interrupt_end:
                    return reason
                limit = dying_end or interrupt_end or deadline
                for key, _ in sel.select(min(max(limit - now, 0.0), 0.25)):
                    fd = key.fd
                    if fd == stdin_fd:
                        try:
                            n = os.write(fd, payload[:65536])
                            payload = payload[n:]
                        except BlockingIOError:
                            continue
                        except OSError:
                            payload = payload[:0]
                        if not payload and writing:
                            sel.unregister(fd)
                            writing = False
                        continue
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if chunk:
                        readers[fd](chunk)
                    else:
                        sel.unregister(fd)
                        del readers[fd]
        finally:
            sel.close()

    def _end(self) -> None:
        """Kill the worker and clean up after it (the launcher sweeps, then is reaped)."""
        launch, self._launch = self._launch, None
        self._status_buf.clear()
        if launch is None:
            return
        if launch.proc is not None and launch.proc.poll() is None:
            kill_workers(launch.proc.pid)
        launch.finish()

    def close(self) -> None:
        """End the interpreter (waits for a call in flight: cancel its token first)."""
        with self._lock:
            self.closed = True
            self._end()


def _drain(readers: dict, fds: tuple[int, ...]) -> None:
    """Read what is already in the pipes (the worker flushed before it reported the end)."""
    for fd in fds:
        while fd in readers:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                break
            readers[fd](chunk)


class PythonSession:
    """A persistent sandboxed interpreter for one attempt; get one from ``Sandbox.session()``.

    Calls run one at a time, each holding one of the pool's worker slots while it runs; the
    idle interpreter holds only its uid lease and its memory.
    """

    def __init__(self, pool: Sandbox) -> None:
        self._pool = pool
        self.restarts = 0
        """Times a fresh interpreter replaced a killed one."""
        self._interp: Interpreter | None = None
        self._had_state = False
        self._lock = asyncio.Lock()
        self._token: CancelToken | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        """Run one cell in the session (the same ``ExecResult`` as ``Sandbox.run``)."""
        if self._closed:
            raise RuntimeError("PythonSession is closed")
        try:
            async with self._lock, self._pool._slot():
                if self._closed:
                    raise RuntimeError("PythonSession is closed")
                return await self._call(code, timeout_s or self._pool.timeout_s)
        except asyncio.CancelledError:
            await self._end()  # a cancelled attempt leaves nothing behind
            raise

    async def _call(self, code: str, timeout_s: float) -> ExecResult:
        pool = self._pool
        note = ""
        if self._interp is None:
            if self._had_state:
                self.restarts += 1
                note = RESTART_NOTE
            self._interp = Interpreter(pool.options, pool.memory_mb)
        interp = self._interp
        token = CancelToken()
        self._token = token
        pool._tokens.add(token)
        fut = asyncio.get_running_loop().run_in_executor(
            pool._executor, interp.call, code, timeout_s, pool.max_output_chars, token)
        try:
            result, alive = await asyncio.shield(fut)
        except asyncio.CancelledError:
            token.cancel()
            await asyncio.wait({fut}, timeout=pool.options.grace_s + 2.0)
            raise
        except BaseException:
            self._interp = None
            raise
        finally:
            pool._tokens.discard(token)
            self._token = None
        self._had_state = True
        if not alive and self._interp is interp:
            self._interp = None
        if note:
            result = dataclasses.replace(result, stdout=note + result.stdout)
        pool._log_protections(result)
        return result

    async def _end(self) -> None:
        if self._token is not None:
            self._token.cancel()
        interp, self._interp = self._interp, None
        if interp is not None:
            await asyncio.shield(asyncio.to_thread(interp.close))

    async def aclose(self) -> None:
        """End the session: kill the interpreter, remove its files (idempotent)."""
        self._closed = True
        await self._end()

    def close_now(self) -> None:
        """Blocking ``aclose`` for ``Sandbox.close()`` (any thread)."""
        self._closed = True
        if self._token is not None:
            self._token.cancel()
        interp, self._interp = self._interp, None
        if interp is not None:
            interp.close()

    async def __aenter__(self) -> PythonSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
