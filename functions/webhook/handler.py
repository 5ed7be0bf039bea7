"""Lambda entry point: webhook. The code lives in tradingbot.entrypoints.lambdas.webhook, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.webhook import handler

__all__ = ["handler"]
