"""Which input goes with which target: image files paired by name, and the size ratio they share.

    from quickfit.vision.generation.pairs import match_folders, pair_scale

    pairs = match_folders("photos_lr", "photos")    # [(photos_lr/a/b.jpg, photos/a/b.png), ...]
    scale = pair_scale(pairs)                        # 2: every target is twice its input's size

Pairs match by relative path without the suffix (`a/b.png` in the targets with `a/b.jpg` in the
inputs). Only image headers are read here; a pair that cannot be right is refused with its files named
(`PairMismatchError`), before any training starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from quickfit.vision.core.image import SourceImage, get_image_files

__all__ = ["PairMismatchError", "match_folders", "pair_scale", "first_few"]


class PairMismatchError(ValueError):
    """Input and target files that do not pair up: missing partners, or sizes that do not match the scale."""


def first_few(items: Sequence, n: int = 5) -> str:
    """The first `n` of `items` for an error message, and how many more there are."""
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _by_key(folder: Path, role: str) -> dict[str, Path]:
    """The images of `folder` by relative path without suffix; two files that differ only by their
    suffix (`x.jpg` and `x.png`) are ambiguous: refused by name, never one kept silently."""
    found: dict[str, Path] = {}
    for f in get_image_files(folder):
        key = f.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            raise PairMismatchError(
                f"the {role} folder {folder} has {found[key].name} and {f.name}: pairs match by name without the "
                "suffix, so one of them must go (or move to another folder)"
            )
        found[key] = f
    return found


def match_folders(inputs: Path, targets: Path) -> list[tuple[Path, Path]]:
    """(input, target) files of two folders with the same relative paths, sorted; every file needs its partner."""
    ins, outs = _by_key(inputs, "input"), _by_key(targets, "target")
    if not ins:
        raise FileNotFoundError(f"no images in the input folder {inputs}")
    no_target, no_input = sorted(set(ins) - set(outs)), sorted(set(outs) - set(ins))
    if no_target or no_input:
        parts = []
        if no_target:
            parts.append(f"{len(no_target)} inputs in {inputs} have no target in {targets}: {first_few(no_target)}")
        if no_input:
            parts.append(f"{len(no_input)} targets in {targets} have no input in {inputs}: {first_few(no_input)}")
        raise PairMismatchError("; ".join(parts) + " (pairs match by relative path without the suffix)")
    return [(ins[k], outs[k]) for k in sorted(ins)]


def _size(f: Path) -> tuple[int, int]:
    with SourceImage(f) as img:  # the header only: (width, height) upright
        return img.size


def pair_scale(pairs: Sequence[tuple[Path, Path]], scale: int | None = None) -> int:
    """The integer target / input size ratio (found from the first pair when `scale` is None); every pair
    must have it, up to the rounding down of an odd size (a 65 px target of a 32 px input at scale 2)."""
    sizes = [(_size(a), _size(b)) for a, b in pairs]
    if scale is None:
        (iw, _), (tw, _) = sizes[0]
        scale = max(1, round(tw / iw))
    bad = []
    for (a, b), ((iw, ih), (tw, th)) in zip(pairs, sizes):
        if not (iw * scale <= tw < (iw + 1) * scale and ih * scale <= th < (ih + 1) * scale):
            bad.append(f"{a.name} is {iw}x{ih} but {b.name} is {tw}x{th}")
    if bad:
        raise PairMismatchError(
            f"{len(bad)} of {len(pairs)} pairs do not have targets {scale}x their input's size: {first_few(bad)}"
        )
    return scale
