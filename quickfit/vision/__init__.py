"""Computer vision: image data, batch augmentation, pretrained models, vision_learner, precompute, TTA.

import quickfit as qf
from quickfit.vision import ImageDataLoaders, aug_transforms, vision_learner

dls = ImageDataLoaders.from_folder("hymenoptera_data", valid="val", size=224, batch_tfms=aug_transforms())
learn = vision_learner(dls, "efficientnet_lite0", metrics=[qf.accuracy])
learn.fit_one_cycle(3, 1e-2)
learn.export("model.qf")
qf.load_learner("model.qf").predict("photo.jpg")   # ('bees', 1, tensor([0.03, 0.97]))
"""

from quickfit.vision.augment import (
    AffineWarp,
    BatchTransform,
    Lighting,
    Normalize,
    aug_transforms,
    imagenet_stats,
    side_on,
    top_down,
)
from quickfit.vision.crappify import crappify
from quickfit.vision.data import ImageDataLoaders, image_dls_from_export, random_split
from quickfit.vision.feature_loss import FeatureLoss, gram_matrix, vgg16_features
from quickfit.vision.gan import (
    AdaptiveGANSwitcher,
    FixedGANSwitcher,
    GANLearner,
    GANLoss,
    GANSamples,
    GeneratorEMA,
    basic_generator,
    gan_critic,
    noise_dls,
)
from quickfit.vision.image import get_image_files, load_image, verify_images
from quickfit.vision.image2image import ImageToImageDataLoaders
from quickfit.vision.image2image_learner import ImageToImageLearner, image2image_learner
from quickfit.vision.image_metrics import PSNR, psnr, rgb_to_luma
from quickfit.vision.interpret import ClassificationInterpretation, grad_cam, plot_grad_cam
from quickfit.vision.learner import (
    ImagesTask,
    VisionLearner,
    VisionModel,
    VisionModelConfig,
    create_head,
    vision_learner,
)
from quickfit.vision.loader import ImageItems, ImageLoader, ImageLoadError
from quickfit.vision.models import (
    ArchSpec,
    arch_names,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    get_arch,
    register_arch,
    resnet18,
    resnet34,
    resnet50,
    resnext50_32x4d,
)
from quickfit.vision.models.small import darknet, resnet9, wrn_22
from quickfit.vision.models.unet import DynamicUnet
from quickfit.vision.points import PointDataLoaders, PointsLearner, PointsLoss
from quickfit.vision.seg_interpret import SegmentationInterpretation
from quickfit.vision.seg_loss import SegmentationLoss, class_weights
from quickfit.vision.seg_metrics import dice, mean_iou, pixel_accuracy
from quickfit.vision.segmentation import SegmentationDataLoaders
from quickfit.vision.small_images import PadCropFlip, SmallImageDataLoaders
from quickfit.vision.small_learner import SmallImageModelConfig, flip_tta, small_image_learner
from quickfit.vision.style import StyleLoss, StyleNet, style_learner, style_transfer
from quickfit.vision.targets import Target, outside
from quickfit.vision.transforms import RandomResizedCrop, Resize
from quickfit.vision.unet import UnetLearner, unet_learner

__all__ = [
    "AdaptiveGANSwitcher",
    "FeatureLoss",
    "FixedGANSwitcher",
    "GANLearner",
    "GANLoss",
    "GANSamples",
    "GeneratorEMA",
    "ImageToImageDataLoaders",
    "ImageToImageLearner",
    "image2image_learner",
    "PSNR",
    "psnr",
    "rgb_to_luma",
    "StyleLoss",
    "StyleNet",
    "basic_generator",
    "crappify",
    "gan_critic",
    "gram_matrix",
    "noise_dls",
    "style_learner",
    "style_transfer",
    "vgg16_features",
    "AffineWarp",
    "ArchSpec",
    "BatchTransform",
    "ClassificationInterpretation",
    "DynamicUnet",
    "ImageDataLoaders",
    "ImageItems",
    "ImageLoadError",
    "ImageLoader",
    "Lighting",
    "Normalize",
    "PointDataLoaders",
    "PointsLearner",
    "PointsLoss",
    "RandomResizedCrop",
    "Resize",
    "SegmentationDataLoaders",
    "SegmentationInterpretation",
    "SegmentationLoss",
    "class_weights",
    "Target",
    "UnetLearner",
    "VisionLearner",
    "VisionModel",
    "VisionModelConfig",
    "ImagesTask",
    "arch_names",
    "aug_transforms",
    "create_head",
    "dice",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "get_arch",
    "get_image_files",
    "grad_cam",
    "image_dls_from_export",
    "imagenet_stats",
    "load_image",
    "mean_iou",
    "outside",
    "pixel_accuracy",
    "plot_grad_cam",
    "random_split",
    "register_arch",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "side_on",
    "top_down",
    "unet_learner",
    "verify_images",
    "vision_learner",
    "PadCropFlip",
    "SmallImageDataLoaders",
    "SmallImageModelConfig",
    "darknet",
    "flip_tta",
    "resnet9",
    "small_image_learner",
    "wrn_22",
]
from quickfit.vision.app import APP as APP  # registers the application (load_learner, the CLI)
