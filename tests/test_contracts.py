"""The engine's protocols (quickfit/contracts.py): what passes, and errors that name what is missing."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf
from quickfit.contracts import Loader, check_loader, check_task_data
from quickfit.data import LoaderBase, TensorBatches


class OnlyIter:
    def __iter__(self):
        return iter([])


def test_lists_torch_loaders_and_quickfit_loaders_are_loaders():
    ds = TensorDataset(torch.randn(8, 2), torch.arange(8))
    for dl in ([], [(torch.zeros(1, 2), torch.zeros(1))], DataLoader(ds, batch_size=4), TensorBatches(*ds.tensors)):
        check_loader(dl)
        assert isinstance(dl, Loader)
    assert not isinstance(OnlyIter(), Loader)


def test_check_loader_names_the_missing_method_and_its_use():
    with pytest.raises(TypeError, match=r"dls.valid \(OnlyIter\) is not a loader.*lacks __len__ \(the number of"):
        check_loader(OnlyIter(), "dls.valid")
    with pytest.raises(TypeError, match=r"lacks shard \(shard\(rank, world_size\)"):
        check_loader([], "dl", need=("shard",))


def test_check_task_data_names_train_and_the_loaders():
    check_task_data(qf.DataLoaders([], None))
    with pytest.raises(TypeError, match=r"dls \(tuple\).*lacks train.*DataLoaders\(train, valid\)"):
        check_task_data(([], []))
    with pytest.raises(TypeError, match=r"dls.valid \(OnlyIter\)"):
        check_task_data(qf.DataLoaders([], OnlyIter()))
    with pytest.raises(TypeError, match=r"lacks test_dl \(test_dl\(items\).*predict"):
        check_task_data(qf.DataLoaders([], None), need=("test_dl",))


def test_learner_refuses_data_that_is_not_task_data():
    with pytest.raises(TypeError, match=r"dls \(tuple\)"):
        qf.Learner(([], []), nn.Linear(2, 2), nn.MSELoss())
    with pytest.raises(TypeError, match=r"dls.train \(OnlyIter\).*__len__"):
        qf.Learner(qf.DataLoaders(OnlyIter()), nn.Linear(2, 2), nn.MSELoss())


def test_predict_without_test_dl_names_it():
    learn = qf.Learner(qf.DataLoaders([], None), nn.Linear(2, 2), nn.MSELoss(), progress=False, device="cpu")
    assert learn.predict(torch.zeros(2)).shape == (2,)  # a tensor item needs no test_dl
    with pytest.raises(TypeError, match=r"no test_dl\(items\) to turn a str into a batch"):
        learn.predict("photo.jpg")


class Squares(LoaderBase):
    def __init__(self, n: int, bs: int) -> None:
        self.n, self.bs = n, bs

    def __len__(self) -> int:
        return -(-self.n // self.bs)

    def __iter__(self):
        x = torch.arange(self.n, device=self.device, dtype=torch.float32)[:, None]
        for i in range(0, self.n, self.bs):
            yield x[i : i + self.bs], x[i : i + self.bs] ** 2


def test_loader_base_keeps_the_device_and_starts_shards():
    dl = Squares(10, 4)
    assert dl.device is None and (dl.rank, dl.world_size) == (0, 1)
    assert dl.to("cpu") is dl and dl.device == torch.device("cpu")
    shard = dl._shard_copy(1, 2)
    assert (shard.rank, shard.world_size, dl.rank) == (1, 2, 0)
    assert (dl._shard_copy(1, 2, training=False).world_size) == 1
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        dl._shard_copy(2, 2)
    learn = qf.Learner(qf.DataLoaders(dl, Squares(4, 4)), nn.Linear(1, 1), nn.MSELoss(), progress=False, device="cpu")
    learn.fit(1, 1e-3)
    assert len(learn.recorder.values) == 1
