"""MixUp, CutMix, label smoothing, SWA, ReduceLROnPlateau and oversampling, each against a hand computation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import quickfit as qf
from quickfit.data import TensorBatches


def _learner(x, y, model, cbs=(), loss=None, bs=8):
    dls = qf.DataLoaders(TensorBatches(x, y, bs=bs), TensorBatches(x, y, bs=bs))
    return qf.Learner(dls, model, loss or nn.CrossEntropyLoss(), metrics=[qf.accuracy], cbs=cbs, progress=False)


class _Spy(qf.Callback):
    """Keeps each training batch's inputs before the mixing callbacks (order -10) and its prediction and loss."""

    order = -10

    def __init__(self, mix):
        self.seen, self.mix = [], mix

    def before_batch(self, learn):
        if learn.training:
            self.x, self.y = learn.xb[0].clone(), learn.yb.clone()

    def after_loss(self, learn):
        if learn.training:
            mixed, pred, loss = learn.xb[0].detach().clone(), learn.pred.detach(), learn.loss.detach()
            self.seen.append((self.x, self.y, mixed, pred, loss, self.mix.perm.clone()))


class FixedMixUp(qf.MixUp):
    def draw_lam(self):
        return 0.3


def test_mixup_mixes_inputs_and_loss_for_a_fixed_lambda():
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    mix = FixedMixUp(0.4)
    spy = _Spy(mix)
    learn = _learner(x, y, nn.Linear(4, 3), cbs=[spy, mix])
    learn.fit(1, 1e-3)
    assert len(spy.seen) == 2
    for x0, y0, mixed, pred, loss, perm in spy.seen:
        torch.testing.assert_close(mixed, 0.3 * x0 + 0.7 * x0[perm])
        hand = 0.3 * F.cross_entropy(pred, y0) + 0.7 * F.cross_entropy(pred, y0[perm])
        torch.testing.assert_close(loss, hand)
    # validation is never mixed, the loss is given back, the metric's labels are the true ones
    assert isinstance(learn.loss_func, nn.CrossEntropyLoss)
    with torch.no_grad():
        logits = learn.model(x)
    valid_loss, acc = learn.validate()
    assert valid_loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_cutmix_pastes_a_box_and_weighs_the_loss_by_its_area():
    class FixedCut(qf.CutMix):
        def draw_lam(self):
            return 0.7

        def draw_box(self, h, w, lam):
            return 0, 2, 1, 3  # 2 x 2 of 4 x 4: lam becomes 0.75

    torch.manual_seed(1)
    x, y = torch.randn(8, 1, 4, 4), torch.randint(0, 2, (8,))
    cut = FixedCut(1.0)
    spy = _Spy(cut)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    learn = _learner(x, y, model, cbs=[spy, cut])
    learn.fit(1, 1e-3)
    x0, y0, mixed, pred, loss, perm = spy.seen[0]
    hand = x0.clone()
    hand[:, :, 0:2, 1:3] = x0[perm, :, 0:2, 1:3]
    torch.testing.assert_close(mixed, hand)
    assert cut.lam == 0.75
    torch.testing.assert_close(loss, 0.75 * F.cross_entropy(pred, y0) + 0.25 * F.cross_entropy(pred, y0[perm]))


def test_mixup_refuses_integer_inputs():
    x, y = torch.randint(0, 5, (8, 2)), torch.randint(0, 2, (8,))
    learn = _learner(x, y, nn.Sequential(nn.Embedding(5, 2), nn.Flatten(), nn.Linear(4, 2)), cbs=[qf.MixUp(0.4)])
    with pytest.raises(TypeError, match="input 0 is torch.int64"):
        learn.fit(1, 1e-3)


def test_label_smoothing_against_hand_formula_and_as_a_learner_loss():
    torch.manual_seed(0)
    logits, y, eps = torch.randn(6, 5), torch.randint(0, 5, (6,)), 0.1
    logp = logits.log_softmax(1)
    hand = ((1 - eps) * -logp[torch.arange(6), y] + eps * -logp.mean(1)).mean()
    torch.testing.assert_close(qf.LabelSmoothingCrossEntropy(eps)(logits, y), hand)
    with pytest.raises(ValueError, match="eps must be in"):
        qf.LabelSmoothingCrossEntropy(1.0)

    pd = pytest.importorskip("pandas")
    from quickfit.tabular import TabularDataLoaders, tabular_learner

    df = pd.DataFrame({"a": torch.randn(64).tolist(), "c": ["u", "v"] * 32, "y": ["p", "q"] * 32})
    dls = TabularDataLoaders.from_df(df, "y", cat_names=["c"], cont_names=["a"], valid_pct=0.25, seed=0, bs=16)
    learn = tabular_learner(dls, loss_func=qf.LabelSmoothingCrossEntropy(0.1), progress=False)
    learn.fit_one_cycle(1, 1e-2)
    assert "accuracy" in learn.recorder.names  # still a classifier's metrics, predictions are softmaxed
    preds, _ = learn.get_preds()
    torch.testing.assert_close(preds.sum(1), torch.ones(len(preds)))


def test_swa_average_of_three_known_weight_sets():
    swa, model = qf.SWA(start_epoch=0), nn.Linear(2, 1)
    sets = [(torch.tensor([[1.0, 2.0]]), torch.tensor([0.0])), (torch.tensor([[3.0, -2.0]]), torch.tensor([3.0]))]
    sets.append((torch.tensor([[5.0, 6.0]]), torch.tensor([-6.0])))
    for w, b in sets:
        with torch.no_grad():
            model.weight.copy_(w), model.bias.copy_(b)
        swa.update(model)
    swa.copy_to(model)
    torch.testing.assert_close(model.weight.data, torch.tensor([[3.0, 2.0]]))
    torch.testing.assert_close(model.bias.data, torch.tensor([-1.0]))


def test_swa_in_a_fit_averages_the_epochs_and_recomputes_batchnorm():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3) * 2 + 1, torch.randint(0, 2, (32,))
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2))
    snapshots = []

    class Snap(qf.Callback):
        order = 70

        def after_epoch(self, learn):
            snapshots.append([p.detach().clone() for p in learn.model.parameters()])

    swa = qf.SWA(start_epoch=1, lr=1e-2)
    learn = _learner(x, y, model, cbs=[swa, Snap()])
    learn.fit_one_cycle(4, 1e-1)
    assert swa.n_averaged == 3
    assert all(lr == pytest.approx(1e-2) for lr in learn.recorder.lrs[4:])  # 4 batches an epoch, then SWA's rate
    for p, *snaps in zip(model.parameters(), *snapshots[1:]):
        torch.testing.assert_close(p.data, torch.stack(snaps).mean(0))
    # BatchNorm: the exact average of the 4 equal batches' means, i.e. the data's mean
    torch.testing.assert_close(model[0].running_mean, x.mean(0))


def _fake_learn(values):
    rec = SimpleNamespace(names=["epoch", "train_loss", "valid_loss", "time"], values=[], epoch_logged=True)
    dls = SimpleNamespace(valid=[])
    return SimpleNamespace(recorder=rec, is_main_process=False, metrics=[], dls=dls), rec


def test_plateau_rule_by_hand():
    cb = qf.ReduceLROnPlateau("valid_loss", patience=2, factor=0.5)
    learn, rec = _fake_learn([])
    cb.before_fit(learn)
    scales = []
    for v in [1.0, 0.9, 0.95, 0.92, 0.91, 0.85, 0.9, 0.9, 0.9, 0.9]:
        rec.values.append([0, 0.0, v, 0.0])
        cb.after_epoch(learn)
        scales.append(cb.scale)
    # improves, improves, 1 bad, 2 bad: x0.5; 1 bad, improves, 1 bad, 2 bad: x0.5, 1 bad, 2 bad: x0.5
    assert scales == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_plateau_scales_the_one_cycle_schedule_instead_of_being_overwritten():
    def run(cbs):
        torch.manual_seed(0)
        x, y = torch.randn(32, 2), torch.randint(0, 2, (32,))
        learn = _learner(x, y, nn.Linear(2, 2), cbs=cbs)
        learn.fit_one_cycle(4, 1e-2)
        return torch.tensor(learn.recorder.lrs)

    # mode "max" on a falling loss: never improves after epoch 0, so x0.5 after epochs 1 and 2... patience 1
    plateau = qf.ReduceLROnPlateau("valid_loss", patience=1, factor=0.5, mode="max")
    ratio = run([plateau]) / run([])
    expected = torch.tensor([1.0] * 8 + [0.5] * 4 + [0.25] * 4, dtype=ratio.dtype)
    torch.testing.assert_close(ratio, expected)


def test_oversample_equalizes_classes():
    torch.manual_seed(0)
    y = torch.cat([torch.zeros(900), torch.ones(100)]).long()
    dl = TensorBatches(torch.arange(1000)[:, None], y, bs=100, oversample=True)
    drawn = torch.cat([yb for _, yb in dl])
    assert len(drawn) == 1000 and 0.45 < drawn.float().mean() < 0.55
    zero = torch.ones(1000, dtype=torch.float64)
    zero[:500] = 0
    rows = torch.cat([xb for xb, _ in TensorBatches(torch.arange(1000)[:, None], y, weights=zero)])
    assert rows.min() >= 500  # weight 0: never drawn
    with pytest.raises(ValueError, match="one class index per row"):
        TensorBatches(torch.randn(4, 2), torch.randn(4), oversample=True)
    with pytest.raises(ValueError, match="one value per row"):
        TensorBatches(torch.randn(4, 2), y[:4], weights=torch.ones(3))


def test_oversampled_shards_are_one_shared_draw():
    x, y = torch.arange(40)[:, None], torch.cat([torch.zeros(35), torch.ones(5)]).long()
    torch.manual_seed(3)
    one = [xb for xb, _ in TensorBatches(x, y, bs=8, oversample=True)]
    shards = []
    for rank in range(2):
        torch.manual_seed(3)  # every rank of a seeded run has the same torch RNG state
        shards.append([xb for xb, _ in TensorBatches(x, y, bs=4, oversample=True).shard(rank, 2)])
    assert len(shards[0]) == len(shards[1]) == len(one)
    for batch, a, b in zip(one, *shards):
        torch.testing.assert_close(torch.cat([a, b]), batch)
    plain = TensorBatches(x, y, bs=4).oversampled()
    assert plain.weights is not None and plain.shard(1, 2).world_size == 2


def test_swa_keeps_the_statistics_of_a_frozen_batchnorm():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3) + 5, torch.randint(0, 2, (16,))
    frozen = nn.BatchNorm1d(3, momentum=0.0)  # training leaves its statistics alone too
    frozen.running_mean.fill_(0.5)
    frozen.requires_grad_(False)
    model = nn.Sequential(frozen, nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    learn = _learner(x, y, model, cbs=[qf.SWA(start_epoch=0)], bs=8)
    learn.fit(1, 1e-2)
    torch.testing.assert_close(frozen.running_mean, torch.full((3,), 0.5))  # untouched: frozen
    with torch.no_grad():
        h = model[1](frozen.eval()(x))
    torch.testing.assert_close(model[2].running_mean, h.mean(0))  # the trained one: recomputed


def test_weighted_shard_sampler_shares_one_draw_between_ranks():
    from quickfit.data.loader import ShardSampler

    weights = torch.tensor([1.0, 0.0, 1.0, 0.0, 8.0])
    torch.manual_seed(5)
    one = list(ShardSampler(5, 0, 1, weights))
    parts = []
    for rank in range(2):
        torch.manual_seed(5)
        parts.append(list(ShardSampler(5, rank, 2, weights)))
    assert set(one) <= {0, 2, 4} and len(one) == 5
    merged = [i for pair in zip(*parts) for i in pair]  # every world_size-th from rank on
    assert merged[:5] == one
