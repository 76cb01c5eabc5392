"""The collector's HTTP server (`ingest/httpd.py`) as clients meet it: over real loopback
sockets, with raw bytes where a client library would hide the protocol (pipelining,
`Expect: 100-continue`, malformed requests), on asyncio's loop and on uvloop's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import msgspec
import pytest
import uvloop

from ingest import httpd
from ingest.bodybuffer import BodyBuffer
from ingest.httpd import Request, Response, Server, listening_socket

LIMIT = 1000
TOO_LARGE = Response(413, b'{"error": "too large"}')


@dataclass
class Running:
    url: str
    port: int
    server: Server
    seen: list[Request]
    release: threading.Event  # a request to /slow waits for it
    clients: list[socket.socket]  # closed at the end


async def _echo(seen: list[Request], release: threading.Event, request: Request) -> Response:
    seen.append(request)
    if request.path == "/fails":
        raise RuntimeError("the handler's bug")
    if request.path == "/slow":
        while not release.is_set():
            await asyncio.sleep(0.01)
    body = b"%s %s %d" % (request.method.encode(), request.path.encode(), len(request.body))
    return Response(200, body, b"text/plain", ((b"x-count", b"%d" % len(seen)),))


@contextlib.contextmanager
def running(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> Iterator[Running]:
    seen: list[Request] = []
    release = threading.Event()
    server = Server(lambda request: _echo(seen, release, request), LIMIT, TOO_LARGE)
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]

    def serve() -> None:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(server.serve(sock))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        clients: list[socket.socket] = []
        yield Running(f"http://127.0.0.1:{port}", port, server, seen, release, clients)
        for client in clients:
            client.close()
    finally:
        release.set()
        server.stop()
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture(params=[asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def served(request: pytest.FixtureRequest) -> Iterator[Running]:
    with running(request.param) as it:
        yield it


def connect(served: Running) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    served.clients.append(sock)
    return sock


def read_answer(sock: socket.socket, buffered: bytearray) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response off the socket (what follows it stays in `buffered`)."""
    while b"\r\n\r\n" not in buffered:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before an answer; read {bytes(buffered)!r}")
        buffered += data
    head, _, _ = bytes(buffered).partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    start = len(head) + 4
    length = int(headers.get(b"content-length", b"0"))
    while len(buffered) < start + length:
        buffered += sock.recv(65536)
    body = bytes(buffered[start : start + length])
    del buffered[: start + length]
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_keep_alive_serves_many_requests_on_one_connection(served: Running) -> None:
    with httpx.Client(base_url=served.url) as client:
        for i in range(5):
            answer = client.post("/v1/events", content=b"x" * i)
            assert answer.status_code == 200
            assert answer.text == f"POST /v1/events {i}"
            assert answer.headers["content-type"] == "text/plain"
            assert answer.headers["x-count"] == str(i + 1)
            assert "date" in answer.headers
        # The query is not part of the path.
        assert client.get("/healthz?verbose=1").text == "GET /healthz 0"
    assert len(served.server.connections) <= 1


def test_pipelined_requests_are_answered_in_order(served: Running) -> None:
    sock = connect(served)
    sock.sendall(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    buffered = bytearray()
    bodies = [read_answer(sock, buffered)[2] for _ in range(3)]
    assert bodies == [b"POST /a 3", b"GET /b 0", b"POST /c 2"]


def test_a_request_in_pieces_arrives_whole(served: Running) -> None:
    """Its head split across reads, then its body (read past the parser, straight into
    a buffer of the declared length), then the next request."""
    sock = connect(served)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = bytes(range(256)) * 3
    request = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 768\r\n\r\n" + body
    for piece in (request[:10], request[10:40], request[40:70], request[70:300], request[300:]):
        sock.sendall(piece)
        time.sleep(0.05)  # each its own read
    buffered = bytearray()
    assert read_answer(sock, buffered)[2] == b"POST /v1/events 768"
    assert served.seen[-1].body == body
    sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_answer(sock, buffered)[2] == b"GET /next 0"


def test_a_head_longer_than_the_read_buffer_is_parsed(served: Running) -> None:
    long = "a" * (httpd.HEAD_BYTES + 1000)
    with httpx.Client(base_url=served.url) as client:
        answer = client.post("/long", content=b"xyz", headers={"x-long": long})
        assert answer.text == "POST /long 3"
        assert client.post("/short", content=b"xy").text == "POST /short 2"
    assert served.seen[-2].body == b"xyz"


def test_a_chunked_body_arrives_whole(served: Running) -> None:
    def pieces() -> Iterator[bytes]:
        yield from (b"y" * 100 for _ in range(9))

    answer = httpx.post(f"{served.url}/v1/events", content=pieces())
    assert answer.status_code == 200 and answer.text == "POST /v1/events 900"
    assert served.seen[-1].body == b"y" * 900


def test_a_declared_body_past_the_cap_is_refused_at_once(served: Running) -> None:
    sock = connect(served)
    sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    buffered = bytearray()
    status, _, body = read_answer(sock, buffered)  # before any of the body is sent
    assert (status, body) == (413, TOO_LARGE.body)
    sock.sendall(b"z" * 5000)  # read and dropped; the connection goes on
    sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_answer(sock, buffered)[2] == b"GET /after 0"
    assert [r.path for r in served.seen] == ["/after"]


def test_a_refused_body_is_read_to_its_end_before_the_connection_closes(
    served: Running, caplog: pytest.LogCaptureFixture
) -> None:
    sock = connect(served)
    size = 3 * httpd.HEAD_BYTES  # more than the head's buffer holds
    sock.sendall(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    status, headers, _ = read_answer(sock, bytearray())
    assert (status, headers[b"connection"]) == (413, b"close")
    sock.sendall(b"z" * size)  # all of it is read, none of it kept
    assert closed_by_server(sock)
    assert served.seen == [] and not caplog.records


def test_a_chunked_body_past_the_cap_is_refused(served: Running) -> None:
    answer = httpx.post(f"{served.url}/v1/events", content=iter([b"z" * 600, b"z" * 600]))
    assert answer.status_code == 413
    assert served.seen == []


def test_expect_100_continue(served: Running) -> None:
    sock = connect(served)
    buffered = bytearray()
    sock.sendall(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(b"data")
    assert read_answer(sock, buffered)[2] == b"POST /v1/events 4"
    sock.sendall(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert read_answer(sock, buffered)[0] == 413  # and no 100 Continue before it


@pytest.mark.parametrize(
    "raw",
    [b"NOT HTTP AT ALL\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n"],
    ids=["garbage", "bad-length"],
)
def test_what_is_not_http_gets_400_and_a_closed_connection(served: Running, raw: bytes) -> None:
    sock = connect(served)
    sock.sendall(raw)
    status, headers, body = read_answer(sock, bytearray())
    assert status == 400 and headers[b"connection"] == b"close"
    assert b"not a valid HTTP/1.1 request" in body
    assert closed_by_server(sock)
    assert served.seen == []


def test_a_url_that_does_not_parse_is_a_400_in_json(served: Running) -> None:
    sock = connect(served)
    sock.sendall(b"GET http://a:99999999/\\x HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = read_answer(sock, bytearray())
    assert status == 400
    assert msgspec.json.decode(body) == {"error": "not a valid URL: b'http://a:99999999/\\\\x'"}
    assert served.seen == []


def test_http_1_0_and_connection_close_end_the_connection(served: Running) -> None:
    for request in (
        b"GET /old HTTP/1.0\r\n\r\n",
        b"GET /done HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ):
        sock = connect(served)
        sock.sendall(request)
        status, headers, _ = read_answer(sock, bytearray())
        assert status == 200 and headers[b"connection"] == b"close"
        assert closed_by_server(sock)


def test_an_upgrade_is_answered_in_http_1_1_then_closed(served: Running) -> None:
    sock = connect(served)
    sock.sendall(b"GET /m HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    status, headers, body = read_answer(sock, bytearray())
    assert (status, body, headers[b"connection"]) == (200, b"GET /m 0", b"close")
    assert closed_by_server(sock)
    # With a body, which the parser leaves unread: refused, not taken as empty.
    sock = connect(served)
    sock.sendall(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
        b"Content-Length: 2\r\n\r\n[]"
    )
    status, _, body = read_answer(sock, bytearray())
    assert status == 400 and b"Upgrade" in body
    assert closed_by_server(sock)
    assert [r.path for r in served.seen] == ["/m"]


def test_a_handlers_exception_is_a_500_and_logged(
    served: Running, caplog: pytest.LogCaptureFixture
) -> None:
    logger = "raylake.collector.http"
    with caplog.at_level(logging.ERROR, logger), httpx.Client(base_url=served.url) as client:
        assert client.post("/fails").status_code == 500
        assert client.get("/after").status_code == 200  # the connection is still good
    (record,) = caplog.records
    assert record.exc_info is not None and str(record.exc_info[1]) == "the handler's bug"


def test_an_idle_connection_is_closed(served: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpd, "KEEP_ALIVE_SECONDS", 0.2)
    sock = connect(served)
    sock.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_answer(sock, bytearray())[0] == 200
    started = time.monotonic()
    assert closed_by_server(sock)
    assert time.monotonic() - started < 2


def test_a_stop_answers_the_requests_in_hand_then_closes(served: Running) -> None:
    busy, idle, sending = connect(served), connect(served), connect(served)
    idle.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_answer(idle, bytearray())[0] == 200
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    sending.sendall(b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nha")
    while len(served.seen) < 2:
        time.sleep(0.01)
    time.sleep(0.1)  # the half body is read
    served.server.stop()
    assert closed_by_server(idle)  # at once
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", served.port), timeout=5)
    sending.sendall(b"lf")
    status, headers, body = read_answer(sending, bytearray())
    assert (status, body, headers[b"connection"]) == (200, b"POST /half 4", b"close")
    assert closed_by_server(sending)
    served.release.set()
    status, headers, body = read_answer(busy, bytearray())
    assert (status, body, headers[b"connection"]) == (200, b"GET /slow 0", b"close")
    assert closed_by_server(busy)


def test_a_client_that_leaves_mid_request_harms_nothing(served: Running) -> None:
    sock = connect(served)
    sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    while not served.seen:
        time.sleep(0.01)
    sock.close()
    served.release.set()
    with httpx.Client(base_url=served.url) as client:
        assert client.get("/next").text == "GET /next 0"


def test_a_body_buffer_is_the_bytes_it_was_filled_as() -> None:
    buffer = BodyBuffer(5)
    view = memoryview(buffer)
    view[:3] = b"abc"
    view[3:] = b"de"
    del view
    assert buffer.filled() == b"abcde"
    with pytest.raises(BufferError):
        memoryview(buffer)  # handed over: no longer writable
    with pytest.raises(ValueError):
        BodyBuffer(0)  # CPython shares its empty bytes
