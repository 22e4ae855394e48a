"""Crappification: training pairs for image restoration, made from good images (the course's lesson 7).

    from quickfit.vision.generation.crappify import crappify
    crappify("photos", "photos_lr", scale=2, quality=(10, 70), draw_text=True, seed=0)
    # photos_lr/<same relative path>.jpg: half the size, a random JPEG quality, a number drawn on it

Every image under `src` is downscaled by `scale` (bilinear, or `resample="bicubic"`; the input covers
exactly the top-left `scale` x its size of the source, so input and target pixels line up), optionally
gets a random number drawn at a random place, and is saved under `dst` at the same relative path (with a
`.jpg` suffix) at a random JPEG quality in `quality`; `quality=None` saves it losslessly (`.png`): the
plain downscale that super-resolution is measured on. The randomness of each file comes from `seed` and
its relative path, so the result does not depend on the order the parallel workers finish in; a file
whose output is already there and newer than its source is skipped (running again after an interruption
resumes). `ImageToImageDataLoaders.from_folders(dst, src)` then reads the (crappy input, good target)
pairs.
"""

from __future__ import annotations

import hashlib
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from quickfit.callbacks.progress import show_progress
from quickfit.vision.core.image import get_image_files, load_image

__all__ = ["crappify", "crappify_image", "crappified_name"]


def crappified_name(rel: str | Path, lossless: bool = False) -> Path:
    """Where crappify writes the image at relative path `rel`: the same path with a `.jpg` suffix (a
    `.png` one when `lossless`)."""
    return Path(rel).with_suffix(".png" if lossless else ".jpg")


_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def _rng(seed: int, rel: Path) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{rel.as_posix()}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def crappify_image(
    img: Image.Image,
    scale: float = 2,
    quality: int | None = 50,
    text: str | None = None,
    text_pos: tuple[float, float] = (0.5, 0.5),
    resample: str = "bilinear",
) -> tuple[Image.Image, int | None]:
    """One image made worse: downscaled by `scale` (`resample`: "bilinear" or "bicubic", antialiased),
    `text` drawn at `text_pos` (fractions of the width and height). Returns the image and the JPEG
    `quality` to save it at (None: lossless)."""
    if resample not in _RESAMPLE:
        raise ValueError(f"crappify: resample must be one of {sorted(_RESAMPLE)}, got {resample!r}")
    w, h = img.size
    sw, sh = max(1, int(w / scale)), max(1, int(h / scale))
    box = (0.0, 0.0, min(w, sw * scale), min(h, sh * scale))  # the part of the source the input covers
    small = img.resize((sw, sh), _RESAMPLE[resample], box=box)
    if text:
        draw = ImageDraw.Draw(small)
        font_size = max(8, min(small.size) // 8)
        try:
            font = ImageFont.load_default(size=font_size)
        except TypeError:  # Pillow < 10.1: the bitmap font, one size
            font = ImageFont.load_default()
        x, y = int(text_pos[0] * small.width * 0.8), int(text_pos[1] * small.height * 0.8)
        draw.text((x, y), text, fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
    return small, None if quality is None else int(quality)


def _one(args: tuple[Path, Path, Path, float, tuple[int, int] | None, bool, int, str]) -> str:
    src_file, rel, out, scale, quality, draw_text, seed, resample = args
    if out.exists() and out.stat().st_mtime >= src_file.stat().st_mtime:
        return "skipped"
    rng = _rng(seed, rel)
    q = rng.randint(*(quality or (95, 95)))  # drawn either way: the text's draws stay the same
    q = None if quality is None else q
    text = str(rng.randint(0, 99)) if draw_text else None
    pos = (rng.random(), rng.random())
    small, q = crappify_image(load_image(src_file), scale, q, text, pos, resample)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    if q is None:
        small.save(tmp, format="PNG")
    else:
        small.save(tmp, format="JPEG", quality=q)
    os.replace(tmp, out)  # atomic: an interrupted run never leaves half a file that looks done
    return "written"


def crappify(
    src: str | Path,
    dst: str | Path,
    scale: float = 2,
    quality: tuple[int, int] | None = (10, 70),
    draw_text: bool = True,
    seed: int = 0,
    num_workers: int | None = None,
    progress: bool | None = None,
    resample: str = "bilinear",
) -> list[Path]:
    """Write a crappified copy of every image under `src` to `dst` (see the module docstring).

    `quality`: the range (inclusive) of JPEG qualities drawn from (None: lossless PNG); `resample`:
    "bilinear" or "bicubic"; `num_workers`: threads (Pillow
    releases the GIL while resizing and encoding; default: the CPU count, at most 8); `progress`: a bar
    (default: only on a terminal, as the Learner's). Returns the output paths, in the order of the
    sorted source files."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"crappify: source folder {src} does not exist")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ValueError(f"crappify: dst {dst} must not be {src} or inside it (the outputs would be read as sources)")
    lo, hi = quality or (95, 95)
    if resample not in _RESAMPLE:
        raise ValueError(f"crappify: resample must be one of {sorted(_RESAMPLE)}, got {resample!r}")
    if not 1 <= lo <= hi <= 95:
        raise ValueError(f"crappify: quality must be (low, high) with 1 <= low <= high <= 95, got {quality!r}")
    if scale < 1:
        raise ValueError(f"crappify: scale must be >= 1 (a downscale factor), got {scale!r}")
    files = get_image_files(src)
    if not files:
        raise FileNotFoundError(f"crappify: no images under {src}")
    jobs = []
    for f in files:
        rel = f.relative_to(src)
        out = dst / crappified_name(rel, lossless=quality is None)
        jobs.append((f, rel, out, float(scale), quality and (lo, hi), draw_text, seed, resample))
    workers = num_workers or min(len(os.sched_getaffinity(0)), 8)
    progress = show_progress(progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(tqdm(pool.map(_one, jobs), total=len(jobs), disable=not progress, desc="crappify"))
    n_skip = results.count("skipped")
    if progress and n_skip:
        tqdm.write(f"crappify: {n_skip} of {len(jobs)} images already done, skipped")
    return [j[2] for j in jobs]
