"""LSTM inference: ONNX Runtime vs Keras on the same weights, cold start, and install size.

References, side by side in one run:
* one window through ONNX Runtime (target p50 < 1 ms) vs Keras ``model.predict`` (target: ONNX at
  least 50x faster) and a ``tf.function`` call of the same model (the fastest TensorFlow can do);
  the model is the default architecture (LSTM 100-100-50, Dense 25, Dense 1), exported by the
  project's own tf2onnx path with its parity check;
* the committed artifact through the predictor: inference alone, and features + inference from the
  pipeline's 500 candles;
* cold init in a new process: imports + artifact verification + session load (target < 1 s);
* installed size of what the predict function ships (numpy + onnxruntime + the package's model
  code) beside a TensorFlow install (target < 150 MB).

Run: ``python benchmarks/bench_model.py`` (< 90 s on 2 cores). TensorFlow rows are skipped, with a
note, when the training extra is not installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))


def p50_ms(fn: Callable[[], Any], n: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1e6


# Python tooling a predict layer does not need (model conversion/quantisation helpers, tests, f2py)
PRUNABLE = ("onnxruntime/transformers/", "onnxruntime/tools/", "onnxruntime/quantization/", "onnxruntime/datasets/",
            "numpy/f2py/", "/tests/", "__pycache__/")  # fmt: skip


def dist_size_mb(names: list[str], prune: bool = False) -> float:
    total = 0
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            p = Path(str(dist.locate_file(f)))
            if prune and any(part in f"/{f}" for part in PRUNABLE):
                continue
            if p.is_file():
                total += p.stat().st_size
    return total / 1e6


def cold_init() -> tuple[float, float]:
    """(imports + session load measured inside the process, whole process wall time), medians of 3."""
    code = (
        "import time; t = time.perf_counter(); "
        "from tradingbot.adapters.model.predictor import load_default_predictor; "
        "p = load_default_predictor(); print(time.perf_counter() - t)"
    )
    inside, wall = [], []
    env = {k: v for k, v in os.environ.items() if k != "MODEL_ARTIFACT_URI"}
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        wall.append(time.perf_counter() - t)
        inside.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(inside), statistics.median(wall)


def main() -> int:
    from tradingbot.adapters.model.predictor import load_default_predictor
    from tradingbot.domain import features as ft
    from tradingbot.domain.candles import bundled_path, load_candles

    rows: list[tuple[str, str, str]] = []
    candles = load_candles(bundled_path())
    ok = True

    predictor = load_default_predictor()
    if predictor is None:
        print("no committed model: run `tradingbot model train --out shared/tradingbot/artifacts`")
        return 1
    last500 = candles.iloc[-500:]
    x1 = predictor.window(last500)
    committed_p50 = p50_ms(lambda: predictor.predict_scaled(x1), 2000)
    full_p50 = p50_ms(lambda: predictor.predict(last500), 200)
    rows.append(("committed model, ONNX, 1 window", f"{committed_p50:.3f} ms p50", "< 1 ms"))
    rows.append(("committed model, features + ONNX from 500 candles", f"{full_p50:.3f} ms p50", "-"))
    ok &= committed_p50 < 1.0

    if importlib.util.find_spec("tensorflow") is None:
        rows.append(("Keras predict / tf.function", "skipped: TensorFlow not installed", "-"))
    else:
        import onnxruntime as ort

        from tradingbot_training.export import parity, to_onnx
        from tradingbot_training.tf_setup import tensorflow
        from tradingbot_training.train import TrainConfig, build_model

        tf = tensorflow()
        import keras

        keras.utils.set_random_seed(1)
        model = build_model(TrainConfig())
        graph = to_onnx(model, ft.WINDOW, len(ft.FEATURES))
        rng = np.random.default_rng(0)
        xs = rng.normal(size=(64, ft.WINDOW, len(ft.FEATURES))).astype(np.float32)
        diff = parity(graph, model, xs)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        x = xs[:1]
        serve = tf.function(lambda w: model(w, training=False), input_signature=[tf.TensorSpec(x.shape, tf.float32)])
        onnx_p50 = p50_ms(lambda: session.run(None, {"window": x}), 2000)
        tf_fn_p50 = p50_ms(lambda: serve(x), 200)
        predict_p50 = p50_ms(lambda: model.predict(x, verbose=0), 40)
        ratio = predict_p50 / onnx_p50
        rows.append(
            (
                f"same model (default arch, {model.count_params():,} params): ONNX Runtime",
                f"{onnx_p50:.3f} ms p50",
                "< 1 ms",
            )
        )
        rows.append(("same model: tf.function call", f"{tf_fn_p50:.3f} ms p50 ({tf_fn_p50 / onnx_p50:.0f}x ONNX)", "-"))
        rows.append(("same model: Keras model.predict", f"{predict_p50:.3f} ms p50 ({ratio:.0f}x ONNX)", ">= 50x"))
        rows.append(("ONNX vs Keras max abs diff (64 windows)", f"{diff:.1e}", "< 1e-4"))
        ok &= onnx_p50 < 1.0 and ratio >= 50 and diff < 1e-4

    inside, wall = cold_init()
    rows.append(("cold init, new process: imports + verify + session load", f"{inside * 1000:.0f} ms", "< 1000 ms"))
    rows.append(("cold init, whole process incl. interpreter start", f"{wall * 1000:.0f} ms", "-"))
    ok &= inside < 1.0

    code_mb = sum(p.stat().st_size for p in (ROOT / "shared" / "tradingbot" / "model").rglob("*") if p.is_file()) / 1e6
    predict_fn = dist_size_mb(["numpy", "onnxruntime"]) + code_mb
    pruned = dist_size_mb(["numpy", "onnxruntime"], prune=True) + code_mb
    tf_size = dist_size_mb(["tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "ml-dtypes", "h5py"])
    rows.append(("predict function install: numpy + onnxruntime + model code", f"{predict_fn:.0f} MB", "-"))
    rows.append(("  the same without conversion tooling, tests, bytecode (layer)", f"{pruned:.0f} MB", "< 150 MB"))
    rows.append(
        (
            "TensorFlow install (tensorflow + keras + tf2onnx + onnx ...)",
            f"{tf_size:.0f} MB" if tf_size else "not installed",
            "-",
        )
    )
    ok &= pruned < 150

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'figure':<34}  target")
    for name, fig, target in rows:
        print(f"{name:<{width}}  {fig:<34}  {target}")
    print("all targets met" if ok else "some targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
