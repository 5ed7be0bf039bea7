"""A stand-in for an Amazon Cognito user pool domain's managed login on 127.0.0.1, following the
documented rules of the authorization code grant with PKCE for a public app client (no secret):

* ``GET /oauth2/authorize`` (https://docs.aws.amazon.com/cognito/latest/developerguide/authorization-endpoint.html):
  ``response_type`` must be ``code`` (this client has no implicit grant), ``client_id`` the app
  client's, ``redirect_uri`` absolute, without a fragment, one of the client's registered callback
  URLs, HTTPS except ``http://localhost``; ``code_challenge_method`` ``S256`` ("the only method
  Cognito supports", https://www.repost.aws/questions/QU82Bu0s1qQlOQai_BcW5hSw); then the managed
  login page (here a form at ``/login``), and after the user's credentials a 302 to
  ``redirect_uri?code=...&state=...``. A wrong client or redirect URI is an error page, never a
  redirect to the unregistered address.
* ``POST /oauth2/token`` (https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html,
  https://docs.aws.amazon.com/cognito/latest/developerguide/using-pkce-in-authorization-code.html):
  ``Content-Type: application/x-www-form-urlencoded``; ``grant_type=authorization_code``,
  ``client_id``, ``code``, the same ``redirect_uri``, and ``code_verifier`` whose
  BASE64URL(SHA256()) is the challenge; a code is redeemed once and within 5 minutes
  (https://repost.aws/questions/QUribd4ytZTnmoxKt_B7DXFg): otherwise 400 ``invalid_grant``; a
  missing parameter is 400 ``invalid_request``. It answers ``id_token``, ``access_token``,
  ``refresh_token``, ``expires_in`` and ``token_type`` ``Bearer``, with CORS: Cognito echoes the
  caller's ``Origin`` in ``Access-Control-Allow-Origin``
  (https://github.com/amazon-archives/amazon-cognito-auth-js/issues/113).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CODE_TTL_S = 300.0


@dataclass
class Pool:
    client_id: str
    callback_urls: list[str]
    users: dict[str, str]  # username -> password
    url: str = ""
    issued: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> grant
    tokens: list[dict[str, Any]] = field(default_factory=list)  # what /oauth2/token issued
    refusals: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, error)
    authorize_queries: list[dict[str, str]] = field(default_factory=list)


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'kid': 'local'})}.{part(claims)}.{secrets.token_urlsafe(32)}"


def _redirect_ok(uri: str, pool: Pool) -> str | None:
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc or parts.fragment:
        return "redirect_uri must be an absolute URI without a fragment"
    if parts.scheme != "https" and parts.hostname != "localhost":
        return "redirect_uri must use HTTPS (except http://localhost)"
    if uri not in pool.callback_urls:
        return "redirect_mismatch"
    return None


def serve(pool: Pool) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, status: int, body: str, content_type: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _query(self) -> dict[str, str]:
            return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            q = self._query()
            if path == "/oauth2/authorize":
                pool.authorize_queries.append(q)
                problem = None
                if q.get("client_id") != pool.client_id:
                    problem = "invalid client_id"
                else:
                    problem = _redirect_ok(q.get("redirect_uri", ""), pool)
                if problem is None and q.get("response_type") != "code":
                    problem = "unsupported_response_type"
                if problem is None and (q.get("code_challenge_method") != "S256" or not q.get("code_challenge")):
                    problem = "invalid_request: code_challenge with code_challenge_method S256 required"
                if problem is not None:
                    pool.refusals.append(("authorize", problem))
                    self._send(400, f"<p>{html.escape(problem)}</p>", "text/html")
                    return
                self._send(302, "", "text/html", {"Location": f"/login?{urlencode(q)}"})
            elif path == "/login":
                fields = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                                 for k, v in q.items())  # fmt: skip
                page = (f'<form method="post" action="/login">{fields}<input name="username" id="username">'
                        '<input name="password" id="password" type="password"><button id="submit">Sign in</button>'
                        "</form>")  # fmt: skip
                self._send(200, page, "text/html")
            else:
                self._send(404, "{}", "application/json")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            if path == "/login":
                if pool.users.get(form.get("username", "")) != form.get("password"):
                    self._send(200, "<p id='failed'>Incorrect username or password.</p>", "text/html")
                    return
                code = secrets.token_urlsafe(24)
                with lock:
                    pool.issued[code] = {"client_id": form["client_id"], "redirect_uri": form["redirect_uri"],
                                         "challenge": form["code_challenge"], "user": form["username"],
                                         "at": time.monotonic(), "used": False}  # fmt: skip
                target = form["redirect_uri"] + "?" + urlencode({"code": code, "state": form.get("state", "")})
                self._send(302, "", "text/html", {"Location": target})
                return
            if path != "/oauth2/token":
                self._send(404, "{}", "application/json")
                return
            cors = {"Access-Control-Allow-Origin": self.headers.get("Origin") or "*"}

            def error(kind: str) -> None:
                pool.refusals.append(("token", kind))
                self._send(400, json.dumps({"error": kind}), "application/json", cors)

            if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/x-www-form-urlencoded":
                return error("invalid_request")
            if any(not form.get(k) for k in ("grant_type", "client_id", "code", "redirect_uri")):
                return error("invalid_request")
            if form["grant_type"] != "authorization_code":
                return error("unsupported_grant_type")
            if form["client_id"] != pool.client_id:
                return error("invalid_client")
            with lock:
                grant = pool.issued.get(form["code"])
                if grant is None or grant["used"] or time.monotonic() - grant["at"] > CODE_TTL_S:
                    return error("invalid_grant")
                grant["used"] = True  # once, whatever follows
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if grant["redirect_uri"] != form["redirect_uri"] or challenge != grant["challenge"]:
                return error("invalid_grant")
            sub = f"sub-{grant['user']}"
            issued = {"id_token": _jwt({"sub": sub, "token_use": "id", "aud": pool.client_id}),
                      "access_token": _jwt({"sub": sub, "token_use": "access", "client_id": pool.client_id}),
                      "refresh_token": secrets.token_urlsafe(48), "expires_in": 3600,
                      "token_type": "Bearer"}  # fmt: skip
            pool.tokens.append(issued)
            self._send(200, json.dumps(issued), "application/json", cors)
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    pool.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
