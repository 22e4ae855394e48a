"""Keypoints: point data, a regression head and its loss."""
