"""Parent side of a sandboxed run: start the launcher, pump its pipes, classify, kill, clean up.

``launcher.py`` is the program that runs in the child; this module starts it as a script under
``python -I`` in a new session with a minimal environment, feeds it the code, reads stdout,
stderr and the launcher's status lines through ``select`` with bounded memory (a head and a tail
of each stream), enforces the wall-clock limit and the output cap, and afterwards makes sure
nothing is left: the launcher reaped, stray processes of the run's uid killed, its work dir and
(without a private /tmp) its files in the shared temp dirs removed. As root each run leases a
uid of its own (``UidLease``), exclusive across processes through a lock file.

Hand-written because no maintained library provides this layering (rlimits, uid drop,
namespaces, subreaper sweeping) for untrusted Python while keeping output bounded.
"""

from __future__ import annotations

import codecs
import contextlib
import marshal
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aimo_submit.sandbox.options import DEFAULT_OPTIONS, SandboxOptions
from aimo_submit.sandbox.result import ExecResult, Status, cut_middle

LAUNCHER = str(Path(__file__).resolve().with_name("launcher.py"))
"""The launcher script (run with ``python -I``, so its own folder is not on ``sys.path``)."""

CELL_FILENAME = "<cell>"
"""File name the model's code carries in tracebacks."""


class Capture:
    """Bounded record of a byte stream: the first and the last ``keep`` bytes and the total."""

    def __init__(self, keep: int) -> None:
        self.keep = max(keep, 1024)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.keep:
                del self.tail[: -self.keep]

    def text(self, max_chars: int) -> tuple[str, bool]:
        """Decoded text within ``max_chars`` (plus a marker) and whether anything was cut."""
        head = codecs.getincrementaldecoder("utf-8")("replace").decode(bytes(self.head), False)
        if not self.tail:
            if len(head) <= max_chars:
                return head, False
            return cut_middle(head, max_chars), True
        tail_bytes = bytes(self.tail[-self.keep :])
        skip = 0
        while skip < 3 and skip < len(tail_bytes) and 0x80 <= tail_bytes[skip] <= 0xBF:
            skip += 1
        tail = tail_bytes[skip:].decode("utf-8", "replace")
        h = max_chars // 2
        t = max_chars - h
        kept_head, kept_tail = head[:h], (tail[-t:] if t else "")
        omitted = self.total - len(kept_head.encode()) - len(kept_tail.encode())
        return f"{kept_head}\n[... {omitted} bytes omitted ...]\n{kept_tail}", True


class UidLease:
    """A sandbox uid held exclusively (flock, so concurrent solver processes do not share it)."""

    _lock = threading.Lock()
    _next = 0

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd

    @classmethod
    def acquire(cls, base: int, count: int) -> UidLease | None:
        import fcntl
        import pwd

        lock_dir = os.path.join(tempfile.gettempdir(), "aimo-sandbox-uids")
        try:
            os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        except OSError:
            return None
        with cls._lock:
            start = cls._next
            cls._next = (cls._next + 1) % count
        for i in range(count):
            uid = base + (start + i) % count
            try:
                pwd.getpwuid(uid)
                continue  # a real account: never borrow it
            except KeyError:
                pass
            try:
                fd = os.open(os.path.join(lock_dir, f"{uid}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            return cls(uid, fd)
        return None

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class CancelToken:
    """Lets another thread (the event loop) kill a run in progress; ``run_code(cancel=...)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.cancelled = False

    def _attach(self, pid: int | None) -> bool:
        with self._lock:
            self._pid = pid
            return self.cancelled

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._pid is not None:
                kill_workers(self._pid)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        pass
    kids = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat", "rb") as f:
                        fields = f.read().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == pid:
                    kids.append(int(entry.name))
    return kids


def kill_workers(launcher_pid: int) -> None:
    """SIGKILL the process groups of the launcher's children (the worker and stray orphans)."""
    own = os.getpgrp()
    for kid in _children(launcher_pid):
        try:
            pgid = os.getpgid(kid)
            if pgid == kid and pgid not in (own, launcher_pid) and pgid > 1:
                os.killpg(pgid, signal.SIGKILL)
            else:
                os.kill(kid, signal.SIGKILL)
        except OSError:
            pass


def _uid_pids(uid: int) -> list[int]:
    pids = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"Uid:"):
                            if int(line.split()[1]) == uid:
                                pids.append(int(entry.name))
                            break
            except (OSError, ValueError, IndexError):
                continue
    return pids


def _kill_uid(uid: int, budget_s: float = 2.0) -> int:
    """Kill every process whose real uid is ``uid`` (ours alone while leased); count killed."""
    killed = 0
    end = time.monotonic() + budget_s
    while time.monotonic() < end:
        pids = _uid_pids(uid)
        if not pids:
            break
        for pid in pids:
            try:
                if hasattr(os, "pidfd_open"):
                    fd = os.pidfd_open(pid)
                    try:
                        if pid in _uid_pids_one(pid, uid):
                            signal.pidfd_send_signal(fd, signal.SIGKILL)
                    finally:
                        os.close(fd)
                else:
                    os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)
    return killed


def _uid_pids_one(pid: int, uid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return [pid] if int(line.split()[1]) == uid else []
    except (OSError, ValueError, IndexError):
        pass
    return []


def _remove_uid_files(uid: int, workdir: str) -> None:
    """Without a private /tmp, delete what the sandbox uid left in the world-writable dirs."""
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        with contextlib.suppress(OSError):
            for entry in os.scandir(d):
                try:
                    if entry.path == workdir or entry.stat(follow_symlinks=False).st_uid != uid:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                except OSError:
                    continue


def _rmtree(path: str) -> None:
    """Remove the work dir even if the code chmod-ed parts of it; never touch anything above it."""
    top = os.path.realpath(path)
    if not os.path.lexists(top):
        return

    def retry(func, p, _exc) -> None:  # noqa: ANN001 - shutil's onerror signature
        parent = os.path.dirname(os.path.realpath(p))
        with contextlib.suppress(OSError):
            if parent == top or parent.startswith(top + os.sep):
                os.chmod(parent, 0o700)
            func(p)

    shutil.rmtree(top, onerror=retry)
    if os.path.lexists(top):
        shutil.rmtree(top, ignore_errors=True)


_OOM_FILE: list[str | None] = []


def oom_kills() -> int | None:
    """The kernel's OOM-kill counter of our cgroup (v2 memory.events or v1 oom_control)."""
    if not _OOM_FILE:
        path = None
        with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, rel = line.rstrip("\n").split(":", 2)
                if controllers == "":
                    cand = f"/sys/fs/cgroup{rel}/memory.events"
                elif "memory" in controllers.split(","):
                    cand = f"/sys/fs/cgroup/memory{rel}/memory.oom_control"
                else:
                    continue
                if os.path.exists(cand):
                    path = cand
                    break
        _OOM_FILE.append(path)
    path = _OOM_FILE[0]
    if path is None:
        return None
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


def _env(workdir: str) -> dict[str, str]:
    """A minimal environment: nothing inherited, one thread per numeric library."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": workdir,
    }
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        env[var] = "1"
    return env


@dataclass
class LauncherStatus:
    """What the launcher reported on its status pipe (``key value`` lines)."""

    prot: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    exit: int | None = None
    signal: int | None = None
    exc: str | None = None
    etype: str | None = None
    fatal: str | None = None
    done: bool = False
    end: int | None = None
    """Session mode: the exit code of the cell that just ended (the interpreter lives on)."""

    def parse(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            key, _, raw = line.partition(b" ")
            try:
                value = raw.decode("unicode_escape")
            except UnicodeDecodeError:
                value = raw.decode("utf-8", "replace")
            try:
                self.take(key, value)
            except ValueError:
                continue

    def take(self, key: bytes, value: str) -> None:
        if key == b"prot":
            name, _, state = value.partition("=")
            self.prot[name] = state
        elif key == b"pid" and self.pid is None:
            self.pid = int(value)
        elif key == b"exit":
            self.exit = int(value)
        elif key == b"signal":
            self.signal = int(value)
        elif key == b"exc":
            self.exc = value
        elif key == b"etype":
            self.etype = value
        elif key == b"fatal":
            self.fatal = value
        elif key == b"done":
            self.done = True
        elif key == b"end":
            self.end = int(value)


_MEMORY_HINTS = ("memoryerror", "bad_alloc", "cannot allocate memory", "out of memory")


def classify(
    st: LauncherStatus, reason: str | None, returncode: int | None, stderr: str, oom: bool
) -> tuple[Status, str | None]:
    if reason == "cancelled":
        return Status.KILLED, "Cancelled"
    if reason == "timeout":
        return Status.TIMEOUT, None
    if reason == "output":
        return Status.KILLED, "Killed: output limit exceeded"
    if st.signal is not None:
        sig = st.signal
        if sig == signal.SIGXCPU:
            return Status.TIMEOUT, "CPU time limit exceeded"
        if sig == signal.SIGKILL and oom:
            return Status.MEMORY, "MemoryError: killed by the kernel (out of memory)"
        if sig in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS) and any(
            h in stderr.lower() for h in _MEMORY_HINTS
        ):
            return Status.MEMORY, f"MemoryError: crashed with {signal.Signals(sig).name}"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        if sig == signal.SIGXFSZ:
            return Status.KILLED, "Killed: file size limit exceeded (SIGXFSZ)"
        return Status.KILLED, f"Killed by signal {name}"
    if st.exit is not None:
        if st.exit == 0:
            return Status.OK, None
        if st.etype == "MemoryError":
            return Status.MEMORY, st.exc or "MemoryError"
        return Status.ERROR, st.exc or f"Process exited with code {st.exit}"
    if st.fatal:
        return Status.ERROR, f"SandboxError: {st.fatal}"
    if returncode is not None and returncode < 0:
        return Status.KILLED, f"Killed: sandbox launcher died ({signal.Signals(-returncode).name})"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return Status.ERROR, f"SandboxError: launcher failed {last}".strip()


class Launch:
    """One launcher process with its uid lease, work dir and pipes: ``start()``, ``finish()``."""

    def __init__(self, opts: SandboxOptions, memory_mb: int, cpu_s: float, mode: str) -> None:
        self.opts = opts
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.mode = mode
        self.is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.lease: UidLease | None = None
        self.workdir: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.status_r = -1
        self.st = LauncherStatus()

    def start(self) -> None:
        """Lease a uid, make the work dir and start the launcher (its stdin/out/err are pipes)."""
        opts = self.opts
        if self.is_root and opts.drop_privileges:
            self.lease = UidLease.acquire(opts.uid_base, opts.uid_count)
        self.workdir = workdir = tempfile.mkdtemp(prefix="aimo-sbx-")
        if self.lease is not None:
            os.chown(workdir, self.lease.uid, self.lease.uid)
        config = {
            "status_fd": 0,
            "parent": os.getpid(),
            "workdir": workdir,
            "uid": self.lease.uid if self.lease is not None else None,
            "ns": opts.namespaces,
            "guards": opts.python_guards,
            "memory": int(self.memory_mb) * 1024 * 1024,
            "cpu": max(1, math.ceil(self.cpu_s)),
            "fsize": int(opts.file_size_mb) * 1024 * 1024,
            "nproc": int(opts.max_procs),
            "nofile": int(opts.max_open_files),
            "tmpfs_mb": int(opts.tmpfs_mb),
            "linux": sys.platform.startswith("linux"),
            "hide": [] if self.is_root else [os.path.realpath(os.path.expanduser("~"))],
            "cell": CELL_FILENAME,
            "uid_note": "disabled" if not opts.drop_privileges else "no free sandbox uid",
            "mode": self.mode,
        }
        status_r, status_w = os.pipe()
        config["status_fd"] = status_w
        argv = [opts.python or sys.executable, "-I", "-B", "-X", "utf8", LAUNCHER,
                marshal.dumps(config).hex()]
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(status_w,), cwd=workdir, env=_env(workdir), start_new_session=True,
            )
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        self.status_r = status_r

    def close_pipes(self) -> None:
        if self.status_r >= 0:
            with contextlib.suppress(OSError):
                os.close(self.status_r)
            self.status_r = -1
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def finish(self) -> None:
        """Reap the launcher and leave nothing behind: processes, uid files, the work dir."""
        st, opts = self.st, self.opts
        self.close_pipes()
        if self.proc is not None:
            _reap(self.proc, opts.grace_s)
        if not st.done and st.pid is not None and st.pid > 1 and st.pid != os.getpgrp():
            # The launcher died before sweeping: the worker's group may outlive it.
            with contextlib.suppress(OSError):
                os.killpg(st.pid, signal.SIGKILL)
        if self.lease is not None:
            if not st.done:
                _kill_uid(self.lease.uid)
            if self.workdir is not None and not st.prot.get("private_tmp", "").startswith("ok"):
                _remove_uid_files(self.lease.uid, self.workdir)
            self.lease.release()
            self.lease = None
        if self.workdir is not None:
            _rmtree(self.workdir)
            self.workdir = None


def _execute(
    code: str,
    timeout_s: float,
    memory_mb: int,
    max_output_chars: int,
    opts: SandboxOptions,
    cancel: CancelToken | None = None,
) -> ExecResult:
    t0 = time.monotonic()
    cpu_s = opts.cpu_s if opts.cpu_s is not None else timeout_s + 1
    launch = Launch(opts, memory_mb, cpu_s, "once")
    out, err = Capture(4 * max_output_chars), Capture(4 * opts.max_stderr_chars)
    reason: str | None = None
    oom_before = None
    try:
        oom_before = oom_kills()
        launch.start()
        proc = launch.proc
        assert proc is not None
        if cancel is not None and cancel._attach(proc.pid):
            reason = "cancelled"
            kill_workers(proc.pid)
        reason = _pump(launch, code, out, err, t0 + timeout_s, cancel, reason)
    finally:
        if cancel is not None:
            cancel._attach(None)
        launch.finish()
    duration = time.monotonic() - t0
    proc = launch.proc
    return _result(launch, reason, out, err, duration, timeout_s, max_output_chars, oom_before,
                   proc.returncode if proc else None)


def _result(
    launch: Launch,
    reason: str | None,
    out: Capture,
    err: Capture,
    duration: float,
    timeout_s: float,
    max_output_chars: int,
    oom_before: int | None,
    returncode: int | None,
    st: LauncherStatus | None = None,
) -> ExecResult:
    """Classify a finished run and bound its texts."""
    st = st or launch.st
    stderr_text, _ = err.text(launch.opts.max_stderr_chars)
    stdout_text, truncated = out.text(max_output_chars)
    oom_after = oom_kills() if st.signal == signal.SIGKILL else None
    oom = oom_before is not None and oom_after is not None and oom_after > oom_before
    status, line = classify(st, reason, returncode, stderr_text, oom)
    if status is Status.MEMORY and line == "MemoryError":
        line = f"MemoryError: memory limit of {launch.memory_mb} MB exceeded"
    return ExecResult(
        status=status,
        stdout=stdout_text,
        stderr=stderr_text,
        duration_s=duration,
        error_line=line,
        exit_code=st.exit,
        signal=st.signal,
        timeout_s=timeout_s,
        memory_mb=launch.memory_mb,
        truncated=truncated,
        stdout_bytes=out.total,
        pid=st.pid,
        protections=dict(launch.st.prot),
    )


def _pump(
    launch: Launch,
    code: str,
    out: Capture,
    err: Capture,
    deadline: float,
    cancel: CancelToken | None,
    reason: str | None,
) -> str | None:
    """Feed the code, drain stdout/stderr/status with bounded memory, enforce the limits."""
    proc, st, opts, status_r = launch.proc, launch.st, launch.opts, launch.status_r
    assert proc is not None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    payload = memoryview(code.encode("utf-8", "surrogatepass"))
    sel = selectors.DefaultSelector()
    stdin_fd = proc.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    readers = {proc.stdout.fileno(): out.feed, proc.stderr.fileno(): err.feed}
    status_buf = bytearray()

    def feed_status(data: bytes) -> None:
        if len(status_buf) < 256 * 1024:
            status_buf.extend(data)
            head, sep, rest = status_buf.rpartition(b"\n")
            if sep:
                st.parse(bytes(head))
                del status_buf[: len(head) + 1]

    readers[status_r] = feed_status
    for fd in readers:
        sel.register(fd, selectors.EVENT_READ)
    if payload:
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    open_readers = set(readers)
    hard_end: float | None = None
    try:
        while open_readers:
            now = time.monotonic()
            if cancel is not None and cancel.cancelled and reason is None:
                reason = "cancelled"
                hard_end = now + opts.grace_s
            if reason is None and now >= deadline:
                reason = "timeout"
                kill_workers(proc.pid)
                hard_end = now + opts.grace_s
            if reason is None and out.total + err.total > opts.max_output_bytes:
                reason = "output"
                kill_workers(proc.pid)
                hard_end = now + opts.grace_s
            if hard_end is not None and now >= hard_end:
                _kill_group(proc.pid)
                break
            wait = (hard_end if hard_end is not None else deadline) - now
            for key, _ in sel.select(min(max(wait, 0.0), 0.25)):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        n = os.write(fd, payload[:65536])
                        payload = payload[n:]
                    except BlockingIOError:
                        continue
                    except OSError:
                        payload = payload[:0]
                    if not payload:
                        sel.unregister(fd)
                        proc.stdin.close()
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    readers[fd](data)
                else:
                    sel.unregister(fd)
                    open_readers.discard(fd)
            if st.done and status_r not in open_readers and open_readers:
                # The launcher swept everything; only a leaked pipe holder could keep these open.
                hard_end = min(hard_end or now + 0.5, now + 0.5)
    finally:
        sel.close()
        if status_buf:
            st.parse(bytes(status_buf))
        launch.close_pipes()
    return reason


def _kill_group(launcher_pid: int) -> None:
    kill_workers(launcher_pid)
    with contextlib.suppress(OSError):
        os.killpg(launcher_pid, signal.SIGKILL)


def _reap(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()


def run_code(
    code: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 2048,
    max_output_chars: int = 2000,
    options: SandboxOptions | None = None,
    cancel: CancelToken | None = None,
) -> ExecResult:
    """Run ``code`` in a fresh sandboxed interpreter and wait for it (blocking).

    The last statement, if an expression, is printed like a REPL would. Never raises for
    anything the code does; raises only if the interpreter cannot be started at all.
    """
    if timeout_s <= 0 or memory_mb <= 0 or max_output_chars < 0:
        raise ValueError("need timeout_s > 0, memory_mb > 0 and max_output_chars >= 0")
    return _execute(code, timeout_s, memory_mb, max_output_chars, options or DEFAULT_OPTIONS,
                    cancel)


_PROBED: dict[tuple[object, ...], dict[str, str]] = {}


def probe_protections(options: SandboxOptions | None = None) -> dict[str, str]:
    """Which protections this host grants (runs ``pass`` once per options; cached)."""
    opts = options or DEFAULT_OPTIONS
    key = (opts.drop_privileges, opts.namespaces, opts.python_guards, opts.python)
    if key not in _PROBED:
        _PROBED[key] = dict(run_code("pass", timeout_s=30.0, options=opts).protections)
    return dict(_PROBED[key])
