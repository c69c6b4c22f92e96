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

Modules: ``launcher`` (the child-side program, run as a script), ``process`` (the parent side of
one run: start, pump, classify, kill, uid leases), ``pool`` (``Sandbox``, the asyncio pool),
``session`` (``PythonSession``: a persistent interpreter per attempt, Jupyter-kernel style),
``result`` and ``options`` (the data both sides share). ``python -m aimo_submit.sandbox`` prints
which protections this host grants.
"""

from aimo_submit.sandbox.options import DEFAULT_OPTIONS, SandboxOptions
from aimo_submit.sandbox.pool import Sandbox
from aimo_submit.sandbox.process import CELL_FILENAME, CancelToken, probe_protections, run_code
from aimo_submit.sandbox.result import ExecResult, Status
from aimo_submit.sandbox.session import RESTART_NOTE, PythonSession

__all__ = [
    "CELL_FILENAME",
    "DEFAULT_OPTIONS",
    "CancelToken",
    "ExecResult",
    "PythonSession",
    "RESTART_NOTE",
    "Sandbox",
    "SandboxOptions",
    "Status",
    "probe_protections",
    "run_code",
]
