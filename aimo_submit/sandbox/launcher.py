"""The sandbox's intermediate process, run as a script: ``python -I -B -X utf8 launcher.py HEX``.

``HEX`` is a ``marshal``-ed config dict (see ``process.Launch``). The launcher starts in a new
session, enters namespaces, forks the worker (pid 1 of the new pid namespace when there is one),
waits for it, then reaps and sweeps whatever it left. The worker hardens itself and runs the
code: once (mode ``"once"``: the code is stdin, up to EOF) or cell after cell (mode
``"session"``: ``b"<length>\\n<code>"`` frames on stdin, one persistent ``__main__`` namespace,
``end <rc>`` on the status pipe after each cell; SIGUSR1 to the launcher becomes SIGINT to the
worker, which interrupts the running cell and nothing else).

Standard library only, and only builtin modules imported up front (``ctypes`` when on Linux), so
a run costs little more than interpreter start-up. Status goes to the parent as ``key value``
lines (value ``unicode_escape``-d) on the pipe ``status_fd``. Importing this module runs nothing
(tests import its pure helpers); ``main()`` runs only as a script.
"""

# try/except/pass, not contextlib.suppress: contextlib is not builtin and costs every run 2-3 ms.
# ruff: noqa: SIM105

from __future__ import annotations

import _signal
import builtins
import marshal
import os
import sys
import time

TYPE_CHECKING = False  # typing is not imported at run time: it would cost every run milliseconds
if TYPE_CHECKING:
    from typing import Any

C: dict[str, Any] = {}
"""The run's config (set by ``main``)."""
ST = -1
"""Status pipe fd."""
MAIN = 0
"""The launcher's pid."""
ROOT = False
LIBC: Any = None
ctypes: Any = None
NS: set[str] = set()
"""Namespaces entered."""
WORKER = 0
"""The worker's pid, as the launcher sees it (0 once reaped)."""
DROPPED = False
"""The worker runs under the sandbox uid."""

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
NS_FLAGS = {"mountns": 0x20000, "ipcns": 0x08000000, "netns": 0x40000000, "pidns": 0x20000000}
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 24, 28
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 36, 38
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1
SIGKILL = 9


def out(key: str, val: object = "") -> None:
    data = str(val).encode("unicode_escape")[:3000]
    try:
        os.write(ST, key.encode() + b" " + data + b"\n")
    except OSError:
        pass


def prot(name: str, state: str) -> None:
    out("prot", name + "=" + state)


def fail(e: BaseException) -> str:
    return "failed: " + (e.strerror if isinstance(e, OSError) and e.strerror else repr(e))


def check(ret: int) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def prctl(option: int, arg: int) -> int:
    ul = ctypes.c_ulong
    return check(LIBC.prctl(option, ul(arg), ul(0), ul(0), ul(0)))


def _enc(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(src: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    check(LIBC.mount(_enc(src), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data)))


def mount_setattr(path: str, recursive: bool, set_ro: bool) -> None:
    """Make a mount (tree) read-only or writable again (mount_setattr(2), Linux 5.12+)."""
    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY if set_ro else 0,
                                 0 if set_ro else MOUNT_ATTR_RDONLY, 0, 0)
    check(LIBC.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD),
                       os.fsencode(path), ctypes.c_uint(AT_RECURSIVE if recursive else 0),
                       ctypes.byref(attr), ctypes.c_size_t(32)))


def enter_namespaces() -> None:
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
                f.write(f"{uid} {uid} 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"{gid} {gid} 1")
        except OSError as e:
            for name in ("userns", *NS_FLAGS):
                prot(name, fail(e))
            return
        NS.update(NS_FLAGS)
        NS.add("userns")
        for name in ("userns", *NS_FLAGS):
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


def kill_children() -> bool:
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
                os.kill(int(entry), SIGKILL)
            except OSError:
                pass
    return found


def reap() -> bool:
    """Reap what is dead; True while children remain."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def kill_uid(uid: int) -> None:
    """kill(-1) as the sandbox uid: every process of that uid (it is ours alone while leased)."""
    try:
        os.setresuid(uid, uid, 0)
    except OSError:
        return
    try:
        os.kill(-1, SIGKILL)
    except OSError:
        pass
    finally:
        os.setresuid(0, 0, 0)


def sweep() -> None:
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


def python_dirs(path: list[str]) -> list[str]:
    """The topmost existing directories of ``path`` (the worker must keep seeing them)."""
    dirs = []
    for p in path:
        if not p:
            continue
        p = os.path.realpath(p)
        if os.path.isfile(p):
            p = os.path.dirname(p)
        if os.path.isdir(p) and p not in dirs:
            dirs.append(p)
    dirs.sort(key=len)
    kept: list[str] = []
    for p in dirs:
        if not any(under(p, k) for k in kept):
            kept.append(p)
    return kept


def under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def access_check(paths: list[str], uid: int) -> tuple[list[str], list[str]]:
    """Topmost directories the uid may not enter (hide them), and paths it cannot use at all."""
    blocked: list[str] = []
    unfixable: list[str] = []
    for p in paths:
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
                if cur in (p, "/"):
                    unfixable.append(p)
                elif cur not in blocked:
                    blocked.append(cur)
                break
    return blocked, unfixable


def setup_mounts(keeps: list[str], blocked: list[str]) -> bool:
    """Private /tmp-like dirs, hidden ``blocked`` dirs, read-only root; True if hiding worked."""
    workdir = os.path.realpath(C["workdir"])
    try:
        mount(None, "/", None, MS_REC | MS_PRIVATE)
    except OSError as e:
        prot("private_mounts", fail(e))
        return False
    scratch: list[str] = []
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        d = os.path.realpath(d)
        if os.path.isdir(d) and d not in scratch:
            scratch.append(d)
    hides = sorted(set(scratch) | set(blocked) | set(C["hide"]), key=len)
    tops: list[str] = []
    for h in hides:
        if h != "/" and os.path.isdir(h) and not any(under(h, t) for t in tops):
            tops.append(h)
    fds = {}
    ok = True
    not_hidden: list[str] = []
    try:
        for k in [*keeps, workdir]:
            if k == workdir or any(under(k, t) for t in tops):
                fds[k] = os.open(k, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for t in tops:
            mode = "1777" if t in scratch else "755"
            try:
                mount("tmpfs", t, "tmpfs", MS_NOSUID | MS_NODEV,
                      f"mode={mode},size={C['tmpfs_mb']}m")
            except OSError as e:
                ok = False
                not_hidden.append(t)
                prot("hide " + t, fail(e))
        for k, fd in fds.items():
            try:
                os.makedirs(k, 0o755, exist_ok=True)
                mount(f"/proc/self/fd/{fd}", k, None, MS_BIND | MS_REC)
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
        hidden = [t for t in tops if t not in scratch]
        if not_hidden and any(t not in scratch for t in not_hidden):
            prot("hidden_dirs", "failed: " + ",".join(t for t in not_hidden if t not in scratch))
        else:
            prot("hidden_dirs", "ok: " + (",".join(hidden) or "none needed"))
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


def count_tasks(uid: int) -> int:
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


def set_rlimits() -> None:
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
            _, cur_hard = resource.getrlimit(rid)
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard)
                soft = min(soft, hard)
            resource.setrlimit(rid, (soft, hard))
            prot(name, "ok")
        except (OSError, ValueError) as e:
            prot(name, fail(e))


def drop_caps() -> None:
    """Empty the capability sets of a process that keeps uid 0 (or is root of a user ns)."""
    try:
        for cap in range(64):
            try:
                prctl(PR_CAPBSET_DROP, cap)
            except OSError:
                break
        try:
            prctl(PR_SET_SECUREBITS, 0x2F)
        except OSError:
            pass
        hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        check(LIBC.capset(ctypes.byref(hdr), ctypes.byref(data)))
        prot("caps_dropped", "ok")
    except OSError as e:
        prot("caps_dropped", fail(e))


def harden(keeps: list[str]) -> None:
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
            global DROPPED
            DROPPED = True
            prot("uid_drop", f"ok uid={uid}")
        except OSError as e:
            prot("uid_drop", fail(e))
    if LIBC is None:
        prot("no_new_privs", "skipped: no ctypes/libc")
        return
    if not dropped:
        drop_caps()
    try:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prot("no_new_privs", "ok")
    except OSError as e:
        prot("no_new_privs", fail(e))
    try:
        prctl(PR_SET_PDEATHSIG, SIGKILL)
    except OSError:
        pass
    if "pidns" not in NS and os.getppid() != MAIN:
        os._exit(1)


def install_guards() -> None:
    """An audit hook refusing fork/exec/kill/sockets: a readable error instead of a dead run."""
    getpid, getpgrp = os.getpid, os.getpgrp
    refuse = frozenset(("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn",
                        "os.spawn", "subprocess.Popen", "socket.connect", "socket.bind",
                        "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                        "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"))
    watch = refuse | {"os.kill", "os.killpg", "socket.__new__"}

    def hook(event: str, args: tuple[Any, ...]) -> None:
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


def error_line(e: BaseException) -> str:
    """The last line of a traceback: ``"ZeroDivisionError: division by zero"``."""
    t = type(e)
    name = t.__qualname__ if t.__module__ in ("builtins", "__main__") else (
        t.__module__ + "." + t.__qualname__)
    try:
        msg = str(e)
    except BaseException:
        msg = "<unprintable>"
    return (name + ": " + msg) if msg else name


def show_traceback(e: BaseException, src: str) -> None:
    """Print the traceback to stderr without the launcher's own frames."""
    try:
        import linecache
        import traceback

        cell = C["cell"]
        linecache.cache[cell] = (len(src), None, src.splitlines(True), cell)
        here = show_traceback.__code__.co_filename
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == here:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
    except BaseException:
        sys.stderr.write(error_line(e) + "\n")


def flush() -> None:
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            pass


def finish(rc: int) -> None:
    """End the worker like an interpreter would: threads joined, atexit run, streams flushed."""
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    flush()
    os._exit(rc)


def new_main() -> dict[str, Any]:
    """A fresh ``__main__`` module for the model's code; returns its namespace."""
    mod = type(sys)("__main__")
    ns = mod.__dict__
    ns["__builtins__"] = builtins
    sys.modules["__main__"] = mod
    sys.argv = [C["cell"]]
    return ns


def run_cell(src: str, ns: dict[str, Any], worker: int, interruptible: bool = False) -> int:
    """Run ``src`` in ``ns``, printing a final bare expression's repr (as a notebook does).

    Returns the exit code (0, or 1 for an exception). Only the worker itself reports the
    exception on the status pipe (code may fork: its children end through here too). With
    ``interruptible``, SIGINT raises KeyboardInterrupt inside the code and nowhere else.
    """
    import _ast

    cell = C["cell"]
    rc = 0
    try:
        try:
            if interruptible:
                _signal.signal(_signal.SIGINT, _signal.default_int_handler)
            tree = compile(src, cell, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
            last = None
            if tree.body and type(tree.body[-1]) is _ast.Expr:
                last = compile(_ast.Expression(tree.body.pop().value), cell, "eval",
                               dont_inherit=True)
            exec(compile(tree, cell, "exec", dont_inherit=True), ns)
            if last is not None:
                value = eval(last, ns)
                if value is not None:
                    print(repr(value))
        finally:
            if interruptible:
                _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
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
    return rc


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def read_cell(fd: int, buf: bytearray) -> str | None:
    """The next ``b"<length>\\n<code>"`` frame from ``fd``; None at end of input."""
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            size = int(buf[:nl])
            if len(buf) >= nl + 1 + size:
                src = bytes(buf[nl + 1:nl + 1 + size])
                del buf[:nl + 1 + size]
                return src.decode("utf-8", "surrogatepass")
        b = os.read(fd, 1 << 16)
        if not b:
            return None
        buf += b


def sweep_strays() -> None:
    """Kill and reap what a cell left running, sparing the worker itself.

    Only where ``kill(-1)`` reaches sandbox processes alone: as pid 1 of our pid namespace, or
    under the sandbox uid. Through libc, so the Python guards' refusal of kill(-1) does not
    apply to the sandbox's own housekeeping.
    """
    if LIBC is None or not ("pidns" in NS or DROPPED):
        return
    LIBC.kill(-1, SIGKILL)
    end = time.monotonic() + 0.05
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > end:
                return
            time.sleep(0.001)


def serve_cells(fd: int, me: int) -> None:
    """Session mode: run cell after cell in one namespace; ``end <rc>`` after each."""
    ns = new_main()
    buf = bytearray()
    while True:
        try:
            _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
            src = read_cell(fd, buf)
        except KeyboardInterrupt:  # a late interrupt that raced the end of the last cell
            continue
        if src is None:
            flush()
            os._exit(0)
        try:
            rc = run_cell(src, ns, me, interruptible=True)
        except KeyboardInterrupt:  # raised after the cell, while its handler was being reset
            out("exc", "KeyboardInterrupt")
            out("etype", "KeyboardInterrupt")
            rc = 1
        if os.getpid() != me:  # a child the cell forked must not serve the next cell
            finish(rc)
        sweep_strays()
        flush()
        out("end", rc)


def worker() -> None:
    os.setpgid(0, 0)
    if C["mode"] == "session":
        src = None
        fd = os.dup(0)  # the cell pipe; the code's own stdin is /dev/null
    else:
        src = read_all(0).decode("utf-8", "surrogatepass")
        fd = -1
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    harden(python_dirs(sys.path))
    me = os.getpid()
    if C["guards"]:
        install_guards()
    else:
        prot("python_guards", "skipped: disabled")
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except Exception:
        pass
    if src is None:
        out("ready", "1")
        serve_cells(fd, me)
    else:
        finish(run_cell(src, new_main(), me))


def interrupt(_signum: int, _frame: object) -> None:
    """SIGUSR1 from the parent: SIGINT to the worker (our child, so its pid is not reused)."""
    if WORKER:
        try:
            os.kill(WORKER, _signal.SIGINT)
        except OSError:
            pass


def setup(config: dict[str, Any]) -> None:
    global C, ST, MAIN, ROOT, LIBC, ctypes
    C = config
    ST = C["status_fd"]
    MAIN = os.getpid()
    ROOT = os.geteuid() == 0
    if C["linux"]:
        try:
            import ctypes as _ctypes

            ctypes = _ctypes
            LIBC = ctypes.CDLL(None, use_errno=True)
        except Exception:
            LIBC = None


def main(argv: list[str]) -> None:
    global WORKER
    setup(marshal.loads(bytes.fromhex(argv[1])))
    os.set_inheritable(ST, False)
    if LIBC is not None:
        try:
            prctl(PR_SET_PDEATHSIG, SIGKILL)
            prot("pdeathsig", "ok")
        except OSError as e:
            prot("pdeathsig", fail(e))
        if os.getppid() != C["parent"]:
            os._exit(1)
        try:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
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
    WORKER = g
    _signal.signal(_signal.SIGUSR1, interrupt)
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
            WORKER = 0
            status = st
    if status is not None:
        if os.WIFSIGNALED(status):
            out("signal", os.WTERMSIG(status))
        else:
            out("exit", os.WEXITSTATUS(status))
    sweep()
    out("done", "1")
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
