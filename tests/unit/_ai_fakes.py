"""Local stand-ins for the LLM providers: a real HTTP server on 127.0.0.1 that answers in each
provider's wire format, so the official SDKs are exercised end to end (serialisation, status
handling, timeouts) without the internet. Shared by tests/unit/test_ai_*.py and the benchmark.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# OpenAI's reasoning models refuse sampling parameters before doing anything else; the stand-in
# answers the way the API does (the body as reported in openai/openai-python#2104 for o3-mini and
# OpenHands/software-agent-sdk#1837 for gpt-5.2; platform.openai.com/docs/guides/reasoning). The
# gpt-5 chat snapshots are not reasoning models and take it (BerriAI/litellm#13781).
REASONING_MODEL_PREFIXES = ("o1", "o3", "o4-mini", "gpt-5")
UNSUPPORTED_TEMPERATURE = {
    "error": {
        "message": "Unsupported parameter: 'temperature' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "unsupported_parameter",
    }
}


def refuses_temperature(model: object) -> bool:
    name = str(model or "").lower()
    return name.startswith(REASONING_MODEL_PREFIXES) and "-chat" not in name


@dataclass
class Canned:
    """One scripted answer."""

    body: Any = None  # dict/list -> JSON; bytes/str -> sent as is
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any


class FakeProvider:
    """Answers POSTs from a script (FIFO); once the script is used up, repeats ``default``."""

    def __init__(self, default: Canned | None = None) -> None:
        self.script: deque[Canned] = deque()
        self.default = default or Canned({"error": "no canned answer"}, status=500)
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # a short poll interval keeps shutdown (once per test) fast
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def push(self, *answers: Canned) -> FakeProvider:
        self.script.extend(answers)
        return self

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes handlers that are sleeping to simulate a slow model
        self._server.shutdown()
        self._server.server_close()

    def _next(self) -> Canned:
        with self._lock:
            return self.script.popleft() if self.script else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs do
            # Headers and body leave in one write with Nagle off: otherwise the client's delayed ACK
            # adds ~40 ms per request and the benchmark would measure TCP, not our code.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body: Any = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw
                with fake._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    fake.requests.append(Recorded("POST", self.path, headers, body))
                if isinstance(body, dict) and "temperature" in body and refuses_temperature(body.get("model")):
                    canned = Canned(UNSUPPORTED_TEMPERATURE, status=400)  # refused before the script is read
                else:
                    canned = fake._next()
                if canned.delay_s and fake._stopping.wait(canned.delay_s):
                    return
                payload = (
                    canned.body
                    if isinstance(canned.body, bytes)
                    else (canned.body.encode() if isinstance(canned.body, str) else json.dumps(canned.body).encode())
                )
                try:
                    self.send_response(canned.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in canned.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        return Handler


# ---- OpenAI wire format ------------------------------------------------------------------------


def vote_json(vote: str = "LONG", confidence: float = 70, rationale: str = "trend up") -> str:
    return json.dumps({"vote": vote, "confidence": confidence, "rationale": rationale})


def openai_response(
    text: str | None = None,
    *,
    refusal: str | None = None,
    status: str = "completed",
    incomplete_reason: str | None = None,
    input_tokens: int = 420,
    output_tokens: int = 38,
    model: str = "gpt-4.1-mini",
) -> dict[str, Any]:
    """A Responses API object (POST /v1/responses)."""
    content: list[dict[str, Any]] = []
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    if text is not None:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    return {
        "id": "resp_test",
        "object": "response",
        "created_at": 1735689600,
        "status": status,
        "model": model,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "output": [
            {"type": "message", "id": "msg_test", "status": "completed", "role": "assistant", "content": content}
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": 0.0,
        "top_p": 1.0,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def chat_completion(
    content: str | None, *, refusal: str | None = None, finish_reason: str = "stop", model: str = "llama3.1:8b"
) -> dict[str, Any]:
    """A Chat Completions object (POST /v1/chat/completions), as OpenAI and Ollama return it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1735689600,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "logprobs": None,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
        "usage": {"prompt_tokens": 400, "completion_tokens": 30, "total_tokens": 430},
    }


def openai_error(status: int, message: str, code: str | None = None) -> Canned:
    kind = {429: "requests", 500: "server_error", 400: "invalid_request_error"}.get(status, "error")
    return Canned({"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status)


# ---- Anthropic wire format ---------------------------------------------------------------------


def anthropic_message(
    tool_input: dict[str, Any] | None = None,
    *,
    text: str | None = None,
    stop_reason: str = "tool_use",
    model: str = "claude-haiku-4-5",
) -> dict[str, Any]:
    """A Messages API object (POST /v1/messages)."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool_input is not None:
        content.append({"type": "tool_use", "id": "toolu_test", "name": "cast_vote", "input": tool_input})
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 510, "output_tokens": 64},
    }


def anthropic_error(status: int, kind: str, message: str) -> Canned:
    return Canned({"type": "error", "error": {"type": kind, "message": message}}, status=status)
