"""A bound, kept by the client, on how long a connection waits for its server.

A server that stops answering without closing its connections (a stopped process, a
host cut off by the network, a proxy that hangs) leaves a query waiting for as long as
TCP lets it. TCP keepalives and ``tcp_user_timeout`` give up only once the peer's
kernel stops acknowledging, which a stopped process's kernel, or a proxy's, never
does. :class:`Deadlines` bounds the wait from this side instead: a thread shuts down
the socket of a connection still waiting past its deadline, which the driver then
reports as a lost connection, and the caller, seeing :attr:`Watch.expired`, as a
server that did not answer in time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import weakref
from typing import Any

#: The watching thread leaves after this many idle checks in a row; the next watch
#: starts another.
_IDLE_CHECKS = 40

# Every Deadlines of the process, for the reset after fork().
_everyone: weakref.WeakSet[Deadlines] = weakref.WeakSet()


class Watch:
    """One connection's wait: its socket, and when it must have been answered."""

    __slots__ = ("deadline", "expired", "fileno")

    def __init__(self, fileno: int, deadline: float) -> None:
        self.fileno = fileno
        self.deadline = deadline
        self.expired = False


class Deadlines:
    """The waits of one store's connections, each bounded by ``seconds``.

    A caller calls :meth:`watch` with a connection before it sends anything,
    :meth:`renew` before each further statement (each wait is bounded, not a whole
    transaction of many), and :meth:`done` once it has its answers. A thread checks
    every ``seconds / 8`` (a quarter of a second at most), so a wait ends within about
    ``seconds`` and that.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._every = min(seconds / 8, 0.25)
        self._reset()
        _everyone.add(self)

    def _reset(self) -> None:
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, connection: Any, deadline: float | None = None) -> Watch:
        """Start bounding ``connection``'s wait (anything with a ``fileno()``), until
        ``deadline`` (a :func:`time.monotonic` time), by default ``seconds`` from now."""
        if deadline is None:
            deadline = time.monotonic() + self.seconds
        watch = Watch(connection.fileno(), deadline)
        with self._lock:
            self._watches.add(watch)
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="muscle-mem deadlines", daemon=True
                )
                try:
                    thread.start()
                    self._thread = thread
                except RuntimeError:
                    pass  # the interpreter is shutting down (writing what is pending): unbounded
        return watch

    def renew(self, watch: Watch) -> None:
        """Give ``watch``'s connection ``seconds`` from now for its next answer."""
        watch.deadline = time.monotonic() + self.seconds

    def done(self, watch: Watch) -> bool:
        """Stop watching; whether the deadline passed (the connection is then broken)."""
        with self._lock:
            self._watches.discard(watch)
        return watch.expired

    def _run(self) -> None:
        idle = 0
        while True:
            time.sleep(self._every)
            now = time.monotonic()
            with self._lock:
                late = [watch for watch in self._watches if watch.deadline <= now]
                for watch in late:
                    # Under the lock: a watch still here belongs to a connection in use,
                    # so its socket is still open, and is that connection's.
                    self._watches.discard(watch)
                    watch.expired = True
                    _shut_down(watch.fileno)
                idle = 0 if self._watches else idle + 1
                if idle >= _IDLE_CHECKS:
                    self._thread = None
                    return


def _shut_down(fileno: int) -> None:
    """Shut the socket down (not close it: its owner does that), so a wait on it ends
    at once, as when the server closes it."""
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fileno)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


def _forget_after_fork() -> None:
    # A child of fork() has none of its parent's threads, none of its waits (its
    # connections are the parent's), and maybe a lock the thread held: it starts afresh.
    for deadlines in list(_everyone):
        deadlines._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
