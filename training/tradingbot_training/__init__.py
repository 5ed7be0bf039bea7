"""LSTM training, ONNX export and walk-forward evaluation. TensorFlow is imported only here
(``pip install -e '.[training]'``); inference lives in ``tradingbot.adapters.model`` on ONNX Runtime."""
