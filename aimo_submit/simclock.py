"""An asyncio event loop on a virtual clock, so hours of competition simulate in milliseconds.

The solver and scheduler read time only through ``loop.time()``; on this loop that is a number
that moves only when nothing is ready to run: the loop then jumps straight to its next timer.
Everything built on timers (``asyncio.sleep``, ``asyncio.wait_for``, ``asyncio.timeout``,
``loop.call_at``/``call_later``) therefore runs unchanged, in virtual time.

How: CPython's ``BaseEventLoop._run_once`` (read in the 3.11 source) computes the select
timeout as "time to the earliest timer" (0 when callbacks are ready) from ``self.time()`` and
passes it to ``self._selector.select(timeout)``. Our selector then polls the real one without
blocking (thread wake-ups through ``call_soon_threadsafe`` still work) and, if nothing real
happened, advances the virtual clock by ``timeout`` instead of sleeping; ``_run_once`` then
finds the timer due. With callbacks ready (timeout 0) it returns at once, skipping the syscall.
No private loop method is overridden.

A loop with nothing ready and no timer is waiting for another thread (or is deadlocked): the
selector then blocks on the real selector for at most ``stall_timeout_s`` real seconds and
raises :class:`VirtualClockStall` if nothing arrives, so a simulation bug fails loudly instead
of hanging.

Driven by a thread: ``VirtualEventLoop(driven=True)`` runs on its own thread (the runner's
``EventLoopThread``) while another thread, the driver, does synchronous work between waits, as
``Submission.predict`` does from the gateway's thread. The clock must not move while the driver
works (its work takes no time in the world being simulated), so it stands still except while
the driver blocks in :meth:`VirtualEventLoop.block_until`; that makes a driven run as
deterministic as a single-threaded one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import selectors
import threading
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

__all__ = ["VirtualClockSelector", "VirtualClockStall", "VirtualEventLoop", "run"]

T = TypeVar("T")


class VirtualClockStall(RuntimeError):
    """Nothing ready, no timer, no real event: the program waits for something that never comes."""


class VirtualClockSelector(selectors.BaseSelector):
    """A real selector whose ``select(timeout)`` advances a virtual clock instead of sleeping."""

    def __init__(self, start: float = 0.0, stall_timeout_s: float | None = 10.0,
                 held: bool = False) -> None:
        self._real = selectors.DefaultSelector()
        self.now = float(start)
        self.stall_timeout_s = stall_timeout_s
        self.jumps = 0
        """How many times the clock jumped (a cheap measure of simulation work)."""
        self.held = held
        """The driving thread is working: the clock stands still (touched on the loop thread)."""

    # -- delegation to the real selector (the loop's self-pipe lives there) ---------------------
    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    # -- the one change --------------------------------------------------------------------------
    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout == 0:
            # Callbacks are ready: skip the syscall. A thread's call_soon_threadsafe lands in
            # the ready queue directly; its wake-up byte is drained before the next jump.
            return []
        events = self._real.select(0)
        if events:
            return events
        if self.held:  # wait, without moving the clock, for the driver's next call
            return self._real.select(self.stall_timeout_s)
        if timeout is None:
            events = self._real.select(self.stall_timeout_s)
            if not events:
                raise VirtualClockStall(
                    f"virtual loop stalled at t={self.now:.3f}: nothing ready, no timer, and no "
                    f"wake-up from another thread within {self.stall_timeout_s} s"
                )
            return events
        self.now += timeout
        self.jumps += 1
        return []


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """``SelectorEventLoop`` whose ``time()`` is virtual; see the module docstring."""

    def __init__(self, start: float = 0.0, stall_timeout_s: float | None = 10.0, *,
                 driven: bool = False) -> None:
        self._vclock = VirtualClockSelector(start, stall_timeout_s, held=driven)
        super().__init__(self._vclock)

    def time(self) -> float:
        return self._vclock.now

    @property
    def jumps(self) -> int:
        return self._vclock.jumps

    def _wake_soon(self, wake: Any) -> Any:
        def done(_: object) -> None:
            if not self.is_closed():  # a future that ends after the run has nobody to wake
                self.call_soon_threadsafe(wake)

        return done

    def block_until(self, future: concurrent.futures.Future[Any], timeout: float) -> bool:
        """From the driving thread: wait until ``future`` is done or ``timeout`` virtual seconds
        pass; True if it is done. The clock runs only during this call (``driven=True``)."""
        if future.done():
            return True
        woke = threading.Event()
        timer: list[asyncio.TimerHandle] = []

        def wake() -> None:  # on the loop thread: the driver works again, the clock stops
            if not woke.is_set():
                self._vclock.held = True
                for handle in timer:
                    handle.cancel()
                woke.set()

        def arm() -> None:  # on the loop thread: the driver waits, the clock may run
            timer.append(self.call_at(self.time() + max(0.0, timeout), wake))
            future.add_done_callback(self._wake_soon(wake))
            self._vclock.held = False

        self.call_soon_threadsafe(arm)
        while not woke.wait(1.0):
            if not self.is_running():
                raise VirtualClockStall("the virtual loop stopped while a thread waited on it")
        return future.done()


def run(
    coro: Coroutine[Any, Any, T], *, start: float = 0.0, stall_timeout_s: float | None = 10.0
) -> T:
    """``asyncio.run`` on a fresh virtual-time loop: run ``coro``, clean up, close the loop."""
    loop = VirtualEventLoop(start, stall_timeout_s)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does with tasks left behind: cancel them and let them finish."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
