"""Computer vision: image data, batch augmentation, pretrained models, vision_learner, precompute, TTA.

import quickfit as qf
from quickfit.vision import ImageDataLoaders, aug_transforms, vision_learner

dls = ImageDataLoaders.from_folder("hymenoptera_data", valid="val", size=224, batch_tfms=aug_transforms())
learn = vision_learner(dls, "efficientnet_lite0", metrics=[qf.accuracy])
learn.fit_one_cycle(3, 1e-2)
learn.export("model.qf")
qf.load_learner("model.qf").predict("photo.jpg")   # ('bees', 1, tensor([0.03, 0.97]))
"""

from quickfit.gan import (
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
from quickfit.vision.classification.interpret import ClassificationInterpretation, grad_cam, plot_grad_cam
from quickfit.vision.classification.learner import ImagesTask, VisionLearner, vision_learner
from quickfit.vision.classification.model import VisionModel, VisionModelConfig, create_head
from quickfit.vision.classification.targets import Category, MultiCategory, Regression
from quickfit.vision.core.augment import (
    AffineWarp,
    BatchTransform,
    Lighting,
    Normalize,
    aug_transforms,
    imagenet_stats,
    side_on,
    top_down,
)
from quickfit.vision.core.data import ImageDataLoaders, image_dls_from_export, random_split
from quickfit.vision.core.geometry import outside
from quickfit.vision.core.image import get_image_files, load_image, verify_images
from quickfit.vision.core.loader import ImageItems, ImageLoader, ImageLoadError
from quickfit.vision.core.targets import Target, target_kinds
from quickfit.vision.core.transforms import RandomResizedCrop, Resize
from quickfit.vision.detection.bbox import BBoxTask, bbox_learner, bbox_metrics
from quickfit.vision.detection.data import DetectionDataLoaders, detection_aug_transforms, detection_dls_from_export
from quickfit.vision.detection.largest_box import BBoxLoss, LargestBox
from quickfit.vision.detection.learner import DetectionTask, DetectorConfig, detection_learner
from quickfit.vision.detection.loss import DetectionLoss
from quickfit.vision.detection.metrics import DetectionMAP, coco_map, detection_ap, map50
from quickfit.vision.detection.nms import decode_detections, nms
from quickfit.vision.detection.retinanet import RetinaNet
from quickfit.vision.detection.target import Boxes
from quickfit.vision.generation.crappify import crappify
from quickfit.vision.generation.data import ImageToImageDataLoaders
from quickfit.vision.generation.feature_loss import FeatureLoss, gram_matrix, vgg16_features
from quickfit.vision.generation.learner import image2image_learner
from quickfit.vision.generation.metrics import PSNR, psnr, rgb_to_luma
from quickfit.vision.generation.style import StyleLoss, StyleNet, style_learner, style_transfer
from quickfit.vision.generation.target import ImageTarget
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
from quickfit.vision.points.learner import PointDataLoaders, PointsLoss
from quickfit.vision.points.target import Points
from quickfit.vision.segmentation.data import SegmentationDataLoaders
from quickfit.vision.segmentation.interpret import SegmentationInterpretation
from quickfit.vision.segmentation.learner import unet_learner
from quickfit.vision.segmentation.loss import SegmentationLoss, class_weights
from quickfit.vision.segmentation.metrics import dice, mean_iou, pixel_accuracy
from quickfit.vision.segmentation.target import Mask
from quickfit.vision.small.data import SmallImageDataLoaders
from quickfit.vision.small.images import PadCropFlip
from quickfit.vision.small.learner import SmallImageModelConfig, flip_tta, small_image_learner

__all__ = [
    "AdaptiveGANSwitcher",
    "FeatureLoss",
    "FixedGANSwitcher",
    "GANLearner",
    "GANLoss",
    "GANSamples",
    "GeneratorEMA",
    "ImageToImageDataLoaders",
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
    "PointsLoss",
    "RandomResizedCrop",
    "Resize",
    "SegmentationDataLoaders",
    "SegmentationInterpretation",
    "SegmentationLoss",
    "class_weights",
    "Target",
    "target_kinds",
    "Category",
    "MultiCategory",
    "Regression",
    "Mask",
    "Points",
    "Boxes",
    "DetectionDataLoaders",
    "detection_aug_transforms",
    "detection_dls_from_export",
    "LargestBox",
    "BBoxLoss",
    "BBoxTask",
    "bbox_learner",
    "bbox_metrics",
    "detection_learner",
    "DetectorConfig",
    "DetectionTask",
    "DetectionLoss",
    "DetectionMAP",
    "map50",
    "coco_map",
    "detection_ap",
    "nms",
    "decode_detections",
    "RetinaNet",
    "ImageTarget",
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
