"""GANs: the switchers' alternation, the step's separate updates, both optimizers scheduled, a tiny GAN
that learns, resume, lr_find, samples to PNG, DDP gradient sync, and the bad inputs."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from PIL import Image
from torch import nn

import quickfit as qf
from quickfit.callbacks.core import Callback
from quickfit.gan import GANLearner
from quickfit.gan.callbacks import GANSamples, GeneratorEMA
from quickfit.gan.data import noise_dls
from quickfit.gan.loss import GANLoss
from quickfit.gan.models import GANModule, basic_generator, gan_critic
from quickfit.gan.switchers import AdaptiveGANSwitcher, FixedGANSwitcher
from quickfit.loading import learner_from_info

Z = 4


class _Shape(nn.Module):
    def forward(self, x):
        return x.view(x.shape[0], 1, 4, 4)


def tiny_gan(seed: int = 0):
    """A generator of 1x4x4 'images' and an MLP critic: fast enough to train in a test."""
    torch.manual_seed(seed)
    gen = nn.Sequential(nn.Linear(Z, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), _Shape())
    crit = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Flatten(0))
    return gen, crit


def real_images(n: int = 256, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.6 + 0.05 * torch.randn(n, 1, 4, 4, generator=g)).clamp(-1, 1)


def tiny_learner(tmp_path, loss="nonsaturating", switcher=None, seed=0, n=256, **kw) -> GANLearner:
    gen, crit = tiny_gan(seed)
    dls = noise_dls(real_images(n), z_dim=Z, bs=32, valid_pct=0.125, seed=0)
    return GANLearner(dls, gen, crit, loss=loss, switcher=switcher, path=tmp_path, progress=False, **kw)


def _phases(switcher, n, losses=None):
    phase, out = switcher.first, []
    for i in range(n):
        out.append(phase[0])
        phase = switcher.next_phase(phase, torch.tensor(losses[i] if losses else 0.0))
    return "".join(out)


# ---- switchers ------------------------------------------------------------------------------------------
def test_fixed_switcher_alternates_by_its_ratio():
    assert _phases(FixedGANSwitcher(), 6) == "cgcgcg"
    assert _phases(FixedGANSwitcher(n_crit=3, n_gen=2), 10) == "cccggcccgg"
    assert _phases(FixedGANSwitcher(n_crit=1, n_gen=0), 4) == "cccc"  # critic pre-training
    assert _phases(FixedGANSwitcher(n_crit=0, n_gen=1), 4) == "gggg"


def test_adaptive_switcher_switches_when_the_loss_falls_below_its_threshold():
    sw = AdaptiveGANSwitcher(critic_thresh=0.5, gen_thresh=1.0)
    # critic: 0.9 (stay), 0.4 (-> gen); gen: 2.0 (stay), 0.8 (-> critic); critic 0.3 (-> gen)
    assert _phases(sw, 6, [0.9, 0.4, 2.0, 0.8, 0.3, 5.0]) == "ccggcg"
    assert _phases(AdaptiveGANSwitcher(), 4, [9, 9, 9, 9]) == "cgcg"  # no thresholds: every batch


def test_switcher_bad_counts_are_refused():
    with pytest.raises(ValueError, match="cannot both be 0"):
        FixedGANSwitcher(0, 0)
    with pytest.raises(ValueError, match="n_gen must be a whole number >= 0, got -1"):
        FixedGANSwitcher(1, -1)


# ---- losses and models ----------------------------------------------------------------------------------
def test_gan_losses_against_their_formulas():
    real, fake = torch.tensor([1.0, 2.0, -0.5]), torch.tensor([-1.0, 0.5, 0.0])
    w = GANLoss("wgan")
    assert w.critic(real, fake).item() == pytest.approx(fake.mean() - real.mean())
    assert w.adversarial(fake).item() == pytest.approx(-fake.mean())
    ns = GANLoss("nonsaturating")
    bce = F.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones(3)) + bce(fake, torch.zeros(3))
    assert ns.critic(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)
    assert ns.adversarial(fake).item() == pytest.approx(bce(fake, torch.ones(3)).item(), rel=1e-6)
    content = GANLoss("wgan", content_loss=F.l1_loss, content_weight=2.0, adv_weight=0.5)
    img, targ = torch.zeros(2, 3), torch.ones(2, 3)
    assert content.generator(fake, img, targ).item() == pytest.approx(2.0 * 1.0 + 0.5 * -fake.mean().item())
    with pytest.raises(ValueError, match="'wgan' or 'nonsaturating', got 'lsgan'"):
        GANLoss("lsgan")


def test_critic_and_generator_shapes_and_spectral_norm():
    crit = gan_critic(n_channels=1, nf=8, n_blocks=2)
    assert crit(torch.randn(5, 1, 28, 28)).shape == (5,)
    n_sn = sum(1 for m in crit.modules() if hasattr(m, "parametrizations"))
    assert n_sn == 4  # every convolution
    gen = basic_generator(28, n_channels=1, z_dim=8, nf=8)
    out = gen(torch.randn(3, 8))
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1
    assert basic_generator(64, n_channels=3, z_dim=8, nf=4)(torch.randn(2, 8)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="out_size 30 is not a multiple"):
        basic_generator(30, n_up=2)
    convt = basic_generator(28, n_channels=1, z_dim=8, nf=8, upsample="transposed")
    assert convt(torch.randn(3, 8)).shape == (3, 1, 28, 28)
    assert [type(m) for m in convt if isinstance(m, (nn.ConvTranspose2d, nn.Upsample))] == [nn.ConvTranspose2d] * 2
    with pytest.raises(ValueError, match="upsample must be 'nearest' or 'transposed', got 'bilinear'"):
        basic_generator(28, upsample="bilinear")
    # a global critic: one spectral-norm linear layer over the whole 7x7 map, no dropout with p=0
    glob = gan_critic(n_channels=1, nf=8, n_blocks=1, p=0.0, in_size=28)
    assert glob(torch.randn(5, 1, 28, 28)).shape == (5,)
    assert isinstance(glob[-2], nn.Linear) and glob[-2].in_features == 16 * 7 * 7
    assert hasattr(glob[-2], "parametrizations") and not any(isinstance(m, nn.Dropout2d) for m in glob)
    deep_g = basic_generator(28, n_channels=1, z_dim=8, nf=8, n_extra=2)  # two 3x3 convs at 14x14, none at 28x28
    assert deep_g(torch.randn(2, 8)).shape == (2, 1, 28, 28)
    assert sum(isinstance(m, nn.Conv2d) for m in deep_g) == 2 + 2
    deep_c = gan_critic(n_channels=1, nf=8, n_blocks=1, p=0.0, in_size=28, n_extra=1)
    assert deep_c(torch.randn(2, 1, 28, 28)).shape == (2,)
    assert [m.kernel_size for m in deep_c if isinstance(m, nn.Conv2d)] == [(4, 4), (3, 3), (4, 4), (3, 3)]
    assert sum(hasattr(m, "parametrizations") for m in deep_c) == 5  # spectral norm on every layer
    with pytest.raises(ValueError, match="in_size 4 is too small for 3 halvings"):
        gan_critic(n_channels=1, n_blocks=2, in_size=4)
    with pytest.raises(ValueError, match="mode must be"):
        GANModule(gen, crit)(torch.randn(1, 8), mode="both")


# ---- the step ---------------------------------------------------------------------------------------------
class _StopAfter(Callback):
    def __init__(self, n):
        self.n = n

    def after_batch(self, learn):
        if learn.training and learn.iter + 1 >= self.n:
            raise qf.CancelFitException()


def test_r1_penalty_against_its_formula_and_in_the_critic_step(tmp_path):
    lin = nn.Linear(16, 1)
    real = torch.randn(5, 1, 4, 4, requires_grad=True)
    pred = lin(real.flatten(1)).squeeze(1)  # a linear critic: d pred / d x = its weight, for every image
    got = GANLoss("nonsaturating", r1=3.0).r1_penalty(pred, real)
    assert got.item() == pytest.approx(0.5 * 3.0 * lin.weight.pow(2).sum().item(), rel=1e-5)
    with pytest.raises(ValueError, match="r1 must be >= 0"):
        GANLoss("wgan", r1=-1.0)
    norms, losses = {}, {}
    for r1 in (0.0, 100.0):  # one critic batch from the same start: the penalty shrinks the critic's slope
        learn = tiny_learner(tmp_path, loss=GANLoss("nonsaturating", r1=r1))
        learn.fit(1, 1e-2, cbs=[_StopAfter(1)])
        norms[r1] = sum(p.pow(2).sum().item() for p in learn.critic.parameters() if p.dim() > 1)
        losses[r1] = learn.step.losses["critic"][0].item()
    assert norms[100.0] < norms[0.0]
    assert losses[100.0] == pytest.approx(losses[0.0], rel=1e-6)  # the reported loss is the critic's own


def test_each_phase_updates_only_its_network(tmp_path):
    learn = tiny_learner(tmp_path)
    g0 = [p.detach().clone() for p in learn.generator.parameters()]
    c0 = [p.detach().clone() for p in learn.critic.parameters()]
    learn.fit(1, 1e-2, cbs=[_StopAfter(1)])  # one batch: the critic's
    assert all(torch.equal(a, p) for a, p in zip(g0, learn.generator.parameters()))
    assert not all(torch.equal(a, p) for a, p in zip(c0, learn.critic.parameters()))
    assert learn.step.phase == "generator"
    c1 = [p.detach().clone() for p in learn.critic.parameters()]
    learn.fit(1, 1e-2, cbs=[_StopAfter(1)])  # the next batch: the generator's
    assert all(torch.equal(a, p) for a, p in zip(c1, learn.critic.parameters()))
    assert not all(torch.equal(a, p) for a, p in zip(g0, learn.generator.parameters()))
    assert all(p.grad is None for p in learn.critic.parameters())  # no stray critic gradients
    assert all(p.requires_grad for p in learn.critic.parameters())  # restored after the generator step


def test_both_optimizers_follow_the_schedule_without_momentum(tmp_path):
    learn = tiny_learner(tmp_path, critic_lr_mult=2.0)
    seen = []

    class Watch(Callback):
        order = 50

        def before_batch(self, learn):
            if learn.training:
                seen.append((learn.opt.param_groups[0]["lr"], learn.step.crit_opt.param_groups[0]["lr"]))

    learn.fit_one_cycle(2, 1e-2, cbs=[Watch()])
    gen_lrs, crit_lrs = zip(*seen)
    assert max(gen_lrs) == pytest.approx(1e-2, rel=0.02) and max(crit_lrs) == pytest.approx(2e-2, rel=0.02)
    assert crit_lrs == pytest.approx([2 * lr for lr in gen_lrs])  # one schedule, each at its own peak
    assert crit_lrs[0] < crit_lrs[len(crit_lrs) // 4] > crit_lrs[-1]  # warm-up then annealing
    for opt in learn.opts:
        assert all(g["betas"][0] == 0.0 for g in opt.param_groups)  # GANs hate momentum
    names = learn.recorder.names
    assert "crit_loss" in names and "gen_loss" in names


def test_a_tiny_gan_learns_the_data_mean(tmp_path):
    learn = tiny_learner(tmp_path, n=512)
    with torch.no_grad():
        before = learn.generator(torch.randn(256, Z)).mean().item()
    learn.fit(12, 5e-3)
    learn.generator.eval()
    with torch.no_grad():
        after = learn.generator(torch.randn(256, Z)).mean().item()
    assert abs(before - 0.6) > 0.3
    assert abs(after - 0.6) < 0.1, (before, after)
    row = learn.recorder.values[-1]
    assert all(v is not None for v in row[1:5])  # train, valid, crit_loss, gen_loss


def test_wgan_trains_and_pretrain_critic_trains_only_the_critic(tmp_path):
    learn = tiny_learner(tmp_path, loss="wgan")
    g0 = [p.detach().clone() for p in learn.generator.parameters()]
    learn.pretrain_critic(3, 1e-2)
    assert all(torch.equal(a, p) for a, p in zip(g0, learn.generator.parameters()))
    crit = [row[3] for row in learn.recorder.values]
    assert crit[-1] < min(crit[0], 0)  # the WGAN critic learns to separate real from fake: negative loss
    assert learn.recorder.names[3:] == ["crit_loss", "time"]  # no generator batch: no gen_loss column of NaN
    assert isinstance(learn.step.switcher, FixedGANSwitcher) and learn.step.switcher.n_gen == 1  # restored
    learn.fit(1, 1e-3)
    assert not all(torch.equal(a, p) for a, p in zip(g0, learn.generator.parameters()))


class _Crash(Callback):
    def before_epoch(self, learn):
        if learn.epoch == 1:
            raise KeyboardInterrupt


def test_resume_continues_exactly_with_the_critic_optimizer_and_switcher_phase(tmp_path):
    sw = FixedGANSwitcher(n_crit=2, n_gen=1)  # 7 batches an epoch: the phase at an epoch end varies
    ref = tiny_learner(tmp_path / "ref", switcher=sw)
    qf.set_seed(3)
    ref.fit(2, 1e-3)
    crashed = tiny_learner(tmp_path / "run", switcher=FixedGANSwitcher(2, 1))
    qf.set_seed(3)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(2, 1e-3, cbs=[_Crash()], checkpoint="gan")
    resumed = tiny_learner(tmp_path / "run", switcher=FixedGANSwitcher(2, 1))
    resumed.fit(2, 1e-3, checkpoint="gan", resume=True)
    for (k, a), b in zip(ref.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert resumed.step.phase == ref.step.phase and resumed.step.switcher.count == ref.step.switcher.count
    sa, sb = ref.step.crit_opt.state_dict()["state"], resumed.step.crit_opt.state_dict()["state"]
    torch.testing.assert_close(sa[0]["exp_avg_sq"], sb[0]["exp_avg_sq"])


def test_lr_find_sweeps_both_optimizers_and_restores_them(tmp_path):
    learn = tiny_learner(tmp_path, n=1024)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    sugg = learn.lr_find(num_it=20, show_plot=False)
    assert sugg.valley > 0
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert learn.recorder.lr_find_lrs[-1] > learn.recorder.lr_find_lrs[0]


def test_samples_are_saved_every_n_epochs_as_png(tmp_path):
    learn = tiny_learner(tmp_path)
    learn.fit(2, 1e-3, cbs=[GANSamples(tmp_path / "s", every=2, n=4)])
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["epoch_1.png"]
    grid = learn.show_results(9, path=tmp_path / "r.png")
    assert grid.shape == (3, 3 * 4 + 4 * 2, 3 * 4 + 4 * 2) and 0 <= grid.min() and grid.max() <= 1
    assert Image.open(tmp_path / "r.png").size == (20, 20)


def test_image_to_image_gan_shows_input_generated_target(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    dls = qf.DataLoaders(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x), batch_size=8))
    gen = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid())
    learn = GANLearner(dls, gen, gan_critic(3, nf=4, n_blocks=1), GANLoss("wgan", content_loss=F.l1_loss),
                       progress=False, path=tmp_path)  # fmt: skip
    learn.fit(1, 1e-3)
    grid = learn.show_results(2)
    assert grid.shape == (3, 2 * 8 + 3 * 2, 3 * 8 + 4 * 2)  # 2 rows of input / generated / target
    assert learn.predict(x[0]).shape == (3, 8, 8)


def test_noise_dls_checks_the_image_shape():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\], got shape \(10, 28, 28\)"):
        noise_dls(torch.rand(10, 28, 28))


# ---- DDP --------------------------------------------------------------------------------------------------
def _ddp_train(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    sys.stdout = open(Path(out_dir) / f"stdout{rank}.txt", "w")  # noqa: SIM115 -- closed at process exit
    torch.set_num_threads(1)
    gen, crit = tiny_gan(0)
    torch.manual_seed(100 + rank)  # different noise on each rank
    dls = noise_dls(real_images(128), z_dim=Z, bs=16, valid_pct=0.125, seed=0)
    learn = GANLearner(dls, gen, crit, loss="nonsaturating", path=out_dir, progress=False)
    learn.fit(1, 1e-2)
    torch.save({"state": learn.model.state_dict(), "init": tiny_gan(0)}, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_ddp_keeps_both_networks_in_sync_across_ranks(tmp_path, monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.start_processes(_ddp_train, args=(2, port, str(tmp_path)), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the two DDP processes did not finish in 120 s")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))
    gen0, crit0 = r0["init"]
    init = GANModule(gen0, crit0).state_dict()
    for k, v in r0["state"].items():
        torch.testing.assert_close(v, r1["state"][k], msg=k)  # averaged gradients: the same weights
    assert not torch.equal(r0["state"]["generator.0.weight"], init["generator.0.weight"])
    assert not torch.equal(r0["state"]["critic.1.weight"], init["critic.1.weight"])


# ---- the generator's moving average -------------------------------------------------------------------------------
class _GeneratorSteps(Callback):
    """The generator's weights after each of its optimizer steps."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def after_step(self, learn) -> None:
        if learn.stepping_opt is learn.opt:
            self.weights.append({k: v.detach().clone() for k, v in learn.generator.state_dict().items()})


def test_generator_ema_averages_the_generator_steps_only_and_replaces_the_weights_at_the_end(tmp_path):
    learn = tiny_learner(tmp_path, switcher=FixedGANSwitcher(n_crit=2, n_gen=1))
    start = {k: v.clone() for k, v in learn.generator.state_dict().items()}
    ema, steps = GeneratorEMA(decay=0.9), _GeneratorSteps()
    learn.fit(2, 1e-3, cbs=[ema, steps])
    assert len(steps.weights) == ema.n_averaged == 4  # 14 batches: c c g c c g ...
    expected = start
    for n, w in enumerate(steps.weights, 1):
        d = min(0.9, (1 + n) / (10 + n))
        expected = {k: d * expected[k] + (1 - d) * w[k] for k in w}
    for k, v in ema.generator.state_dict().items():
        torch.testing.assert_close(v, expected[k])
        torch.testing.assert_close(learn.generator.state_dict()[k], expected[k])  # replace_at_end
    assert not torch.equal(expected["0.weight"], steps.weights[-1]["0.weight"])  # an average, not the last step
    assert not ema.generator.training and not any(p.requires_grad for p in ema.generator.parameters())


def test_generator_ema_keeps_the_last_weights_without_replace_and_ignores_lr_find(tmp_path):
    learn = tiny_learner(tmp_path)
    ema = GeneratorEMA(decay=0.99, replace_at_end=False)
    learn.add_cbs([ema])
    learn.lr_find(num_it=5, show_plot=False)
    assert ema.generator is None and ema.n_averaged == 0
    steps = _GeneratorSteps()
    learn.fit(1, 1e-3, cbs=[steps])
    assert ema.n_averaged == len(steps.weights) >= 3  # 7 batches, every other one the generator's
    assert not torch.equal(ema.generator[0].weight, learn.generator[0].weight)
    with pytest.raises(ValueError, match="decay must be in \\[0, 1\\), got 1.0"):
        GeneratorEMA(decay=1.0)


def test_generator_ema_resumes_from_a_checkpoint_with_the_same_average(tmp_path):
    ref, ref_ema = tiny_learner(tmp_path / "ref"), GeneratorEMA(0.9, replace_at_end=False)
    qf.set_seed(3)
    ref.fit(2, 1e-3, cbs=[ref_ema])
    crashed = tiny_learner(tmp_path / "run")
    qf.set_seed(3)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(2, 1e-3, cbs=[GeneratorEMA(0.9, replace_at_end=False), _Crash()], checkpoint="gan")
    resumed, ema = tiny_learner(tmp_path / "run"), GeneratorEMA(0.9, replace_at_end=False)
    resumed.fit(2, 1e-3, cbs=[ema], checkpoint="gan", resume=True)
    assert ema.n_averaged == ref_ema.n_averaged == 7  # 14 batches, every other one the generator's
    for (k, a), b in zip(ref_ema.generator.state_dict().items(), ema.generator.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


# ---- export ----------------------------------------------------------------------------------------------
def test_export_and_load_learner_draw_the_same_images(tmp_path):
    torch.manual_seed(0)
    real = real_images(64).repeat(1, 1, 2, 2)  # 1 x 8 x 8
    gen = basic_generator(8, n_channels=1, z_dim=Z, nf=4)
    learn = GANLearner(noise_dls(real, z_dim=Z, bs=16, seed=0), gen, gan_critic(1, nf=4, n_blocks=1, in_size=8),
                       loss="nonsaturating", path=tmp_path, progress=False)  # fmt: skip
    learn.fit(1, 1e-3)
    f = learn.export("gan.qf")
    loaded = qf.load_learner(f)
    assert isinstance(loaded, GANLearner) and loaded.z_dim == Z
    images = learn.generate(6, seed=1)
    assert images.shape == (6, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    assert images.std() > 0  # not a constant image
    assert torch.allclose(loaded.generate(6, seed=1), images, atol=1e-6)  # the same weights, the same noise
    assert not torch.allclose(loaded.generate(6, seed=2), images)
    z = torch.randn(Z)
    assert torch.allclose(loaded.predict(z), loaded.generate(z=z[None])[0])
    for a, b in zip(loaded.critic.state_dict().values(), learn.critic.state_dict().values()):
        assert torch.equal(a, b)  # the critic too: training can go on


def test_export_of_a_hand_built_generator_says_what_to_do(tmp_path):
    learn = tiny_learner(tmp_path)
    with pytest.raises(ValueError, match="basic_generator\\(\\) and gan_critic\\(\\)"):
        learn.export("gan.qf")
    assert not (tmp_path / "gan.qf").exists()
    images = learn.generate(3, seed=0)  # generate still works: z_dim from the first Linear
    with torch.no_grad():
        raw = learn.generator(torch.randn(3, Z, generator=torch.Generator().manual_seed(0)))
    assert images.shape == (3, 1, 4, 4) and torch.allclose(images, (raw + 1) / 2)  # tanh before the reshape


def test_a_gan_export_naming_another_builder_is_refused():
    model = {"type": "gan", "generator": {"name": "os.system", "kwargs": {}}, "critic": {"name": "gan_critic"}}
    with pytest.raises(ValueError, match="generator names no known builder"):
        learner_from_info({"app": "vision", "task": {"type": "gan"}, "model": model})


def test_r1_under_ddp_is_refused_with_the_reason(tmp_path, monkeypatch):
    from quickfit import env

    monkeypatch.setattr(env, "world_size", lambda: 2)
    gen, crit = tiny_gan()
    dls = noise_dls(real_images(64), z_dim=Z, bs=16, seed=0)
    with pytest.raises(ValueError, match="R1 penalty .* DistributedDataParallel does not support"):
        GANLearner(dls, gen, crit, loss=GANLoss("nonsaturating", r1=1.0), path=tmp_path, progress=False)
