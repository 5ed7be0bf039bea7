"""Telegram Bot API client: the one place that speaks HTTP to Telegram.

``sendMessage`` answers ``{"ok": true, "result": {...}}``; a refusal is ``{"ok": false, "error_code",
"description"}``; when flooded it answers 429 with ``parameters.retry_after`` (seconds), and 5xx when
it is down (https://core.telegram.org/bots/api#making-requests, #responseparameters). 429 and 5xx
(and an unreachable API) are transient; any other refusal is permanent.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        url = f"{self.api_url.rstrip('/')}/bot{self.token}/sendMessage"
        try:
            resp = requests.post(url, json={"chat_id": chat_id, "text": text}, timeout=self.timeout_s)
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
            raise TelegramRefused(f"telegram refused the message: {body.get('description', resp.status_code)}")
        message_id = (body.get("result") or {}).get("message_id")
        return int(message_id) if message_id is not None else None
