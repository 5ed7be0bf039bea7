"""Order execution: the exchange interface (base), Binance USDT-M / OKX swaps through ccxt
(ccxt_adapter), the paper exchange (paper), sizing and action semantics (positions), exactly-once
placement and the Execute stage's entry point (service: ``execute_intent``), reconciliation
(reconcile). Import the submodules directly; this package imports nothing heavy on purpose."""
