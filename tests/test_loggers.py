"""CSVLogger and TensorBoardLogger: the files they write, read back, hold the Recorder's numbers."""

import csv
import sys

import numpy as np
import pytest
from torch import nn

import quickfit as qf
from tests.conftest import make_dls, mlp, three_groups


def _learner(path, cbs=(), **kw):
    return qf.Learner(
        make_dls(), mlp(), nn.CrossEntropyLoss(), metrics=[qf.accuracy], path=path, progress=False, cbs=cbs, **kw
    )


def _read(f):
    with open(f, newline="") as fh:
        return list(csv.reader(fh))


def _as_values(row):
    return [int(row[0]), *[None if c == "" else float(c) for c in row[1:]]]


# ---- CSVLogger -------------------------------------------------------------------------------------------
def test_csv_holds_the_epoch_table_exactly(tmp_path):
    learn = _learner(tmp_path, cbs=[qf.CSVLogger("logs/history.csv")])
    learn.fit_one_cycle(3, 1e-2)
    rows = _read(tmp_path / "logs" / "history.csv")
    assert rows[0] == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert [_as_values(r) for r in rows[1:]] == learn.recorder.values  # full precision: equal, not close
    # lr_find writes nothing; a second fit appends (fine_tune's two stages are one table)
    learn.lr_find(num_it=30, show_plot=False)
    assert len(_read(tmp_path / "logs" / "history.csv")) == 4
    learn.fit(1, 1e-3)
    rows = _read(tmp_path / "logs" / "history.csv")
    assert [_as_values(r)[1:] for r in rows[1:]] == [v[1:] for v in learn.recorder.values] and len(rows) == 5
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3"]  # the epoch counts on, as TensorBoard's step
    # a new logger (a new run) starts the file again
    other = _learner(tmp_path, cbs=[qf.CSVLogger("logs/history.csv")])
    other.fit(1, 1e-3)
    assert [_as_values(r) for r in _read(tmp_path / "logs" / "history.csv")[1:]] == other.recorder.values


def test_csv_append_and_a_row_without_validation(tmp_path):
    (tmp_path / "h.csv").write_text("epoch,train_loss,valid_loss,accuracy,time\n0,1.0,1.0,0.5,1.0\n")  # a run before
    logger = qf.CSVLogger("h.csv", append=True)
    learn = _learner(tmp_path, cbs=[logger])
    learn.fit(2, 1e-2)
    learn.fit(1, 1e-3)
    rows = _read(tmp_path / "h.csv")
    assert rows[1] == ["0", "1.0", "1.0", "0.5", "1.0"]
    del rows[1]
    assert rows[0][0] == "epoch" and sum(r[0] == "epoch" for r in rows) == 1
    assert [_as_values(r)[1:] for r in rows[1:]] == [v[1:] for v in learn.recorder.values]
    # the second fit's epoch counts on (as TensorBoard's step does); the printed table restarts at 0
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"] and learn.recorder.values[-1][0] == 0
    learn.metrics = []  # other columns: a header line says so
    learn.fit(1, 1e-3)
    rows = _read(tmp_path / "h.csv")
    assert rows[-2] == ["epoch", "train_loss", "valid_loss", "time"] and len(rows[-1]) == 4
    learn.dls.valid = None
    learn.fit(1, 1e-3)
    assert _read(tmp_path / "h.csv")[-1][2] == ""  # no validation: an empty cell
    assert logger.path == tmp_path / "h.csv"


def test_csv_resumed_fit_appends_without_duplicating_epochs(tmp_path):
    """Killed after the CSV row of epoch 2 but before its checkpoint: the resumed run rewrites that row once."""

    class Kill(qf.Callback):
        order = qf.CSVLogger.order + 1  # the CSV has epoch 2; the checkpoint (order 80) does not

        def after_epoch(self, learn):
            if learn.epoch == 2:
                raise KeyboardInterrupt

    qf.set_seed(0)
    first = _learner(tmp_path, cbs=[qf.CSVLogger()])
    with pytest.raises(KeyboardInterrupt):
        first.fit_one_cycle(4, 1e-2, checkpoint="run", cbs=[Kill()])
    assert [r[0] for r in _read(tmp_path / "history.csv")] == ["epoch", "0", "1", "2"]

    resumed = _learner(tmp_path, cbs=[qf.CSVLogger()])  # a new process
    resumed.fit_one_cycle(4, 1e-2, checkpoint="run", resume=True)
    rows = _read(tmp_path / "history.csv")
    assert [r[0] for r in rows] == ["epoch", "0", "1", "2", "3"]
    assert [_as_values(r) for r in rows[1:]] == resumed.recorder.values
    assert [_as_values(r) for r in rows[1:3]] == first.recorder.values[:2]


# ---- TensorBoardLogger -----------------------------------------------------------------------------------
def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc, {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_tensorboard_holds_losses_rates_metrics_and_hparams(tmp_path):
    pytest.importorskip("tensorboard")
    learn = _learner(tmp_path, cbs=[qf.TensorBoardLogger("runs/a")], splitter=three_groups)
    learn.fit_one_cycle(2, slice(1e-3, 1e-2))
    learn.fit(1, 1e-3)  # a second fit continues the curves
    acc, s = _scalars(tmp_path / "runs" / "a")
    rec = learn.recorder
    n = len(rec.losses)
    assert [e.step for e in s["train/loss"]] == list(range(n))
    f32 = lambda xs: np.asarray(xs, dtype=np.float32)  # event files store float32
    np.testing.assert_array_equal(f32([e.value for e in s["train/loss"]]), f32(rec.losses))
    np.testing.assert_array_equal(f32([e.value for e in s["train/lr"]]), f32(rec.lrs))
    np.testing.assert_array_equal(f32([e.value for e in s["train/mom"]]), f32(rec.moms))
    np.testing.assert_array_equal(f32([e.value for e in s["train/lr_group2"]]), f32(rec.lrs))
    group0 = f32([e.value for e in s["train/lr_group0"]])
    np.testing.assert_allclose(group0[: n * 2 // 3] * 10, rec.lrs[: n * 2 // 3], rtol=1e-5)  # slice(1e-3, 1e-2)
    for col, name in ((1, "train_loss"), (2, "valid_loss"), (3, "accuracy")):
        events = s[f"epoch/{name}"]
        assert [e.step for e in events] == [0, 1, 2]
        np.testing.assert_array_equal(f32([e.value for e in events]), f32([r[col] for r in rec.values]))
    assert s["hparam/accuracy"][-1].value == pytest.approx(rec.values[-1][3])
    plugin = acc.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugin and "_hparams_/session_start_info" in plugin
    start = plugin["_hparams_/session_start_info"]
    for key in (b"lr_max", b"n_epoch", b"wd", b"Adam", b"CrossEntropyLoss", b"Sequential"):
        assert key in start


def test_tensorboard_skips_lr_find_and_needs_its_extra(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    learn = _learner(tmp_path, cbs=[qf.TensorBoardLogger("runs")])
    learn.lr_find(num_it=20, show_plot=False)
    assert not (tmp_path / "runs").exists()
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    missing = r'TensorBoardLogger needs tensorboard.*pip install "quickfit\[tensorboard\]"'
    with pytest.raises(qf.extras.MissingExtraError, match=missing):
        qf.TensorBoardLogger("runs")
