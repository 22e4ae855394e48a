"""The screenshots of docs/serving.md: the page of each kind of export, after a prediction, in headless
Chromium. Run from the repository's root (writes docs/img/serve_*.png):

    .venv/bin/python -m tests.serve.screenshots docs/img

The image classifier is efficientnet_lite0 fitted a few batches on hymenoptera photos (when
../shared/data has them); the other pages serve the tiny exports of tests/fixtures/exports_v1, fed bigger
inputs so that their answers are visible.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from selenium.webdriver.support.ui import Select, WebDriverWait

import quickfit as qf
from quickfit.serve import create_app
from tests.serve.browser import chromium, fit_page, serve_in_thread, wait_for
from tests.serve.helpers import images, learner
from tests.serve.test_browser import bees_or_squares


def bees(tmp: Path) -> tuple[qf.Learner, Path]:
    from quickfit.vision import ImageDataLoaders, Resize, vision_learner

    files, labels = bees_or_squares(tmp, n=16)
    dls = ImageDataLoaders.from_lists(tmp, files, labels, valid_idx=[0, 16], item_tfms=Resize(224), bs=8)
    qf.set_seed(0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp, progress=False)
    learn.fit(2, 2e-3)
    return qf.load_learner(learn.export(tmp / "bees.qf")), files[-1]


_ANSWERED = """const $ = (id) => document.getElementById(id);
return $("prediction").textContent || !$("output").hidden || $("error").textContent;"""


def shoot(driver, learn, out: Path, fill) -> None:
    with serve_in_thread(create_app(learn, title=f"quickfit: {out.stem.removeprefix('serve_')}.qf")) as url:
        driver.set_window_size(900, 1000)
        driver.get(url + "/")
        wait_for(driver, "#submit")
        fill(driver)
        wait_for(driver, "#submit").click()
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(_ANSWERED))
        time.sleep(0.5)  # the answer's picture decodes
        fit_page(driver)
        driver.save_screenshot(str(out))
    print(f"{out}: {driver.find_element('id', 'prediction').text!r} {driver.find_element('id', 'error').text!r}")


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    big = images()[0].resize((240, 240), Image.NEAREST)
    big.save(tmp / "squares.png")
    Image.open(tmp / "squares.png").resize((120, 120)).save(tmp / "small.png")

    def upload(path: Path):
        return lambda d: wait_for(d, "#file").send_keys(str(path.resolve()))

    def typed(text: str):
        return lambda d: wait_for(d, "#text").send_keys(text)

    def row(d):
        Select(wait_for(d, "select[data-column='shape']")).select_by_value("star")

    def pair(d):
        for k, v in (("user", "u3"), ("item", "105")):
            box = wait_for(d, f"#{k}")
            box.clear()
            box.send_keys(v)

    def seed(d):
        wait_for(d, "#seed").send_keys("3")

    classifier, photo = bees(tmp)
    pages = [
        ("image_classification", classifier, upload(photo)),
        ("multi_label", learner("multi_label"), upload(tmp / "squares.png")),
        ("keypoints", learner("points"), upload(tmp / "squares.png")),
        ("segmentation", learner("unet_segmentation"), upload(tmp / "squares.png")),
        ("image_to_image", learner("image_to_image"), upload(tmp / "small.png")),
        ("gan", learner("gan"), seed),
        ("tabular", learner("tabular"), row),
        ("collab", learner("collab"), pair),
        ("text_classification", learner("text_classifier"), typed("The film was great, the music too.")),
        ("language_model", learner("language_model"), typed("The film was")),
        ("translation", learner("seq2seq"), typed("3 1 4")),
    ]
    driver = chromium()
    try:
        for name, learn, fill in pages:
            shoot(driver, learn, folder / f"serve_{name}.png", fill)
    finally:
        driver.quit()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
