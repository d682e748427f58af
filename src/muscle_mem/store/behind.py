"""Writing behind: what a store keeps to write later, and the thread that writes it.

A store whose every write costs a network round trip (PostgreSQL) hands the bookkeeping
of its hits (counts, last-use times, the run log line) to a :class:`Behind` instead of
waiting for it: the hit returns at once, and a thread writes everything pending in one
batch, at the latest :data:`FLUSH_EVERY_S` after it was added. What is pending is lost
only when the process dies without exiting normally (killed, ``os._exit()``, a power
cut): a normal exit, :meth:`Behind.close` and every :meth:`Behind.flush` write it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from ..errors import StoreError

logger = logging.getLogger("muscle_mem")

#: A pending item is written this long after it was added, at the latest (plus the time
#: the write takes): what a crash can lose is at most the last FLUSH_EVERY_S of it.
FLUSH_EVERY_S = 0.5
#: This many pending items wake the writer before its time: a busy worker writes in
#: batches of about this size rather than letting one grow.
FLUSH_AT = 500
#: With this many pending (the writer failing, or not keeping up), the thread that adds
#: one writes them itself: memory stays bounded, and an error reaches the caller.
PENDING_MAX = 10_000

Item = TypeVar("Item")

# Every Behind in the process, for the writes at exit and the reset after fork().
_everyone: weakref.WeakSet[Behind[Any]] = weakref.WeakSet()


class Behind(Generic[Item]):
    """Items waiting to be written, oldest first, by ``write`` (which takes a batch
    and writes all of it or raises :class:`StoreError`) to the store at ``url``.

    Writes are serialised and keep the items' order: after :meth:`flush` returns,
    everything added before the call is written, so a write the caller makes next comes
    after it. :meth:`settle` does that for every Behind of the process that writes to
    the same URL (several store objects on one database).
    """

    def __init__(self, write: Callable[[Sequence[Item]], None], url: str) -> None:
        self._write = write
        self.url = url
        self._reset()
        _everyone.add(self)

    def _reset(self) -> None:
        self._pending: list[Item] = []
        # How many of the first pending items are a batch whose write failed: it is
        # written again as it was, alone, so a write that was committed but whose
        # acknowledgement was lost is the same batch the second time (which the store
        # can then tell it has: see postgres.py), not a part of a bigger one.
        self._failed = 0
        self._writes = 0  # writes tried, and what the last one raised if it failed
        self._failure: str | None = None
        self._lock = threading.Lock()  # guards _pending, _writer and _closed
        self._writing = threading.Lock()  # held for a whole write: one at a time, in order
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, item: Item) -> None:
        """Keep ``item`` to be written within :data:`FLUSH_EVERY_S`."""
        with self._lock:
            self._pending.append(item)
            count, alone = len(self._pending), self._closed
            if alone:
                pass  # written below, by the caller: no thread outlives close()
            elif self._writer is None:
                writer = threading.Thread(target=self._run, name="muscle-mem writer", daemon=True)
                try:
                    writer.start()
                    self._writer = writer
                except RuntimeError:  # the interpreter is shutting down: no new threads
                    alone = True
            elif count >= FLUSH_AT:
                self._wake.set()
        if alone or count >= PENDING_MAX:
            self.flush()

    def flush(self) -> None:
        """Write everything pending now, in the caller's thread. On failure the items
        stay pending, in their order, and the :class:`StoreError` is raised. A write
        that failed while this one waited for it is not tried again at once: its error
        is raised (a caller waits for the store's timeout once, not twice)."""
        seen = self._writes
        with self._writing:
            if self._writes != seen and self._failure is not None:
                raise StoreError(self._failure)
            while True:
                with self._lock:
                    size, retried = self._failed or len(self._pending), self._failed > 0
                    batch, self._pending = self._pending[:size], self._pending[size:]
                    self._failed = 0
                if not batch:
                    return
                self._writes += 1
                try:
                    self._write(batch)
                except BaseException as error:
                    with self._lock:
                        self._pending[:0] = batch
                        self._failed = len(batch)
                    self._failure = str(error) if isinstance(error, StoreError) else None
                    raise
                self._failure = None
                if not retried:
                    return

    def settle(self) -> None:
        """:meth:`flush` this and every other Behind of the process writing to the same
        URL: what any store object of this process has pending there is written."""
        for behind in list(_everyone):
            if behind.url == self.url and behind is not self:
                behind.flush()
        self.flush()

    def close(self) -> None:
        """Stop the writer and write what is pending. What can't be written is logged,
        with how much was lost, rather than raised: the store is closing anyway."""
        with self._lock:
            self._closed = True
            writer = self._writer
        self._wake.set()
        if writer is not None and writer is not threading.current_thread():
            writer.join()
        self._final_flush()

    def _final_flush(self) -> None:
        try:
            self.flush()
        except StoreError as error:
            logger.warning(
                "muscle-mem: the bookkeeping of %d run(s) (hit counts, run log lines) could "
                "not be written to %s and is lost: %s",
                len(self._pending),
                self.url,
                error,
            )
            with self._lock:
                self._pending = []
                self._failed = 0

    def _run(self) -> None:
        failing = False
        try:
            while True:
                self._wake.wait(FLUSH_EVERY_S)
                self._wake.clear()
                try:
                    if not self._closed:  # else close() writes the rest, in its own thread
                        self.flush()
                        failing = False
                except StoreError as error:
                    if not failing:  # once per outage, not every FLUSH_EVERY_S
                        logger.warning(
                            "muscle-mem: could not write the bookkeeping of %d run(s) to %s; "
                            "kept, and tried again: %s",
                            len(self._pending),
                            self.url,
                            error,
                        )
                    failing = True
                with self._lock:  # deciding and leaving at once: add() sees either
                    if not self._pending or self._closed:
                        self._writer = None
                        return
        except BaseException:
            with self._lock:
                self._writer = None  # the next add() starts another
            raise


@atexit.register
def _write_all_at_exit() -> None:
    """A process that exits normally writes what it has pending, closed store or not."""
    for behind in list(_everyone):
        if len(behind):
            behind._final_flush()


def _forget_after_fork() -> None:
    # A child of fork() inherits its parent's pending items (the parent writes them),
    # none of its threads, and maybe a lock one of them held: it starts afresh.
    for behind in list(_everyone):
        behind._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
