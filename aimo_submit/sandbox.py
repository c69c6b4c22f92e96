"""Run model-written Python in a separate, locked-down process.

Tool-integrated reasoning executes code the model wrote, which may loop forever, allocate 50 GB,
fork-bomb, print a gigabyte, open sockets or touch the host's files. Each run therefore gets a
fresh interpreter (``python -I``) that hardens itself before the code runs, in layers, each of
which degrades to a recorded "failed"/"skipped" instead of an exception when the host (a Kaggle
container, a laptop) does not permit it:

* process: a new session; an intermediate launcher forks the worker, so ``getppid()`` is never the
  solver; the launcher is a child subreaper that reaps and sweeps everything left at the end;
* rlimits: address space (memory), CPU time, file size, no core dumps, open files, processes;
* privileges: as root the worker drops to a uid of its own (one per concurrent run, from a pool),
  so RLIMIT_NPROC applies, the host's files are not readable or writable, the solver cannot be
  signalled, and every leftover process can be swept by uid; ``no_new_privs`` is set;
* namespaces (root, or unprivileged user namespaces): network (no interface but a down loopback),
  pid (the worker is pid 1: its death takes every descendant with it), ipc, mount (private /tmp,
  the rest of the file system read-only, directories the dropped uid may not enter hidden);
* Python guards: an audit hook refusing fork/exec/subprocess/kill/non-unix sockets/DNS, a cheap
  second line that also gives the model a readable error instead of a dead process.

The parent reads output through pipes in chunks and keeps a bounded head and tail, so a flood of
output costs bounded memory, and it kills the run when the flood passes a hard cap.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import enum
import logging
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
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimo_submit.policy import PolicyConfig

__all__ = [
    "ExecResult",
    "Sandbox",
    "SandboxOptions",
    "Status",
    "probe_protections",
    "run_code",
]

log = logging.getLogger(__name__)

CELL_FILENAME = "<cell>"
"""File name the model's code carries in tracebacks."""


class Status(enum.Enum):
    OK = "ok"
    ERROR = "error"
    """The code raised (``error_line`` holds the exception line) or exited non-zero."""
    TIMEOUT = "timeout"
    """Wall-clock limit, or the CPU-time limit (SIGXCPU)."""
    MEMORY = "memory"
    """MemoryError under the address-space limit, or killed by the kernel for memory."""
    KILLED = "killed"
    """Another signal, the output cap, or cancellation (``error_line`` says which)."""


@dataclass(frozen=True)
class ExecResult:
    status: Status
    stdout: str
    """Bounded: at most ``max_output_chars`` plus an omission marker (head and tail kept)."""
    stderr: str
    duration_s: float
    error_line: str | None = None
    """For ERROR the exception line (``"ZeroDivisionError: division by zero"``); else a reason."""
    exit_code: int | None = None
    signal: int | None = None
    """Signal that ended the worker, if any."""
    timeout_s: float | None = None
    memory_mb: int | None = None
    truncated: bool = False
    stdout_bytes: int = 0
    """Bytes the code wrote to stdout (before truncation)."""
    pid: int | None = None
    """Host pid of the worker process (it leads its own process group)."""
    protections: Mapping[str, str] = field(default_factory=dict)
    """Each hardening step and how it went: ``"ok"``, ``"failed: ..."`` or ``"skipped: ..."``."""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_model_text(self, max_chars: int | None = None) -> str:
        """What is fed back to the model: the output, then the error line or reason, bounded."""
        parts = [self.stdout.rstrip("\n")] if self.stdout.strip() else []
        if self.status is Status.ERROR:
            parts.append(self.error_line or f"Process exited with code {self.exit_code}")
        elif self.status is Status.TIMEOUT:
            limit = f"{self.timeout_s:g} s" if self.timeout_s is not None else "the time limit"
            parts.append(f"Timed out after {limit}")
        elif self.status is Status.MEMORY:
            parts.append(self.error_line or "MemoryError")
        elif self.status is Status.KILLED:
            parts.append(self.error_line or "Killed")
        text = "\n".join(parts)
        if max_chars is not None and len(text) > max_chars:
            text = _cut_middle(text, max_chars)
        return text


@dataclass(frozen=True)
class SandboxOptions:
    """The hardening knobs besides the three everyday ones (time, memory, output size)."""

    cpu_s: float | None = None
    """CPU-time limit of the worker; None: the wall-clock limit plus one second."""
    file_size_mb: int = 64
    """Largest file the code may write (RLIMIT_FSIZE)."""
    max_procs: int = 64
    """Processes and threads the sandbox uid may have (RLIMIT_NPROC)."""
    max_open_files: int = 256
    max_output_bytes: int = 32 * 1024 * 1024
    """Hard cap on stdout+stderr bytes; past it the run is killed (the text kept is far smaller)."""
    max_stderr_chars: int = 4000
    drop_privileges: bool = True
    """As root, run the code under a uid of its own (``uid_base`` and up)."""
    namespaces: bool = True
    """Try network/pid/ipc/mount namespaces (root, or unprivileged user namespaces)."""
    python_guards: bool = True
    """Install the audit hook that refuses fork/exec/kill/sockets inside the interpreter."""
    uid_base: int = 46000
    """First uid of the pool (pick a range no real user or container mapping uses)."""
    uid_count: int = 256
    tmpfs_mb: int = 64
    """Size of the private /tmp, /var/tmp and /dev/shm (they live in RAM)."""
    python: str | None = None
    """Interpreter for the worker; None: ``sys.executable`` (sympy/numpy come from its site)."""
    grace_s: float = 3.0
    """After a kill, how long the launcher gets to reap and sweep before it is killed too."""

    def __post_init__(self) -> None:
        if self.max_procs < 1 or self.max_open_files < 16 or self.file_size_mb < 0:
            raise ValueError("need max_procs >= 1, max_open_files >= 16, file_size_mb >= 0")
        if self.uid_count < 1 or self.uid_base < 1:
            raise ValueError("need uid_base >= 1 and uid_count >= 1")


DEFAULT_OPTIONS = SandboxOptions()


# ------------------------------------------------------------------------------------------------
# The launcher: runs as `python -I -B -X utf8 -c _LAUNCHER <config>` in a new session. It is the
# intermediate process: it enters namespaces, forks the worker (pid 1 of the new pid namespace when
# there is one), reaps and sweeps. The worker reads the code from stdin, hardens itself and runs
# it. Only builtin modules are imported up front so a run costs little more than interpreter
# start-up; status goes to the parent as "key value" lines (value unicode_escape'd) on a pipe.
# ------------------------------------------------------------------------------------------------
_LAUNCHER = r'''
import os, sys, marshal, time
C = marshal.loads(bytes.fromhex(sys.argv[1]))
ST = C["status_fd"]
MAIN = os.getpid()
ROOT = os.geteuid() == 0
LIBC = None
NS = set()
if C["linux"]:
    try:
        import ctypes
        LIBC = ctypes.CDLL(None, use_errno=True)
    except Exception as e:
        LIBC = None


def out(key, val=""):
    data = str(val).encode("unicode_escape")[:3000]
    try:
        os.write(ST, key.encode() + b" " + data + b"\n")
    except OSError:
        pass


def prot(name, state):
    out("prot", name + "=" + state)


def fail(e):
    return "failed: " + (e.strerror if isinstance(e, OSError) and e.strerror else repr(e))


def check(ret):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def prctl(option, arg):
    return check(LIBC.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                            ctypes.c_ulong(0)))


def mount(src, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else os.fsencode(s)
    check(LIBC.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)))


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
NS_FLAGS = {"mountns": 0x20000, "ipcns": 0x08000000, "netns": 0x40000000, "pidns": 0x20000000}
CLONE_NEWUSER = 0x10000000


class MountAttr(ctypes.Structure if LIBC else object):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)] if LIBC else []


def mount_setattr(path, recursive, set_ro):
    attr = MountAttr(1 if set_ro else 0, 0 if set_ro else 1, 0, 0)
    flags = 0x8000 if recursive else 0
    check(LIBC.syscall(ctypes.c_long(442), ctypes.c_int(-100), os.fsencode(path),
                       ctypes.c_uint(flags), ctypes.byref(attr), ctypes.c_size_t(32)))


def enter_namespaces():
    if not C["ns"]:
        for name in NS_FLAGS:
            prot(name, "skipped: disabled")
        return
    if LIBC is None:
        for name in NS_FLAGS:
            prot(name, "skipped: no ctypes/libc")
        return
    every = sum(NS_FLAGS.values())
    if not ROOT:
        uid, gid = os.getuid(), os.getgid()
        try:
            check(LIBC.unshare(every | CLONE_NEWUSER))
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write("%d %d 1" % (uid, uid))
            with open("/proc/self/gid_map", "w") as f:
                f.write("%d %d 1" % (gid, gid))
        except OSError as e:
            for name in ("userns",) + tuple(NS_FLAGS):
                prot(name, fail(e))
            return
        NS.update(NS_FLAGS)
        NS.add("userns")
        for name in ("userns",) + tuple(NS_FLAGS):
            prot(name, "ok")
        return
    try:
        check(LIBC.unshare(every))
        NS.update(NS_FLAGS)
    except OSError:
        for name, flag in NS_FLAGS.items():
            try:
                check(LIBC.unshare(flag))
                NS.add(name)
            except OSError as e:
                prot(name, fail(e))
    for name in NS:
        prot(name, "ok")


def kill_children():
    """Kill this process's children (orphans come here: we are a subreaper); True if any."""
    me, found = str(os.getpid()), False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/" + entry + "/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[1].decode() == me:
            found = True
            try:
                os.kill(int(entry), 9)
            except OSError:
                pass
    return found


def reap():
    """Reap what is dead; True while children remain."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def kill_uid(uid):
    """kill(-1) as the sandbox uid: every process of that uid (it is ours alone while leased)."""
    try:
        os.setresuid(uid, uid, 0)
    except OSError:
        return
    try:
        os.kill(-1, 9)
    except OSError:
        pass
    finally:
        os.setresuid(0, 0, 0)


def sweep():
    """Kill and reap whatever the worker left; orphans are our children (we are a subreaper)."""
    uid = C["uid"] if ROOT else None
    end = time.monotonic() + 2.0
    while True:
        if uid is not None:
            kill_uid(uid)
        if not reap() or time.monotonic() > end:
            break
        kill_children()
        time.sleep(0.002)


def python_dirs():
    dirs = []
    for p in sys.path:
        if not p:
            continue
        p = os.path.realpath(p)
        if os.path.isfile(p):
            p = os.path.dirname(p)
        if os.path.isdir(p) and p not in dirs:
            dirs.append(p)
    dirs.sort(key=len)
    kept = []
    for p in dirs:
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def access_check(paths, uid):
    """Topmost directories the uid may not enter (hide them), and paths it cannot use at all."""
    blocked, unfixable = [], []
    for p in paths:
        cur = "/"
        parts = [x for x in p.split("/") if x]
        for i in range(len(parts) + 1):
            cur = "/" + "/".join(parts[:i])
            try:
                st = os.stat(cur)
            except OSError:
                unfixable.append(p)
                break
            mine = st.st_uid == uid or st.st_gid == uid
            need = 0o5 if cur == p else 0o1
            if not mine and (st.st_mode & need) != need:
                if cur == p or cur == "/":
                    unfixable.append(p)
                elif cur not in blocked:
                    blocked.append(cur)
                break
    return blocked, unfixable


def setup_mounts(keeps, blocked):
    """Private /tmp-like dirs, hidden `blocked` dirs, read-only root; True if hiding worked."""
    workdir = os.path.realpath(C["workdir"])
    try:
        mount(None, "/", None, MS_REC | MS_PRIVATE)
    except OSError as e:
        prot("private_mounts", fail(e))
        return False
    scratch = []
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        d = os.path.realpath(d)
        if os.path.isdir(d) and d not in scratch:
            scratch.append(d)
    hides = sorted(set(scratch) | set(blocked) | set(C["hide"]), key=len)
    tops = []
    for h in hides:
        if h != "/" and os.path.isdir(h) and not any(under(h, t) for t in tops):
            tops.append(h)
    fds = {}
    ok = True
    try:
        for k in keeps + [workdir]:
            if k == workdir or any(under(k, t) for t in tops):
                fds[k] = os.open(k, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for t in tops:
            mode = "1777" if t in scratch else "755"
            try:
                mount("tmpfs", t, "tmpfs", MS_NOSUID | MS_NODEV,
                      "mode=%s,size=%dm" % (mode, C["tmpfs_mb"]))
            except OSError as e:
                ok = False
                prot("hide " + t, fail(e))
        for k, fd in fds.items():
            try:
                os.makedirs(k, 0o755, exist_ok=True)
                mount("/proc/self/fd/%d" % fd, k, None, MS_BIND | MS_REC)
            except OSError as e:
                ok = False
                prot("bind " + k, fail(e))
        try:
            mount_setattr("/", True, True)
            for w in [workdir] + [t for t in tops if t in scratch]:
                mount_setattr(w, False, False)
            prot("readonly_root", "ok")
        except OSError as e:
            prot("readonly_root", fail(e))
            for k in keeps:
                if k in fds:
                    try:
                        mount(None, k, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
                    except OSError:
                        pass
        prot("private_tmp", "ok" if ok else "failed")
        prot("hidden_dirs", ",".join(t for t in tops if t not in scratch) or "none")
    finally:
        for fd in fds.values():
            os.close(fd)
    if "pidns" in NS:
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            prot("proc_mount", "ok")
        except OSError as e:
            prot("proc_mount", fail(e))
    return ok


def count_tasks(uid):
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/" + entry + "/status") as f:
                    text = f.read()
            except OSError:
                continue
            lines = dict(x.split(":", 1) for x in text.splitlines() if ":" in x)
            if int(lines.get("Uid", "-1 0").split()[0]) == uid:
                n += int(lines.get("Threads", "1"))
    return n


def set_rlimits():
    import resource
    cpu = int(C["cpu"])
    nproc = C["nproc"]
    if not ROOT and "userns" not in NS:
        try:
            nproc += count_tasks(os.getuid())
        except OSError:
            pass
    limits = [("rlimit_as", "RLIMIT_AS", C["memory"], C["memory"]),
              ("rlimit_cpu", "RLIMIT_CPU", cpu, cpu + 1),
              ("rlimit_fsize", "RLIMIT_FSIZE", C["fsize"], C["fsize"]),
              ("rlimit_core", "RLIMIT_CORE", 0, 0),
              ("rlimit_nofile", "RLIMIT_NOFILE", C["nofile"], C["nofile"]),
              ("rlimit_nproc", "RLIMIT_NPROC", nproc, nproc)]
    for name, attr, soft, hard in limits:
        rid = getattr(resource, attr, None)
        if rid is None:
            prot(name, "skipped: not on this platform")
            continue
        try:
            cur_soft, cur_hard = resource.getrlimit(rid)
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard)
                soft = min(soft, hard)
            resource.setrlimit(rid, (soft, hard))
            prot(name, "ok")
        except (OSError, ValueError) as e:
            prot(name, fail(e))


def drop_caps():
    """Empty the capability sets of a process that keeps uid 0 (or is root of a user ns)."""
    try:
        for cap in range(64):
            try:
                prctl(24, cap)
            except OSError:
                break
        try:
            prctl(28, 0x2F)
        except OSError:
            pass
        hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        check(LIBC.capset(ctypes.byref(hdr), ctypes.byref(data)))
        prot("caps_dropped", "ok")
    except OSError as e:
        prot("caps_dropped", fail(e))


def harden(keeps):
    uid = C["uid"]
    blocked, unfixable = access_check(keeps, uid) if uid is not None and ROOT else ([], [])
    hidden = False
    if "mountns" in NS:
        hidden = setup_mounts(keeps, blocked)
    else:
        prot("private_tmp", "skipped: no mount namespace")
    os.chdir(C["workdir"])
    set_rlimits()
    dropped = False
    if not ROOT:
        prot("uid_drop", "skipped: not root")
    elif uid is None:
        prot("uid_drop", "skipped: " + C["uid_note"])
    elif unfixable:
        prot("uid_drop", "skipped: uid cannot read " + unfixable[0])
    elif blocked and not hidden:
        prot("uid_drop", "skipped: uid cannot enter " + blocked[0] + " and it cannot be hidden")
    else:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            dropped = True
            prot("uid_drop", "ok uid=%d" % uid)
        except OSError as e:
            prot("uid_drop", fail(e))
    if LIBC is None:
        prot("no_new_privs", "skipped: no ctypes/libc")
        return
    if not dropped:
        drop_caps()
    try:
        prctl(38, 1)
        prot("no_new_privs", "ok")
    except OSError as e:
        prot("no_new_privs", fail(e))
    try:
        prctl(1, 9)
    except OSError:
        pass
    if "pidns" not in NS and os.getppid() != MAIN:
        os._exit(1)


def install_guards():
    getpid, getpgrp = os.getpid, os.getpgrp
    refuse = frozenset(("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn",
                        "os.spawn", "subprocess.Popen", "socket.connect", "socket.bind",
                        "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                        "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"))
    watch = refuse | {"os.kill", "os.killpg", "socket.__new__"}

    def hook(event, args):
        if event not in watch:
            return
        if event in refuse:
            raise PermissionError(event + " is disabled in the sandbox")
        if event == "os.kill":
            if args[0] not in (0, getpid()):
                raise PermissionError("os.kill of another process is disabled in the sandbox")
        elif event == "os.killpg":
            if args[0] != getpgrp():
                raise PermissionError("os.killpg is disabled in the sandbox")
        elif args[1] not in (1, -1):
            raise PermissionError("network access is disabled in the sandbox")

    sys.addaudithook(hook)
    prot("python_guards", "ok")


def error_line(e):
    t = type(e)
    name = t.__qualname__ if t.__module__ in ("builtins", "__main__") else (
        t.__module__ + "." + t.__qualname__)
    try:
        msg = str(e)
    except BaseException:
        msg = "<unprintable>"
    return (name + ": " + msg) if msg else name


def show_traceback(e, src):
    try:
        import linecache, traceback
        linecache.cache[CELL] = (len(src), None, src.splitlines(True), CELL)
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
    except BaseException:
        sys.stderr.write(error_line(e) + "\n")


def finish(rc):
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            pass
    os._exit(rc)


def run_user(src, worker):
    import _ast
    mod = type(sys)("__main__")
    ns = mod.__dict__
    ns["__builtins__"] = __builtins__
    sys.modules["__main__"] = mod
    sys.argv = [CELL]
    rc = 0
    try:
        tree = compile(src, CELL, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
        last = None
        if tree.body and type(tree.body[-1]) is _ast.Expr:
            last = compile(_ast.Expression(tree.body.pop().value), CELL, "eval", dont_inherit=True)
        exec(compile(tree, CELL, "exec", dont_inherit=True), ns)
        if last is not None:
            value = eval(last, ns)
            if value is not None:
                print(repr(value))
    except SystemExit as e:
        code = e.code
        if code is None:
            rc = 0
        elif isinstance(code, int):
            rc = code & 0xFF
        else:
            sys.stderr.write(str(code) + "\n")
            rc = 1
        if rc and os.getpid() == worker:
            out("exc", "SystemExit: " + str(code))
            out("etype", "SystemExit")
    except BaseException as e:
        rc = 1
        show_traceback(e, src)
        if os.getpid() == worker:
            out("exc", error_line(e)[:2000])
            out("etype", type(e).__name__)
    finish(rc)


CELL = C["cell"]


def worker():
    os.setpgid(0, 0)
    chunks = []
    while True:
        b = os.read(0, 1 << 16)
        if not b:
            break
        chunks.append(b)
    src = b"".join(chunks).decode("utf-8", "surrogatepass")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    harden(python_dirs())
    me = os.getpid()
    if C["guards"]:
        install_guards()
    else:
        prot("python_guards", "skipped: disabled")
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except Exception:
        pass
    run_user(src, me)


def main():
    os.set_inheritable(ST, False)
    if LIBC is not None:
        try:
            prctl(1, 9)
            prot("pdeathsig", "ok")
        except OSError as e:
            prot("pdeathsig", fail(e))
        if os.getppid() != C["parent"]:
            os._exit(1)
        try:
            prctl(36, 1)
            prot("subreaper", "ok")
        except OSError as e:
            prot("subreaper", fail(e))
    prot("session", "ok" if os.getsid(0) == MAIN else "failed")
    enter_namespaces()
    try:
        g = os.fork()
    except OSError as e:
        out("fatal", "fork failed: " + str(e))
        os._exit(1)
    if g == 0:
        try:
            worker()
        except BaseException as e:
            out("fatal", "sandbox setup failed: " + error_line(e))
            os._exit(70)
        os._exit(0)
    try:
        os.setpgid(g, g)
    except OSError:
        pass
    out("pid", g)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    status = None
    while status is None:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == g:
            status = st
    if status is not None:
        if os.WIFSIGNALED(status):
            out("signal", os.WTERMSIG(status))
        else:
            out("exit", os.WEXITSTATUS(status))
    sweep()
    out("done", "1")
    os._exit(0)


main()
'''


# ------------------------------------------------------------------------------------------------
# Parent side.
# ------------------------------------------------------------------------------------------------
def _cut_middle(text: str, max_chars: int) -> str:
    """Keep the head and the tail of ``text`` within about ``max_chars``, with a marker."""
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[... {omitted} characters omitted ...]\n{text[-tail:] if tail else ''}"


class _Capture:
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
            return _cut_middle(head, max_chars), True
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


class _UidLease:
    """A sandbox uid held exclusively (flock, so concurrent solver processes do not share it)."""

    _lock = threading.Lock()
    _next = 0

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd

    @classmethod
    def acquire(cls, base: int, count: int) -> _UidLease | None:
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
                _kill_workers(self._pid)


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


def _kill_workers(launcher_pid: int) -> None:
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


def _oom_kills() -> int | None:
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
class _Status:
    prot: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    exit: int | None = None
    signal: int | None = None
    exc: str | None = None
    etype: str | None = None
    fatal: str | None = None
    done: bool = False

    def parse(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            key, _, raw = line.partition(b" ")
            try:
                value = raw.decode("unicode_escape")
            except UnicodeDecodeError:
                value = raw.decode("utf-8", "replace")
            try:
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
            except ValueError:
                continue


_MEMORY_HINTS = ("memoryerror", "bad_alloc", "cannot allocate memory", "out of memory")


def _classify(
    st: _Status, reason: str | None, returncode: int | None, stderr: str, oom: bool
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


def _execute(
    code: str,
    timeout_s: float,
    memory_mb: int,
    max_output_chars: int,
    opts: SandboxOptions,
    cancel: CancelToken | None = None,
) -> ExecResult:
    t0 = time.monotonic()
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    lease = None
    if is_root and opts.drop_privileges:
        lease = _UidLease.acquire(opts.uid_base, opts.uid_count)
    workdir = tempfile.mkdtemp(prefix="aimo-sbx-")
    proc: subprocess.Popen[bytes] | None = None
    st = _Status()
    out, err = _Capture(4 * max_output_chars), _Capture(4 * opts.max_stderr_chars)
    reason: str | None = None
    oom_before = None
    try:
        if lease is not None:
            os.chown(workdir, lease.uid, lease.uid)
        cpu_s = opts.cpu_s if opts.cpu_s is not None else timeout_s + 1
        config = {
            "status_fd": 0,
            "parent": os.getpid(),
            "workdir": workdir,
            "uid": lease.uid if lease is not None else None,
            "ns": opts.namespaces,
            "guards": opts.python_guards,
            "memory": int(memory_mb) * 1024 * 1024,
            "cpu": max(1, math.ceil(cpu_s)),
            "fsize": int(opts.file_size_mb) * 1024 * 1024,
            "nproc": int(opts.max_procs),
            "nofile": int(opts.max_open_files),
            "tmpfs_mb": int(opts.tmpfs_mb),
            "linux": sys.platform.startswith("linux"),
            "hide": [] if is_root else [os.path.realpath(os.path.expanduser("~"))],
            "cell": CELL_FILENAME,
            "uid_note": "disabled" if not opts.drop_privileges else "no free sandbox uid",
        }
        oom_before = _oom_kills()
        status_r, status_w = os.pipe()
        config["status_fd"] = status_w
        argv = [opts.python or sys.executable, "-I", "-B", "-X", "utf8", "-c", _LAUNCHER,
                marshal.dumps(config).hex()]
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(status_w,), cwd=workdir, env=_env(workdir), start_new_session=True,
            )
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        if cancel is not None and cancel._attach(proc.pid):
            reason = "cancelled"
            _kill_workers(proc.pid)
        reason = _pump(proc, status_r, code, out, err, st, t0 + timeout_s, opts, cancel, reason)
    finally:
        if cancel is not None:
            cancel._attach(None)
        if proc is not None:
            _reap(proc, opts.grace_s)
        if not st.done and st.pid is not None and st.pid > 1 and st.pid != os.getpgrp():
            # The launcher died before sweeping: the worker's group may outlive it.
            with contextlib.suppress(OSError):
                os.killpg(st.pid, signal.SIGKILL)
        if lease is not None:
            if not st.done:
                _kill_uid(lease.uid)
            if not st.prot.get("private_tmp", "").startswith("ok"):
                _remove_uid_files(lease.uid, workdir)
            lease.release()
        _rmtree(workdir)
    duration = time.monotonic() - t0
    stderr_text, _ = err.text(opts.max_stderr_chars)
    stdout_text, truncated = out.text(max_output_chars)
    oom_after = _oom_kills() if st.signal == signal.SIGKILL else None
    oom = oom_before is not None and oom_after is not None and oom_after > oom_before
    status, line = _classify(st, reason, proc.returncode if proc else None, stderr_text, oom)
    if status is Status.MEMORY and line == "MemoryError":
        line = f"MemoryError: memory limit of {memory_mb} MB exceeded"
    return ExecResult(
        status=status,
        stdout=stdout_text,
        stderr=stderr_text,
        duration_s=duration,
        error_line=line,
        exit_code=st.exit,
        signal=st.signal,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        truncated=truncated,
        stdout_bytes=out.total,
        pid=st.pid,
        protections=dict(st.prot),
    )


def _pump(
    proc: subprocess.Popen[bytes],
    status_r: int,
    code: str,
    out: _Capture,
    err: _Capture,
    st: _Status,
    deadline: float,
    opts: SandboxOptions,
    cancel: CancelToken | None,
    reason: str | None,
) -> str | None:
    """Feed the code, drain stdout/stderr/status with bounded memory, enforce the limits."""
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
                _kill_workers(proc.pid)
                hard_end = now + opts.grace_s
            if reason is None and out.total + err.total > opts.max_output_bytes:
                reason = "output"
                _kill_workers(proc.pid)
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
        with contextlib.suppress(OSError):
            os.close(status_r)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()
    return reason


def _kill_group(launcher_pid: int) -> None:
    _kill_workers(launcher_pid)
    with contextlib.suppress(OSError):
        os.killpg(launcher_pid, signal.SIGKILL)


def _reap(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()


# ------------------------------------------------------------------------------------------------
# Public API.
# ------------------------------------------------------------------------------------------------
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


class Sandbox:
    """A bounded pool running code concurrently for asyncio callers.

    At most ``workers`` runs are in flight (the rest wait on a semaphore); each blocks a worker
    thread in ``select``, so the event loop stays responsive. Cancelling an awaiting task kills
    the run's processes before the cancellation propagates.
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

    @classmethod
    def from_policy(
        cls,
        policy: PolicyConfig,
        *,
        memory_mb: int = 2048,
        max_output_chars: int = 2000,
        options: SandboxOptions | None = None,
    ) -> Sandbox:
        """Pool sized and timed by the policy's ``code_workers`` and ``code_timeout_s``."""
        return cls(policy.code_workers, timeout_s=policy.code_timeout_s, memory_mb=memory_mb,
                   max_output_chars=max_output_chars, options=options)

    async def run(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        if self._closed:
            raise RuntimeError("Sandbox is closed")
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.workers)
        async with self._sem:
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
        missing = {k: v for k, v in result.protections.items() if not v.startswith("ok")}
        log.info("sandbox protections: %s", dict(result.protections))
        if missing:
            log.warning("sandbox protections not active here: %s", missing)

    def close(self) -> None:
        """Kill runs in flight and stop the worker threads."""
        self._closed = True
        for token in list(self._tokens):
            token.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    for name, state in probe_protections().items():
        print(f"{name:16} {state}")
