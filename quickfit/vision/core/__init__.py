"""What every vision task shares: opening images (image.py), the decoded-item cache (cache.py), item
transforms and their geometry (transforms.py), batch augmentation on the device (augment.py), the one
image loader (loader.py), labelling helpers (labels.py) and the `ImageDataLoaders` built on them (data.py)."""
