"""TradingBot AI domain package: market data, strategies, backtesting and the trading pipeline."""

__version__ = "0.1.0"
