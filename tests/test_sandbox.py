"""The code sandbox: normal runs, and hostile code that must be contained and reported.

Hostile cases also run with the Python-level guards off, so the kernel-level layers (rlimits,
uid drop, namespaces, process sweeping) are exercised on their own; those cases skip where the
host grants none of the layers they need (``result.protections`` says what was active).
"""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aimo_submit.sandbox import (
    ExecResult,
    Sandbox,
    SandboxOptions,
    Status,
    probe_protections,
    run_code,
)
from aimo_submit.sandbox.process import Capture as _Capture

NO_GUARDS = SandboxOptions(python_guards=False)
REPO = Path(__file__).resolve().parents[1]


def _active(name: str, options: SandboxOptions | None = None) -> bool:
    return probe_protections(options).get(name, "").startswith("ok")


def _stat_fields(pid: str) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def _descendants(root: int) -> set[int]:
    """Live or zombie descendants of ``root`` (a /proc scan, no psutil)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None:
                parent_of[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parent_of.items() if ppid in frontier} - found
        found |= frontier
    return found


def _uid_procs(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry))
                        break
        except OSError:
            continue
    return pids


def _run_uid(result: ExecResult) -> int | None:
    state = result.protections.get("uid_drop", "")
    return int(state.rsplit("=", 1)[1]) if state.startswith("ok uid=") else None


def _assert_nothing_left(result: ExecResult | None = None) -> None:
    """No process of the run survives: not below us, not under a sandbox uid, not in its group."""
    deadline = time.monotonic() + 5.0
    while True:
        left = _descendants(os.getpid())
        uid = _run_uid(result) if result is not None else None
        if uid is not None:
            left |= set(_uid_procs(uid))
        if result is not None and result.pid is not None:
            for entry in os.listdir("/proc"):
                fields = _stat_fields(entry) if entry.isdigit() else None
                if fields is not None and int(fields[2]) == result.pid:
                    left.add(int(entry))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"processes left behind: {sorted(left)}"


# --- normal runs ---------------------------------------------------------------------------------
def test_stdout_is_captured() -> None:
    r = run_code("print('hello')\nprint(6 * 7)")
    assert r.status is Status.OK, r
    assert r.stdout == "hello\n42\n"
    assert r.to_model_text() == "hello\n42"
    assert r.duration_s > 0


def test_last_expression_is_printed_like_a_repl() -> None:
    assert run_code("x = 2\nx * 21").stdout == "42\n"
    assert run_code("'a' + 'b'").stdout == "'ab'\n"
    assert run_code("print(3)").stdout == "3\n"  # print returns None: printed once
    assert run_code("x = None\nx").stdout == ""
    assert run_code("for i in range(2):\n    i").stdout == ""


def test_syntax_error_reports_the_line() -> None:
    r = run_code("x = 1\ny = (\n")
    assert r.status is Status.ERROR
    assert r.error_line is not None and r.error_line.startswith("SyntaxError")
    assert "line 2" in r.error_line
    assert r.error_line in r.to_model_text()


def test_exception_reports_last_traceback_line_and_keeps_output() -> None:
    r = run_code("print('before')\ndef f():\n    return 1 / 0\nf()")
    assert r.status is Status.ERROR
    assert r.error_line == "ZeroDivisionError: division by zero"
    assert "Traceback" in r.stderr and "<cell>" in r.stderr and "return 1 / 0" in r.stderr
    assert r.to_model_text() == "before\nZeroDivisionError: division by zero"
    assert run_code("raise KeyError('k')").error_line == "KeyError: 'k'"
    assert run_code("import sys\nsys.exit(3)").status is Status.ERROR
    assert run_code("import sys\nsys.exit(0)").status is Status.OK


def test_sympy_and_numpy_are_usable() -> None:
    r = run_code("import sympy as sp\nx = sp.symbols('x')\nsp.factor(x**2 - 1)", timeout_s=60)
    assert r.status is Status.OK, r.stderr
    assert r.stdout.strip() == "(x - 1)*(x + 1)"
    pytest.importorskip("numpy")
    r = run_code("import numpy as np\nprint(int(np.arange(10).sum()))", timeout_s=60)
    assert r.status is Status.OK, r.stderr
    assert r.stdout == "45\n"


def test_unicode_output() -> None:
    text = "∑ π ≈ 3.14159 — ✓ 你好 🙂"
    r = run_code(f"print({text!r})")
    assert r.status is Status.OK
    assert r.stdout == text + "\n"


def test_environment_is_minimal_and_cwd_is_a_throwaway_dir() -> None:
    os.environ["AIMO_SANDBOX_TEST_SECRET"] = "s3cret"
    try:
        r = run_code(
            "import os\nprint(os.getcwd() == os.environ['HOME'])\n"
            "print('AIMO_SANDBOX_TEST_SECRET' in os.environ)\nopen('f.txt', 'w').write('ok')\n"
            "print(os.getcwd())"
        )
    finally:
        del os.environ["AIMO_SANDBOX_TEST_SECRET"]
    assert r.status is Status.OK, r
    same, leaked, cwd = r.stdout.split()
    assert (same, leaked) == ("True", "False")
    assert not os.path.exists(cwd), "the working dir must be removed afterwards"


# --- hostile code --------------------------------------------------------------------------------
def test_infinite_loop_times_out() -> None:
    t0 = time.monotonic()
    r = run_code("while True:\n    pass", timeout_s=1.0)
    assert r.status is Status.TIMEOUT
    assert time.monotonic() - t0 < 1.0 + 5.0  # generous: the CPU may be shared
    assert r.to_model_text() == "Timed out after 1 s"
    _assert_nothing_left(r)


def test_output_before_a_timeout_is_kept() -> None:
    r = run_code("print('partial')\nimport time\ntime.sleep(60)", timeout_s=1.0)
    assert r.status is Status.TIMEOUT
    assert r.to_model_text() == "partial\nTimed out after 1 s"


@pytest.mark.parametrize("guards", [True, False], ids=["guards", "kernel-only"])
def test_fork_bomb_is_contained(guards: bool) -> None:
    options = SandboxOptions(python_guards=guards)
    if not guards and not (_active("rlimit_nproc", options) and (
        _active("uid_drop", options) or _active("userns", options)
    )):
        pytest.skip("no enforceable process limit on this host without the Python guards")
    code = "import os\nwhile True:\n    os.fork()"
    r = run_code(code, timeout_s=5.0, options=options)
    assert r.status in (Status.ERROR, Status.TIMEOUT, Status.KILLED), r
    _assert_nothing_left(r)


def test_fork_bomb_escaping_the_group_is_swept() -> None:
    if not (_active("uid_drop", NO_GUARDS) or _active("pidns", NO_GUARDS)):
        pytest.skip("needs a sandbox uid or a pid namespace to find escaped processes")
    code = (
        "import os, time\nfor _ in range(200):\n    try:\n        if os.fork() == 0:\n"
        "            os.setsid()\n            time.sleep(60)\n    except OSError:\n        break\n"
        "time.sleep(60)"
    )
    r = run_code(code, timeout_s=2.0, options=NO_GUARDS)
    assert r.status is Status.TIMEOUT
    _assert_nothing_left(r)


def test_background_process_is_killed_when_the_code_ends() -> None:
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('done')"
    r = run_code(code, options=NO_GUARDS)
    assert r.status is Status.OK and r.stdout == "done\n"
    _assert_nothing_left(r)


def test_huge_allocation_is_a_memory_error() -> None:
    r = run_code("x = bytearray(50 * 1024**3)", memory_mb=1024)
    assert r.status is Status.MEMORY
    assert "MemoryError" in r.to_model_text()


def test_writes_outside_the_working_dir_do_not_reach_the_host(tmp_path: Path) -> None:
    name = secrets.token_hex(6)
    targets = [f"/tmp/aimo-test-{name}/x", str(REPO / f"aimo-test-{name}.txt"),
               str(tmp_path / "x")]
    code = f"""import os
for t in {targets!r}:
    try:
        os.makedirs(os.path.dirname(t), exist_ok=True)
        open(t, 'w').write('pwned')
        print('wrote', t)
    except OSError as e:
        print('refused', t, type(e).__name__)
"""
    r = run_code(code, options=NO_GUARDS)
    assert r.status is Status.OK, r
    for t in targets:
        assert not os.path.exists(t), f"{t} was written on the host: {r.stdout}"
    assert not os.path.exists(f"/tmp/aimo-test-{name}")


def test_host_files_cannot_be_read(tmp_path: Path) -> None:
    if not (_active("uid_drop", NO_GUARDS) or _active("private_tmp", NO_GUARDS)):
        pytest.skip("neither a uid drop nor a private /tmp is available here")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    secret.chmod(0o600)
    paths = [str(secret)]
    if os.geteuid() == 0 and os.path.exists("/etc/shadow") and _active("uid_drop", NO_GUARDS):
        paths.append("/etc/shadow")
    code = f"""for p in {paths!r}:
    try:
        print(open(p).read())
    except OSError as e:
        print('refused', type(e).__name__)
"""
    r = run_code(code, options=NO_GUARDS)
    assert r.status is Status.OK, r
    assert "TOP-SECRET-VALUE" not in r.stdout
    assert r.stdout.count("refused") == len(paths), r.stdout


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
        code = (
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\nprint('connected')"
        )
        r = run_code(code, options=options)
        assert r.status is Status.ERROR, r
        assert "connected" not in r.stdout
        time.sleep(0.1)
        with pytest.raises(BlockingIOError):
            listener.accept()


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.kill(os.getppid(), 9)",
        "import os\nos.killpg(os.getpgid(os.getppid()), 9)",
        "import os\nos.kill({pytest_pid}, 9)",
        "import os\nos.killpg({pytest_pgid}, 9)",
    ],
    ids=["getppid", "ppid-group", "pytest-pid", "pytest-group"],
)
def test_code_cannot_kill_the_parent(code: str) -> None:
    if not (_active("uid_drop", NO_GUARDS) or _active("pidns", NO_GUARDS)):
        pytest.skip("needs a uid drop or a pid namespace to protect the caller")
    sentinel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        code = code.format(pytest_pid=os.getpid(), pytest_pgid=os.getpgrp())
        for options in (None, NO_GUARDS):
            r = run_code(code, options=options)
            assert r.status in (Status.OK, Status.ERROR, Status.KILLED), r
        assert sentinel.poll() is None, "a process in the caller's group was killed"
    finally:
        sentinel.kill()
        sentinel.wait()
    _assert_nothing_left()


def _world_usable_python() -> str | None:
    """A system interpreter any uid may run (as on Kaggle), to test without namespaces."""
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(cand)
        if not os.path.isfile(real):
            continue
        parts = Path(real).parents
        if all(os.stat(d).st_mode & 0o001 for d in parts) and os.stat(real).st_mode & 0o005:
            return cand
    return None


def test_without_namespaces_the_uid_drop_still_contains() -> None:
    """The likely Kaggle situation: root, no namespaces, an interpreter every uid can run."""
    python = _world_usable_python()
    if os.geteuid() != 0 or python is None:
        pytest.skip("needs root and a world-usable system python")
    options = SandboxOptions(namespaces=False, python_guards=False, python=python)
    if not _active("uid_drop", options):
        pytest.skip("uid drop not possible here")
    name = secrets.token_hex(6)
    r = run_code(f"open('/tmp/aimo-test-{name}', 'w').write('x')", options=options)
    assert r.status is Status.OK and not os.path.exists(f"/tmp/aimo-test-{name}")
    r = run_code("import os\nwhile True:\n    os.fork()", timeout_s=5, options=options)
    assert r.status in (Status.ERROR, Status.TIMEOUT, Status.KILLED)
    _assert_nothing_left(r)
    escape = (
        "import os, time\nfor _ in range(20):\n    if os.fork() == 0:\n        os.setsid()\n"
        "        time.sleep(60)\ntime.sleep(60)"
    )
    r = run_code(escape, timeout_s=1.5, options=options)
    assert r.status is Status.TIMEOUT
    _assert_nothing_left(r)
    r = run_code(f"import os\nos.kill({os.getpid()}, 9)", options=options)
    assert r.status is Status.ERROR and "PermissionError" in (r.error_line or "")


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_huge_output_is_bounded() -> None:
    before = _max_rss_mb()
    code = "import sys\nchunk = 'x' * 10**6\nfor _ in range(1000):\n    sys.stdout.write(chunk)"
    r = run_code(code, max_output_chars=2000, timeout_s=30)
    assert r.status is Status.KILLED and "output limit" in (r.error_line or "")
    assert r.truncated
    assert len(r.stdout) < 2200 and "omitted" in r.stdout
    assert len(r.to_model_text()) < 2400
    r = run_code("print('y' * 10**9)", max_output_chars=100, memory_mb=3072, timeout_s=30)
    assert r.status in (Status.KILLED, Status.MEMORY), r.status
    assert len(r.stdout) < 300
    assert _max_rss_mb() - before < 200


# --- the async pool ------------------------------------------------------------------------------
def test_pool_runs_concurrently_and_the_loop_stays_responsive() -> None:
    async def main() -> tuple[list[ExecResult], float, float]:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        with Sandbox(workers=2, timeout_s=20) as box:
            t0 = time.monotonic()
            results = await asyncio.gather(
                *(box.run(f"import time\ntime.sleep(1)\nprint({i})") for i in range(4))
            )
            elapsed = time.monotonic() - t0
        stop.set()
        await tick
        return results, elapsed, max(gaps)

    results, elapsed, max_gap = asyncio.run(main())
    assert [r.stdout for r in results] == ["0\n", "1\n", "2\n", "3\n"]
    assert all(r.status is Status.OK for r in results)
    assert elapsed >= 1.9, "workers=2 must run at most two at once"
    assert elapsed < 15.0
    assert max_gap < 0.5, f"event loop blocked for {max_gap:.2f} s"


def test_cancellation_kills_the_child() -> None:
    async def main() -> None:
        box = Sandbox(workers=1, timeout_s=60)
        try:
            task = asyncio.create_task(box.run("import time\ntime.sleep(60)"))
            deadline = time.monotonic() + 10
            while len(_descendants(os.getpid())) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert _descendants(os.getpid()), "the run never started"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            _assert_nothing_left()
            r = await box.run("print('still works')")
            assert r.stdout == "still works\n"
        finally:
            box.close()

    asyncio.run(main())


# --- pieces --------------------------------------------------------------------------------------
def test_capture_keeps_head_and_tail_in_bounded_memory() -> None:
    cap = _Capture(4 * 100)
    for i in range(10_000):
        cap.feed(f"{i:05d}\n".encode())
    assert len(cap.head) <= 4096 and len(cap.tail) <= 2 * 4096
    text, cut = cap.text(100)
    assert cut and text.startswith("00000\n") and text.endswith("09999\n")
    assert "bytes omitted" in text
    cap = _Capture(8)
    cap.feed("é".encode() * 3000)
    text, cut = cap.text(20)
    assert cut and "\ufffd" not in text


def test_protections_are_reported() -> None:
    prot = probe_protections()
    assert prot.get("rlimit_as") == "ok" and prot.get("session") == "ok"
    if sys.platform.startswith("linux") and os.geteuid() == 0:
        assert "uid_drop" in prot and "netns" in prot


def test_every_protection_state_says_whether_it_took_effect() -> None:
    """States start with ok / failed / skipped, so a warning lists only what is really missing."""
    from aimo_submit.sandbox.pool import inactive_protections

    prot = probe_protections()
    for name, state in prot.items():
        assert state.split(":")[0].split(" ")[0] in ("ok", "failed", "skipped"), (name, state)
    if _active("mountns"):
        assert prot["hidden_dirs"].startswith("ok"), prot["hidden_dirs"]
    assert inactive_protections({"a": "ok", "b": "ok uid=3", "c": "skipped: disabled"}) == {}
    assert inactive_protections({"a": "failed: EPERM"}) == {"a": "failed: EPERM"}


# --- the launcher as a module --------------------------------------------------------------------
def test_launcher_imports_without_running_and_its_helpers_work(tmp_path: Path) -> None:
    from aimo_submit.sandbox import launcher

    assert launcher.C == {} and launcher.ST == -1  # importing ran nothing
    assert launcher.under("/a/b", "/a") and launcher.under("/a", "/a")
    assert launcher.under("/a/b", "/")
    assert not launcher.under("/ab", "/a")
    inner = tmp_path / "lib" / "site"
    inner.mkdir(parents=True)
    (tmp_path / "mod.zip").write_bytes(b"")
    dirs = launcher.python_dirs(["", str(tmp_path / "lib"), str(inner), str(tmp_path / "mod.zip"),
                                 str(tmp_path / "missing")])
    assert dirs == [str(tmp_path.resolve())]
    assert launcher.error_line(ZeroDivisionError("division by zero")) == (
        "ZeroDivisionError: division by zero")
    assert launcher.error_line(KeyError("k")) == "KeyError: 'k'"
    assert launcher.error_line(asyncio.TimeoutError()) in ("TimeoutError", "asyncio.TimeoutError")


def test_launcher_access_check_finds_what_a_uid_cannot_enter() -> None:
    import shutil
    import tempfile

    from aimo_submit.sandbox import launcher

    top = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        top.chmod(0o755)
        locked = top / "locked"
        (locked / "lib").mkdir(parents=True)
        locked.chmod(0o700)
        free = top / "free"
        free.mkdir(mode=0o755)
        uid = 46999  # owns nothing here
        blocked, unfixable = launcher.access_check([str(locked / "lib"), str(free)], uid)
        assert (blocked, unfixable) == ([str(locked)], [])
        missing = str(top / "nope")
        assert launcher.access_check([missing], uid) == ([], [missing])
    finally:
        shutil.rmtree(top)
