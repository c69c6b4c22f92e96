"""What a sandboxed run returns: its status, bounded output and the text fed back to the model."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


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
            text = cut_middle(text, max_chars)
        return text


def cut_middle(text: str, max_chars: int) -> str:
    """Keep the head and the tail of ``text`` within about ``max_chars``, with a marker."""
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[... {omitted} characters omitted ...]\n{text[-tail:] if tail else ''}"
