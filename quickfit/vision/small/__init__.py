"""Small images from scratch (CIFAR-10 and the like): decoded once into memory, augmented on the batch,
trained with the stride-1 networks of quickfit/vision/models/small.py."""
