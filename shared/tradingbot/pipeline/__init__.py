"""The trading pipeline: TradingView webhook -> Step Functions stages -> order.

Each Step Functions state is a thin Lambda handler (``handlers.py``, re-exported by
``functions/<stage>/handler.py``) over the pure stage functions in ``stages.py``.
"""
