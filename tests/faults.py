"""A TCP relay between the app and a real PostgreSQL that breaks the link exactly at COMMIT.

Shutting a database down under load hits the moment a COMMIT is under way about once in a
thousand writes; this relay hits it every time. It forwards bytes untouched, and when
armed it acts on the first COMMIT it sees (psycopg sends it as a simple query, so the
bytes `COMMIT\\0` are in the stream):

- "lose_answer": the COMMIT reaches the server and commits; its answer never comes back,
  and the link is cut. The app cannot know whether it committed.
- "drop": the link is cut before the COMMIT reaches the server, which rolls back.
- "stall": the COMMIT reaches the server and commits; every later answer on that link is
  swallowed, and the link is left open (a dead path, a lost NAT entry). Only this link is
  dead: new connections reach the server at once.

After either, new connections can be refused for a while (the database "stays away").
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

COMMIT = b"COMMIT\x00"


class FaultyLink:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "pass"
        self.refuse_seconds = 0.0
        self.refuse_until = 0.0
        self.tripped = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode: str, refuse_seconds: float = 0.0) -> None:
        assert mode in {"lose_answer", "drop", "stall"}
        with self._lock:
            self.mode, self.refuse_seconds = mode, refuse_seconds
            self.tripped.clear()

    def calm(self) -> None:
        """Disarmed, and past any refusal: the next test starts with a working link."""
        with self._lock:
            self.mode = "pass"
            wait = self.refuse_until - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}?connect_timeout=3"

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            cut = threading.Event()  # set: swallow the server's next answer, then cut
            stall = threading.Event()  # set with cut: swallow every answer, cut nothing
            threading.Thread(
                target=self._upstream, args=(client, server, cut, stall), daemon=True
            ).start()
            threading.Thread(
                target=self._downstream, args=(server, client, cut, stall), daemon=True
            ).start()

    def _trip(self) -> str:
        with self._lock:
            mode, self.mode = self.mode, "pass"
            if mode != "pass":
                self.refuse_until = time.monotonic() + self.refuse_seconds
        return mode

    @staticmethod
    def _cut(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _upstream(
        self,
        client: socket.socket,
        server: socket.socket,
        cut: threading.Event,
        stall: threading.Event,
    ) -> None:
        for chunk in _chunks(client):
            if COMMIT in chunk and self.mode != "pass":
                mode = self._trip()
                if mode == "drop":
                    # Marked before the cut: the app may answer its request (and the test
                    # look) before this thread runs again.
                    self.tripped.set()
                    self._cut(client, server)
                    return
                if mode == "stall":
                    stall.set()
                if mode in {"lose_answer", "stall"}:
                    cut.set()
            try:
                server.sendall(chunk)
            except OSError:
                break
        self._cut(client, server)

    def _downstream(
        self,
        server: socket.socket,
        client: socket.socket,
        cut: threading.Event,
        stall: threading.Event,
    ) -> None:
        for chunk in _chunks(server):
            if stall.is_set():  # committed; this answer and every later one never arrive
                self.tripped.set()
                continue
            if cut.is_set():  # the answer to COMMIT: committed, and never delivered
                self.tripped.set()  # before the cut, as above
                self._cut(client, server)
                return
            try:
                client.sendall(chunk)
            except OSError:
                break
        self._cut(client, server)


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk
