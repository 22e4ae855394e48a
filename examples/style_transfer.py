"""Gatys style transfer of a hymenoptera photo, in the style of scikit-learn's bundled `china.jpg`.

    python examples/style_transfer.py ../shared/data/hymenoptera/hymenoptera_data/val/bees/10870992_eebeeb3a12.jpg \
        --style china --steps 200 --size 256 --out styled.png

Prints the content and style losses at the start (the content photo itself) and at the end, and saves
content | style | result side by side at `--out`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from quickfit.image_grid import save_image_grid
from quickfit.vision.generation.style import load_style_image, style_transfer


def sklearn_image(name: str) -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / f"{name}.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("content", type=Path)
    parser.add_argument("--style", default="china", help="'china', 'flower' (scikit-learn's images) or a file")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--style-weight", type=float, default=1e3)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=Path("styled.png"))
    args = parser.parse_args()
    style = sklearn_image(args.style) if args.style in ("china", "flower") else Path(args.style)

    t0 = time.perf_counter()
    result = style_transfer(args.content, style, steps=args.steps, size=args.size, lr=args.lr,
                            style_weight=args.style_weight)  # fmt: skip
    print(f"start: content loss {result.content_loss[0]:.4f}, style loss {result.style_loss[0]:.4f}")
    print(f"end:   content loss {result.content_loss[-1]:.4f}, style loss {result.style_loss[-1]:.4f}")
    h, w = result.image.shape[1:]
    content = load_style_image(args.content, args.size)
    style_img = F.interpolate(load_style_image(style, args.size)[None], size=(h, w), mode="bilinear")[0]
    save_image_grid(torch.stack([content, style_img, result.image]), args.out, nrow=3)
    print(f"{args.steps} steps at {w}x{h} in {time.perf_counter() - t0:.0f}s; content | style | result: {args.out}")


if __name__ == "__main__":
    main()
