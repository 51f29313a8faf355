"""A light keep-alive HTTP/1.1 client on asyncio (uvloop when installed), for load benches.

The load generator shares the machine's 2 cores with the server it measures, so what it
spends is taken from the server, and its own scheduling delays count as latency. One
event loop serving every simulated annotator costs a fraction of the CPU per request of a
thread per annotator (``http.client``) or of ``httpx``, and has no GIL hand-offs between
annotator threads (which alone gave a no-op FastAPI endpoint a p99 above 1 s at 500
requests/s with 100 threads). Requests are written as raw bytes; answers are read by
their Content-Length (what uvicorn sends).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover - uvicorn[standard] brings it
    uvloop = None


def run(coroutine):  # type: ignore[no-untyped-def]
    """Run ``coroutine`` on a new event loop (uvloop's when installed)."""
    if uvloop is not None:
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


class AsyncPoster:
    """One keep-alive connection, one request at a time; reconnects after an error."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body) of one request; raises OSError / TimeoutError on failure."""
        try:
            return await asyncio.wait_for(self._request(method, path, body), self.timeout)
        except BaseException:
            self.close()
            raise

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST."""
        return await self.request("POST", path, body)

    async def _request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self._head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")  # the status line and the headers
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, closing = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True
        answer = await reader.readexactly(length) if length else b""
        if closing:
            self.close()
        return status, answer

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
