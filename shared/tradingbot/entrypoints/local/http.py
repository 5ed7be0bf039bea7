"""A real HTTP server on 127.0.0.1 that turns each request into an API Gateway REST proxy event and
hands it to the same webhook handler Lambda runs (``tradingbot serve``)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)
MAX_READ_BYTES = 1 << 20  # never read more than 1 MB from a socket; the handler refuses > 8 KB anyway


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


ResponseHook = Callable[[dict[str, Any], dict[str, Any]], None]


def make_server(host: str, port: int, handler: Handler, on_response: ResponseHook | None = None) -> ThreadingHTTPServer:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # one line per alert would drown the console; outcomes are stored instead

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_READ_BYTES)) if length else b""
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
            self.send_response(int(result.get("statusCode", 200)))
            headers = dict(result.get("headers") or {})
            for key, values in (result.get("multiValueHeaders") or {}).items():
                headers.setdefault(key, values[-1] if values else "")
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, str(value))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve  # noqa: N815

    return _Server((host, port), RequestHandler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen backlog: 200 concurrent clients must not be refused


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="webhook-http", daemon=True)
    thread.start()
    return thread
