"""A TCP proxy in front of the test PostgreSQL server, which a test cuts and restores.

Cut, it does what a server that stopped does to its clients: every open connection is
dropped and new ones are refused. Restored stalled, it does what an unreachable host
does: connections are accepted and nothing ever answers. Stalled while connections are
open (:meth:`Proxy.stall`), it does what a server stopped with SIGSTOP, or a network
partition, does to them: what they send is taken and nothing comes back. And it can
lose one reply (:meth:`Proxy.lose_reply_to`): the server gets a request and answers,
and the connection drops before the answer reaches the client, as when a COMMIT's
acknowledgement is lost. The real server, which other tests share, is never touched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit


class Proxy:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._lock = threading.Lock()
        self._links: list[socket.socket] = []
        self._stalled = False
        self._flowing = threading.Event()  # cleared: open connections are stalled
        self._flowing.set()
        self._trap: bytes | None = None
        self.lost = 0  # replies lost so far
        self._listener: socket.socket | None = None
        self.port = 0
        self.restore()
        user = f"{parts.username}@" if parts.username else ""
        self.url = urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def restore(self, *, stalled: bool = False) -> None:
        """Listen again (on the same port): passing connections through, or, ``stalled``,
        accepting them and never answering, as an unreachable host does."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._stalled = stalled
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stall(self) -> None:
        """Stop answering on every connection, open or new, without closing any, as a
        server stopped with SIGSTOP does."""
        self._flowing.clear()

    def resume(self) -> None:
        """Answer again, as a stopped server continued: what was held goes through."""
        self._flowing.set()

    def lose_reply_to(self, request: bytes) -> None:
        """Pass the next request that holds ``request`` to the server, then drop that
        connection as soon as the server answers it, the answer never delivered."""
        with self._lock:
            self._trap = request

    def cut(self) -> None:
        """Drop every connection and refuse new ones: the server stopped."""
        with self._lock:
            listener, self._listener = self._listener, None
            links, self._links = self._links, []
        if listener is not None:
            _close(listener)  # shut down first: that wakes the thread blocked in accept()
        for link in links:
            _close(link)

    def close(self) -> None:
        self._flowing.set()  # (a stalled pump would otherwise wait for ever)
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    return
                self._links.append(client)
                stalled = self._stalled
            if stalled:
                continue  # held open, never answered
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._links.append(upstream)
            losing = threading.Event()  # set: the next answer on this link is lost

            def request(data: bytes, losing: threading.Event = losing) -> bool:
                with self._lock:
                    if self._trap is not None and self._trap in data:
                        self._trap = None
                        losing.set()  # before the request goes: its answer can't slip by
                return True

            def answer(data: bytes, losing: threading.Event = losing) -> bool:
                if not losing.is_set():
                    return True
                with self._lock:
                    self.lost += 1
                return False

            for source, sink, passes in ((client, upstream, request), (upstream, client, answer)):
                threading.Thread(
                    target=self._pump, args=(source, sink, passes), daemon=True
                ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, passes: Callable[[bytes], bool]
    ) -> None:
        """Copy ``source`` to ``sink`` while the proxy flows, until either side closes
        or ``passes`` says a chunk may not pass: then the link is dropped."""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                if not passes(data):
                    break
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
