"""Edge node: ONNX predictions and model artifacts behind tiered caches."""
