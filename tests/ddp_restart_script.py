"""The script `test_distributed_restart.py` runs under torchrun: 4 epochs with a checkpoint, resumable.

    torchrun --nproc_per_node=2 --max-restarts=1 tests/ddp_restart_script.py OUT_DIR --kills 1 [--torch-loader]

With `--kills K`, round k < K of the job (torchrun's restart count) loses a worker to SIGKILL in the
middle of epoch k + 2 (rank 1, then rank 0, alternating); torchrun restarts both workers, which
resume from the checkpoint of the epoch before. Rank 0 writes the final weights to OUT_DIR/final.pt.
`--torch-loader`: plain torch DataLoaders instead of `quickfit.data.TensorBatches`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf
from quickfit import env
from quickfit.data import TensorBatches


class KillMidEpoch(qf.Callback):
    """In round k < kills, SIGKILL rank (k + 1) % 2 in the middle of epoch index k + 1."""

    def __init__(self, kills: int):
        self.round = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        self.kills = kills

    def after_batch(self, learn) -> None:
        k = self.round
        if k < self.kills and env.rank() == (k + 1) % 2 and learn.training and learn.epoch == k + 1 and learn.iter == 2:
            os.kill(os.getpid(), signal.SIGKILL)


def main(out_dir: str, kills: int = 0, torch_loader: bool = False) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    bs = 16 // env.world_size()  # the same global batch in one process or two
    if torch_loader:  # a user's plain torch DataLoader (sharded with a DistributedSampler)
        train = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=bs, shuffle=True)
        valid = DataLoader(TensorDataset(x[128:], y[128:]), batch_size=16)
    else:  # quickfit's in-memory batches: N ranks train exactly like one process with N times the batch
        train = TensorBatches(x[:128], y[:128], bs=bs, shuffle=True)
        valid = TensorBatches(x[128:], y[128:], bs=16)
    dls = qf.DataLoaders(train, valid)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    cbs = [KillMidEpoch(kills)]
    learn = qf.Learner(dls, model, nn.CrossEntropyLoss(), path=out_dir, progress=False, cbs=cbs)
    learn.fit_one_cycle(4, 3e-2, checkpoint="run", resume=True)
    if learn.is_main_process:
        torch.save(model.state_dict(), Path(out_dir) / "final.pt")


if __name__ == "__main__":
    kills = int(sys.argv[sys.argv.index("--kills") + 1]) if "--kills" in sys.argv else 0
    main(sys.argv[1], kills, torch_loader="--torch-loader" in sys.argv)
