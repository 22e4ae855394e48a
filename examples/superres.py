"""2x super-resolution of hymenoptera photos: a pixel-loss model, then a feature-loss fine-tune of it.

    python examples/superres.py ../shared/data/hymenoptera/hymenoptera_data --out sr.qf

1. `crappify` the train and val photos to half size (bicubic, saved losslessly: the standard 2x task;
   `--jpeg 50 90` saves them as JPEGs of a random quality instead, a harder restoration) under `--work`.
2. Train the pixel-loss model on random `--size` crops of the train photos, each turned by one of the 8
   rotations / flips (L1 by default for `--epochs`, then `--mse-epochs` of MSE at `--mse-lr`): `sr_resnet`
   (EDSR's residual stack on the half-size pixels, `--nf` channels, `--blocks` blocks, sub-pixel output;
   measured here it gains dB several times faster per step than a U-Net), or with `--arch
   efficientnet_lite0` a U-Net over Lite0's first `--cut` pretrained layers. Either outputs a correction
   added to the bicubic upsampling, and starts as bicubic.
3. Evaluate on the val photos (each whole, or its centre `--eval-size` crop): PSNR of the model and of
   bicubic upsampling of the same inputs (2-pixel border left out), on RGB and on the luma Y (the
   super-resolution literature's protocol: Y of ITU-R BT.601 YCbCr, `scale` pixels of border shaved),
   and a sharpness measure (mean absolute Laplacian) of each; and the pixel model's PSNR with test-time
   augmentation (`learn.tta`: the mean of its outputs over the 8 rotations / flips of each input, EDSR's
   self-ensemble).
4. Fine-tune a copy with the feature loss (pixel L1 + Lite0 activations, each term weighted to start
   level with the pixel term), evaluate it the same way, save bicubic | pixel | feature | original crops
   side by side (`--png`).
5. Export the pixel-loss model (`--out`) and check `load_learner(out).predict(low_res_path)` is the 2x image.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import quickfit as qf
from quickfit.image_grid import image_to_tensor, save_image_grid
from quickfit.vision.core.augment import AffineWarp
from quickfit.vision.generation.crappify import crappify
from quickfit.vision.generation.data import ImageToImageDataLoaders
from quickfit.vision.generation.feature_loss import FeatureLoss
from quickfit.vision.generation.learner import image2image_learner
from quickfit.vision.generation.metrics import psnr
from quickfit.vision.generation.tta import DihedralEnsemble

LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)


def sharpness(x: torch.Tensor) -> float:
    return F.conv2d(x[None], LAPLACE, groups=3).abs().mean().item()


def eval_pairs(dls, val_pairs, size: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input [1, 3, h, w] in [0, 1], before any normalization: the learner sets that later; target [3, 2h,
    2w]) of every val photo: whole (`size` None: the target is the photo's top-left 2h x 2w, the part its
    half-size input covers), or the centre `size` crop."""
    out = []
    for lr_path, hr_path in val_pairs:
        (x,) = next(iter(dls.test_dl([lr_path])))
        x = dls.normalize.decode(x) if dls.normalize is not None else x
        y = image_to_tensor(hr_path)
        k = 1 if dls.upsample else dls.scale  # target pixels per input pixel
        h, w = x.shape[-2] * k, x.shape[-1] * k
        y = y[:, :h, :w]
        if size:
            top, left = (h - size) // 2 // dls.scale * dls.scale, (w - size) // 2 // dls.scale * dls.scale
            y = y[:, top : top + size, left : left + size]
            x = x[..., top // k : (top + size) // k, left // k : (left + size) // k]
        out.append((x, y))
    return out


def evaluate(learn, pairs, tta: bool = False) -> dict[str, float]:
    """Mean PSNR (RGB and Y) / sharpness over the val `pairs`, of the model (`tta`: its mean over the 8
    rotations / flips of each input, `learn.tta`'s) and of bicubic upsampling of its input."""
    model = DihedralEnsemble(learn.model) if tta else learn.model
    model.eval()
    norm, scale = learn.dls.normalize, learn.dls.scale
    keys = ("model", "bicubic", "model_y", "bicubic_y", "sharp_model", "sharp_bicubic")
    totals = dict.fromkeys(keys, 0.0)
    with torch.no_grad():
        for x, y in pairs:
            xn = norm(x) if norm is not None else x  # the learner's input normalization, as in training
            pred = model(xn.to(learn.device)).float().clamp(0, 1)[0].cpu()
            bicubic = upsampled(x, y.shape[-2:])[0].cpu()
            for name, im in (("model", pred), ("bicubic", bicubic)):
                totals[name] += psnr(im, y, border=2).item()
                totals[f"{name}_y"] += psnr(im, y, border=scale, luma=True).item()
                totals[f"sharp_{name}"] += sharpness(im)
    return {k: v / len(pairs) for k, v in totals.items()}


def upsampled(x: torch.Tensor, size) -> torch.Tensor:
    """The bicubic upsampling of `x` to `size` (unchanged if it is that size: data with upsample=True)."""
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x.float(), size=tuple(size), mode="bicubic", align_corners=False)
    return x.clamp(0, 1)


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
    parser.add_argument("--size", type=int, default=96, help="training crop of the 2x target")
    parser.add_argument("--bs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=500, help="passes over the train photos")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--arch", default="sr_resnet", help="sr_resnet, or a U-Net over ARCH's encoder (--cut)")
    parser.add_argument("--nf", type=int, default=48, help="sr_resnet: channels")
    parser.add_argument("--blocks", type=int, default=8, help="sr_resnet: residual blocks")
    parser.add_argument(
        "--jpeg",
        type=int,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="save the half-size inputs at a random JPEG quality in [LOW, HIGH] (default: lossless)",
    )
    parser.add_argument("--resample", choices=["bicubic", "bilinear"], default="bicubic", help="the downscale")
    parser.add_argument(
        "--flips",
        choices=["dihedral", "horizontal"],
        default="dihedral",
        help="training augmentation: the 8 rotations / flips of each crop, or the mirror only",
    )
    parser.add_argument("--feature-epochs", type=int, default=10)
    parser.add_argument("--loss", choices=["mse", "l1"], default="l1", help="the pixel loss")
    parser.add_argument("--mse-epochs", type=int, default=30, help="then MSE at --mse-lr for N epochs (0: none)")
    parser.add_argument("--mse-lr", type=float, default=1e-4)
    parser.add_argument("--mse-size", type=int, default=None, help="the MSE stage's training crop (default: --size)")
    parser.add_argument("--mse-bs", type=int, default=None, help="the MSE stage's batch size (default: --bs)")
    parser.add_argument("--cut", type=int, default=5, help="encoder: the first CUT layers of Lite0's body")
    parser.add_argument("--eval-size", type=int, default=None, help="evaluate the centre crop of each val photo's "
                        "2x target (default: the whole photos)")  # fmt: skip
    parser.add_argument("--png", default="superres.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    qf.set_seed(args.seed)
    t0 = time.perf_counter()

    kind = f"jpeg{args.jpeg[0]}-{args.jpeg[1]}" if args.jpeg else "lossless"
    lr_dir = {split: args.work / f"{split}_lr_{args.resample}_{kind}" for split in ("train", "val")}
    for split, dst in lr_dir.items():
        crappify(args.path / split, dst, scale=2, quality=args.jpeg, draw_text=False, seed=0, resample=args.resample)
    sr = args.arch == "sr_resnet"
    # the 8 rotations / flips of each crop (or only the mirror): quarter turns of a square crop resample
    # exactly, so the targets are not blurred
    flips = [AffineWarp(flip_vert=args.flips == "dihedral", max_rotate=0.0, max_zoom=1.0, max_warp=0.0)]
    # cache: every photo decoded once and kept in memory (~280 MB), so each epoch only crops them
    dls = ImageToImageDataLoaders.from_folders(
        lr_dir["train"], args.path / "train", valid=(lr_dir["val"], args.path / "val"),
        size=args.size, bs=args.bs, batch_tfms=flips, upsample=not sr, cache=True,
    )  # fmt: skip
    print(dls)
    val_pairs = dls.valid.dataset.pairs
    # evaluation: every val photo whole (or its centre --eval-size crop), one at a time (sizes differ)
    val_eval = eval_pairs(dls, val_pairs, args.eval_size)

    # the pixel-loss model
    pixel_loss = torch.nn.MSELoss() if args.loss == "mse" else torch.nn.L1Loss()
    model_kw = dict(config=dict(nf=args.nf, n_blocks=args.blocks)) if sr else dict(encoder_cut=args.cut)
    learn = image2image_learner(dls, args.arch, loss_func=pixel_loss, path=args.work, **model_kw)
    t = time.perf_counter()
    fit_without_validation(learn, args.epochs, args.lr)
    if args.mse_epochs:  # PSNR is the MSE's: a short, low-rate fine-tune on it after L1 (+0.01 dB measured)
        learn.loss_func = torch.nn.MSELoss()
        mse_size, mse_bs = args.mse_size or args.size, args.mse_bs or args.bs  # 192 / 8 measured no better
        if (mse_size, mse_bs) != (args.size, args.bs):
            learn.set_data(ImageToImageDataLoaders.from_folders(  # set_data: normalized as the first data
                lr_dir["train"], args.path / "train", valid=(lr_dir["val"], args.path / "val"),
                size=mse_size, bs=mse_bs, batch_tfms=flips, upsample=not sr, cache=True,
            ))  # fmt: skip
        fit_without_validation(learn, args.mse_epochs, args.mse_lr)
        learn.set_data(dls)
    pixel_time = time.perf_counter() - t
    pixel = evaluate(learn, val_eval)
    pixel_tta = evaluate(learn, val_eval, tta=True)
    print(f"pixel loss: {args.epochs} epochs{f' + {args.mse_epochs} of MSE' if args.mse_epochs else ''} "
          f"in {pixel_time:.0f}s")  # fmt: skip

    # the feature-loss model: the pixel model fine-tuned, each feature term starting level with the pixel term
    probe = FeatureLoss(layer_weights=(1.0, 1.0, 1.0))
    learn.model.eval()
    x, y = next(iter(dls.valid))
    with torch.no_grad():
        probe(learn.model(x.to(learn.device)).float(), y.to(learn.device))
    raw = probe.last_terms
    weights = [raw["pixel"].item() / raw[f"feat_{i}"].item() for i in range(3)]
    floss = FeatureLoss(layer_weights=weights)
    sharp = image2image_learner(dls, args.arch, loss_func=floss, pretrained=False, path=args.work, **model_kw)
    sharp.model.load_state_dict(learn.model.state_dict())
    t = time.perf_counter()
    fit_without_validation(sharp, args.feature_epochs, args.lr / 5)
    feature_time = time.perf_counter() - t
    feature = evaluate(sharp, val_eval)
    print(f"feature loss (layer weights {', '.join(f'{w:.3g}' for w in weights)}): "
          f"{args.feature_epochs} epochs in {feature_time:.0f}s")  # fmt: skip

    # side by side: bicubic | pixel | feature | original, centre crops of three val photos
    rows = []
    for lr_path, hr_path in val_pairs[:3]:
        (xb,) = next(iter(dls.test_dl([lr_path])))
        with torch.no_grad():
            outs = [m.model.eval()(xb.to(m.device)).float().clamp(0, 1)[0].cpu() for m in (learn, sharp)]
        hr = image_to_tensor(hr_path)[:, : outs[0].shape[1], : outs[0].shape[2]]
        bic = upsampled(dls.normalize.decode(xb), hr.shape[-2:])[0]
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

    where = f"{args.eval_size}px centre crops" if args.eval_size else "whole photos"
    for ch, k in (("RGB", ""), ("Y (the SR literature's protocol)", "_y")):
        b = pixel[f"bicubic{k}"]
        print(f"val photos ({len(val_pairs)}, {where}), PSNR on {ch}: bicubic {b:.2f} dB, "
              f"pixel-loss model {pixel[f'model{k}']:.2f} dB ({pixel[f'model{k}'] - b:+.2f}), "
              f"feature-loss model {feature[f'model{k}']:.2f} dB ({feature[f'model{k}'] - b:+.2f}); "
              f"pixel-loss model with TTA (mean of 8 rotations / flips) {pixel_tta[f'model{k}']:.2f} dB "
              f"({pixel_tta[f'model{k}'] - b:+.2f})")  # fmt: skip
    gain = pixel["model"] - pixel["bicubic"]
    print(f"goal (pixel-loss model >= bicubic + 1.5 dB, RGB, no TTA): {'met' if gain >= 1.5 else 'MISSED'} "
          f"({gain:+.3f} dB); feature-loss model >= bicubic: "
          f"{'met' if feature['model'] >= feature['bicubic'] else 'MISSED'}, sharper than the pixel model: "
          f"{'yes' if feature['sharp_model'] > pixel['sharp_model'] else 'no'}")  # fmt: skip
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
