"""Image generation: image-to-image data and learners (super-resolution, colourization), crappify, the
feature loss, style transfer and image metrics (PSNR)."""
