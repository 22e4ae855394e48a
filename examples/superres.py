"""2x super-resolution of hymenoptera photos: a U-Net generator with the pixel loss, then the feature loss.

    python examples/superres.py ../shared/data/hymenoptera/hymenoptera_data --out sr.qf

1. `crappify` the train and val photos to half size (JPEG quality 50-90, no text) under `--work`.
2. Train a U-Net (EfficientNet-Lite0's first `--cut` pretrained layers as the encoder) on random
   `--size` crops of the train photos with a pixel loss (MSE by default: what PSNR measures; measured
   here, it gains dB several times faster than L1); its input is the bicubic upsampling, its output a
   correction added to it (`ResidualUnet`).
3. Evaluate on the val photos (the centre `--eval-size` crop of each): PSNR of the model and of bicubic
   upsampling of the same inputs (2-pixel border left out), and a sharpness measure (mean absolute
   Laplacian) of each.
4. Fine-tune a copy with the feature loss (pixel L1 + Lite0 activations, each term weighted to start
   level with the pixel term), evaluate it the same way, save bicubic | pixel | feature | original crops
   side by side (`--png`).
5. Export the pixel-loss model (`--out`) and check `load_learner(out).predict(low_res_path)` is the 2x image.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import quickfit as qf
from quickfit.vision.augment import AffineWarp
from quickfit.vision.crappify import crappify
from quickfit.vision.feature_loss import FeatureLoss
from quickfit.vision.image2image import ImageToImageDataLoaders
from quickfit.vision.image2image_learner import image2image_learner
from quickfit.vision.image_grid import image_to_tensor, save_image_grid

LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)


def psnr(a: torch.Tensor, b: torch.Tensor, border: int = 2) -> float:
    a, b = a[..., border:-border, border:-border], b[..., border:-border, border:-border]
    return 10 * math.log10(1 / F.mse_loss(a, b).item())


def sharpness(x: torch.Tensor) -> float:
    return F.conv2d(x[None], LAPLACE, groups=3).abs().mean().item()


def evaluate(learn, eval_dl) -> dict[str, float]:
    """Mean PSNR / sharpness over the val crops, of the model and of its bicubic input."""
    learn.model.eval()
    norm, totals, n = learn.dls.normalize, {"model": 0.0, "bicubic": 0.0, "sharp_model": 0.0, "sharp_bicubic": 0.0}, 0
    with torch.no_grad():
        for x, y in eval_dl:
            pred = learn.model(x.to(learn.device)).float().clamp(0, 1).cpu()
            bicubic = norm.decode(x).clamp(0, 1).cpu()
            for p, b, t in zip(pred, bicubic, y.cpu()):
                totals["model"] += psnr(p, t)
                totals["bicubic"] += psnr(b, t)
                totals["sharp_model"] += sharpness(p)
                totals["sharp_bicubic"] += sharpness(b)
                n += 1
    return {k: v / n for k, v in totals.items()}


def fit_without_validation(learn, epochs: int, lr: float) -> None:
    valid, learn.dls.valid = learn.dls.valid, None  # the val photos are evaluated whole, once, at the end
    try:
        learn.fit_one_cycle(epochs, lr)
    finally:
        learn.dls.valid = valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="hymenoptera_data, with train/ and val/")
    parser.add_argument("--out", default="sr.qf")
    parser.add_argument("--work", type=Path, default=Path("superres_work"))
    parser.add_argument("--size", type=int, default=64, help="training crop of the 2x target")
    parser.add_argument("--bs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--feature-epochs", type=int, default=4)
    parser.add_argument("--loss", choices=["mse", "l1"], default="mse", help="the pixel loss (MSE: what PSNR measures)")
    parser.add_argument("--cut", type=int, default=5, help="encoder: the first CUT layers of Lite0's body")
    parser.add_argument("--eval-size", type=int, default=192, help="centre crop of each val photo's 2x target")
    parser.add_argument("--png", default="superres.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    qf.set_seed(args.seed)
    t0 = time.perf_counter()

    for split in ("train", "val"):
        crappify(args.path / split, args.work / f"{split}_lr", scale=2, quality=(50, 90), draw_text=False, seed=0)
    flips = [AffineWarp(max_rotate=0.0, max_zoom=1.0, max_warp=0.0)]  # exact: no resampling blur on targets
    dls = ImageToImageDataLoaders.from_folders(
        args.work / "train_lr", args.path / "train", valid=(args.work / "val_lr", args.path / "val"),
        size=args.size, bs=args.bs, batch_tfms=flips, num_workers=2,
    )  # fmt: skip
    print(dls)
    val_pairs = dls.valid.dataset.pairs
    # evaluation: the centre --eval-size crop of every val photo (whole photos cost 5x more on 2 busy cores)
    eval_dl = ImageToImageDataLoaders.from_pairs(val_pairs, valid_pairs=val_pairs, size=args.eval_size, bs=8,
                                                 num_workers=2).valid  # fmt: skip

    # the pixel-loss model
    pixel_loss = torch.nn.MSELoss() if args.loss == "mse" else torch.nn.L1Loss()
    learn = image2image_learner(dls, "efficientnet_lite0", encoder_cut=args.cut, loss_func=pixel_loss, path=args.work)
    t = time.perf_counter()
    fit_without_validation(learn, args.epochs, args.lr)
    pixel_time = time.perf_counter() - t
    eval_dl.normalize = dls.normalize
    pixel = evaluate(learn, eval_dl)
    print(f"pixel loss: {args.epochs} epochs in {pixel_time:.0f}s")

    # the feature-loss model: the pixel model fine-tuned, each feature term starting level with the pixel term
    probe = FeatureLoss(layer_weights=(1.0, 1.0, 1.0))
    learn.model.eval()
    x, y = next(iter(dls.valid))
    with torch.no_grad():
        probe(learn.model(x.to(learn.device)).float(), y.to(learn.device))
    raw = probe.last_terms
    weights = [raw["pixel"].item() / raw[f"feat_{i}"].item() for i in range(3)]
    floss = FeatureLoss(layer_weights=weights)
    sharp = image2image_learner(dls, "efficientnet_lite0", encoder_cut=args.cut, loss_func=floss,
                                pretrained=False, path=args.work)  # fmt: skip
    sharp.model.load_state_dict(learn.model.state_dict())
    t = time.perf_counter()
    fit_without_validation(sharp, args.feature_epochs, args.lr / 5)
    feature_time = time.perf_counter() - t
    feature = evaluate(sharp, eval_dl)
    print(f"feature loss (layer weights {', '.join(f'{w:.3g}' for w in weights)}): "
          f"{args.feature_epochs} epochs in {feature_time:.0f}s")  # fmt: skip

    # side by side: bicubic | pixel | feature | original, centre crops of three val photos
    rows = []
    for lr_path, hr_path in val_pairs[:3]:
        (xb,) = next(iter(dls.test_dl([lr_path])))
        with torch.no_grad():
            outs = [m.model.eval()(xb.to(m.device)).float().clamp(0, 1)[0].cpu() for m in (learn, sharp)]
        bic = dls.normalize.decode(xb)[0].clamp(0, 1)
        hr = image_to_tensor(hr_path)[:, : bic.shape[1], : bic.shape[2]]
        h, w = bic.shape[1:]
        c = min(160, h, w)
        top, left = (h - c) // 2, (w - c) // 2
        rows += [
            F.interpolate(im[None, :, top : top + c, left : left + c], size=(160, 160))[0] for im in (bic, *outs, hr)
        ]
    save_image_grid(torch.stack(rows), args.png, nrow=4)

    # export and reload
    learn.export(Path(args.out).absolute())
    loaded = qf.load_learner(args.out)
    lr_path = val_pairs[0][0]
    out = loaded.predict(lr_path)
    h, w = image_to_tensor(lr_path).shape[1:]
    assert out.shape == (3, 2 * h, 2 * w) and 0 <= out.min() and out.max() <= 1, out.shape
    assert torch.allclose(out, outs_of(learn, dls, lr_path), atol=1e-4)

    print(f"val photos ({len(val_pairs)}, {args.eval_size}px centre crops): PSNR bicubic {pixel['bicubic']:.2f} dB, "
          f"pixel-loss model {pixel['model']:.2f} dB ({pixel['model'] - pixel['bicubic']:+.2f}), "
          f"feature-loss model {feature['model']:.2f} dB ({feature['model'] - feature['bicubic']:+.2f})")  # fmt: skip
    print(f"sharpness (mean |Laplacian|): bicubic {pixel['sharp_bicubic']:.4f}, pixel {pixel['sharp_model']:.4f}, "
          f"feature {feature['sharp_model']:.4f}")  # fmt: skip
    print(f"side by side: {args.png}; exported {args.out}: predict({lr_path.name}) -> {tuple(out.shape)} from {w}x{h}")
    print(f"wall time {time.perf_counter() - t0:.0f}s on {torch.get_num_threads()} thread(s)")


def outs_of(learn, dls, lr_path) -> torch.Tensor:
    (xb,) = next(iter(dls.test_dl([lr_path])))
    with torch.no_grad():
        return learn.model.eval()(xb.to(learn.device)).float().clamp(0, 1)[0].cpu()


if __name__ == "__main__":
    main()
