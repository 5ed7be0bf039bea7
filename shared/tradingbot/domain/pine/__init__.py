"""TradingView's side: Pine Script for the built-in strategies, alert messages that match the
webhook, and a checker for a user's own script (``tradingbot pine export|alert-message|check``)."""

from tradingbot.domain.pine.export import PINE_VERSION, TOKEN_PLACEHOLDER, alert_message, alert_template, export_script

__all__ = ["PINE_VERSION", "TOKEN_PLACEHOLDER", "alert_message", "alert_template", "export_script"]
