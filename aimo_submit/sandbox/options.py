"""The sandbox's hardening knobs (besides the everyday three: time, memory, output size)."""

from __future__ import annotations

from dataclasses import dataclass


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
    interrupt_grace_s: float = 1.0
    """PythonSession: after a timeout's SIGINT, how long the call gets to stop before the whole
    interpreter is killed (code stuck in C, or swallowing KeyboardInterrupt)."""
    session_cpu_s: float = 1800.0
    """PythonSession: CPU-time limit of one interpreter over all its calls (RLIMIT_CPU counts a
    process's whole life; each call is bounded by its wall-clock timeout). Past it the
    interpreter is killed and the next call starts a fresh one."""

    def __post_init__(self) -> None:
        if self.max_procs < 1 or self.max_open_files < 16 or self.file_size_mb < 0:
            raise ValueError("need max_procs >= 1, max_open_files >= 16, file_size_mb >= 0")
        if self.uid_count < 1 or self.uid_base < 1:
            raise ValueError("need uid_base >= 1 and uid_count >= 1")
        if self.interrupt_grace_s <= 0 or self.session_cpu_s < 1:
            raise ValueError("need interrupt_grace_s > 0 and session_cpu_s >= 1")


DEFAULT_OPTIONS = SandboxOptions()
