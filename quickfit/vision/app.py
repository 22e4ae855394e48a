"""The vision application as the engine sees it: the model configurations and tasks `load_learner`
rebuilds its learners from, and its `quickfit` command-line hooks (see quickfit/apps.py and quickfit/cli_hooks.py).

    quickfit train hymenoptera_data --arch efficientnet_lite0 --epochs 5 --size 224 --out bees.qf
    quickfit predict bees.qf photo1.jpg photo2.jpg
"""

from __future__ import annotations

from pathlib import Path

from quickfit.apps import App, register_app
from quickfit.cli_hooks import AppCLI, Option, TrainRequest, import_command_module, positive_int
from quickfit.gan.learner import GANConfig, GANTask
from quickfit.vision.classification.learner import ImagesTask
from quickfit.vision.classification.model import VisionModelConfig
from quickfit.vision.core.image import IMAGE_EXTENSIONS
from quickfit.vision.detection.bbox import BBoxTask
from quickfit.vision.detection.learner import DetectionTask, DetectorConfig
from quickfit.vision.generation.learner import ImageToImageConfig, ImageToImageTask
from quickfit.vision.points.learner import PointsTask
from quickfit.vision.segmentation.learner import SegmentationTask, UnetConfig
from quickfit.vision.small.learner import SmallImageModelConfig

__all__ = ["APP", "CLI", "DEFAULT_ARCH"]

DEFAULT_ARCH = "efficientnet_lite0"


def _commands(what: str):
    return import_command_module("quickfit.vision.cli", f"{what} on images", "vision")


def _train(req: TrainRequest) -> dict:
    o = req.options
    out = _commands("train").train_command(
        req.path, o["arch"], req.epochs, o["size"], req.out, lr=req.lr, seed=req.seed, progress=req.progress
    )
    return {"model": out}


def _lr_find(req: TrainRequest):
    o = req.options
    commands = _commands("lr-find")
    return commands.learner_for_lr_find(req.path, o["arch"], o["size"], seed=req.seed, progress=req.progress)


def _tune(req: TrainRequest):
    o = req.options
    return _commands("tune").tune_command(req.path, o["arch"], req.epochs, o["size"], seed=req.seed)


def _predict(model: Path, inputs: list[str]) -> list:
    return _commands("predict").predict_command(model, [Path(i) for i in inputs])


CLI = AppCLI(
    data_kind="image folders",
    trains_on="an image folder of class subfolders (or train/ and valid/ holding them), or a PASCAL VOC folder "
    "(a detector)",
    claims=lambda path: Path(path).is_dir(),
    train=_train,
    lr_find=_lr_find,
    tune=_tune,
    options=(
        Option("--arch", "model architecture", default=DEFAULT_ARCH),
        Option("--size", "image size in pixels", type=positive_int, default=224),
    ),
    epochs=5,
    epochs_help="epochs in all: the head (frozen body) on precomputed activations for 1 (2 when N >= 4), "
    "then the whole network",
    predict=_predict,
    predict_inputs="image files (.jpg, .png, .webp, .bmp, .tif, ...)",
    accepts=lambda item: Path(item).suffix.lower() in IMAGE_EXTENSIONS,
)

APP = register_app(
    App(
        "vision",
        models=(VisionModelConfig, UnetConfig, ImageToImageConfig, GANConfig, SmallImageModelConfig, DetectorConfig),
        tasks=(ImagesTask, PointsTask, SegmentationTask, ImageToImageTask, GANTask, BBoxTask, DetectionTask),
        cli=CLI,
    )
)
