"""ResNets against torchvision: names, shapes and outputs recorded from torchvision itself, and weight loading."""

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from quickfit.data.download import DownloadError
from quickfit.vision.models import resnet as resnet_module
from quickfit.vision.models import resnet18, resnet34, resnet50, resnext50_32x4d

FIXTURES = Path(__file__).with_name("fixtures")
TV = json.loads((FIXTURES / "torchvision_resnet.json").read_text())
_spec = importlib.util.spec_from_file_location("tv_fixture", FIXTURES / "torchvision_resnet.py")
tv_fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tv_fixture)

BUILDERS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnext50_32x4d": resnext50_32x4d}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_state_dict_matches_torchvision_and_computes_the_same(name):
    model = BUILDERS[name]().eval()
    recorded = [(k, list(s)) for k, s in TV["archs"][name]["keys"]]
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == recorded
    # torchvision's logits for these exact weights on this exact input were recorded in the fixture
    model.load_state_dict(tv_fixture.deterministic_state_dict(recorded), strict=True)
    with torch.no_grad():
        logits = model(tv_fixture.fixed_input())
    torch.testing.assert_close(logits[:, :10], torch.tensor(TV["archs"][name]["logits_first10"]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits.sum(1), torch.tensor(TV["archs"][name]["logits_sum"]), atol=1e-3, rtol=1e-4)


def _torchvision_named_file(tmp_path, name):
    "A torchvision-shaped weight file whose name carries its own sha256 prefix, like download.pytorch.org's."
    shapes = TV["archs"][name]["keys"]
    raw = tmp_path / "raw.pth"
    torch.save(tv_fixture.deterministic_state_dict(shapes, seed=3), raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    f = tmp_path / f"{name}-{digest[:8]}.pth"
    raw.rename(f)
    return f


def test_pretrained_local_file_loads_strictly(tmp_path):
    f = _torchvision_named_file(tmp_path, "resnet18")
    model = resnet18(pretrained=str(f))
    expected = torch.load(f, weights_only=True)
    torch.testing.assert_close(model.conv1.weight, expected["conv1.weight"])
    torch.testing.assert_close(model.layer4[1].bn2.running_var, expected["layer4.1.bn2.running_var"])


def test_pretrained_true_downloads_into_cache_and_checks_sha_prefix(tmp_path, monkeypatch):
    f = _torchvision_named_file(tmp_path, "resnet18")
    monkeypatch.setenv("QUICKFIT_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(resnet_module.TORCHVISION_URLS, "resnet18", f.as_uri())
    model = resnet18(pretrained=True)
    assert (tmp_path / "cache" / f.name).exists()
    torch.testing.assert_close(model.fc.bias, torch.load(f, weights_only=True)["fc.bias"])
    # a file whose content does not match the hash in its name is refused (and not kept in the cache)
    bad = tmp_path / "resnet18-00000000.pth"
    bad.write_bytes(f.read_bytes())
    monkeypatch.setitem(resnet_module.TORCHVISION_URLS, "resnet18", bad.as_uri())
    with pytest.raises(DownloadError, match="checksum"):
        resnet18(pretrained=True)
    assert not (tmp_path / "cache" / bad.name).exists()


def test_pretrained_offline_fails_at_once_saying_how_to_pass_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKFIT_HOME", str(tmp_path / "cache"))
    missing = (tmp_path / "nowhere" / "resnet34-b627a593.pth").as_uri()  # fails like an offline machine
    monkeypatch.setitem(resnet_module.TORCHVISION_URLS, "resnet34", missing)
    with pytest.raises(DownloadError, match=r"resnet34\(pretrained='path/to/resnet34-b627a593.pth'\)"):
        resnet34(pretrained=True)


def test_weight_file_of_the_wrong_architecture_names_file_and_keys(tmp_path):
    f = _torchvision_named_file(tmp_path, "resnet50")
    with pytest.raises(ValueError, match=r"resnet50-[0-9a-f]{8}\.pth.*do not fit resnet18.*missing keys"):
        resnet18(pretrained=f)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resnet18(pretrained=tmp_path / "missing.pth")


def test_pickled_code_is_refused(tmp_path):
    f = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": Path("x")}, f)  # a Path needs unpickling code
    with pytest.raises(ValueError, match="weights-only"):
        resnet18(pretrained=f)


def test_pretrained_with_other_num_classes_is_refused():
    with pytest.raises(ValueError, match="num_classes=10"):
        resnet18(pretrained=True, num_classes=10)
