"""Round trips counted on the wire: a relay between PostgreSQL clients and their server.

Every request a client waits for ends with the server's ReadyForQuery message (after a
simple query, or after the Sync that closes an extended-protocol exchange), so counting
those counts round trips, whatever the driver does above the wire. The relay counts a
message before passing it on: when a client's call returns, its round trips are counted.
It also keeps the text of the simple queries clients send (BEGIN, COMMIT...).
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

READY_FOR_QUERY = ord("Z")
SIMPLE_QUERY = ord("Q")


class RoundTrips:
    """A relay to the server ``url`` names; connect to :attr:`url` instead.

    :attr:`count` is the number of round trips made through it so far, by every client
    connection; :attr:`queries` the simple queries sent, in order.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "localhost", parts.port or 5432
        if host.startswith("/"):  # libpq's socket directory
            self._target: tuple[int, object] = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
        else:
            self._target = (socket.AF_INET, (host, port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        relay_port = self._listener.getsockname()[1]
        user = parts.username or ""
        if parts.password is not None:
            user += f":{parts.password}"
        netloc = f"{user}@127.0.0.1:{relay_port}" if user else f"127.0.0.1:{relay_port}"
        # Neither TLS nor GSS encryption: the relay reads the messages as they pass.
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
        query += [("sslmode", "disable"), ("gssencmode", "disable")]
        self.url = urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))
        self.count = 0
        self.queries: list[str] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> RoundTrips:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            family, address = self._target
            server = socket.socket(family, socket.SOCK_STREAM)
            server.connect(address)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        # The client's first message (the startup packet) has no type byte; every other
        # message, both ways, is a type byte, a length (counting itself), then the body.
        pending, untyped = b"", not from_server
        try:
            while data := source.recv(65536):
                pending += data
                while True:
                    head = 0 if untyped else 1
                    if len(pending) < head + 4:
                        break
                    end = head + int.from_bytes(pending[head : head + 4], "big")
                    if len(pending) < end:
                        break
                    message, pending, untyped = pending[:end], pending[end:], False
                    self._seen(message, from_server)
                sink.sendall(data)
        except OSError:
            pass  # one side went away: so does the other
        finally:
            source.close()
            sink.close()

    def _seen(self, message: bytes, from_server: bool) -> None:
        with self._lock:
            if from_server and message[0] == READY_FOR_QUERY:
                self.count += 1
            elif not from_server and message[:1] == bytes([SIMPLE_QUERY]):
                self.queries.append(message[5:].rstrip(b"\0").decode())
