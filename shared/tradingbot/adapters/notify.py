"""Telegram Bot API client: the one place that speaks HTTP to Telegram.

``sendMessage`` answers ``{"ok": true, "result": {...}}``; a refusal is ``{"ok": false, "error_code",
"description"}``; when flooded it answers 429 with ``parameters.retry_after`` (seconds), and 5xx when
it is down (https://core.telegram.org/bots/api#making-requests, #responseparameters). 429 and 5xx
(and an unreachable API) are transient; any other refusal is permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from tradingbot.errors import DependencyUnavailable, PermanentError, RateLimited


class TelegramUnavailable(DependencyUnavailable):
    """The Bot API could not be reached or answered 5xx."""


class TelegramRateLimited(RateLimited):
    """429 Too Many Requests; ``retry_after_s`` is Telegram's ``parameters.retry_after``."""


class TelegramRefused(PermanentError):  # noqa: N818 - reads as the outcome, like the exchange errors
    """``ok: false`` for any other reason (bad token, unknown chat, malformed text)."""


@dataclass(frozen=True)
class TelegramBot:
    api_url: str
    token: str
    timeout_s: float = 5.0

    def send_message(self, chat_id: str | int | None, text: str) -> int | None:
        """Send one message; returns Telegram's ``message_id``."""
        result = self.call("sendMessage", {"chat_id": chat_id, "text": text})
        message_id = (result or {}).get("message_id") if isinstance(result, dict) else None
        return int(message_id) if message_id is not None else None

    def get_updates(self, *, offset: int | None, timeout_s: int = 25, limit: int = 100) -> list[dict[str, Any]]:
        """Long polling (https://core.telegram.org/bots/api#getupdates): updates from ``offset`` on;
        calling with ``offset`` = last ``update_id`` + 1 confirms the earlier ones. Telegram answers
        409 while a webhook is set (getUpdates and a webhook exclude each other)."""
        payload: dict[str, Any] = {"timeout": timeout_s, "limit": limit, "allowed_updates": ["message"]}
        if offset is not None:
            payload["offset"] = offset
        result = self.call("getUpdates", payload, timeout_s=timeout_s + self.timeout_s)
        return [u for u in result or [] if isinstance(u, dict)]

    def set_webhook(self, url: str, *, secret_token: str) -> None:
        """https://core.telegram.org/bots/api#setwebhook: Telegram then POSTs each update to ``url``
        with ``secret_token`` in the ``X-Telegram-Bot-Api-Secret-Token`` header."""
        self.call("setWebhook", {"url": url, "secret_token": secret_token, "allowed_updates": ["message"]})

    def call(self, method: str, payload: dict[str, Any], *, timeout_s: float | None = None) -> Any:
        """One Bot API method; its ``result``. The token is in the URL: never logged, never in an error."""
        url = f"{self.api_url.rstrip('/')}/bot{self.token}/{method}"
        try:
            resp = requests.post(url, json=payload, timeout=timeout_s or self.timeout_s)
        except requests.RequestException as exc:
            raise TelegramUnavailable(f"telegram unreachable: {type(exc).__name__}") from None
        is_json = resp.headers.get("content-type", "").startswith("application/json")
        body = resp.json() if is_json else {}
        if resp.status_code == 429:
            retry_after = (body.get("parameters") or {}).get("retry_after")
            raise TelegramRateLimited(
                "telegram answered 429", retry_after_s=float(retry_after) if retry_after is not None else None
            )
        if resp.status_code >= 500:
            raise TelegramUnavailable(f"telegram answered {resp.status_code}")
        if not body.get("ok"):
            what = "the message" if method == "sendMessage" else method
            raise TelegramRefused(f"telegram refused {what}: {body.get('description', resp.status_code)}")
        return body.get("result")
