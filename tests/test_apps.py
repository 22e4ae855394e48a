"""Applications register with the engine; load_learner never imports a name read from a file."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from safetensors.torch import save_model
from torch import nn

import quickfit as qf
from quickfit.apps import App, app_names, get_app, register_app
from quickfit.configs import ModelConfig, Task, export_record
from tests.conftest import make_dls, mlp


def test_quickfits_applications_are_installed_entry_points():
    assert {"vision", "text", "tabular", "collab"} <= set(app_names())
    assert [t.__module__ for t in get_app("tabular").tasks] == ["quickfit.tabular.learner"]


@dataclass
class ToyMLP(ModelConfig):
    type: ClassVar[str] = "toy_mlp"
    seed: int = 0

    def build(self) -> nn.Module:
        return mlp(seed=self.seed)


@dataclass
class ToyTask(Task):
    type: ClassVar[str] = "toy_classification"

    def learner(self, dls, model, config):
        return qf.Learner(dls, model, nn.CrossEntropyLoss(), progress=False)


def test_a_registered_application_rebuilds_its_learner(tmp_path):
    register_app(App("toy-app", models=(ToyMLP,), tasks=(ToyTask,)))
    config = ToyMLP(seed=3)
    learn = ToyTask().learner(make_dls(), config.build(), config)
    learn.path = tmp_path
    learn.export_info = export_record("toy-app", ToyTask(), config)
    learn.fit(1, 1e-2)
    loaded = qf.load_learner(learn.export("toy.qf"))
    x = torch.randn(5, 2)
    assert torch.equal(loaded.model(x), learn.model.eval()(x))
    assert loaded.export_info == {"app": "toy-app", "task": {"type": "toy_classification"}, "model": config.to_dict()}


def test_a_type_the_application_did_not_register_is_refused(tmp_path):
    register_app(App("toy-app", models=(ToyMLP,), tasks=(ToyTask,)))
    f = tmp_path / "evil.qf"
    info = {"format": 2, "app": "toy-app", "task": {"type": "toy_classification"}, "model": {"type": "os.system"}}
    save_model(nn.Linear(2, 2), str(f), metadata={"quickfit": json.dumps(info)})
    with pytest.raises(ValueError, match=r"'toy-app' has no model of type 'os.system' \(its models: \['toy_mlp'\]\)"):
        qf.load_learner(f)
    info["model"] = {"type": "toy_mlp", "seed": 0, "layers": 3}
    save_model(nn.Linear(2, 2), str(f), metadata={"quickfit": json.dumps(info)})
    with pytest.raises(ValueError, match=r"toy_mlp: unknown keys \['layers'\]"):
        qf.load_learner(f)


def test_an_unknown_application_is_refused_and_nothing_is_imported(tmp_path):
    f = tmp_path / "evil.qf"
    save_model(nn.Linear(2, 2), str(f), metadata={"quickfit": json.dumps({"format": 1, "app": "os.path"})})
    before = set(sys.modules)
    with pytest.raises(ValueError, match="unknown application 'os.path'.*known: .*tabular"):
        qf.load_learner(f)
    assert not {m for m in set(sys.modules) - before if m.startswith("os.path")}


def test_load_learner_on_a_checkpoint_says_to_use_learn_load(tmp_path):
    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), path=tmp_path, progress=False)
    learn.fit(1, 1e-2)
    f = learn.save("stage1")
    with pytest.raises(ValueError, match=r"training checkpoint written by learn.save\(\).*learn.load\("):
        qf.load_learner(f)


def test_register_app_takes_an_app():
    with pytest.raises(TypeError, match="takes an App"):
        register_app({"name": "x"})


class Typo(qf.Callback):
    def after_batchs(self, learn):
        pass


def test_a_callback_method_named_like_a_missing_event_is_refused(learner):
    with pytest.raises(
        ValueError, match=r"Typo.after_batchs is named like an event but is not one; did you mean after_batch"
    ):
        learner().add_cbs([Typo()])
    with pytest.raises(ValueError, match="after_batchs"):
        learner(cbs=[Typo()])


def test_any_before_or_after_name_outside_the_events_is_refused(learner):
    class Helper(qf.Callback):
        def before_thing(self, learn):
            pass

    with pytest.raises(ValueError, match="Helper.before_thing is named like an event"):
        learner(cbs=[Helper()])


def test_callbacks_with_event_methods_and_other_methods_are_accepted(learner):
    class Ok(qf.Callback):
        def after_batch(self, learn):
            self.n = getattr(self, "n", 0) + 1

        def summary(self):
            return self.n

    cb = Ok()
    learner(cbs=[cb]).fit(1, 1e-2)
    assert cb.summary() == 15  # 409 training items in batches of 32 (13), plus 2 validation batches
