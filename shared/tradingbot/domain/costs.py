"""The one trading-cost default: what a taker fill costs in the backtester, on the paper exchange
and in the validator's win-rate backtest. Settings (``TRADING_FEE_RATE``, ``TRADING_SLIPPAGE_BPS``)
default to these; nothing else spells a fee or a slippage number.

* Fee: 0.05 % of notional per side, the taker rate of the regular (VIP 0) tier on both venues:
  ccxt ``binanceusdm`` ``fees.linear.trading.taker = 0.000500`` (Binance "USDⓈ-M Futures" fee
  schedule, https://www.binance.com/en/fee/futureFee) and OKX's regular-user perpetual taker rate
  (https://www.okx.com/fees). Every market order is a taker.
* Slippage: 5 basis points against the taker on every fill. Not a venue rule but an assumption
  (about half a typical BTC/ETH perpetual top-of-book spread plus impact for a small order);
  ``--slippage-bps`` / ``TRADING_SLIPPAGE_BPS`` change it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

TAKER_FEE_RATE: Final = Decimal("0.0005")
SLIPPAGE_BPS: Final = Decimal("5")
