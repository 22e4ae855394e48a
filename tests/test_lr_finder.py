"""lr_find's suggestions on the two kinds of curves a user sees: a fresh network (a long fall, then a
climb) and a trained one unfrozen for fine-tuning (flat, a small dip, then a climb), issue 8 item 12."""

import numpy as np
import pytest

from quickfit.callbacks.lr_finder import LRFinder, suggest_lrs

LRS = np.logspace(-7, 1, 100)


def test_fresh_network_keeps_the_valley_of_its_long_fall():
    log = np.log10(LRS)
    losses = np.where(log < -5, 2.3, 2.3 - 2.0 * np.clip((log + 5) / 4, 0, 1))  # falls from 1e-5 to 1e-1
    losses = np.where(log > -1, 0.3 + 3 * (log + 1), losses)  # then climbs
    s = suggest_lrs(LRS.tolist(), losses.tolist())
    assert s.valley == pytest.approx(LRS[49])  # two thirds down the longest fall (from the first point) ...
    assert s.minimum == pytest.approx(LRS[np.argmin(losses)] / 10) and s.valley < s.minimum  # ... not capped


def test_trained_network_gets_a_tenth_of_the_lowest_losss_rate_not_the_dip_before_the_climb():
    # A pretrained body with a fitted head: nothing to fall (the loss creeps up as the rate grows), a dip
    # of noise just before the climb.
    log = np.log10(LRS)
    losses = np.linspace(0.10, 0.11, 100)
    dip = (log > -3) & (log <= -2.5)
    losses[dip] = np.linspace(0.109, 0.08, dip.sum())
    losses[log > -2.5] = 0.08 + 0.5 * (log[log > -2.5] + 2.5)
    s = suggest_lrs(LRS.tolist(), losses.tolist())
    lowest = LRS[np.argmin(losses)]
    # Today's valley sits inside the dip (about 2e-3), where fine-tuning undoes the head's work.
    assert s.valley == pytest.approx(lowest / 10) and s.valley < 1e-3


def test_short_sweeps_smooth_over_their_own_length():
    assert LRFinder(num_it=100).beta == 0.98
    assert LRFinder(num_it=24).beta == pytest.approx(1 - 2 / 24)  # 0.98 would average nearly everything
