"""Issue 30: hostile and damaged files, faults during training and writes; each case as it was reported.
What quickfit promises about files is in docs/files.md."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf
from quickfit.io import CorruptFileError, atomic_save, safe_load
from quickfit.tabular import Categorify, Normalize, TabularDataLoaders
from quickfit.text import TextDataLoaders
from quickfit.vision import ImageDataLoaders
from tests.conftest import make_dls
from tests.file_faults import (
    ROOT,
    flip,
    format2_export,
    largest_tensor_record,
    read_info,
    record_span,
    run_capped,
    with_metadata,
)


def new_learner(path, dls=None, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    return qf.Learner(dls or make_dls(bs=16), model, nn.CrossEntropyLoss(), metrics=[qf.accuracy], path=path,
                      progress=False, **kw)  # fmt: skip


# ---- 1. memory bombs: every size checked against the stored tensors before anything is built -----------------
def _set(path: list, value):
    def edit(info: dict) -> dict:
        d = info
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
        return info

    return edit


BOMBS = {  # case: (fixture, the edit, what the error must name)
    "collab_n_users": ("collab", _set(["model", "n_users"], 50_000_000), "n_users"),
    "collab_n_users_1e9": ("collab", _set(["model", "n_users"], 1e9), "n_users"),
    "collab_n_factors": ("collab", _set(["model", "n_factors"], 10_000_000), "n_factors"),
    "vision_n_out": ("image_classifier", _set(["model", "n_out"], 1_500_000), "n_out"),
    "tabular_embedding": ("tabular", _set(["model", "emb_szs", 0], [10_000_000, 60]), "emb_szs[0]"),
    "text_emb_sz": ("language_model", _set(["model", "sizes", "emb_sz"], 1_000_000), "emb_sz"),
    "unet_img_size": ("unet_segmentation", _set(["model", "img_size"], [20000, 20000]), "img_size"),
    "item_tfm_size": ("image_classifier", _set(["data", "item_tfm", "size"], [30000, 30000]), "item_tfm size"),
}


def test_memory_bombs_in_export_files_are_refused_naming_the_field_under_a_memory_cap(tmp_path):
    files = {}
    for name, (case, edit, _) in BOMBS.items():
        good = format2_export(case, tmp_path / f"{case}.qf")
        files[name] = str(with_metadata(good, tmp_path / f"{name}.qf", edit))
    code = f"""
import json, resource
import quickfit as qf
from tests.fixtures.make_exports import register_tiny_arch
register_tiny_arch()
errors = {{}}
for name, f in {files!r}.items():
    try:
        qf.load_learner(f)
        errors[name] = None
    except Exception as e:
        errors[name] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps({{"errors": errors, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""
    out = run_capped(code)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for name, (_, _, field) in BOMBS.items():
        error = result["errors"][name]
        assert error is not None and "MemoryError" not in error, (name, error)
        assert field in error and files[name] in error, (name, error)
    assert result["maxrss_kb"] < 800 * 1024, result["maxrss_kb"]  # the imports alone are about 350 MB


def test_the_meta_build_names_the_field_behind_a_shape_difference(tmp_path):
    good = format2_export("collab", tmp_path / "collab.qf")
    bad = with_metadata(good, tmp_path / "bad.qf", _set(["model", "n_users"], 5000))
    with pytest.raises(ValueError, match=r"builds u_\w+ of shape \[5000.*the file holds \[13.*field n_users=5000"):
        qf.load_learner(bad)


# ---- 2. a damaged checkpoint is never resumed from silently --------------------------------------------------
def test_resume_from_a_bit_flipped_checkpoint_falls_back_to_the_previous_one(tmp_path):
    qf.set_seed(7)
    straight = new_learner(tmp_path / "a")
    straight.fit_one_cycle(4, 1e-2)

    qf.set_seed(7)
    learn = new_learner(tmp_path / "b")

    class Kill(qf.Callback):
        def after_epoch(self, learn):
            if learn.epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn.fit_one_cycle(4, 1e-2, checkpoint="run", cbs=[Kill()])
    f = tmp_path / "b" / "models" / "run.pth"
    assert (tmp_path / "b" / "models" / "run.prev.pth").exists()
    start, size = record_span(f, largest_tensor_record(f).split("/", 1)[1])
    flip(f, start + size // 2)  # one bit of a weight

    resumed = new_learner(tmp_path / "b")
    with pytest.warns(UserWarning, match=r"run.pth is damaged.*Resuming from the previous checkpoint .*run.prev.pth"):
        resumed.fit_one_cycle(4, 1e-2, checkpoint="run", resume=True)
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v)

    flip(f, start + size // 2)  # both damaged now: an error that names them and says what to do
    flip(tmp_path / "b" / "models" / "run.prev.pth", record_span(tmp_path / "b" / "models" / "run.prev.pth",
                                                                  "data.pkl")[0] + 3)  # fmt: skip
    with pytest.raises(
        CorruptFileError, match=r"cannot resume: .*run.pth.*previous checkpoint is unreadable too.*Delete"
    ):
        new_learner(tmp_path / "b").fit_one_cycle(4, 1e-2, checkpoint="run", resume=True)


def test_learn_load_of_a_bit_flipped_checkpoint_names_it(tmp_path):
    learn = new_learner(tmp_path)
    f = learn.save("stage1")
    start, size = record_span(f, largest_tensor_record(f).split("/", 1)[1])
    flip(f, start + 1)
    with pytest.raises(CorruptFileError, match=r"stage1.pth is damaged: its record .* fails its CRC check"):
        learn.load("stage1")


def test_an_export_with_a_flipped_weight_fails_its_checksum(tmp_path):
    f = new_learner(tmp_path).export("model.qf")
    assert "quickfit_sha256" in f.read_bytes()[:2000].decode("latin-1")
    flip(f, f.stat().st_size - 5)
    with pytest.raises(CorruptFileError, match=r"model.qf is damaged: its weights do not match the SHA-256"):
        qf.load_learner(f, model=nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2)))


# ---- 3. a target of one class ----------------------------------------------------------------------------------
def test_a_tabular_target_of_one_class_is_refused_naming_the_column():
    df = pd.DataFrame({"age": np.arange(40.0), "job": ["a", "b"] * 20, "salary": ["<50k"] * 40})
    with pytest.raises(ValueError, match="target column 'salary' has 1 class"):
        TabularDataLoaders.from_df(df, "salary", procs=[Categorify, Normalize],
                                              cat_names=["job"], cont_names=["age"], y_block="category")  # fmt: skip


def test_a_text_label_of_one_class_is_refused_naming_the_column(tmp_path):
    df = pd.DataFrame({"text": [f"text number {i}" for i in range(20)], "label": ["pos"] * 20})
    with pytest.raises(ValueError, match="label column 'label' has one class"):
        TextDataLoaders.from_df(df, "text", "label", cache_dir=False)
    for split in ("train", "valid"):
        (tmp_path / split / "pos").mkdir(parents=True)
        (tmp_path / split / "pos" / "a.txt").write_text("a text")
    with pytest.raises(ValueError, match=r"only one label folder in .*train \('pos'\)"):
        TextDataLoaders.from_folder(tmp_path, valid="valid", cache_dir=False)


def _images(folder: Path, n: int, empty: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if empty:
            (folder / f"{i}.png").write_bytes(b"")
        else:
            Image.fromarray(np.full((8, 8, 3), 40 * i % 255, dtype=np.uint8)).save(folder / f"{i}.png")


def test_a_vision_folder_of_one_class_is_refused_naming_it(tmp_path):
    _images(tmp_path / "train" / "cat", 4)
    _images(tmp_path / "valid" / "cat", 2)
    with pytest.raises(ValueError, match=r"only one class \('cat'\) in class folders of"):
        ImageDataLoaders.from_folder(tmp_path)


# ---- 4. a non-finite loss leaves finite weights, and says the checkpoint is intact -------------------------------
def test_a_nan_loss_puts_back_the_last_finite_weights_and_keeps_the_checkpoint(tmp_path):
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    x[3 * 8 + 1] = float("nan")  # batch 3 with bs=8, on the second epoch only
    clean = x.clone()
    clean[3 * 8 + 1] = 0.0

    class Data(torch.utils.data.Dataset):
        epoch = 0

        def __len__(self):
            return 64

        def __getitem__(self, i):
            return (x if Data.epoch == 1 else clean)[i], y[i]

    class Epoch(qf.Callback):
        def before_epoch(self, learn):
            Data.epoch = learn.epoch

    dls = qf.DataLoaders(DataLoader(Data(), batch_size=8), DataLoader(TensorDataset(clean, y), batch_size=16))
    learn = new_learner(tmp_path, dls=dls)
    with pytest.raises(qf.NonFiniteLossError, match=r"epoch 1, batch 3.*back to those at the start of epoch 1.*"
                                                     r"models/run.pth\) is intact"):  # fmt: skip
        learn.fit(3, 1e-2, cbs=[Epoch()], checkpoint="run")
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert all(torch.isfinite(t).all() for s in learn.opt.state.values() for t in s.values())
    assert torch.isfinite(learn.get_preds()[0]).all()
    assert safe_load(tmp_path / "models" / "run.pth")["epoch"] == 0
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    Data.epoch = 0
    learn.fit(1, 1e-2)  # the learner trains on (clean data now)
    assert any(not torch.equal(before[k], v) for k, v in learn.model.state_dict().items())


# ---- 5. temporary files of killed writes --------------------------------------------------------------------
def test_temporary_files_of_a_killed_write_are_removed_by_the_next_write(tmp_path, monkeypatch):
    target = tmp_path / "models" / "best.pth"
    code = f"""
import time, torch
from quickfit.io import atomic_write
def write(tmp):
    open(tmp, "wb").write(b"half a checkpoint")
    print("writing", flush=True)
    time.sleep(60)
atomic_write({str(target)!r}, write)
"""
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    old_style = target.parent / ".best.pth.x7f3kq.tmp"  # what the code before wrote (tempfile.mkstemp)
    old_style.write_bytes(b"x")
    os.utime(old_style, (time.time() - 7200, time.time() - 7200))
    assert len(list(target.parent.glob(".best.pth.*.tmp"))) == 2

    synced = []
    monkeypatch.setattr("quickfit.io._fsync_dir", lambda folder: synced.append(folder))
    atomic_save({"x": torch.ones(2)}, target)
    assert sorted(os.listdir(target.parent)) == ["best.pth"]
    assert synced == [target.parent]  # the rename itself is flushed


def test_a_live_writer_s_temporary_file_is_left_alone(tmp_path):
    target = tmp_path / "x.pth"
    mine = tmp_path / f".x.pth.{os.getpid()}@{__import__('quickfit.io').io._HOST}.abcd1234.tmp"
    mine.write_bytes(b"in progress")
    atomic_save({"x": torch.ones(1)}, target)
    assert mine.exists()


# ---- 6. every load and save error names its file -------------------------------------------------------------
def test_damaged_checkpoints_are_named(tmp_path):
    learn = new_learner(tmp_path)
    f = learn.save("good")
    data = f.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "garbage": np.random.default_rng(0).bytes(5000),
    }
    pkl_start, pkl_size = record_span(f, "data.pkl")
    flipped = bytearray(data)
    for i in range(pkl_start + 2, pkl_start + pkl_size - 2, 7):
        flipped[i] ^= 0x5A
    cases["pickle_flipped"] = bytes(flipped)
    for name, content in cases.items():
        bad = tmp_path / "models" / f"{name}.pth"
        bad.write_bytes(content)
        with pytest.raises(CorruptFileError, match=rf"{name}.pth (is|cannot)"):
            learn.load(name)


def test_a_full_disk_on_learn_save_names_the_file(tmp_path):
    code = f"""
import resource, signal, torch
from torch import nn
import quickfit as qf
from tests.conftest import make_dls
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
learn = qf.Learner(make_dls(), nn.Linear(2, 2000), nn.CrossEntropyLoss(), path={str(tmp_path)!r}, progress=False)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the disk is full after 4 kB
try:
    learn.save("big")
except OSError as e:
    print("ERROR", e)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert f"could not write {tmp_path / 'models' / 'big.pth'}: " in out.stdout, out.stdout + out.stderr[-2000:]
    assert not (tmp_path / "models" / "big.pth").exists() and os.listdir(tmp_path / "models") == []


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda m: m.update(quickfit="[1, 2]"), "quickfit metadata is not a JSON object"),
        (lambda m: m.update(quickfit="null"), "quickfit metadata is not a JSON object"),
        (lambda m: m.update(quickfit='{"format": 999, "app": "vision"}'), "format 999.*written by a newer quickfit"),
        (lambda m: m.update(quickfit='{"format": 2, "app": "vision", "data": [1]}'), "'data' is not a JSON object"),
    ],
)
def test_bad_export_metadata_is_named(tmp_path, edit, message):
    good = format2_export("image_classifier", tmp_path / "good.qf")
    bad = with_metadata(good, tmp_path / "bad.qf", edit, raw=True)
    with pytest.raises(ValueError, match=rf"bad.qf.*{message}|{message}.*bad.qf"):
        qf.load_learner(bad)


@pytest.mark.parametrize(
    "n_out,message", [(-1, "must be >= 0"), ("2", "must be a whole number"), (2.5, "must be a whole")]
)
def test_bad_n_out_is_named(tmp_path, n_out, message):
    good = format2_export("image_classifier", tmp_path / "good.qf")
    bad = with_metadata(good, tmp_path / "bad.qf", _set(["model", "n_out"], n_out))
    with pytest.raises(ValueError, match=rf"bad.qf.*field 'n_out' {message}.*got {n_out!r}"):
        qf.load_learner(bad)


def test_a_vocabulary_shorter_than_the_outputs_is_refused_at_load(tmp_path):
    good = format2_export("image_classifier", tmp_path / "good.qf")
    assert len(read_info(good)["data"]["vocab"]) == 2
    bad = with_metadata(good, tmp_path / "bad.qf", _set(["data", "vocab"], ["red"]))
    with pytest.raises(ValueError, match=r"bad.qf.*vocabulary has 1 classes but the model's n_out is 2"):
        qf.load_learner(bad)


def test_from_folder_with_bs_0_names_bs(tmp_path):
    for split in ("train", "valid"):
        for cls in ("a", "b"):
            _images(tmp_path / split / cls, 2)
    with pytest.raises(ValueError, match="bs must be a positive whole number"):
        ImageDataLoaders.from_folder(tmp_path, bs=0)


# ---- 7. files that are not regular files ---------------------------------------------------------------------
def _within(seconds: float, fn) -> BaseException | None:
    """Run `fn` in a thread; the exception it raised, failing the test if it is still running after `seconds`."""
    box = []

    def run():
        try:
            fn()
            box.append(None)
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert box, f"still running after {seconds} s (blocked on the file)"
    return box[0]


def test_a_fifo_and_a_link_to_dev_urandom_are_refused_at_once(tmp_path):
    fifo = tmp_path / "model.qf"
    os.mkfifo(fifo)
    link = tmp_path / "random.qf"
    link.symlink_to("/dev/urandom")
    for f in (fifo, link):
        e = _within(10, lambda f=f: qf.load_learner(f))
        assert isinstance(e, CorruptFileError) and str(f) in str(e) and "not a regular file" in str(e)
    (tmp_path / "models").mkdir()
    os.mkfifo(tmp_path / "models" / "ck.pth")
    e = _within(10, lambda: new_learner(tmp_path).load("ck"))
    assert isinstance(e, CorruptFileError) and "not a regular file" in str(e)


# ---- 8. file modes ---------------------------------------------------------------------------------------------
def test_saves_and_exports_follow_the_umask_and_keep_an_existing_mode(tmp_path):
    old = os.umask(0o022)
    try:
        learn = new_learner(tmp_path)
        ck, export = learn.save("stage1"), learn.export("model.qf")
        assert stat.S_IMODE(ck.stat().st_mode) == 0o644 and stat.S_IMODE(export.stat().st_mode) == 0o644
        os.chmod(ck, 0o640)
        os.chmod(export, 0o600)
        learn.save("stage1")
        learn.export("model.qf")
        assert stat.S_IMODE(ck.stat().st_mode) == 0o640 and stat.S_IMODE(export.stat().st_mode) == 0o600
    finally:
        os.umask(old)


# ---- 9. noted: decided and documented ----------------------------------------------------------------------------
def test_a_misspelt_monitor_is_refused_before_training(tmp_path):
    learn = new_learner(tmp_path)
    with pytest.raises(ValueError, match=r"SaveBest cannot monitor 'acuracy' \(did you mean 'accuracy'\?\)"):
        learn.fit(2, 1e-2, cbs=[qf.SaveBest("acuracy")])
    assert learn.recorder.values == []  # refused before the first epoch


def test_without_validation_data_a_validation_monitor_is_refused(tmp_path):
    x, y = torch.randn(32, 2), torch.randint(0, 2, (32,))
    learn = new_learner(tmp_path, dls=qf.DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8), None))
    with pytest.raises(ValueError, match=r"monitors 'valid_loss', but the data has no validation set"):
        learn.fit(1, cbs=[qf.EarlyStopping("valid_loss")])
    learn.fit(1, cbs=[qf.SaveBest("train_loss")])  # the training loss can be monitored


def test_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path, capsys):
    learn = new_learner(tmp_path)

    class CtrlC(qf.Callback):
        def after_batch(self, learn):
            if learn.epoch == 1 and learn.iter == 2 and learn.training:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn.fit(3, 1e-2, cbs=[CtrlC()], checkpoint="run")
    out = capsys.readouterr().out
    assert "Interrupted at epoch 1, batch 2" in out and "run.pth holds the last finished epoch" in out
    assert "resume=True" in out
    assert torch.isfinite(learn.get_preds()[0]).all()  # usable
    learn.fit(3, 1e-2, checkpoint="run", resume=True)
    assert "Resuming from" in capsys.readouterr().out


def test_a_class_folder_of_empty_images_is_refused(tmp_path):
    for split in ("train", "valid"):
        _images(tmp_path / split / "cat", 3)
        _images(tmp_path / split / "dog", 3, empty=True)
    with pytest.raises(ValueError, match=r"class folder .*train/dog: all 3 images are empty files \(0 bytes\)"):
        ImageDataLoaders.from_folder(tmp_path)
