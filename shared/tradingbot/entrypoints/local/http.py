"""A real HTTP server on 127.0.0.1 that turns each request into an API Gateway REST proxy event and
hands it to the same webhook handler Lambda runs (``tradingbot serve``).

It holds under abuse the way API Gateway does in front of the Lambda (issue 16):

* a body whose ``Content-Length`` is over the webhook's limit is refused 413 before a byte of it is
  read (the connection is closed, so the unread body is never parsed as a next request);
* a request's headers and body must arrive within ``read_timeout_s`` (``LOCAL_HTTP_READ_TIMEOUT_S``,
  5 s; TradingView itself gives up after 3 s): a slow client is cut off with 408 and counted, and an
  idle kept-alive connection is closed after the same time, so no client holds a thread for longer;
* at most ``max_connections_per_ip`` connections per source are served at once; more are answered
  503 at accept, without a thread.

Refusals made here are counted like the webhook's own (``tradingbot.pipeline.ingress``), off the
serving threads, by one recorder thread with a bounded queue.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)
MAX_READ_BYTES = 1 << 20  # never read more than 1 MB from a socket; the handler refuses > 8 KB anyway
MAX_CONNECTIONS_PER_IP = 256  # > the 200 concurrent clients a bar-close burst brings (issue 16)
_BUSY_BODY = b'{"error": "too_many_connections", "message": "too many open connections from this address; retry"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)


def to_apigw_event(method: str, raw_path: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict[str, Any]:
    parts = urlsplit(raw_path)
    query = dict(parse_qsl(parts.query)) or None
    try:
        text, b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode(), True
    request_id = str(uuid.uuid4())
    return {
        "resource": "/{proxy+}",
        "path": parts.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": {"proxy": parts.path.lstrip("/")},
        "stageVariables": None,
        "body": text if body else None,
        "isBase64Encoded": b64,
        "requestContext": {
            "resourcePath": "/{proxy+}", "httpMethod": method, "path": parts.path, "stage": "local",
            "requestId": request_id, "accountId": "123456789012", "apiId": "local",
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", "")},
        },
    }  # fmt: skip


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class _Deadline:
    __slots__ = ("action", "at", "cancelled")

    def __init__(self, at: float, action: Callable[[], None]) -> None:
        self.at, self.action, self.cancelled = at, action, False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: _Deadline) -> bool:
        return self.at < other.at


class Watchdog:
    """Runs ``action`` once ``seconds`` have passed unless cancelled first: one thread for every
    request's read budget. A ``threading.Timer`` per request (a thread started, woken and joined for
    each) cost ~0.5 ms of CPU per alert on this 2-core machine, a tenth of an acknowledgement."""

    def __init__(self) -> None:
        self._heap: list[_Deadline] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def after(self, seconds: float, action: Callable[[], None]) -> _Deadline:
        deadline = _Deadline(time.monotonic() + seconds, action)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-read-budget", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, deadline)
            if self._heap[0] is deadline:
                self._cond.notify()
        return deadline

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                due = heapq.heappop(self._heap)
            if not due.cancelled:
                with contextlib.suppress(Exception):
                    due.action()


WATCHDOG = Watchdog()


ResponseHook = Callable[[dict[str, Any], dict[str, Any]], None]


RefusalHook = Callable[[str, str, str], None]  # (reason, message, source ip)


class RefusalRecorder:
    """Counts the server's own refusals off the serving threads: one daemon thread drains a bounded
    queue into ``tradingbot.pipeline.ingress.record_refusal``; when the queue is full the refusal is
    only counted in ``dropped`` (a flood must not grow memory)."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.queue: queue.Queue[tuple[str, str, str]] = queue.Queue(maxsize=maxsize)
        self.dropped: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._drain, name="ingress-refusals", daemon=True)
        self._thread.start()

    def __call__(self, reason: str, message: str, source_ip: str) -> None:
        try:
            self.queue.put_nowait((reason, message, source_ip))
        except queue.Full:
            self.dropped[reason] += 1

    def _drain(self) -> None:
        from tradingbot.pipeline.ingress import record_refusal
        from tradingbot.pipeline.runtime import get_runtime

        while True:
            reason, message, source_ip = self.queue.get()
            try:
                record_refusal(get_runtime(), reason=reason, message=message, source_ip=source_ip)
            except Exception:  # the recorder outlives any one failure
                log.warning("refusal %s not recorded", reason, exc_info=True)
            finally:
                self.queue.task_done()


def _runtime_limits() -> tuple[int, float]:
    from tradingbot.pipeline.runtime import get_runtime

    rt = get_runtime()
    return rt.settings.webhook_max_body_bytes, rt.config.local.http_read_timeout_s


def make_server(
    host: str,
    port: int,
    handler: Handler,
    on_response: ResponseHook | None = None,
    *,
    max_body_bytes: int | None = None,
    read_timeout_s: float | None = None,
    max_connections_per_ip: int = MAX_CONNECTIONS_PER_IP,
    on_refused: RefusalHook | None = None,
) -> ThreadingHTTPServer:
    """The server; ``max_body_bytes`` / ``read_timeout_s`` default to the runtime's settings
    (``WEBHOOK_MAX_BODY_BYTES``, ``LOCAL_HTTP_READ_TIMEOUT_S``); ``on_refused`` defaults to a
    :class:`RefusalRecorder`."""
    if max_body_bytes is None or read_timeout_s is None:
        limit, budget = _runtime_limits()
    body_limit: int = limit if max_body_bytes is None else max_body_bytes
    budget_s: float = budget if read_timeout_s is None else read_timeout_s
    refused: RefusalHook = on_refused or RefusalRecorder()

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = budget_s  # each socket read; an idle kept-alive connection closes after it too

        def log_message(self, format: str, *args: Any) -> None:
            return  # one line per alert would drown the console; outcomes are stored instead

        def handle_one_request(self) -> None:
            # the whole request (headers and body) within read_timeout_s: past it the read side is shut,
            # so a client trickling bytes cannot keep this thread however often it sends one
            self._cut_off = False
            self._answered = False
            self.raw_requestline = b""
            self._watchdog = WATCHDOG.after(budget_s, self._cut)
            try:
                super().handle_one_request()
            finally:
                self._watchdog.cancel()
            received = bool(getattr(self, "raw_requestline", None))  # set once the request line arrived
            if self._cut_off and received and not getattr(self, "_answered", False):
                refused("slow_client", f"request not received within {budget_s:g} s", self.client_address[0])
                self.close_connection = True

        def _cut(self) -> None:
            self._cut_off = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RD)

        def _refuse(self, status: int, reason: str, message: str) -> None:
            refused(reason, message, self.client_address[0])
            self._send(status, {"Content-Type": "application/json", "Connection": "close"},
                       json.dumps({"error": reason, "message": message}).encode())  # fmt: skip
            self.close_connection = True

        def _send(self, status: int, headers: dict[str, Any], data: bytes) -> None:
            self._answered = True
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, str(value))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            self._answered = False
            if self._cut_off:  # the headers were cut off at the budget (EOF ended them): not a request
                self._refuse(408, "slow_client", f"headers not received within {budget_s:g} s")
                return
            declared = self.headers.get("Content-Length") or "0"
            if not declared.strip().isdigit():
                self._refuse(400, "bad_content_length", "Content-Length: not a non-negative integer")
                return
            length = int(declared)
            if length > body_limit:
                # refused before a byte of the body is read: same reason and wording as the webhook's own 413
                self._refuse(413, "body_too_large", f"body is {length} bytes; the limit is {body_limit}")
                return
            try:
                body = self.rfile.read(min(length, MAX_READ_BYTES)) if length else b""
            except (TimeoutError, OSError):
                body = b""
                self._cut_off = True
            if len(body) < length:  # cut off (read budget spent) or the client went away mid-body
                self._refuse(408, "slow_client", f"body not received within {budget_s:g} s")
                return
            self._watchdog.cancel()  # the request is in: the handler's own time is not the client's
            event = to_apigw_event(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])
            try:
                result = handler(event, None)
            except Exception as exc:  # the Lambda runtime would answer 502; so do we
                log.exception("handler failed")
                result = {"statusCode": 502, "headers": {"Content-Type": "application/json"},
                          "body": json.dumps({"error": "handler_failed", "message": type(exc).__name__})}  # fmt: skip
            if on_response is not None:
                on_response(event, result)
            payload = result.get("body") or ""
            data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode()
            headers = dict(result.get("headers") or {})
            for key, values in (result.get("multiValueHeaders") or {}).items():
                headers.setdefault(key, values[-1] if values else "")
            self._send(int(result.get("statusCode", 200)), headers, data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve  # noqa: N815

    return _Server((host, port), RequestHandler, max_connections_per_ip=max_connections_per_ip, on_refused=refused)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen backlog: 200 concurrent clients must not be refused

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, max_connections_per_ip: int,
        on_refused: RefusalHook,
    ) -> None:  # fmt: skip
        super().__init__(address, handler)
        self.max_connections_per_ip = max_connections_per_ip
        self.on_refused = on_refused
        self.open_connections: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        ip = str(client_address[0])
        with self._count_lock:
            busy = self.open_connections[ip] >= self.max_connections_per_ip
            if not busy:
                self.open_connections[ip] += 1
        if busy:  # answered at accept, no thread: one source cannot take every thread
            try:
                request.settimeout(0.5)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            self.on_refused("too_many_connections", f"more than {self.max_connections_per_ip} open connections", ip)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                ip = str(client_address[0])
                self.open_connections[ip] -= 1
                if self.open_connections[ip] <= 0:
                    del self.open_connections[ip]


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="webhook-http", daemon=True)
    thread.start()
    return thread
