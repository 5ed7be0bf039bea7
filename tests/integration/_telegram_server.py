"""A Telegram Bot API stand-in on 127.0.0.1, following the documented wire format
(https://core.telegram.org/bots/api):

* every method is ``POST /bot<token>/<method>`` with a JSON body; the answer is
  ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N, "description": "..."}``
  (#making-requests); a wrong token is 401 Unauthorized;
* ``sendMessage`` answers the sent Message (``message_id``, ``chat``, ``text``); text must be 1-4096
  characters (#sendmessage; longer is 400 "message is too long");
* flood control answers 429 with ``parameters.retry_after`` in seconds (#responseparameters):
  ``flood_next`` makes the next N sendMessage calls answer that way;
* ``getUpdates`` returns the queued Updates with ``update_id`` >= ``offset``; an update is confirmed
  (forgotten) once getUpdates is called with an offset higher than its id (#getupdates); while a
  webhook is set it answers 409 "Conflict: can't use getUpdates method while webhook is active";
* ``setWebhook`` stores the url and the ``secret_token`` (1-256 characters of A-Z, a-z, 0-9, _ and -,
  else 400) and ``deleteWebhook`` removes it (#setwebhook).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclass
class BotState:
    token: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    queue: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] | None = None
    flood_next: int = 0
    retry_after: int = 1
    calls: list[str] = field(default_factory=list)
    next_update_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def push_text(self, chat_id: int, text: str) -> dict[str, Any]:
        """Queue an Update with a text message from ``chat_id``, as Telegram would hold it for getUpdates."""
        with self.lock:
            self.next_update_id += 1
            update = {
                "update_id": self.next_update_id,
                "message": {"message_id": self.next_update_id, "date": 1700000000, "text": text,
                            "chat": {"id": chat_id, "type": "private"},
                            "from": {"id": chat_id, "is_bot": False, "first_name": "Op"}},
            }  # fmt: skip
            self.queue.append(update)
            return update


def make_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1700000000, "text": text,
                                                "chat": {"id": chat_id, "type": "private"}}}  # fmt: skip


def serve(state: BotState) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, description: str, **extra: Any) -> None:
            self._answer(status, {"ok": False, "error_code": status, "description": description, **extra})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            prefix, _, method = self.path.lstrip("/").partition("/")
            state.calls.append(method)
            if prefix != f"bot{state.token}":
                self._error(401, "Unauthorized")
                return
            with state.lock:
                if method == "sendMessage":
                    self._send_message(body)
                elif method == "getUpdates":
                    self._get_updates(body)
                elif method == "setWebhook":
                    secret = body.get("secret_token")
                    if secret is not None and not SECRET_TOKEN.match(str(secret)):
                        self._error(400, "Bad Request: secret token contains unallowed characters")
                        return
                    state.webhook = {"url": body.get("url"), "secret_token": secret}
                    self._answer(200, {"ok": True, "result": True, "description": "Webhook was set"})
                elif method == "deleteWebhook":
                    state.webhook = None
                    self._answer(200, {"ok": True, "result": True})
                else:
                    self._error(404, "Not Found")

        def _send_message(self, body: dict[str, Any]) -> None:
            text = str(body.get("text") or "")
            if state.flood_next > 0:
                state.flood_next -= 1
                self._error(429, f"Too Many Requests: retry after {state.retry_after}",
                            parameters={"retry_after": state.retry_after})  # fmt: skip
                return
            if not text:
                self._error(400, "Bad Request: message text is empty")
                return
            if len(text) > 4096:
                self._error(400, "Bad Request: message is too long")
                return
            state.sent.append({"chat_id": body.get("chat_id"), "text": text})
            message = {"message_id": len(state.sent), "date": 1700000000, "text": text,
                       "chat": {"id": body.get("chat_id"), "type": "private"}}  # fmt: skip
            self._answer(200, {"ok": True, "result": message})

        def _get_updates(self, body: dict[str, Any]) -> None:
            if state.webhook is not None:
                self._error(409, "Conflict: can't use getUpdates method while webhook is active; "
                                 "use deleteWebhook to delete the webhook first")  # fmt: skip
                return
            offset = body.get("offset")
            if offset is not None:  # confirms every update below the offset
                state.queue = [u for u in state.queue if u["update_id"] >= int(offset)]
            limit = int(body.get("limit") or 100)
            self._answer(200, {"ok": True, "result": state.queue[:limit]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
