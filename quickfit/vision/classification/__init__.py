"""Image classification: `vision_learner` (a pretrained body and a new head), interpretation (confusion,
top losses, Grad-CAM), test-time augmentation and precomputed activations."""
