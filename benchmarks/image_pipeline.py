"""Images per second of the image training pipeline: quickfit vs a plain per-item Pillow + torch one.

    python benchmarks/image_pipeline.py                       # hymenoptera train+val, 224px, bs 64
    python benchmarks/image_pipeline.py --epochs 3 --rounds 3 --workers 2 --device cuda
    python benchmarks/image_pipeline.py --stages-only          # only where the time goes, per stage

Both pipelines read the same files (hymenoptera train + val, 398 photos from 130 to 2592 px) with the
same number of DataLoader workers and produce normalized float batches [64, 3, 224, 224] on the same
device, with the same kinds of randomness:

- plain (what a torchvision-style pipeline does, written with Pillow + torch since torchvision is
  not installed): per item in the workers, full-size decode, random-resized crop (35-100% of the
  area), to float, horizontal flip, rotation up to 10 degrees (affine_grid + grid_sample per image),
  brightness and contrast jitter (0.2, torchvision's ColorJitter formulas), normalize; float32
  batches go to the device.
- quickfit: `ImageDataLoaders.from_folder(..., item_tfms=RandomResizedCrop(224, 0.35),
  batch_tfms=aug_transforms())`: the workers do JPEG draft decode + crop-resize to uint8; the device
  does flip + rotate + zoom + perspective warp in ONE grid_sample per batch and lighting +
  normalization folded into the uint8 -> float conversion. (It does more augmentation: zoom and warp.)

- quickfit cached: the same with `cache=True`: each file is decoded once (in the warm-up epoch), later
  epochs crop and resize the kept pixels.

The pipelines alternate (plain, quickfit, quickfit cached, plain, ...) `--rounds` times so a busy shared
machine affects them alike; each round times `--epochs` epochs after a warm-up epoch (workers persistent).
Goal: quickfit >= 400 images/s on 2 cores (issue 25).

Where the time goes: each stage of quickfit's pipeline timed alone in this process on one thread, as
CPU ms per image (decode, crop + resize, collate, batch augmentation), next to what the stage cost
before this round where it changed (the item's [H, W, 3] -> [3, H, W] transposing copy, and the
batch conversion from a [B, 3, H, W] batch).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from quickfit.vision.core.augment import Normalize, aug_transforms, imagenet_stats
from quickfit.vision.core.cache import DecodeCache
from quickfit.vision.core.data import ImageDataLoaders
from quickfit.vision.core.image import SourceImage, get_image_files
from quickfit.vision.core.loader import ImageItems, _stack_images, apply_batch_tfms, default_num_workers
from quickfit.vision.core.transforms import RandomResizedCrop

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MEAN = torch.tensor(imagenet_stats[0]).view(3, 1, 1)
STD = torch.tensor(imagenet_stats[1]).view(3, 1, 1)


class PlainDataset(Dataset):
    """The per-item baseline: everything happens on one image at a time in the workers."""

    def __init__(self, files: list[Path], labels: list[int], size: int = 224, min_scale: float = 0.35):
        self.files, self.labels, self.size, self.min_scale = files, labels, size, min_scale

    def __len__(self) -> int:
        return len(self.files)

    def _crop_box(self, w: int, h: int) -> tuple[float, float, float, float]:
        for _ in range(10):  # torchvision's RandomResizedCrop.get_params
            area = w * h * float(torch.empty(1).uniform_(self.min_scale, 1.0))
            ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3))))
            cw, ch = math.sqrt(area * ratio), math.sqrt(area / ratio)
            if cw <= w and ch <= h:
                x0, y0 = float(torch.rand(1)) * (w - cw), float(torch.rand(1)) * (h - ch)
                return x0, y0, x0 + cw, y0 + ch
        s = min(w, h)
        return (w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as f:
            img = f.convert("RGB")  # full-size decode
        img = img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=self._crop_box(*img.size))
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)  # ToTensor
        if torch.rand(1) < 0.5:  # RandomHorizontalFlip
            x = x.flip(-1)
        angle = math.radians(float(torch.empty(1).uniform_(-10, 10)))  # RandomRotation(10)
        theta = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]])
        grid = F.affine_grid(theta[None], [1, 3, self.size, self.size], align_corners=False)
        x = F.grid_sample(x[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]
        x = (x * float(torch.empty(1).uniform_(0.8, 1.2))).clamp(0, 1)  # ColorJitter brightness
        gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).mean()  # ColorJitter contrast
        c = float(torch.empty(1).uniform_(0.8, 1.2))
        x = (c * x + (1 - c) * gray).clamp(0, 1)
        return (x - MEAN) / STD, self.labels[i]


def plain_epoch(dl: DataLoader, device: torch.device) -> int:
    n = 0
    for x, y in dl:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        n += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n


def quickfit_epoch(dl, device: torch.device) -> int:
    n = 0
    for x, _ in dl:
        n += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n


def worker_pids(dl) -> list[int]:
    """The persistent worker processes of a torch DataLoader (or of an ImageLoader's inner one)."""
    inner = getattr(dl, "_loader", dl)
    it = getattr(inner, "_iterator", None)
    return [w.pid for w in getattr(it, "_workers", [])]


def worker_cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of the given processes, from Linux /proc (0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure(run, dl, device: torch.device, epochs: int) -> tuple[float, float, float]:
    """(images per second of wall time, CPU ms per image in this process, CPU ms per image in the workers)."""
    pids = worker_pids(dl)
    t0, m0, w0, n = time.perf_counter(), time.process_time(), worker_cpu_seconds(pids), 0
    for _ in range(epochs):
        n += run(dl, device)
    wall = time.perf_counter() - t0
    return n / wall, 1000 * (time.process_time() - m0) / n, 1000 * (worker_cpu_seconds(pids) - w0) / n


def cpu_ms(fn, n_images: int) -> float:
    t0 = time.process_time()
    fn()
    return 1000 * (time.process_time() - t0) / n_images


def stages(files: list[Path], size: int, bs: int) -> None:
    """Print the CPU ms per image of each stage of quickfit's pipeline, one thread, this process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tfm, n = RandomResizedCrop(size, min_scale=0.35), len(files)

    def decode() -> None:
        for f in files:
            with SourceImage(f) as src:
                src.decode(tfm.cover_size(*src.size))

    cache = DecodeCache(files, tfm.cover_size, 1 << 34)
    items = [tfm(cache.source(i, f), train=True) for i, f in enumerate(files)]  # fills the cache
    resized: list[torch.Tensor] = []
    rows = {
        "decode (JPEG draft scale covering every crop)": cpu_ms(decode, n),
        "crop + resize from decoded pixels (to a uint8 [3, H, W] view)": cpu_ms(
            lambda: resized.extend(tfm(cache.source(i, f), train=True) for i, f in enumerate(files)), n
        ),
        "  before: + transposing copy to contiguous [3, H, W]": cpu_ms(lambda: [x.contiguous() for x in items], n),
    }
    batches = [items[i : i + bs] for i in range(0, n - bs + 1, bs)]
    nb = len(batches) * bs
    rows["collate 64 items into a channels-last batch"] = cpu_ms(lambda: [_stack_images(b) for b in batches], nb)
    old = [[x.contiguous() for x in b] for b in batches]
    rows["  before: torch.stack of contiguous items"] = cpu_ms(lambda: [torch.stack(b) for b in old], nb)
    xs = [_stack_images(b) for b in batches]
    tfms, norm, ws = aug_transforms(), Normalize.from_stats(imagenet_stats), {}
    apply_batch_tfms(xs[0], tfms, norm, True, ws)  # allocates the workspace
    rows["batch augmentation on the CPU (uint8 -> float, warp, lighting, normalize)"] = cpu_ms(
        lambda: [apply_batch_tfms(x, tfms, norm, True, ws) for x in xs], nb
    )
    xc, ws_old = [x.contiguous() for x in xs], {}
    apply_batch_tfms(xc[0], tfms, norm, True, ws_old)
    rows["  before: from a contiguous [B, 3, H, W] batch"] = cpu_ms(
        lambda: [apply_batch_tfms(x, tfms, norm, True, ws_old) for x in xc], nb
    )
    torch.set_num_threads(threads)
    print(f"where the time goes: CPU ms per image, one thread ({n} images, {size}px, bs {bs})")
    for name, ms in rows.items():
        print(f"  {name:<78} {ms:6.2f}")
    total = sum(ms for name, ms in rows.items() if not name.startswith(" "))
    no_decode = total - rows["decode (JPEG draft scale covering every crop)"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"  sum {total:.2f} ms: at most {1000 * cores / total:.0f} images/s on {cores} cores; "
        f"{no_decode:.2f} ms without decoding (cached): at most {1000 * cores / no_decode:.0f} images/s"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA / "hymenoptera" / "hymenoptera_data")
    p.add_argument("--workers", type=int, default=default_num_workers())
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    p.add_argument("--stages-only", action="store_true", help="only time the stages, no pipelines")
    args = p.parse_args()
    if not args.data.is_dir():
        sys.exit(f"hymenoptera not found at {args.data} (set QUICKFIT_SHARED_DATA or --data)")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    files = get_image_files(args.data)
    stages(files, args.size, args.bs)
    if args.stages_only:
        return

    # One training set of all 398 photos (train + val), the same for all pipelines.
    dls = ImageDataLoaders.from_folder(
        args.data,
        valid="val",
        item_tfms=RandomResizedCrop(args.size, min_scale=0.35),
        batch_tfms=aug_transforms(),
        bs=args.bs,
        num_workers=args.workers,
    )
    files = dls.train_items.paths + dls.valid_items.paths
    labels = torch.cat([dls.train_items.targets, dls.valid_items.targets])
    quick = dls.train.replace(items=ImageItems(files, labels), shuffle=True)
    quick.persistent = True
    quick.to(device)
    cached = dls.train.replace(items=ImageItems(files, labels), shuffle=True)
    cached.dataset.cache = DecodeCache(files, cached.dataset.item_tfm.cover_size, 1 << 34)
    cached.persistent = True
    cached.to(device)
    plain = DataLoader(
        PlainDataset(files, labels.tolist(), args.size),
        batch_size=args.bs,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
    )
    print(
        f"{len(files)} images ({len(get_image_files(args.data))} files), {args.size}px, bs {args.bs}, "
        f"{args.workers} workers, device {device}, torch threads {torch.get_num_threads()}, "
        f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores"
    )
    xq, _ = next(iter(quick))
    xp, _ = next(iter(plain))
    print(f"batches: quickfit {tuple(xq.shape)} {xq.dtype} on {xq.device}; plain {tuple(xp.shape)} {xp.dtype}")
    plain_epoch(plain, device)  # warm-up: start the persistent workers, fill caches
    quickfit_epoch(quick, device)
    quickfit_epoch(cached, device)  # decodes every file once, into the cache

    rows: dict[str, list[tuple[float, float, float]]] = {"plain": [], "quickfit": [], "cached": []}
    runs = (("plain", plain_epoch, plain), ("quickfit", quickfit_epoch, quick), ("cached", quickfit_epoch, cached))
    for r in range(args.rounds):
        for name, run, dl in runs:
            rows[name].append(measure(run, dl, device, args.epochs))
        print(
            f"round {r + 1}: "
            + "   ".join(
                f"{k} {v[-1][0]:6.1f} img/s (CPU ms/img: main {v[-1][1]:.2f}, workers {v[-1][2]:.2f})"
                for k, v in rows.items()
            )
        )
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in rows.items()}
    ratios = [q[0] / p[0] for q, p in zip(rows["quickfit"], rows["plain"])]
    total = {k: v[1] + v[2] for k, v in med.items()}
    print(
        f"median wall clock: plain {med['plain'][0]:.1f} img/s, quickfit {med['quickfit'][0]:.1f} img/s, "
        f"quickfit cached {med['cached'][0]:.1f} img/s (goal >= 400)"
    )
    print(
        f"speed-up quickfit / plain, wall clock: {med['quickfit'][0] / med['plain'][0]:.2f}x "
        f"(per round {', '.join(f'{r:.2f}' for r in ratios)}; goal >= 1.5x)"
    )
    print(
        f"CPU work per image (robust on a shared machine): plain {total['plain']:.2f} ms, "
        f"quickfit {total['quickfit']:.2f} ms: {total['plain'] / total['quickfit']:.2f}x less; "
        f"quickfit cached {total['cached']:.2f} ms"
    )
    print(
        f"CPU work left in the workers when batch transforms run on the device: plain {med['plain'][2]:.2f} ms, "
        f"quickfit {med['quickfit'][2]:.2f} ms: {med['plain'][2] / med['quickfit'][2]:.2f}x less "
        f"(on {device}, quickfit's main-process share is {med['quickfit'][1]:.2f} ms)"
    )


if __name__ == "__main__":
    main()
