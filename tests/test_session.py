"""PythonSession: one persistent sandboxed interpreter per attempt, on the real subprocess sandbox.

State survives between calls like in a notebook; hostile code is contained as in a one-shot run
(the same cases as ``test_sandbox.py``), a call stopped by a limit either keeps the session
(interrupted) or ends it (killed) and the next call starts a fresh one with a note; two
sessions share nothing; cancellation and ``aclose`` leave no process and no file behind.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from test_sandbox import NO_GUARDS, _active, _assert_nothing_left, _descendants

from aimo_submit.sandbox import (
    RESTART_NOTE,
    PythonSession,
    Sandbox,
    SandboxOptions,
    Status,
    probe_protections,
)


def _with_session(
    body: Callable[[PythonSession], Awaitable[Any]], *, workers: int = 2, timeout_s: float = 10.0,
    memory_mb: int = 2048, options: SandboxOptions | None = None, max_output_chars: int = 2000,
    check_left: bool = True,
) -> Any:
    """Run ``body(session)`` on a fresh pool; afterwards nothing of the session may be left."""

    async def main() -> Any:
        with Sandbox(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb,
                     options=options, max_output_chars=max_output_chars) as box:
            session = box.session()
            try:
                return await body(session)
            finally:
                await session.aclose()

    value = asyncio.run(main())
    if check_left:
        _assert_nothing_left()
    return value


async def _cwd(session: PythonSession) -> str:
    r = await session.run("import os\nos.getcwd()")
    assert r.ok, r
    return r.stdout.strip().strip("'")


# --- notebook semantics --------------------------------------------------------------------------
def test_state_survives_between_calls_like_a_notebook() -> None:
    async def body(s: PythonSession) -> None:
        assert (await s.run("x = 41")).stdout == ""
        assert (await s.run("x + 1")).stdout == "42\n"
        await s.run("import math\ndef f(n):\n    return math.factorial(n)")
        assert (await s.run("f(5)")).stdout == "120\n"
        assert (await s.run("'a' + 'b'")).stdout == "'ab'\n"
        assert (await s.run("print(3)")).stdout == "3\n"
        assert (await s.run("y = None\ny")).stdout == ""
        r = await s.run("print('before')\n1 / 0")
        assert r.status is Status.ERROR and r.to_model_text() == (
            "before\nZeroDivisionError: division by zero")
        assert (await s.run("x")).stdout == "41\n", "an error must not lose the state"
        r = await s.run("import sys\nsys.exit(3)")
        assert r.status is Status.ERROR and r.error_line == "SystemExit: 3"
        assert (await s.run("open('data.txt', 'w').write('kept')\nx")).stdout == "41\n"
        assert (await s.run("open('data.txt').read()")).stdout == "'kept'\n"
        r = await s.run("import sympy as sp\nt = sp.symbols('t')\nsp.factor(t**2 - 1)",
                        timeout_s=60)
        assert r.stdout == "(t - 1)*(t + 1)\n", r
        assert (await s.run("sp.expand((t + 1)**2)")).stdout == "t**2 + 2*t + 1\n"
        assert s.restarts == 0
        workdir = await _cwd(s)
        assert os.path.isdir(workdir)
        await s.aclose()
        assert not os.path.exists(workdir), "aclose must remove the session's files"

    _with_session(body)


def test_fifty_sequential_calls_are_cheap() -> None:
    async def body(s: PythonSession) -> list[float]:
        await s.run("total = 0")
        times = []
        for i in range(50):
            t0 = time.perf_counter()
            r = await s.run(f"total += {i}\ntotal")
            times.append(time.perf_counter() - t0)
            assert r.ok and r.stdout == f"{sum(range(i + 1))}\n", r
        assert s.restarts == 0
        return times

    times = _with_session(body)
    assert sorted(times)[25] < 0.25, f"median call {sorted(times)[25] * 1000:.0f} ms"


def test_protections_match_the_one_shot_sandbox() -> None:
    async def body(s: PythonSession) -> dict[str, str]:
        r = await s.run("pass")
        return dict(r.protections)

    def same(prot: dict[str, str]) -> dict[str, str]:
        return {k: "ok uid=*" if v.startswith("ok uid=") else v for k, v in prot.items()}

    assert same(_with_session(body)) == same(probe_protections())


# --- limits: interrupted (session kept) or killed (fresh session next) ---------------------------
def test_timeout_interrupts_the_call_and_keeps_the_session() -> None:
    async def body(s: PythonSession) -> None:
        await s.run("x = 7")
        t0 = time.monotonic()
        r = await s.run("print('partial')\nwhile True:\n    pass", timeout_s=1.0)
        assert r.status is Status.TIMEOUT
        assert r.to_model_text() == "partial\nTimed out after 1 s"
        assert time.monotonic() - t0 < 1.0 + 5.0
        assert "KeyboardInterrupt" in r.stderr
        r = await s.run("import time\ntime.sleep(60)", timeout_s=1.0)
        assert r.status is Status.TIMEOUT
        assert (await s.run("x")).stdout == "7\n" and s.restarts == 0

    _with_session(body)


def test_a_stuck_call_kills_the_session_and_the_next_call_starts_fresh() -> None:
    async def body(s: PythonSession) -> None:
        await s.run("x = 7")
        first = await s.run("import os\nos.getpid()")
        old_pid, old_dir = first.pid, await _cwd(s)
        swallow = ("while True:\n    try:\n        while True:\n            pass\n"
                   "    except BaseException:\n        pass")
        r = await s.run(swallow, timeout_s=1.0)
        assert r.status is Status.TIMEOUT and r.to_model_text() == "Timed out after 1 s"
        assert old_pid is not None
        assert not os.path.exists(f"/proc/{old_pid}"), "the stuck interpreter must be gone"
        assert not os.path.exists(old_dir), "its files must be gone"
        r = await s.run("print('hello')\nx")
        assert s.restarts == 1
        assert r.status is Status.ERROR and r.stdout == RESTART_NOTE + "hello\n"
        assert r.to_model_text().startswith(RESTART_NOTE.strip())
        assert r.error_line == "NameError: name 'x' is not defined"
        assert (await s.run("x = 1\nx")).stdout == "1\n", "later calls carry no note"

    _with_session(body)


def test_interpreter_death_is_reported_and_the_session_continues() -> None:
    async def body(s: PythonSession) -> None:
        await s.run("x = 1")
        r = await s.run("import ctypes\nctypes.string_at(0)")
        assert r.status is Status.KILLED and "SIGSEGV" in (r.error_line or ""), r
        r = await s.run("import os\nos._exit(5)")
        assert s.restarts == 1 and r.stdout == RESTART_NOTE
        assert r.status is Status.ERROR and r.error_line == "Process exited with code 5"
        r = await s.run("2 + 2")
        assert r.stdout == RESTART_NOTE + "4\n" and s.restarts == 2

    _with_session(body)


def test_huge_allocation_is_a_memory_error_and_the_session_lives_on() -> None:
    async def body(s: PythonSession) -> None:
        await s.run("x = 5")
        r = await s.run("y = bytearray(50 * 1024**3)")
        assert r.status is Status.MEMORY and "MemoryError" in r.to_model_text()
        assert (await s.run("x")).stdout == "5\n" and s.restarts == 0

    _with_session(body, memory_mb=1024)


def test_output_flood_is_bounded_and_kills_the_session() -> None:
    async def body(s: PythonSession) -> None:
        await s.run("x = 5")
        code = "import sys\nchunk = 'x' * 10**6\nfor _ in range(1000):\n    sys.stdout.write(chunk)"
        r = await s.run(code, timeout_s=30)
        assert r.status is Status.KILLED and "output limit" in (r.error_line or "")
        assert r.truncated and len(r.stdout) < 2200 and "omitted" in r.stdout
        r = await s.run("print('ok')")
        assert r.stdout == RESTART_NOTE + "ok\n" and s.restarts == 1

    _with_session(body, max_output_chars=2000)


# --- hostile code, as for the one-shot sandbox ---------------------------------------------------
@pytest.mark.parametrize("guards", [True, False], ids=["guards", "kernel-only"])
def test_fork_bomb_is_contained(guards: bool) -> None:
    options = SandboxOptions(python_guards=guards)
    if not guards and not (_active("rlimit_nproc", options) and (
        _active("uid_drop", options) or _active("userns", options)
    )):
        pytest.skip("no enforceable process limit on this host without the Python guards")

    async def body(s: PythonSession) -> None:
        await s.run("x = 3")
        r = await s.run("import os\nwhile True:\n    os.fork()", timeout_s=5.0)
        assert r.status in (Status.ERROR, Status.TIMEOUT, Status.KILLED), r
        after = await s.run("print('alive')")
        assert after.ok and after.stdout.endswith("alive\n")
        if guards:
            assert r.status is Status.ERROR and "PermissionError" in (r.error_line or "")
            assert (await s.run("x")).stdout == "3\n"

    _with_session(body, options=options)


def test_processes_a_call_leaves_running_are_swept_after_it() -> None:
    if not (_active("uid_drop", NO_GUARDS) or _active("pidns", NO_GUARDS)):
        pytest.skip("needs a sandbox uid or a pid namespace to find escaped processes")

    async def body(s: PythonSession) -> None:
        code = ("import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n        os.setsid()\n"
                "        time.sleep(60)\nprint('forked')")
        r = await s.run(code)
        assert r.ok and r.stdout == "forked\n", r
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = _descendants(os.getpid())  # the launcher and the worker only
            if len(left) <= 2:
                break
            await asyncio.sleep(0.05)
        assert len(left) == 2, f"strays left between calls: {sorted(left)}"

    _with_session(body, options=NO_GUARDS)


def test_writes_outside_the_working_dir_do_not_reach_the_host(tmp_path: Path) -> None:
    name = secrets.token_hex(6)
    targets = [f"/tmp/aimo-test-{name}/x", str(Path(__file__).resolve().parents[1] /
               f"aimo-test-{name}.txt"), str(tmp_path / "x")]
    code = f"""import os
for t in {targets!r}:
    try:
        os.makedirs(os.path.dirname(t), exist_ok=True)
        open(t, 'w').write('pwned')
        print('wrote', t)
    except OSError as e:
        print('refused', t, type(e).__name__)
"""

    async def body(s: PythonSession) -> str:
        r = await s.run(code)
        assert r.ok, r
        return r.stdout

    stdout = _with_session(body, options=NO_GUARDS)
    for t in targets:
        assert not os.path.exists(t), f"{t} was written on the host: {stdout}"
    assert not os.path.exists(f"/tmp/aimo-test-{name}")


def test_host_files_cannot_be_read(tmp_path: Path) -> None:
    if not (_active("uid_drop", NO_GUARDS) or _active("private_tmp", NO_GUARDS)):
        pytest.skip("neither a uid drop nor a private /tmp is available here")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    secret.chmod(0o600)

    async def body(s: PythonSession) -> str:
        r = await s.run(f"try:\n    print(open({str(secret)!r}).read())\n"
                        "except OSError as e:\n    print('refused', type(e).__name__)")
        assert r.ok, r
        return r.stdout

    stdout = _with_session(body, options=NO_GUARDS)
    assert "TOP-SECRET-VALUE" not in stdout and "refused" in stdout


@pytest.mark.parametrize("guards", [True, False], ids=["guards", "kernel-only"])
def test_sockets_cannot_connect(guards: bool) -> None:
    options = SandboxOptions(python_guards=guards)
    if not guards and not _active("netns", options):
        pytest.skip("no network namespace on this host")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]

        async def body(s: PythonSession) -> None:
            r = await s.run("import socket\n"
                            f"c = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                            "print('connected')")
            assert r.status is Status.ERROR and "connected" not in r.stdout, r

        _with_session(body, options=options)
        time.sleep(0.1)
        with pytest.raises(BlockingIOError):
            listener.accept()


@pytest.mark.parametrize("guards", [True, False], ids=["guards", "kernel-only"])
def test_code_cannot_kill_the_parent(guards: bool) -> None:
    if not (_active("uid_drop", NO_GUARDS) or _active("pidns", NO_GUARDS)):
        pytest.skip("needs a uid drop or a pid namespace to protect the caller")
    sentinel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    codes = ["import os\nos.kill(os.getppid(), 9)",
             "import os\nos.killpg(os.getpgid(os.getppid()), 9)",
             f"import os\nos.kill({os.getpid()}, 9)",
             f"import os\nos.killpg({os.getpgrp()}, 9)"]

    async def body(s: PythonSession) -> None:
        for code in codes:
            r = await s.run(code)
            assert r.status in (Status.OK, Status.ERROR, Status.KILLED), r
        assert (await s.run("print('still answering')")).stdout.endswith("still answering\n")

    try:
        _with_session(body, options=SandboxOptions(python_guards=guards), check_left=False)
        assert sentinel.poll() is None, "a process in the caller's group was killed"
    finally:
        sentinel.kill()
        sentinel.wait()
    _assert_nothing_left()


# --- isolation between sessions, cancellation, closing -------------------------------------------
def test_two_sessions_share_no_state() -> None:
    async def main() -> None:
        with Sandbox(workers=2, timeout_s=10) as box:
            a, b = box.session(), box.session()
            try:
                await a.run("secret = 'A-only'\nimport json")
                await a.run("open('mine.txt', 'w').write('a')\n"
                            "open('/tmp/shared.txt', 'w').write('a')")
                dir_a = await _cwd(a)
                r = await b.run("secret")
                assert r.status is Status.ERROR and "NameError" in (r.error_line or "")
                r = await b.run("import sys\n'json' in sys.modules and 'secret' in globals()")
                assert r.stdout == "False\n"
                probe = ("import os\nfor p in ['mine.txt', '/tmp/shared.txt', "
                         f"{dir_a + '/mine.txt'!r}]:\n"
                         "    try:\n        print(open(p).read())\n"
                         "    except OSError as e:\n        print('refused', type(e).__name__)")
                r = await b.run(probe)
                if _active("uid_drop") or _active("private_tmp"):
                    assert r.stdout.count("refused") == 3, r.stdout
                assert (await a.run("secret")).stdout == "'A-only'\n"
            finally:
                await asyncio.gather(a.aclose(), b.aclose())

    asyncio.run(main())
    _assert_nothing_left()


def test_cancelling_the_awaiting_task_ends_the_session_cleanly() -> None:
    async def main() -> None:
        with Sandbox(workers=1, timeout_s=60) as box:
            s = box.session()
            await s.run("x = 1")
            workdir = await _cwd(s)
            task = asyncio.create_task(s.run("import time\ntime.sleep(60)"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            _assert_nothing_left()
            assert not os.path.exists(workdir)
            r = await s.run("print('fresh')")
            assert r.stdout == RESTART_NOTE + "fresh\n" and s.restarts == 1
            await s.aclose()

    asyncio.run(main())
    _assert_nothing_left()


def test_aclose_is_idempotent_and_pool_close_ends_open_sessions() -> None:
    async def main() -> None:
        box = Sandbox(workers=2, timeout_s=10)
        s = box.session()
        await s.run("x = 1")
        await s.aclose()
        await s.aclose()
        with pytest.raises(RuntimeError):
            await s.run("x")
        left_open = box.session()
        await left_open.run("y = 2")
        workdir = await _cwd(left_open)
        box.close()  # the attempt never closed its session: the pool does
        _assert_nothing_left()
        assert not os.path.exists(workdir)
        with pytest.raises(RuntimeError):
            box.session()

    asyncio.run(main())


def test_session_calls_share_the_pool_worker_slots() -> None:
    async def main() -> float:
        with Sandbox(workers=1, timeout_s=20) as box:
            s = box.session()
            await s.run("import time")
            t0 = time.monotonic()
            await asyncio.gather(s.run("time.sleep(1)"), box.run("import time\ntime.sleep(1)"))
            elapsed = time.monotonic() - t0
            await s.aclose()
            return elapsed

    assert asyncio.run(main()) >= 1.9, "workers=1 must run one call at a time"
