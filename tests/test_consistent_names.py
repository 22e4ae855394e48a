"""Issue 29 item 15: one concept, one name, one default across the applications (the void class,
workers, seeds, imports, what show_batch / show_results return, a language model's text)."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from quickfit.vision import (
    Mask,
    Resize,
    SegmentationDataLoaders,
    SegmentationLoss,
    Target,
    dice,
    mean_iou,
    pixel_accuracy,
)

CODES = ["Sky", "Road", "Car", "Void"]


@pytest.fixture
def seg_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}annot").mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)).save(tmp_path / split / f"{i}.png")
            Image.fromarray(rng.integers(0, 4, (16, 24), dtype=np.uint8)).save(tmp_path / f"{split}annot" / f"{i}.png")
    (tmp_path / "codes.txt").write_text("\n".join(CODES) + "\n")
    return tmp_path


def test_void_code_is_one_name_and_takes_a_class_name(seg_folder):
    # the user's call: a name from codes.txt ("invalid literal for int()" before)
    dls = SegmentationDataLoaders.from_folders(
        seg_folder, codes="codes.txt", void_code="Void", item_tfms=Resize((16, 24)), num_workers=0
    )
    assert dls.void_code == 3 and dls.target.void_code == 3 and dls.loss_func.ignore_index == 3
    with pytest.raises(ValueError, match=r"void_code='void' is not one of the codes \['Sky', 'Road', 'Car', 'Void'\]"):
        SegmentationDataLoaders.from_folders(seg_folder, codes="codes.txt", void_code="void", num_workers=0)
    # the loss and the metrics do not know the names: they say what to pass
    with pytest.raises(ValueError, match="pass dls.void_code"):
        SegmentationLoss(void_code="Void")
    with pytest.raises(ValueError, match="pass dls.void_code"):
        mean_iou(void_code="Void")
    # one keyword everywhere; the old ones still work, with a warning
    for f in (SegmentationLoss, pixel_accuracy, mean_iou, dice, Mask, SegmentationDataLoaders.from_folders):
        assert "void_code" in inspect.signature(f).parameters, f
    pred, targ = torch.randn(2, 4, 5, 5), torch.randint(0, 4, (2, 5, 5))
    for f in (pixel_accuracy, mean_iou, dice):
        with pytest.warns(FutureWarning, match=r"\(ignore=\) is deprecated; use void_code="):
            old = f(ignore=3)
        assert old(pred, targ) == f(void_code=3)(pred, targ) == f(3)(pred, targ)
    with pytest.warns(FutureWarning, match=r"Target\(void=\) is deprecated"):
        assert Target("mask", n_codes=4, void=3) == Target("mask", n_codes=4, void_code=3)
    assert Target.from_dict(Target("mask", n_codes=4, void_code=3).to_dict()).void_code == 3  # the file's key stays


def test_workers_are_num_workers_everywhere_and_n_workers_warns():
    from quickfit.text import TextDataLoaders
    from quickfit.text.seq2seq.data import Seq2SeqDataLoaders
    from quickfit.text.tokenize import Tokenizer, tokenize_texts
    from quickfit.vision import ImageDataLoaders, ImageToImageDataLoaders

    takers = [TextDataLoaders.from_df, TextDataLoaders.from_csv, TextDataLoaders.from_folder, tokenize_texts,
              Seq2SeqDataLoaders.from_df, Seq2SeqDataLoaders.from_files, ImageDataLoaders.from_folder,
              ImageToImageDataLoaders.from_folders, SegmentationDataLoaders.from_folders]  # fmt: skip
    for f in takers:
        assert "num_workers" in inspect.signature(f).parameters, f
    assert tokenize_texts(["Hi there"], Tokenizer(), num_workers=1) == [["xxbos", "xxmaj", "hi", "there"]]
    with pytest.warns(FutureWarning, match=r"tokenize_texts\(n_workers=\) is deprecated; use num_workers="):
        assert tokenize_texts(["Hi there"], Tokenizer(), n_workers=1) == [["xxbos", "xxmaj", "hi", "there"]]
    df = pd.DataFrame({"text": ["good film", "bad film", "fine", "awful"] * 3, "label": ["p", "n", "p", "n"] * 3})
    with pytest.warns(FutureWarning, match=r"TextDataLoaders.from_df\(n_workers=\) is deprecated"):
        TextDataLoaders.from_df(df, "text", "label", n_workers=1, cache_dir=False, seed=0, bs=4)
    with pytest.raises(TypeError, match="pass num_workers= only"):
        tokenize_texts(["Hi"], Tokenizer(), num_workers=1, n_workers=1)


def test_seed_defaults_to_none_in_every_data_constructor_and_image2image_learner_is_in_quickfit_vision():
    import quickfit.vision as vision
    from quickfit.collab import CollabDataLoaders
    from quickfit.tabular import TabularDataLoaders
    from quickfit.text import Seq2SeqDataLoaders, TextDataLoaders
    from quickfit.vision import ImageDataLoaders, ImageToImageDataLoaders, PointDataLoaders, noise_dls

    owners = (ImageDataLoaders, ImageToImageDataLoaders, SegmentationDataLoaders, PointDataLoaders,
              TextDataLoaders, Seq2SeqDataLoaders, TabularDataLoaders, CollabDataLoaders)  # fmt: skip
    takers = [getattr(c, n) for c in owners for n in dir(c) if n.startswith("from_")] + [noise_dls]
    seeds = {f.__qualname__: inspect.signature(f).parameters["seed"].default
             for f in takers if "seed" in inspect.signature(f).parameters}  # fmt: skip
    assert len(seeds) >= 15 and set(seeds.values()) == {None}, seeds
    assert "image2image_learner" in vision.__all__ and vision.image2image_learner.__module__.startswith("quickfit")


def test_text_and_seq2seq_data_show_batch_as_the_tables_do(capsys):
    from quickfit.text import Seq2SeqDataLoaders, TextDataLoaders

    df = pd.DataFrame({"text": ["It's a good film, really.", "A bad film!"] * 6, "label": ["pos", "neg"] * 6})
    dls = TextDataLoaders.from_df(df, "text", "label", seed=0, bs=4, cache_dir=False)
    shown = dls.show_batch(max_n=3)
    assert isinstance(shown, pd.DataFrame) and list(shown.columns) == ["text", "label"] and len(shown) == 3
    assert set(shown.text) <= {"It's a good film, really.", "A bad film!"}  # detokenized, as written
    assert {r.label for r in shown.itertuples()} <= {"pos", "neg"} and "really." in capsys.readouterr().out
    lm = TextDataLoaders.from_df(df, "text", is_lm=True, seed=0, bs=2, seq_len=5, cache_dir=False)
    assert list(lm.show_batch(max_n=2).columns) == ["text", "target"]
    pairs = pd.DataFrame({"de": ["ein hund .", "zwei katzen !"] * 5, "en": ["a dog.", "two cats!"] * 5})
    s2s = Seq2SeqDataLoaders.from_df(pairs, "de", "en", seed=0, bs=4, min_freq=1, cache_dir=False)
    shown = s2s.show_batch(max_n=2)
    assert list(shown.columns) == ["source", "target"] and set(shown.target) <= {"a dog.", "two cats!"}


def test_language_model_predict_is_detokenized_text(tmp_path):
    from quickfit.text import TextDataLoaders, language_model_learner

    torch.manual_seed(0)
    df = pd.DataFrame({"text": ["I said hello, world. It's fine."] * 300})
    dls = TextDataLoaders.from_df(df, "text", is_lm=True, seed=0, bs=8, seq_len=12, cache_dir=False)
    learn = language_model_learner(dls, pretrained=False, config=dict(emb_sz=32, n_hid=64, n_layers=1),
                                   drop_mult=0.1, path=tmp_path, progress=False)  # fmt: skip
    learn.fit_one_cycle(4, 3e-2)
    tokens = learn.predict("I said", n_words=9, temperature=0, decode=False)
    assert tokens[-9:] == ["hello", ",", "world", ".", "xxmaj", "it", "'", "s", "fine"]
    assert learn.predict("I said", n_words=9, temperature=0) == "I said hello, world. It's fine"  # not "hello , world"
