"""Semantic segmentation: mask data (data.py), the U-Net learner (learner.py), its loss, metrics and
interpretation."""
