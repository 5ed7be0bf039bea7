"""The trading pipeline: what happens between a TradingView alert and an order.

One module per stage (``predict``, ``vote``, ``strategies``, ``validate``, ``execute``, ``notify``,
``record``, ``optimise``), each a function ``(Runtime, typed state) -> typed result`` over the
contracts in ``contracts``; the webhook's intake (``webhook``); exactly-once order placement
(``order_service``) and reconciliation (``reconcile``); ``runtime`` wires the adapters once per cold
start. The Lambda handlers that call these live in ``tradingbot.entrypoints.lambdas``.
"""
