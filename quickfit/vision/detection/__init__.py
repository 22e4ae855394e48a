"""Object detection: the place for its data, models, losses and decoding (boxes with their labels are a
target of quickfit/vision/core/targets.py)."""
