"""FeatureLoss: its terms against a hand computation, the terms in the epoch table, a torchvision-named
VGG16 weight file, the pretrained EfficientNet-Lite0 default, and the bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf
from quickfit.vision.generation.feature_loss import LITE0_LAYERS, FeatureLoss, gram_matrix, vgg16_features


def tiny_features(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())


def test_gram_matrix_against_a_loop():
    x = torch.randn(2, 3, 4, 5)
    g = gram_matrix(x)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                assert g[b, i, j].item() == pytest.approx((x[b, i] * x[b, j]).sum().item() / 60, rel=1e-5)


def test_terms_match_a_hand_computation():
    feats = tiny_features()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    loss = FeatureLoss(feats, layer_weights=(2.0, 5.0), pixel_weight=3.0, gram_weight=7.0, layer_ids=(1, 3),
                       stats=(mean, std))  # fmt: skip
    pred, targ = torch.rand(2, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8)
    value = loss(pred, targ)

    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    def acts(x):
        x = (x - m) / s
        a1 = feats[1](feats[0](x))
        return a1, feats[3](feats[2](a1))

    (p1, p3), (t1, t3) = acts(pred), acts(targ)
    expected = {
        "pixel": 3.0 * (pred - targ).abs().mean(),
        "feat_0": 2.0 * (p1 - t1).abs().mean(),
        "feat_1": 5.0 * (p3 - t3).abs().mean(),
        "gram_0": 7.0 * 2.0 * (gram_matrix(p1) - gram_matrix(t1)).abs().mean(),
        "gram_1": 7.0 * 5.0 * (gram_matrix(p3) - gram_matrix(t3)).abs().mean(),
    }
    assert loss.term_names == list(expected)
    for k, v in expected.items():
        assert loss.last_terms[k].item() == pytest.approx(v.item(), rel=1e-5), k
    assert value.item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-5)
    value.backward()
    assert pred.grad is not None and all(p.grad is None for p in feats.parameters())  # the network is frozen
    assert loss(targ, targ).item() == 0


def test_the_terms_are_columns_of_the_epoch_table_and_the_model_learns():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 8, 8)
    y = x.flip(1)  # learnable by a 1x1 convolution: the channels reversed
    dls = qf.DataLoaders(
        DataLoader(TensorDataset(x[:24], y[:24]), batch_size=8), DataLoader(TensorDataset(x[24:], y[24:]), batch_size=8)
    )
    loss = FeatureLoss(tiny_features(), layer_weights=(0.5, 0.5), layer_ids=(1, 3))
    learn = qf.Learner(dls, nn.Conv2d(3, 3, 1), loss, metrics=loss.metrics(), progress=False)
    learn.fit(8, 3e-2)
    names = learn.recorder.names
    assert names[3:6] == ["pixel", "feat_0", "feat_1"]
    first, last = learn.recorder.values[0], learn.recorder.values[-1]
    assert last[2] < 0.5 * first[2]
    assert sum(last[3:6]) == pytest.approx(last[2], rel=1e-4)  # the terms add up to the validation loss
    # each column is the validation mean of its term, computed by hand here
    with torch.no_grad():
        loss(learn.model(x[24:]), y[24:])
    assert last[3] == pytest.approx(loss.last_terms["pixel"].item(), rel=1e-4)


def test_a_torchvision_vgg16_weight_file_loads(tmp_path):
    src = vgg16_features()
    assert sum(p.numel() for p in src.parameters()) == 14_714_688  # torchvision's vgg16().features
    sd = {f"features.{k}": v for k, v in src.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(4, 4)  # the rest of a torchvision file is ignored
    torch.save(sd, tmp_path / "vgg16.pth")
    loaded = vgg16_features(tmp_path / "vgg16.pth")
    for (k, a), b in zip(src.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    loss = FeatureLoss(loaded, layer_weights=(1, 1, 1), layer_ids=(8, 15, 22))
    assert len(loss.features) == 23  # run only up to the last layer used
    x = torch.rand(1, 3, 32, 32)
    assert loss(x, x).item() == 0
    with pytest.raises(ValueError, match="does not fit torchvision's vgg16_bn features"):
        vgg16_features(tmp_path / "vgg16.pth", bn=True)
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="has no 'features.\\*' keys"):
        vgg16_features(tmp_path / "other.pth")


def test_default_network_is_the_pretrained_lite0_body():
    loss = FeatureLoss()
    assert loss.layer_ids == list(LITE0_LAYERS)
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.features.training  # BatchNorm statistics stay pretrained
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x).item() == 0
    blurred = F.avg_pool2d(x, 3, 1, 1)
    assert loss(blurred, x).item() > loss.last_terms["pixel"].item() > 0


def test_bad_arguments_are_named():
    feats = tiny_features()
    with pytest.raises(ValueError, match=r"layer_ids \[9\] are not layers of features \(0..3\)"):
        FeatureLoss(feats, layer_weights=(1.0,), layer_ids=(9,))
    with pytest.raises(ValueError, match="3 layer_weights for 2 layer_ids"):
        FeatureLoss(feats, layer_weights=(1, 2, 3), layer_ids=(1, 3))
    with pytest.raises(ValueError, match="pass layer_ids="):
        FeatureLoss(feats, layer_weights=(1.0,))
    with pytest.raises(TypeError, match="nn.Sequential"):
        FeatureLoss(nn.Conv2d(3, 3, 1), layer_ids=(0,), layer_weights=(1.0,))
    loss = FeatureLoss(feats, layer_weights=(1.0,), layer_ids=(1,))
    with pytest.raises(ValueError, match=r"prediction \(1, 3, 8, 8\) and target \(1, 3, 4, 4\) differ"):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 4, 4))
