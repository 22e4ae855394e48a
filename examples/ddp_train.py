"""Train on scikit-learn's handwritten digits, in one process or several: the script does not change.

    python examples/ddp_train.py                            # one process
    torchrun --nproc_per_node=2 examples/ddp_train.py       # two processes (DDP; gloo on CPU, NCCL on GPUs)

Under torchrun each `fit*` call wraps the model in DistributedDataParallel and gives every rank its
shard of the data; the validation loss and accuracy are those of the whole validation set, and only
rank 0 prints and saves. The batch size of a DataLoader is per process, so the script divides the
global batch size by the number of processes to train like the single process does.
"""

from __future__ import annotations

import os

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf

GLOBAL_BS = 64


def digits_dls(bs: int) -> qf.DataLoaders:
    digits = load_digits()  # 1,797 real 8x8 images, bundled with scikit-learn: no download
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    y = torch.tensor(digits.target)
    valid = torch.zeros(len(y), dtype=torch.bool)
    valid[qf.data.random_split(len(y), valid_pct=0.2, seed=42)] = True
    train_ds, valid_ds = TensorDataset(x[~valid], y[~valid]), TensorDataset(x[valid], y[valid])
    return qf.DataLoaders(DataLoader(train_ds, batch_size=bs, shuffle=True), DataLoader(valid_ds, batch_size=128))


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def main() -> None:
    world_size = int(os.environ.get("WORLD_SIZE", 1))  # set by torchrun
    torch.manual_seed(0)  # the same initial weights everywhere (DDP also copies rank 0's to the others)
    dls = digits_dls(bs=GLOBAL_BS // world_size)
    learn = qf.Learner(dls, small_cnn(), nn.CrossEntropyLoss(), metrics=[qf.accuracy], path="ddp_example")
    learn.fit_one_cycle(5, 1e-2, cbs=[qf.SaveBest("accuracy")])
    if learn.is_main_process:
        acc = learn.recorder.values[-1][3]
        print(f"{world_size} process(es): final accuracy {acc:.4f}; best weights in {learn.path / learn.model_dir}")


if __name__ == "__main__":
    main()
