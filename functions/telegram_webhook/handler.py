"""Lambda entry point: telegram_webhook. The code lives in tradingbot.entrypoints.lambdas.telegram_webhook,
so AWS, the local server (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.telegram_webhook import handler

__all__ = ["handler"]
