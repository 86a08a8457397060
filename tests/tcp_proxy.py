"""A round-robin TCP proxy on loopback, as a load balancer in front of server replicas.

Each accepted connection goes to the next backend in turn; a backend that refuses the
connection (a killed replica) is skipped for the next one, as a load balancer's redispatch
does. Bytes are relayed both ways unchanged; when either side closes, both are closed, so a
replica killed mid-request drops its clients' connections as a real balancer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class RoundRobinProxy:
    """Listens on 127.0.0.1:`port` (a free one) and spreads connections over `backends`."""

    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self.connections = [0] * len(self.backends)  # accepted, per backend
        self._turn = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        started.result(10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._sock.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            index = next(self._turn) % len(self.backends)
            try:
                opened = await asyncio.open_connection(*self.backends[index])
            except OSError:
                continue
            self.connections[index] += 1
            return opened
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        relays = [
            asyncio.ensure_future(_relay(reader, up_writer)),
            asyncio.ensure_future(_relay(up_reader, writer)),
        ]
        try:
            await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for relay in relays:
                relay.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()


async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(1 << 16):
            sink.write(data)
            await sink.drain()


@contextmanager
def round_robin(backends: Sequence[tuple[str, int]]) -> Iterator[RoundRobinProxy]:
    """A started `RoundRobinProxy`, stopped on exit."""
    proxy = RoundRobinProxy(backends)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
