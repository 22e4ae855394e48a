"""In a real browser: headless Chromium opens the page of a live `quickfit serve` (a subprocess), uploads a
photo to an image classifier exported here, and reads the predicted class from the page; then fills the
form of a tabular model. Both must show what `learn.predict` gives for the same input."""

from __future__ import annotations

import numpy as np
import pytest

import quickfit as qf
from tests.conftest import shared_data
from tests.fixtures.make_exports import image_files, table
from tests.serve.browser import chromium, chromium_missing, serve_process, wait_for

pytestmark = pytest.mark.slow


def bees_or_squares(tmp_path, n: int = 8) -> tuple[list, list]:
    """Photos of ants and bees from ../shared/data/hymenoptera (n of each), else generated red / blue squares."""
    root = shared_data() / "hymenoptera" / "hymenoptera_data" / "train"
    if (root / "ants").is_dir() and (root / "bees").is_dir():
        files = [f for c in ("ants", "bees") for f in sorted((root / c).glob("*.jpg"))[:n]]
        return files, [f.parent.name for f in files]
    files = image_files(tmp_path / "squares", 2 * n, size=64)
    return files, ["red" if i % 2 else "blue" for i in range(len(files))]


@pytest.fixture(scope="module")
def browser():
    why = chromium_missing()
    if why:
        pytest.skip(why)
    driver = chromium()
    yield driver
    driver.quit()


def test_a_photo_uploaded_in_the_browser_shows_the_predicted_class(browser, tmp_path):
    from quickfit.vision import ImageDataLoaders, Resize, vision_learner

    files, labels = bees_or_squares(tmp_path)
    valid = [0, len(files) - 2]  # one of each class
    dls = ImageDataLoaders.from_lists(tmp_path, files, labels, valid_idx=valid, item_tfms=Resize(224), bs=8)
    qf.set_seed(0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False)  # pretrained, installed offline
    learn.fit(1, 1e-3)  # a couple of batches: the page must show what the export predicts, whatever it learned
    model = learn.export(tmp_path / "bees.qf")
    photo = files[-1]
    label, _, probs = qf.load_learner(model).predict(photo)

    with serve_process(model, "--max-batch", "4", cwd=tmp_path) as url:
        browser.get(url + "/")
        wait_for(browser, "#file").send_keys(str(photo.resolve()))
        wait_for(browser, "#submit").click()
        shown = wait_for(browser, "#prediction", text=True).text
        bars = [b.text.split("\n") for b in browser.find_elements("css selector", ".bar")]
    assert shown == label
    assert {name for name, *_ in bars} == set(dls.vocab)
    top = max(bars, key=lambda b: float(b[-1].rstrip("%")))
    assert top[0] == label and float(top[-1].rstrip("%")) == pytest.approx(100 * probs.max().item(), abs=0.06)


def test_a_tabular_form_filled_in_the_browser_shows_the_prediction(browser, tmp_path):
    from selenium.webdriver.support.ui import Select

    from quickfit.tabular import TabularDataLoaders, tabular_learner

    qf.set_seed(0)
    dls = TabularDataLoaders.from_df(table(256), "label", cat_names=["shape"], cont_names=["x", "z"], seed=0, bs=32)
    learn = tabular_learner(dls, layers=[16, 8], path=tmp_path, progress=False)
    learn.fit_one_cycle(3, 3e-2)
    model = learn.export(tmp_path / "shapes.qf")
    row = {"shape": "circle", "x": 1.75, "z": -0.5}
    label = qf.load_learner(model).predict(row)[0]

    with serve_process(model, cwd=tmp_path) as url:
        browser.get(url + "/")
        Select(wait_for(browser, "select[data-column='shape']")).select_by_value("circle")
        for name in ("x", "z"):
            box = wait_for(browser, f"input[data-column='{name}']")
            box.clear()
            box.send_keys(str(row[name]))
        wait_for(browser, "#submit").click()
        shown = wait_for(browser, "#prediction", text=True).text
    assert shown == label
    assert np.isclose(row["x"], 1.75)  # the row sent is the one predicted above
