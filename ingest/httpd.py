"""A small HTTP/1.1 server for the collector's intake: an asyncio protocol (on uvloop)
that parses a request's head with httptools, reads a declared body straight into the
bytes its handler gets, and answers each whole request with one coroutine call.

Why not uvicorn, which is the same two parts: under ASGI, every piece of a body is
copied out of the parser and wakes the application's task with a message, and every
request goes through scope and message dicts. For Ray's bodies (350 kB in 100-1000
events) at 20,000 events/s, uvicorn serving a do-nothing app took 0.17-0.20 CPU s per
100k events, this server 0.11-0.12 (0.14-0.17 when the parser read the bodies too): a
tenth of all the collector's CPU, at a sidecar limit of 0.2 cores.

What a client can count on: keep-alive and pipelining (requests on a connection are
answered one at a time, in order); bodies by Content-Length or chunked;
`Expect: 100-continue`; 413 as soon as a declared or received body passes the cap, the
rest of it read and dropped so that the client sees the answer; 400 and a closed
connection for what is not HTTP/1.x; a request to switch protocols (`Upgrade`, as
`curl --http2` sends) answered in HTTP/1.1 and the connection closed after it, or 400
if it has a body, which the parser then does not read; an idle keep-alive connection
closed after KEEP_ALIVE_SECONDS; a handler's exception answered 500 and logged with its
traceback; a graceful stop: the listening socket closes, requests being handled are
answered, then every connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast

import httptools
import msgspec

from ingest.bodybuffer import BodyBuffer

log = logging.getLogger("raylake.collector.http")

KEEP_ALIVE_SECONDS = 5.0  # as uvicorn's default
STOP_SECONDS = 5.0  # for the requests being handled when the server stops
HEAD_BYTES = 64 * 1024  # read into at once until a request's head is whole
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # without the query
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]
_INTERNAL_ERROR = Response(500, b'{"error": "internal error; the collector log has it"}')


def _bad_request(reason: str) -> Response:
    return Response(400, msgspec.json.encode({"error": reason}))


class _Date:
    """The Date header's value, made once a second."""

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = email.utils.formatdate(second, usegmt=True).encode()
        return self.value


def encode(response: Response, date: bytes, keep_alive: bool) -> bytes:
    reason = _REASONS.get(response.status, b"")
    lines = [
        b"HTTP/1.1 %d %s" % (response.status, reason),
        b"date: " + date,
        b"content-type: " + response.content_type,
        b"content-length: %d" % len(response.body),
        *(name + b": " + value for name, value in response.headers),
    ]
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + response.body


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound before anything else starts, so that a port in use fails at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


class Server:
    """Serves `handler` on a listening socket until `stop` is called (from any thread)."""

    def __init__(self, handler: Handler, max_body: int, too_large: Response) -> None:
        self.handler = handler
        self.max_body = max_body
        self.too_large = too_large
        self.date = _Date()
        self.connections: set[_Connection] = set()
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._closed = asyncio.Event()

    async def serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        listener = await self._loop.create_server(lambda: _Connection(self), sock=sock)
        await self._stop.wait()
        listener.close()
        self.stopping = True
        for connection in list(self.connections):
            connection.close_when_answered()
        if self.connections:
            try:
                await asyncio.wait_for(self._closed.wait(), STOP_SECONDS)
            except TimeoutError:
                log.warning("%d connection(s) still busy at stop: closed", len(self.connections))
                for connection in list(self.connections):
                    connection.abort()
        await listener.wait_closed()

    def stop(self) -> None:
        """Stop serving: thread-safe, and harmless before `serve`, after it, or twice."""
        if self._loop is None:
            self._stop.set()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: served and stopped already
            self._loop.call_soon_threadsafe(self._stop.set)

    def forget(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        if self.stopping and not self.connections:
            self._closed.set()


class _Connection(asyncio.BufferedProtocol):
    """One client connection. The kernel reads into `head` until a request's head is
    whole, and httptools parses that (calling the `on_*` methods); a body of a declared
    length is then read straight into the bytes the handler gets (`BodyBuffer`), past the
    parser: no piece of it is copied into bytes of its own and joined again, as a
    parser's callbacks would. Other bodies (chunked, refused, or after a head longer than
    `head`) go through the parser."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.head = bytearray(HEAD_BYTES)
        self.held = 0  # bytes in `head` not yet given to the parser
        self.through_parser = False  # all bytes go to the parser until a request ends
        self.body: memoryview | None = None  # a declared body being read straight in
        self.body_buffer: BodyBuffer | None = None  # the buffer under it
        self.filled = 0  # bytes of it read
        self.upgrade = False  # the client asked to switch protocols: read no more
        self.waiting: deque[tuple[Request | Response, bool]] = deque()  # with keep-alive
        self.reading = False  # a request has begun and is not yet whole
        self.busy = False  # a request is with the handler
        self.ended = False  # an answer said `connection: close`: the last one
        self.idle: asyncio.TimerHandle | None = None
        self._start_message()

    def _start_message(self) -> None:
        self.url = b""
        self.declared: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.answered = False  # the 413 went out before the body was read
        self.method = ""
        self.keep_alive = True

    # asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # An answer is one write; Nagle's delay would only hold it back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)
        self._wait_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.idle is not None:
            self.idle.cancel()
        self.server.forget(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.body is not None:
            return self.body[self.filled :]
        return memoryview(self.head)[self.held :]

    def buffer_updated(self, nbytes: int) -> None:
        if self.body is not None:
            self.filled += nbytes
            if self.filled == len(self.body):
                self._body_read()
        else:
            self.held += nbytes
        self._parse_held()

    def _parse_held(self) -> None:
        """Give the parser what `head` holds, a request's head at a time, and start
        reading a declared body past it."""
        if self.upgrade:
            self.held = 0  # another protocol's bytes: dropped until the connection ends
            return
        while self.held and self.body is None:
            if self.through_parser:
                self._feed(self.held)
                self.held = 0
                self.through_parser = self.reading
                return
            end = self.head.find(b"\r\n\r\n", 0, self.held)
            if end < 0:
                if self.held == len(self.head):  # a head this long is the parser's to judge
                    self.through_parser = True
                    continue
                return
            end += 4
            if not self._feed(end):
                self.held = 0
                return
            if self.body is not None:
                taken = min(self.held - end, len(self.body))
                self.body[:taken] = self.head[end : end + taken]
                self.filled = taken
                end += taken
            elif self.reading:  # a body for the parser: chunked, or refused
                self.through_parser = True
            self.head[: self.held - end] = self.head[end : self.held]
            self.held -= end
            if self.body is not None and self.filled == len(self.body):
                self._body_read()

    def _feed(self, end: int) -> bool:
        """The parser reads `head[:end]`; False if the connection fails on it."""
        try:
            self.parser.feed_data(memoryview(self.head)[:end])
        except httptools.HttpParserUpgrade:
            # The request is whole and waits for its answer (on_message_complete), the
            # connection's last: what follows is another protocol's.
            self.upgrade = True
            return False
        except httptools.HttpParserCallbackError:
            log.exception("the HTTP parser's callbacks failed")
            self._fail(_INTERNAL_ERROR)
            return False
        except httptools.HttpParserError as exc:
            self._fail(_bad_request(f"not a valid HTTP/1.1 request: {exc}"))
            return False
        return True

    def _body_read(self) -> None:
        assert self.body_buffer is not None
        body = self.body_buffer.filled()
        self.body = self.body_buffer = None
        self.parser = httptools.HttpRequestParser(self)  # this one stopped at the head
        self._complete(body, self.keep_alive, upgrade=False)

    # httptools

    def on_message_begin(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.reading = True
        self._start_message()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self.declared = int(value)  # llhttp has checked that it is a number
        elif name == b"transfer-encoding":
            self.chunked = b"chunked" in value.lower()
        elif name == b"expect":
            self.expect_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        upgrade = self.parser.should_upgrade()
        self.method = self.parser.get_method().decode("latin-1")
        self.keep_alive = self.parser.should_keep_alive() and not upgrade
        if self.declared is not None and self.declared > self.server.max_body:
            self._refuse_body()
            return
        if self.expect_continue and self.transport is not None and self._first_in_line():
            self.transport.write(_CONTINUE)
        if self.declared and not self.chunked and not upgrade and not self.through_parser:
            self.body_buffer = BodyBuffer(self.declared)
            self.body = memoryview(self.body_buffer)
            self.filled = 0

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return  # read and dropped
        self.size += len(body)
        if self.size > self.server.max_body:
            self._refuse_body()
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        body, self.chunks = b"".join(self.chunks), []
        self._complete(body, self.keep_alive, self.parser.should_upgrade())

    def _complete(self, body: bytes, keep_alive: bool, upgrade: bool) -> None:
        """A request has been read whole: its answer waits its turn."""
        self.reading = False
        if self.answered:
            if self.ended:
                self._close()
            elif not self.busy and not self.waiting:
                self._wait_idle()
            return
        answer: Request | Response
        if self.too_large:
            answer = self.server.too_large
        elif upgrade and (self.declared or self.chunked):
            answer = _bad_request("switching protocols (Upgrade) is not supported: send HTTP/1.1")
        else:
            try:
                path = httptools.parse_url(self.url).path.decode("latin-1")
            except httptools.HttpParserInvalidURLError:
                answer = _bad_request(f"not a valid URL: {self.url!r}")
            else:
                answer = Request(self.method, path, body)
        self.waiting.append((answer, keep_alive))
        self._answer_next()

    # answering

    def _refuse_body(self) -> None:
        """413 for a body past the cap: at once when nothing is before it on this
        connection (a client waiting on `Expect: 100-continue` hears it), else in turn."""
        self.too_large = True
        self.chunks = []
        if self.transport is not None and self._first_in_line():
            self._send(self.server.too_large, self.keep_alive)
            self.answered = True

    def _first_in_line(self) -> bool:
        """Whether the request being read is the only one on the connection not answered."""
        return not self.busy and not self.waiting

    def _answer_next(self) -> None:
        while not self.busy and not self.ended and self.waiting and self.transport is not None:
            answer, keep_alive = self.waiting.popleft()
            if isinstance(answer, Response):
                self._send(answer, keep_alive)
                continue
            self.busy = True
            self.transport.pause_reading()  # a pipelining client waits its turn
            self.loop.create_task(self._handle(answer, keep_alive))
        if self.ended and not self.busy:
            self._close()

    async def _handle(self, request: Request, keep_alive: bool) -> None:
        try:
            response = await self.server.handler(request)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _INTERNAL_ERROR
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return  # the client went away; what was done stays done
        self.transport.resume_reading()
        self._send(response, keep_alive)
        self._answer_next()
        if not self.busy and not self.waiting and not self.ended:
            self._wait_idle()

    def _send(self, response: Response, keep_alive: bool) -> None:
        keep_alive = keep_alive and not self.server.stopping
        assert self.transport is not None
        self.transport.write(encode(response, self.server.date.now(), keep_alive))
        if not keep_alive:
            self.ended = True

    def _fail(self, response: Response) -> None:
        if self.transport is not None:
            self.transport.write(encode(response, self.server.date.now(), False))
        self._close()

    def _wait_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = self.loop.call_later(KEEP_ALIVE_SECONDS, self._close)

    def _close(self) -> None:
        self.waiting.clear()
        if self.transport is not None:
            self.transport.close()

    # the server's stop

    def close_when_answered(self) -> None:
        """At the server's stop: the next answer says `connection: close` and is the last."""
        if not self.reading and not self.busy and not self.waiting:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
