"""Every application's `*_learner` factory takes the Learner's common arguments, named and defaulted as
`Learner.__init__` names and defaults them, and no `**kwargs`.

The factories are found in the source (every top-level `def <name>_learner(` of quickfit's
applications, private ones left out), so a new one is checked without being listed here. A default may differ from the
Learner's only where the application has a reason, listed in `APP_DEFAULTS`; `metrics=None` always
means "the application's default metrics" (accuracy for a classifier, ...). `splitter` is not
among the common arguments: a factory that builds the model also defines its layer groups.
"""

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from quickfit.learner import Learner

APPS = Path(__file__).resolve().parents[1] / "quickfit"
COMMON = (
    "loss_func",
    "opt_func",
    "lr",
    "wd",
    "metrics",
    "cbs",
    "path",
    "model_dir",
    "train_bn",
    "slice_div",
    "progress",
    "device",
)
NOT_FACTORIES = {
    "csv_learner",  # the command line's: reads a CSV and builds its own data
}
APP_DEFAULTS = {  # (factory, argument): the application's default, and why
    ("vision_learner", "train_bn"): False,  # a frozen pretrained body is a fixed feature extractor
    ("unet_learner", "train_bn"): False,  # likewise for the U-Net's encoder
    ("bbox_learner", "train_bn"): False,  # vision_learner's model, with a box in its head
    ("detection_learner", "train_bn"): False,  # its pretrained body under the pyramid, frozen like vision_learner's
    ("collab_learner", "lr"): 5e-3,  # embeddings: the rate of the course's lesson
    ("seq2seq_learner", "lr"): 3e-3,  # the translation recipe measured in docs/text.md
    ("seq2seq_learner", "wd"): 0.01,
    ("language_model_learner", "metrics"): "(accuracy, perplexity)",
    ("text_classifier_learner", "metrics"): "accuracy",
}


def factories() -> list[tuple[str, str]]:
    found = []
    for app in ("vision", "text", "tabular", "collab"):
        for f in sorted((APPS / app).rglob("*.py")):
            for node in ast.parse(f.read_text()).body:
                if isinstance(node, ast.FunctionDef) and node.name.endswith("_learner"):
                    if node.name not in NOT_FACTORIES and not node.name.startswith("_"):
                        module = ".".join(f.relative_to(APPS.parent).with_suffix("").parts)
                        found.append((module, node.name))
    return found


def test_the_factories_are_found():
    names = {name for _, name in factories()}
    expected = {"vision_learner", "unet_learner", "image2image_learner", "style_learner", "tabular_learner"}
    expected |= {"collab_learner", "language_model_learner", "text_classifier_learner", "seq2seq_learner"}
    assert expected <= names


def _shown(default) -> str:
    return getattr(default, "__name__", None) or repr(default)


@pytest.mark.parametrize("module, name", factories())
def test_factory_takes_the_learners_common_arguments(module, name):
    params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    learner = inspect.signature(Learner.__init__).parameters
    assert not [p for p in params.values() if p.kind is p.VAR_KEYWORD], f"{name} takes **kwargs"
    missing = [a for a in COMMON if a not in params]
    assert not missing, f"{name} lacks the Learner's argument(s) {missing}"
    wrong = []
    for a in COMMON:
        got, want = params[a].default, learner[a].default
        if (name, a) in APP_DEFAULTS:
            want = APP_DEFAULTS[name, a]
            got = _strip(got) if isinstance(want, str) else got
        elif a == "metrics" and got is None:
            continue
        if got != want:
            wrong.append(f"{a}={_shown(params[a].default)} (Learner: {_shown(learner[a].default)})")
    assert not wrong, f"{name}: defaults differ from Learner's: {wrong}; list a reason in APP_DEFAULTS"


def _strip(default) -> str:
    """A default of functions as written in the source: `(accuracy, perplexity)`, `accuracy`."""
    if isinstance(default, (tuple, list)):
        return "(" + ", ".join(_strip(d) for d in default) + ")"
    return getattr(default, "name", None) or getattr(default, "__name__", None) or repr(default)
