"""The replaceable batch step: a tiny GAN and a teacher-forcing seq2seq plug in without touching the loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf

MODES = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])


def mixture(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MODES[torch.randint(0, len(MODES), (n,), generator=g)] + 0.1 * torch.randn(n, 2, generator=g)


class GAN(nn.Module):
    """Both models in one module, so checkpoints, `to(device)` and export see them together."""

    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        self.critic = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))

    def forward(self, noise):
        return self.generator(noise)


class AlternatingGANStep(qf.TrainStep):
    """Non-saturating GAN: each training batch, `n_crit` critic steps then one generator step."""

    def __init__(self, critic_lr: float = 1e-2, n_crit: int = 1):
        self.critic_lr, self.n_crit, self.count = critic_lr, n_crit, 0

    def create_opts(self, learn):
        critic = learn.model.critic.parameters()
        self.crit_opt = qf.Adam([{"params": list(critic), "lr_max": self.critic_lr}], lr=self.critic_lr, mom=0.5)

    def extra_opts(self, learn):
        return [self.crit_opt]

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state.get("count", 0)

    def __call__(self, learn):
        gan, bce = learn.model, nn.functional.binary_cross_entropy_with_logits
        (noise,), real = learn.xb, learn.yb
        if learn.training:
            for _ in range(self.n_crit):
                with learn.autocast:
                    real_logit, fake_logit = gan.critic(real), gan.critic(gan(noise).detach())
                    learn.loss_grad = bce(real_logit, torch.ones_like(real_logit)) + bce(
                        fake_logit, torch.zeros_like(fake_logit)
                    )
                self.critic_loss = learn.loss_grad.detach()
                learn.backward()
                learn.opt_step(self.crit_opt)
                self.count += 1
        with learn.autocast:  # the generator's turn; its loss is the one logged
            learn.pred = fake = gan(noise)
            learn("after_pred")
            fake_logit = gan.critic(fake)
            learn.loss = learn.loss_grad = bce(fake_logit, torch.ones_like(fake_logit))
        learn("after_loss")
        if learn.training:
            learn.backward()
            learn.opt_step()
            self.crit_opt.zero_grad(set_to_none=True)  # the generator's loss reached the critic too


def gan_learner(tmp_path, seed: int = 0) -> qf.Learner:
    torch.manual_seed(seed)
    noise, real = torch.randn(8192, 2), mixture(8192, seed)
    train = DataLoader(TensorDataset(noise, real), batch_size=64, shuffle=True)
    valid = DataLoader(TensorDataset(torch.randn(256, 2), mixture(256, seed + 1)), batch_size=256)
    model = GAN()
    return qf.Learner(
        qf.DataLoaders(train, valid),
        model,
        step=AlternatingGANStep(),
        splitter=lambda m: [list(m.generator.parameters())],
        opt_func=lambda groups, lr, **kw: qf.Adam(groups, lr=lr, mom=0.5),
        path=tmp_path,
        progress=False,
    )


def near_a_mode(points: torch.Tensor, radius: float = 0.5) -> torch.Tensor:
    return torch.cdist(points, MODES).min(dim=1).values < radius


@pytest.mark.slow
def test_a_tiny_gan_trains_through_the_public_api(tmp_path):
    learn = gan_learner(tmp_path)
    noise = torch.randn(1000, 2)
    with torch.no_grad():
        before = near_a_mode(learn.model.generator(noise)).float().mean().item()
    learn.fit_flat_cos(5, 1e-2, pct_start=0.5)  # Adam with beta1 = 0.5 throughout: GANs hate momentum
    with torch.no_grad():
        samples = learn.model.generator(noise)
    after = near_a_mode(samples).float().mean().item()
    covered = torch.cdist(samples, MODES).argmin(dim=1)[near_a_mode(samples)].unique().numel()
    assert before < 0.1
    assert after > 0.5, f"only {after:.0%} of the generator's samples are near a mode"
    assert covered >= 2, "the generator collapsed onto a single mode"
    # both optimizers followed the schedule (flat, then annealed towards 0)
    assert learn.step.crit_opt.param_groups[0]["lr"] < 1e-2 / 100
    assert learn.opt.param_groups[0]["lr"] < 1e-2 / 100
    assert learn.step.count == 5 * len(learn.dls.train)
    assert len(learn.recorder.values) == 5 and all(math.isfinite(v[1]) for v in learn.recorder.values)  # train_loss


def test_gan_resume_restores_both_optimizers_and_the_switcher(tmp_path):
    ref = gan_learner(tmp_path / "a")
    qf.set_seed(1)
    ref.fit_one_cycle(2, 1e-2, checkpoint="run")

    class Crash(qf.Callback):  # dies in the middle of the second epoch, after the first was checkpointed
        def before_batch(self, learn):
            if learn.training and learn.epoch == 1 and learn.iter == 5:
                raise KeyboardInterrupt

    learn = gan_learner(tmp_path / "b")
    qf.set_seed(1)
    with pytest.raises(KeyboardInterrupt):
        learn.fit_one_cycle(2, 1e-2, checkpoint="run", cbs=[Crash()])
    resumed = gan_learner(tmp_path / "b")
    resumed.fit_one_cycle(2, 1e-2, checkpoint="run", resume=True)
    assert resumed.step.count == ref.step.count
    for (k, a), b in zip(ref.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert torch.allclose(
        resumed.step.crit_opt.state_dict()["state"][0]["exp_avg"], ref.step.crit_opt.state_dict()["state"][0]["exp_avg"]
    )


def test_lr_find_restores_every_optimizer(tmp_path):
    learn = gan_learner(tmp_path)
    learn.create_opt()
    crit_before = {k: v.clone() for k, v in learn.model.critic.state_dict().items()}
    learn.lr_find(num_it=20, show_plot=False)
    for k, v in learn.model.critic.state_dict().items():
        assert torch.equal(v, crit_before[k]), k
    assert learn.step.crit_opt.state == {} or all(not s for s in learn.step.crit_opt.state.values())


# ---- teacher forcing: reverse a sequence of digits -----------------------------------------------
BOS, N_TOK, LEN = 10, 11, 6


class TinySeq2Seq(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.emb = nn.Embedding(N_TOK, 32)
        self.encoder = nn.GRU(32, hidden, batch_first=True)
        self.decoder = nn.GRUCell(32, hidden)
        self.attn = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(2 * hidden, N_TOK)

    def forward(self, src, targ=None, teacher_ratio: float = 0.0):
        enc, h = self.encoder(self.emb(src))
        h, tok, outs = h[0], torch.full_like(src[:, 0], BOS), []
        for t in range(src.shape[1]):
            h = self.decoder(self.emb(tok), h)
            weights = torch.einsum("bh,bsh->bs", self.attn(h), enc).softmax(-1)
            logits = self.out(torch.cat([h, torch.einsum("bs,bsh->bh", weights, enc)], -1))
            outs.append(logits)
            tok = logits.argmax(-1)
            if targ is not None and teacher_ratio > 0:
                forced = torch.rand(tok.shape, device=tok.device) < teacher_ratio
                tok = torch.where(forced, targ[:, t], tok)
        return torch.stack(outs, 1)


class TeacherForcingStep(qf.TrainStep):
    """The decoder sees the target with probability `ratio` in training (annealed by a callback)."""

    def __init__(self, ratio: float = 1.0):
        self.ratio = ratio

    def __call__(self, learn):
        (src,), targ = learn.xb, learn.yb
        with learn.autocast:
            learn.pred = learn.model(src, targ, self.ratio if learn.training else 0.0)
            learn("after_pred")
            learn.loss = learn.loss_grad = learn.compute_loss(learn.pred.flatten(0, 1), targ.flatten())
        learn("after_loss")
        if learn.training:
            learn.backward()
            learn.opt_step()


class AnnealTeacher(qf.Callback):
    def before_batch(self, learn):
        if learn.training:
            progress = (learn.epoch * learn.n_iter + learn.iter) / (learn.n_epoch * learn.n_iter)
            learn.step.ratio = max(0.0, 1.0 - progress)


def digits(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, 10, (n, LEN), generator=g)
    return src, src.flip(1)


@pytest.mark.slow
def test_teacher_forcing_seq2seq_learns_to_reverse_digits(tmp_path):
    torch.manual_seed(0)
    train = DataLoader(TensorDataset(*digits(3000, 0)), batch_size=64, shuffle=True)
    valid = DataLoader(TensorDataset(*digits(300, 1)), batch_size=300)

    def seq_accuracy(pred, targ):
        return (pred.view(-1, LEN, N_TOK).argmax(-1) == targ.view(-1, LEN)).all(1).float().mean()

    def token_accuracy(pred, targ):
        return (pred.view(-1, LEN, N_TOK).argmax(-1) == targ.view(-1, LEN)).float().mean()

    seen = []

    class Spy(qf.Callback):
        def after_batch(self, learn):
            if learn.training:
                seen.append(learn.step.ratio)

    learn = qf.Learner(
        qf.DataLoaders(train, valid),
        TinySeq2Seq(),
        nn.CrossEntropyLoss(),
        step=TeacherForcingStep(),
        metrics=[token_accuracy],
        cbs=[AnnealTeacher(), Spy()],
        path=tmp_path,
        progress=False,
    )
    learn.fit_one_cycle(4, 1e-2)
    src, targ = digits(300, 2)
    learn.model.eval()
    with torch.no_grad():
        pred = learn.model(src)  # no teacher: greedy decoding
    assert seq_accuracy(pred.flatten(0, 1), targ.flatten()) > 0.9
    assert seen[0] == 1.0 and seen[-1] < 0.05 and all(a >= b for a, b in zip(seen, seen[1:]))
    token_acc = learn.recorder.values[-1][learn.recorder.names.index("token_accuracy")]
    assert token_acc > 0.95  # validated without teacher forcing


def test_a_step_must_be_callable():
    with pytest.raises(TypeError, match="step must be a TrainStep"):
        qf.Learner(qf.DataLoaders([], None), nn.Linear(2, 2), nn.MSELoss(), step="gan")
