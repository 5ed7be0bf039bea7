"""`python -m tradingbot.entrypoints.cli`: the same as the `tradingbot` command."""

from tradingbot.entrypoints.cli import app

app()
