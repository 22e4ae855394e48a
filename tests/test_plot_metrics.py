"""recorder.plot_metrics(): the epoch table as curves; the plotted points are the Recorder's values."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from torch import nn

import quickfit as qf
from tests.conftest import make_dls, mlp


def test_one_panel_for_the_losses_and_one_per_metric():
    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), metrics=[qf.accuracy, qf.error_rate], progress=False)
    learn.fit_one_cycle(2, 1e-2)
    learn.fit(1, 1e-3)  # a second fit continues the epoch axis
    fig = learn.recorder.plot_metrics()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "error_rate"]
    values = np.array(learn.recorder.values, dtype=float)
    train, valid = axes[0].get_lines()
    assert (train.get_label(), valid.get_label()) == ("train_loss", "valid_loss")
    np.testing.assert_array_equal(train.get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(train.get_ydata(), values[:, 1])
    np.testing.assert_array_equal(valid.get_ydata(), values[:, 2])
    np.testing.assert_array_equal(axes[1].get_lines()[0].get_ydata(), values[:, 3])
    np.testing.assert_array_equal(axes[2].get_lines()[0].get_ydata(), values[:, 4])
    plt.close(fig)
    fig = learn.recorder.plot_metrics(nrows=3, ncols=1)
    assert len(fig.axes) == 3
    plt.close(fig)


def test_without_validation_and_bad_layouts():
    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), progress=False)
    with pytest.raises(RuntimeError, match="no epochs recorded yet"):
        learn.recorder.plot_metrics()
    learn.dls.valid = None
    learn.fit(1, 1e-3)
    fig = learn.recorder.plot_metrics()
    assert np.isnan(fig.axes[0].get_lines()[1].get_ydata()).all()  # no valid_loss: a gap, not a zero
    plt.close(fig)
    learn.metrics = [qf.accuracy]
    learn.dls = make_dls()
    learn.fit(1, 1e-3)
    with pytest.raises(ValueError, match=r"nrows=1 x ncols=1 panels are too few for 2 plots"):
        learn.recorder.plot_metrics(nrows=1, ncols=1)
    fig = learn.recorder.plot_metrics()  # the first fit had no accuracy column: a gap there
    ys = fig.axes[1].get_lines()[0].get_ydata()
    assert np.isnan(ys[0]) and ys[1] == learn.recorder.values[-1][3]
    plt.close(fig)
