"""Import TensorFlow quietly and with a bounded thread pool (CI has 2 cores shared with others)."""

from __future__ import annotations

import os
from typing import Any

_state = {"configured": False}


def tensorflow(threads: int | None = None) -> Any:
    """The ``tensorflow`` module, configured once per process before any op runs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO/WARNING noise on every import
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: parity drifts
    import tensorflow as tf

    if not _state["configured"]:
        n = threads or int(os.environ.get("TRADINGBOT_TF_THREADS", "0")) or min(2, os.cpu_count() or 1)
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # the runtime was already initialised by the caller; keep its settings
        _state["configured"] = True
    return tf
