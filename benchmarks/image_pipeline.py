"""Training images per second of the image pipeline, and where the time goes (issue 25: >= 400 on 2 cores).

    python benchmarks/image_pipeline.py                             # this checkout, uncached and cached
    python benchmarks/image_pipeline.py --before /tmp/base          # and another checkout, in the same run
    python benchmarks/image_pipeline.py --plain --rounds 5 --epochs 8 --device cuda

The pipeline is the README's default: `ImageDataLoaders.from_folder(hymenoptera, valid="val",
size=224, batch_tfms=aug_transforms())`, whose training loader crops `Resize(224)` at a random position
(hymenoptera's photos are mostly 500x375 JPEGs), then flips, rotates, zooms, warps, relights and
normalizes batches of 64, with `num_workers` worker processes (the cores). Each round iterates it for
`--epochs` epochs (245 images each), after a warm-up epoch that also fills the cache of the
`cache=True` variant. Each variant (this checkout and `--before`, each with and without `cache=True`;
`--plain`: a per-item Pillow + torch pipeline as torchvision users write it; fastai's when it can be
imported, else the output says so) runs in its own process, started once; the rounds alternate
between them, so a busy shared machine slows them alike.

Where the time goes, CPU ms per image: each stage alone in the variant's process on one thread, the
least of the rounds (decode: the file to pixels at the draft scale the crop needs; crop + resize: to
a uint8 [3, 224, 224] item; collate: 64 items into a batch; batch augmentation: uint8 -> float, the
warp, lighting and normalization, in the main process on a CPU device); then the CPU time the real
loop spent in the worker processes and in the main process (the median of the rounds), whose excess
over the stages is the transfer between the processes, the loops and the contention. N idle cores
make at most 1000 N / (CPU ms per image) images per second: the "at most" column.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


# ---- the variants, each in its own process -----------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes, from Linux /proc (0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def worker_pids(loader) -> list[int]:
    """The worker processes of a torch DataLoader (of an ImageLoader's inner one), once iterated."""
    inner = getattr(loader, "_loader", loader)
    return [w.pid for w in getattr(getattr(inner, "_iterator", None), "_workers", [])]


def ms_per(fn, n: int) -> float:
    t0 = time.process_time()
    fn()
    return 1000 * (time.process_time() - t0) / n


def quickfit_loader(data: Path, workers: int | None, bs: int, cache: bool):
    from quickfit.vision import ImageDataLoaders, aug_transforms

    dls = ImageDataLoaders.from_folder(
        data, valid="val", size=224, batch_tfms=aug_transforms(), bs=bs, num_workers=workers, cache=cache
    )
    return dls.train


def quickfit_stages(dl) -> dict[str, float]:
    """CPU ms per image of each stage of the training loader, one thread, in this process."""
    import torch

    from quickfit.vision.core.image import SourceImage

    ds = dl.dataset
    n, tfm, files = len(ds), ds.item_tfm, ds.items.paths
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def decode() -> None:  # what the item transform decodes: the draft scale its crop needs
        for f in files:
            with SourceImage(f) as src:
                w, h = src.size
                box, out, _ = tfm.plan(w, h, True)
                need = (math.ceil(w * out[0] / (box[2] - box[0])), math.ceil(h * out[1] / (box[3] - box[1])))
                src.pixels(need) if hasattr(src, "pixels") else src.decode(need)  # `decode`: before `pixels`

    def items() -> None:  # one at a time, as a worker makes them (keeping them all costs page faults)
        for i in range(n):
            ds[i]

    rows = {}
    if ds.cache is None:
        rows["decode"] = ms_per(decode, n)
    item = ms_per(items, n)
    rows["crop + resize" if ds.cache is None else "crop + resize (decoded pixels from the cache)"] = item - rows.get(
        "decode", 0.0
    )
    collate = dl._torch_loader().collate_fn
    batches = [[ds[i] for i in range(j, j + dl.bs)] for j in range(0, n - dl.bs + 1, dl.bs)]
    nb = len(batches) * dl.bs
    xbs = []
    rows["collate"] = ms_per(lambda: xbs.extend(collate(b)[0] for b in batches), nb)
    dl.transform(xbs[0])  # its scratch buffers

    def augment() -> None:
        for x in xbs:
            dl.transform(x)

    rows["batch augmentation (main process)"] = ms_per(augment, nb)
    torch.set_num_threads(threads)
    return rows


def fastai_loader(data: Path, workers: int, bs: int):
    from fastai.vision.all import ImageDataLoaders, Resize, aug_transforms  # noqa: F401 (only when installed)

    dls = ImageDataLoaders.from_folder(
        data, valid="val", item_tfms=Resize(224), batch_tfms=aug_transforms(), bs=bs, num_workers=workers
    )
    return dls.train


class PlainDataset:
    """The per-item pipeline torchvision users write (with Pillow + torch: torchvision is not a
    dependency): full-size decode, a random 224 px square crop of the resized short side, to float,
    flip, rotation by up to 10 degrees (grid_sample), brightness and contrast, normalize; all per image
    in the workers, float batches."""

    def __init__(self, files: list[Path], labels: list[int]) -> None:
        self.files, self.labels = files, labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import numpy as np
        import torch
        import torch.nn.functional as F
        from PIL import Image

        with Image.open(self.files[i]) as f:
            img = f.convert("RGB")
        w, h = img.size
        s = min(w, h)
        x0, y0 = float(torch.rand(1)) * (w - s), float(torch.rand(1)) * (h - s)
        img = img.resize((224, 224), Image.Resampling.BILINEAR, box=(x0, y0, x0 + s, y0 + s))
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)
        if torch.rand(1) < 0.5:
            x = x.flip(-1)
        a = math.radians(float(torch.empty(1).uniform_(-10, 10)))
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
        grid = F.affine_grid(theta[None], [1, 3, 224, 224], align_corners=False)
        x = F.grid_sample(x[None], grid, padding_mode="reflection", align_corners=False)[0]
        x = (x * float(torch.empty(1).uniform_(0.8, 1.2))).clamp(0, 1)
        c, gray = float(torch.empty(1).uniform_(0.8, 1.2)), (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).mean()
        x = (c * x + (1 - c) * gray).clamp(0, 1)
        mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
        return (x - mean) / std, self.labels[i]


def plain_loader(data: Path, workers: int, bs: int):
    from torch.utils.data import DataLoader

    from quickfit.vision import get_image_files

    files = get_image_files(data / "train")
    classes = sorted({f.parent.name for f in files})
    ds = PlainDataset(files, [classes.index(f.parent.name) for f in files])
    return DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers, persistent_workers=workers > 0)


def child(spec: dict) -> None:
    """One variant: build its loader, then answer the parent's commands (stages, run E, quit) in JSON."""
    import torch

    kind, data, workers, bs = spec["kind"], Path(spec["data"]), spec["workers"], spec["bs"]
    device = torch.device(spec["device"])
    if kind == "fastai":
        dl = fastai_loader(data, min(cores(), 8) if workers is None else workers, bs).to(device)
    elif kind == "plain":
        dl = plain_loader(data, min(cores(), 8) if workers is None else workers, bs)
    else:
        dl = quickfit_loader(data, workers, bs, spec["cache"]).to(device)

    def epoch() -> int:
        n = 0
        for b in dl:  # quickfit and fastai make their batches on the device; plain ones are moved there
            b[0].to(device, non_blocking=True)
            n += len(b[0])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return n

    epoch()  # warm-up: starts the workers, fills the cache
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "stages":
            out = quickfit_stages(dl) if kind == "quickfit" and device.type == "cpu" else {}
        elif cmd[0] == "run":
            t0, m0, w0 = time.perf_counter(), time.process_time(), cpu_seconds(worker_pids(dl))
            n = sum(epoch() for _ in range(int(cmd[1])))
            wall = time.perf_counter() - t0
            pids = worker_pids(dl)
            out = {
                "workers": len(pids),
                "images_s": n / wall,
                "main_ms": 1000 * (time.process_time() - m0) / n,
                "workers_ms": 1000 * (cpu_seconds(pids) - w0) / n,
            }
        else:
            return
        print(json.dumps(out), flush=True)


# ---- the parent: rounds over the variants ------------------------------------------------------------


class Variant:
    def __init__(self, name: str, spec: dict, code: Path | None) -> None:
        env = dict(os.environ)
        if code is not None:  # another checkout's quickfit comes first on the path
            env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.name, self.runs, self.stages = name, [], []
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(code) if code is not None else None,
        )

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"variant {self.name} stopped (its error is above)")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait()


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def fastai_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("fastai") is not None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA / "hymenoptera" / "hymenoptera_data")
    p.add_argument("--before", type=Path, help="another checkout of quickfit to measure alongside")
    p.add_argument("--plain", action="store_true", help="also a per-item Pillow + torch pipeline")
    p.add_argument("--workers", type=int, help="worker processes (default: quickfit's own choice; the cores elsewhere)")
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--epochs", type=int, default=6, help="timed epochs per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch_cuda() else "cpu", help="where batches are made")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(json.loads(args.child))
    if not args.data.is_dir():
        sys.exit(f"hymenoptera not found at {args.data} (set QUICKFIT_SHARED_DATA or --data)")

    base = {"data": str(args.data.resolve()), "workers": args.workers, "bs": args.bs, "device": args.device}
    plan = []
    if args.before is not None:
        plan += [("before", {"kind": "quickfit", "cache": False}, args.before.resolve())]
        plan += [("before, cache=True", {"kind": "quickfit", "cache": True}, args.before.resolve())]
    here = Path(__file__).resolve().parents[1]
    plan += [("after" if args.before else "quickfit", {"kind": "quickfit", "cache": False}, here)]
    plan += [
        ("after, cache=True" if args.before else "quickfit, cache=True", {"kind": "quickfit", "cache": True}, here)
    ]
    if fastai_installed():
        plan.append(("fastai", {"kind": "fastai"}, None))
    if args.plain:
        plan.append(("plain per-item", {"kind": "plain"}, here))
    print(
        f"hymenoptera train, 224 px, bs {args.bs}, workers {args.workers or 'default'}, {cores()} cores, "
        f"device {args.device}, "
        f"{args.rounds} rounds x {args.epochs} epochs; load average {load()}"
    )
    if not fastai_installed():
        print("fastai is not installed here: the ratio to it is not measured")
    variants = [Variant(name, {**base, **spec}, code) for name, spec, code in plan]
    try:
        for r in range(args.rounds):
            for v in variants:
                v.stages.append(v.ask("stages"))
                v.runs.append(v.ask(f"run {args.epochs}"))
            rates = ", ".join(f"{v.name} {v.runs[-1]['images_s']:.0f}" for v in variants)
            print(f"round {r + 1}: {rates} images/s; load average {load()}", flush=True)
    finally:
        for v in variants:
            v.close()
    # A stage's least time over the rounds: what other jobs on the machine added least to.
    report(variants, {v.name: {k: min(s[k] for s in v.stages) for k in v.stages[0]} for v in variants})
    print(f"load average at the end {load()}")


def report(variants: list[Variant], stages: dict[str, dict]) -> None:
    med = {v.name: {k: statistics.median(r[k] for r in v.runs) for k in v.runs[0]} for v in variants}
    names = [v.name for v in variants]
    print("\nwhere the time goes, CPU ms per image (stages: one thread, alone, least of the rounds; loop: the real")
    print("pipeline, median of the rounds)")
    print(f"  {'':<48}" + "".join(f"{n:>22}" for n in names))
    keys = []
    for s in stages.values():
        keys += [k for k in s if k not in keys]

    def row(label: str, values: list[float | None]) -> None:
        print(f"  {label:<48}" + "".join(f"{'' if x is None else f'{x:.2f}':>22}" for x in values))

    for k in keys:
        row(k, [stages[n].get(k) for n in names])
    row("  sum of the stages", [sum(stages[n].values()) if stages[n] else None for n in names])
    row("loop: worker processes", [med[n]["workers_ms"] for n in names])
    row("loop: main process", [med[n]["main_ms"] for n in names])
    total = {n: med[n]["workers_ms"] + med[n]["main_ms"] for n in names}
    row("loop: all processes", [total[n] for n in names])
    row(
        "  of which transfer, loop and overhead",
        [total[n] - sum(stages[n].values()) if stages[n] else None for n in names],
    )
    print(f"\ntraining images/s, median of {len(variants[0].runs)} rounds (goal >= 400 on 2 cores)")
    for n in names:
        print(
            f"  {n:<28} {med[n]['images_s']:6.0f}   at most {1000 * cores() / total[n]:4.0f} on {cores()} idle cores"
            f"   ({med[n]['workers']:.0f} worker processes)"
        )
    if "before" in med:
        for a, b in (("after", "before"), ("after, cache=True", "before, cache=True")):
            print(
                f"  {a} / {b}: {med[a]['images_s'] / med[b]['images_s']:.2f}x images/s, "
                f"{total[b] / total[a]:.2f}x less CPU"
            )
    if "fastai" in med:
        q = "after" if "after" in med else "quickfit"
        print(f"  {q} / fastai: {med[q]['images_s'] / med['fastai']['images_s']:.2f}x images/s")


if __name__ == "__main__":
    main()
