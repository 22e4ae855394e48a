import os
import pickle

import pytest
import torch
from torch import nn

import quickfit as qf
from quickfit.io import UnsafeCheckpointError, atomic_save, safe_load
from tests.conftest import make_dls, mlp


def dropout_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))


def new_learner(path, **kw):
    return qf.Learner(make_dls(bs=16), dropout_model(), nn.CrossEntropyLoss(), metrics=[qf.accuracy], path=path,
                      progress=False, **kw)  # fmt: skip


def test_save_and_load_round_trip(tmp_path):
    learn = new_learner(tmp_path)
    learn.fit(1, 1e-2)
    f = learn.save("stage1")
    assert f == tmp_path / "models" / "stage1.pth"
    other = new_learner(tmp_path)
    other.load("stage1")
    for k, v in learn.model.state_dict().items():
        torch.testing.assert_close(other.model.state_dict()[k], v)
    assert other.opt.state_dict()["state"].keys() == learn.opt.state_dict()["state"].keys()


def test_interrupted_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    learn = new_learner(tmp_path)
    learn.save("ck")
    good = safe_load(tmp_path / "models" / "ck.pth")

    def crash_midway(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed during the write")

    monkeypatch.setattr(torch, "save", crash_midway)
    learn.fit(1, 1e-2)
    with pytest.raises(KeyboardInterrupt):
        learn.save("ck")
    monkeypatch.undo()
    after = safe_load(tmp_path / "models" / "ck.pth")
    for k, v in good["model"].items():
        torch.testing.assert_close(after["model"][k], v)
    assert os.listdir(tmp_path / "models") == ["ck.pth"]  # no temporary file left behind


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create a file when unpickled


def test_a_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "models" / "evil.pth"
    f.parent.mkdir()
    with open(f, "wb") as fh:
        pickle.dump({"model": _Exploit(str(marker))}, fh)
    learn = new_learner(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        learn.load("evil")
    assert not marker.exists()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    qf.set_seed(7)
    straight = new_learner(tmp_path / "a", cbs=[qf.SaveBest("accuracy", load_best=False)])
    straight.fit_one_cycle(4, 1e-2, checkpoint="run")

    class Crash(qf.Callback):
        def before_epoch(self, learn):
            if learn.epoch == 2:
                raise RuntimeError("power cut")

    qf.set_seed(7)
    crashed = new_learner(tmp_path / "b", cbs=[qf.SaveBest("accuracy", load_best=False)])
    with pytest.raises(RuntimeError, match="power cut"):
        crashed.fit_one_cycle(4, 1e-2, checkpoint="run", cbs=[Crash()])

    torch.manual_seed(999)  # the restarted process has other RNG states and fresh weights
    saver = qf.SaveBest("accuracy", load_best=False)
    resumed = qf.Learner(make_dls(bs=16), dropout_model(seed=5), nn.CrossEntropyLoss(), metrics=[qf.accuracy],
                         path=tmp_path / "b", progress=False, cbs=[saver])  # fmt: skip
    resumed.fit_one_cycle(4, 1e-2, checkpoint="run", resume=True)
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0)
    assert len(resumed.recorder.values) == 4
    assert [r[1] for r in resumed.recorder.values] == pytest.approx([r[1] for r in straight.recorder.values])
    assert resumed.cbs[-1].best == straight.cbs[-1].best


def test_resume_with_another_call_is_refused(tmp_path):
    learn = new_learner(tmp_path)
    learn.fit(1, 1e-3, checkpoint="run")
    with pytest.raises(ValueError, match="written by fit\\(\\) of 1 epochs"):
        learn.fit_one_cycle(3, 1e-3, checkpoint="run", resume=True)


def test_early_stopping_stops_when_nothing_improves(tmp_path):
    learn = new_learner(tmp_path)
    learn.fit(10, 0.0, cbs=[qf.EarlyStopping("valid_loss", patience=2)])
    assert len(learn.recorder.values) == 3  # first epoch sets the best, two more without improvement


def test_save_best_keeps_and_reloads_the_best_epoch(tmp_path):
    learn = new_learner(tmp_path)
    saver = qf.SaveBest("valid_loss")
    learn.fit(4, 1e-2, cbs=[saver])
    losses = [r[2] for r in learn.recorder.values]
    assert saver.best == pytest.approx(min(losses)) and saver.best_epoch == losses.index(min(losses))
    best = safe_load(tmp_path / "models" / "best.pth")["model"]
    for k, v in best.items():
        torch.testing.assert_close(learn.model.state_dict()[k], v)
    with pytest.raises(ValueError, match="cannot monitor 'nope'"):
        learn.fit(1, cbs=[qf.SaveBest("nope")])


def test_snapshot_ensemble_averages_cycle_snapshots(tmp_path):
    learn = new_learner(tmp_path)
    learn.fit_sgdr(2, 1, 1e-2, cycle_mult=2, snapshot="snap")
    files = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert files == ["snap_0.pth", "snap_1.pth"]
    final = learn.get_preds()[0]
    avg, targs = learn.snapshot_ensemble_preds("snap")
    learn.load("snap_0", with_opt=False)
    first = learn.get_preds()[0]
    torch.testing.assert_close(avg, (first + final) / 2)


def test_export_and_load_learner_without_pickle(tmp_path):
    learn = new_learner(tmp_path)
    learn.fit(1, 1e-2)
    f = learn.export("model.qf")
    with open(f, "rb") as fh:
        assert b"pickle" not in fh.read(200)
    loaded = qf.load_learner(f, model=dropout_model(seed=3), loss_func=nn.CrossEntropyLoss())
    x = torch.randn(5, 2)
    learn.model.eval()
    torch.testing.assert_close(loaded.predict(x[0]), learn.model(x[:1]).softmax(-1)[0])
    with pytest.raises(ValueError, match="pass model="):
        qf.load_learner(f)
    (tmp_path / "junk.qf").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a quickfit export"):
        qf.load_learner(tmp_path / "junk.qf", model=mlp())


def test_atomic_save_creates_folders(tmp_path):
    atomic_save({"x": torch.ones(2)}, tmp_path / "a" / "b" / "c.pth")
    assert safe_load(tmp_path / "a" / "b" / "c.pth")["x"].sum() == 2
