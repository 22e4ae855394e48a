"""Image loading (draft, EXIF, modes, bad files) and the item transforms, on tiny generated images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from quickfit.vision.core.image import decode_rgb, get_image_files, load_image, verify_images
from quickfit.vision.core.transforms import RandomResizedCrop, Resize, item_tfm_from_dict

RED, BLUE = (255, 0, 0), (0, 0, 255)


def halves(w: int, h: int, left=RED, right=BLUE) -> Image.Image:
    """Left half one colour, right half another."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2], arr[:, w // 2 :] = left, right
    return Image.fromarray(arr)


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    noise(64, 64).save(buf, "JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


# ---- loading --------------------------------------------------------------------------------------
def test_grayscale_png_and_jpeg_become_rgb(tmp_path):
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), mode="L")
    for name in ("g.png", "g.jpg"):
        gray.save(tmp_path / name)
        img = load_image(tmp_path / name)
        arr = np.asarray(img)
        assert img.mode == "RGB" and arr.shape == (16, 16, 3)
        assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(tmp_path / "c.jpg")  # pure cyan ink
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    arr = np.asarray(load_image(tmp_path / "c.jpg")).astype(int)
    assert arr.shape == (16, 16, 3)
    assert np.abs(arr.reshape(-1, 3).mean(0) - [0, 255, 255]).max() < 10


def test_transparent_palette_and_rgba_go_on_white(tmp_path):
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.save(tmp_path / "p.png", transparency=0)
    arr = np.asarray(load_image(tmp_path / "p.png"))
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[4, 4]) == RED

    rgba = Image.new("RGBA", (8, 8), (0, 0, 255, 0))  # fully transparent blue
    rgba.save(tmp_path / "a.png")
    assert tuple(np.asarray(load_image(tmp_path / "a.png"))[3, 3]) == (255, 255, 255)


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    arr = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    out = np.asarray(load_image(tmp_path / "d.png"))
    assert out.max() == 255 and out[0, 0, 0] == 0
    assert len(np.unique(out[..., 0])) > 32  # a gradient, not a white image


def test_exif_orientation_is_honoured(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the stored left side ends up on top
    halves(40, 20).save(tmp_path / "o.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "o.jpg")
    assert img.size == (20, 40)
    arr = np.asarray(img).astype(int)
    assert arr[2, 10, 0] > 200 and arr[2, 10, 2] < 50  # top: red
    assert arr[37, 10, 2] > 200 and arr[37, 10, 0] < 50  # bottom: blue
    x = Resize((40, 20), "squish")(tmp_path / "o.jpg")  # the item transform sees it upright too
    assert x.shape == (3, 40, 20) and x[0, 2, 10] > 200 and x[2, 37, 10] > 200


def test_jpeg_draft_decodes_big_photos_small_and_the_same(tmp_path):
    big = halves(2000, 1500).resize((2000, 1500))
    arr = np.asarray(big).copy()
    arr[700:800, 950:1050] = (0, 255, 0)  # a green square in the middle
    Image.fromarray(arr).save(tmp_path / "big.jpg", quality=95)
    with Image.open(tmp_path / "big.jpg") as f:
        small = decode_rgb(f, (224, 224))
    assert small.size == (500, 375)  # 1/4 scale: 1500 // 224 = 6 -> the largest power of 2 below
    fast = Resize(224)(tmp_path / "big.jpg").float()
    exact = Resize(224)(load_image(tmp_path / "big.jpg")).float()  # a PIL image: decoded in full
    assert (fast - exact).abs().mean() < 3


def test_verify_images_finds_truncated_and_fake_jpegs(tmp_path):
    noise(32, 32).save(tmp_path / "good.jpg")
    truncated_jpeg(tmp_path / "truncated.jpg")
    (tmp_path / "text.jpg").write_text("this is not an image")
    (tmp_path / "sub").mkdir()
    noise(32, 32).save(tmp_path / "sub" / "good.png")
    bad = verify_images(tmp_path)
    assert bad == [tmp_path / "text.jpg", tmp_path / "truncated.jpg"]
    assert verify_images([tmp_path / "good.jpg"]) == []


def test_get_image_files_skips_hidden_and_other_files(tmp_path):
    noise(8, 8).save(tmp_path / "a.PNG")
    noise(8, 8).save(tmp_path / ".hidden.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".cache").mkdir()
    noise(8, 8).save(tmp_path / ".cache" / "b.png")
    assert get_image_files(tmp_path) == [tmp_path / "a.PNG"]
    with pytest.raises(FileNotFoundError, match="nope"):
        get_image_files(tmp_path / "nope")


# ---- item transforms ------------------------------------------------------------------------------
def test_resize_crop_center_and_random(tmp_path):
    halves(400, 200).save(tmp_path / "h.png")
    x = Resize(100)(tmp_path / "h.png", train=False)
    assert x.shape == (3, 100, 100) and x.dtype == torch.uint8
    # The center 200x200 of a 400x200 image is half red, half blue.
    assert x[0, :, :45].min() > 250 and x[2, :, 55:].min() > 250
    torch.manual_seed(0)
    reds = [Resize(100)(tmp_path / "h.png", train=True)[0].float().mean().item() / 255 for _ in range(20)]
    assert min(reds) < 0.3 and max(reds) > 0.7  # random crop positions reach both ends


def test_resize_squish_keeps_everything_stretched(tmp_path):
    halves(400, 200).save(tmp_path / "h.png")
    x = Resize((50, 60), "squish")(tmp_path / "h.png")
    assert x.shape == (3, 50, 60)
    assert x[0, :, :29].min() > 250 and x[2, :, 31:].min() > 250


@pytest.mark.parametrize("pad_mode", ["zeros", "reflection"])
def test_resize_pad_keeps_the_whole_image(tmp_path, pad_mode):
    arr = np.zeros((200, 400, 3), np.uint8)
    arr[:, :200], arr[:, 200:] = RED, BLUE
    arr[:10] = (0, 255, 0)  # a green top edge
    Image.fromarray(arr).save(tmp_path / "h.png")
    x = Resize(100, "pad", pad_mode)(tmp_path / "h.png")
    assert x.shape == (3, 100, 100)
    content = x[:, 25:75]  # 400x200 -> 100x50, centered
    assert content[0, 10:, :45].min() > 250 and content[2, 10:, 55:].min() > 250  # both halves present
    assert content[1, 0, 50] > 200  # the green edge is kept
    if pad_mode == "zeros":
        assert x[:, :25].max() == 0 and x[:, 75:].max() == 0
    else:  # mirrored: the row just above the content repeats the row just inside it (green)
        assert x[1, 24, 50] > 200 and x[0, 10, 5] > 200


def test_random_resized_crop(tmp_path):
    noise(300, 200).save(tmp_path / "n.png")
    tfm = RandomResizedCrop((64, 48), min_scale=0.35)
    torch.manual_seed(0)
    a, b = tfm(tmp_path / "n.png", train=True), tfm(tmp_path / "n.png", train=True)
    assert a.shape == b.shape == (3, 64, 48) and not torch.equal(a, b)
    v1, v2 = tfm(tmp_path / "n.png", train=False), tfm(tmp_path / "n.png", train=False)
    assert torch.equal(v1, v2)  # validation: the deterministic center crop
    assert torch.equal(v1, Resize((64, 48))(tmp_path / "n.png", train=False))
    with pytest.raises(ValueError, match="min_scale"):
        RandomResizedCrop(64, min_scale=0)


def test_pil_input_and_bad_arguments():
    x = Resize(32)(halves(64, 64))
    assert x.shape == (3, 32, 32)
    with pytest.raises(ValueError, match="method"):
        Resize(32, method="stretch")
    with pytest.raises(ValueError, match="pad_mode"):
        Resize(32, pad_mode="edge")


def test_to_dict_round_trip_and_resized():
    for tfm in (Resize((20, 30), "pad", "zeros"), RandomResizedCrop(40, 0.5)):
        again = item_tfm_from_dict(tfm.to_dict())
        assert type(again) is type(tfm) and again.to_dict() == tfm.to_dict()
        assert tfm.resized(299).size == (299, 299) and type(tfm.resized(299)) is type(tfm)
    with pytest.raises(ValueError, match="unknown item transform"):
        item_tfm_from_dict({"name": "Blur", "size": [1, 1]})
