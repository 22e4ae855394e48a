"""docs/design.md's 30-line application runs as pasted: a new app plugs in without touching the engine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "design.md"


@pytest.mark.slow
def test_the_new_application_example_runs_as_pasted(tmp_path):
    text = DOC.read_text()
    section = text[text.index("## A new application in 30 lines") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "app_example.py").write_text(code)
    out = subprocess.run([sys.executable, "app_example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "points.qf").is_file()
    pred, target = re.findall(r"tensor\(\[([^\]]+)\]\)", out.stdout.splitlines()[-1])
    pred, target = [float(v) for v in pred.split(",")], [float(v) for v in target.split(",")]
    assert max(abs(p - t) for p, t in zip(pred, target)) < 0.2


def test_the_new_target_kind_example_runs_as_pasted(tmp_path):
    # docs/design.md's Depth target: one class in one file, and the augmentation moves each depth map
    # exactly as its image (the images' red channel is their depth).
    text = DOC.read_text()
    section = text[text.index("## A new target kind in one file") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "depth_example.py").write_text(code)
    cmd = [sys.executable, "depth_example.py"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    first, last = out.stdout.strip().splitlines()[-2:]
    assert "torch.Size([4, 1, 32, 32])" in first and "L1Loss()" in first
    assert float(last.rsplit(":", 1)[1]) < 0.01  # misaligned maps differ by ~0.25 on random depths
