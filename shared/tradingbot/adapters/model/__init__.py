"""LSTM price model inference: features (numpy), artifact (model.onnx + metadata), predictor (ONNX
Runtime), registry (model_versions). No TensorFlow here; training lives in training/."""
