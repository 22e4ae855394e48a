"""Distributed data parallel: the same script runs alone or under `torchrun --nproc_per_node=N`.

    # train.py -- `python train.py` trains in one process, `torchrun --nproc_per_node=2 train.py` in two
    learn = qf.Learner(dls, model, nn.CrossEntropyLoss(), metrics=[qf.accuracy])
    learn.fit_one_cycle(3, 1e-3)  # under torchrun: DDP, each rank trains on its shard of the data

When torchrun sets WORLD_SIZE > 1, every `fit*` call adds a `DistributedCallback`, which for that fit
- joins the process group torchrun describes (gloo on CPU, NCCL on CUDA, where each rank takes the
  GPU `LOCAL_RANK`),
- wraps `learn.model` in `DistributedDataParallel` (gradients are averaged across ranks in backward),
- replaces `dls.train` / `dls.valid` by this rank's shard: a torch `DataLoader` is rebuilt around a
  `DistributedSampler` (train) or a contiguous slice of the items with no padding duplicates (valid),
  any other loader is asked for `loader.shard(rank, world_size)`,
- and undoes all three at the end of the fit.
The batch size of a loader is per rank: with N ranks one optimizer step sees N times as many items.
Validation loss and metrics are summed across ranks (`all_reduce_sum`), so they are those of the
whole validation set; only rank 0 prints and saves (`learn.is_main_process`).

Under `torchrun --max-restarts=N` a job that loses a worker is started again; each round joins its own
process group (keys under a per-round prefix in torchrun's store, see `_round_store`), and
`fit*(checkpoint="run", resume=True)` continues after the last finished epoch (docs/distributed.md).
"""

from __future__ import annotations

import atexit
import os
import warnings
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from quickfit import env
from quickfit.callbacks.core import Callback, Order

__all__ = ["DistributedCallback", "all_reduce_sum", "shard_loader", "shard_indices", "rank_and_world_size"]

# How long a rank waits for the others to join (they may still be importing on a loaded machine).
_INIT_TIMEOUT = timedelta(minutes=30)

# Fits with sharded data in progress in this process. Sums across ranks happen only then: outside a
# distributed fit every rank holds the whole data, so `learn.validate()` / `get_preds()` run on one
# rank alone (e.g. `if learn.is_main_process:`) without waiting for the others.
_sharded_fits = 0


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes (from the process group, else torchrun's env)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return env.rank(), env.world_size()


def _comm_device() -> torch.device:
    """Where collectives take their tensors: the rank's GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over every rank during a distributed fit (a no-op otherwise); returns a new tensor."""
    if _sharded_fits == 0 or not dist.is_initialized() or dist.get_world_size() == 1:
        return t
    out = t.to(_comm_device(), copy=True)
    dist.all_reduce(out)
    return out.to(t.device)


def _all_gather_ints(value: int) -> list[int]:
    gathered = [torch.zeros(1, dtype=torch.int64, device=_comm_device()) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, torch.tensor([value], dtype=torch.int64, device=_comm_device()))
    return [int(g.item()) for g in gathered]


def _broadcast_int(value: int) -> int:
    t = torch.tensor([value], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, src=0)
    return int(t.item())


def shard_indices(n: int, rank: int, world_size: int, pad: bool) -> list[int]:
    """This rank's part of `range(n)`, for a loader's `shard(rank, world_size)` method.

    `pad=True` (training): every `world_size`-th item from `rank` on, `ceil(n / world_size)` on every
    rank, the first items repeated to fill up (as DistributedSampler does), so every rank takes the
    same number of steps. `pad=False` (validation): a contiguous range, sizes differing by at most one,
    no repeats, so summed metrics are exact and gathered predictions keep their order.
    """
    if pad:
        per_rank = -(-n // world_size)
        return [i % n for i in range(rank, per_rank * world_size, world_size)]
    return list(range(rank * n // world_size, (rank + 1) * n // world_size))


class _IndexSampler(Sampler):
    """Yields a fixed list of dataset indices: one rank's contiguous part of the validation set."""

    def __init__(self, indices: list[int]):
        self.indices = indices

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _valid_indices(dl: DataLoader, rank: int, world_size: int) -> list[int]:
    """The items of `dl` in order, split into `world_size` contiguous parts (sizes differ by at most one).

    Contiguous rather than strided so that predictions gathered in rank order come out in the
    original order; no item is repeated to even out the parts, so summed metrics are exact.
    """
    if isinstance(dl.sampler, (SequentialSampler, RandomSampler)):
        order = list(range(len(dl.dataset)))  # the order of validation items changes no metric
    else:  # any other sampler may be random: rank 0 draws the order and tells the others
        order = [list(dl.sampler) if rank == 0 else None]
        dist.broadcast_object_list(order, src=0)
        order = order[0]
    if len(order) < world_size:
        raise ValueError(
            f"the validation set has {len(order)} items, fewer than the {world_size} ranks: each needs one"
        )
    return [order[i] for i in shard_indices(len(order), rank, world_size, pad=False)]


def _rebuild(dl: DataLoader, sampler: Sampler) -> DataLoader:
    """`dl` with another sampler and everything else (batch size, collate, workers, ...) kept."""
    return DataLoader(
        dl.dataset,
        batch_size=dl.batch_size,
        sampler=sampler,
        collate_fn=dl.collate_fn,
        num_workers=dl.num_workers,
        pin_memory=dl.pin_memory,
        drop_last=dl.drop_last,
        timeout=dl.timeout,
        worker_init_fn=dl.worker_init_fn,
        multiprocessing_context=dl.multiprocessing_context if dl.num_workers > 0 else None,
        prefetch_factor=dl.prefetch_factor if dl.num_workers > 0 else None,
        persistent_workers=dl.persistent_workers,
    )


def _shard_dataloader(dl: DataLoader, rank: int, world_size: int, train: bool, seed: int) -> DataLoader:
    what = "training" if train else "validation"
    if isinstance(dl.dataset, IterableDataset):
        raise TypeError(
            f"cannot shard the {what} DataLoader over an IterableDataset: make the dataset yield only this "
            "rank's items (torch.distributed.get_rank()) and give the loader a shard(rank, world_size) method"
        )
    if dl.batch_size is None or type(dl.batch_sampler) is not BatchSampler:
        raise TypeError(
            f"cannot shard the {what} DataLoader: it has a custom batch_sampler ({type(dl.batch_sampler).__name__}); "
            "pass batch_size= and a sampler instead, or wrap it in a loader with a shard(rank, world_size) method"
        )
    if not train:
        return _rebuild(dl, _IndexSampler(_valid_indices(dl, rank, world_size)))
    sampler = dl.sampler
    if not isinstance(sampler, (SequentialSampler, RandomSampler)) or (
        isinstance(sampler, RandomSampler) and (sampler.replacement or sampler._num_samples is not None)
    ):
        raise TypeError(
            f"cannot shard the training DataLoader: its sampler {type(sampler).__name__} is not shuffle=True or "
            "shuffle=False; DistributedSampler would lose what it does. Give the loader a "
            "shard(rank, world_size) method instead"
        )
    # Pads each rank to the same number of items (by repeating a few), as DDP needs every rank to take
    # the same number of steps.
    dist_sampler = DistributedSampler(
        dl.dataset, num_replicas=world_size, rank=rank, shuffle=isinstance(sampler, RandomSampler), seed=seed
    )
    return _rebuild(dl, dist_sampler)


def shard_loader(dl, rank: int, world_size: int, train: bool, seed: int = 0):
    """This rank's part of `dl`: `dl.shard(rank, world_size)`, else a torch DataLoader rebuilt around a sampler.

    Training shards all have the same number of batches (DistributedSampler pads with repeats, shuffled
    with `seed` + epoch when `dl` shuffles); validation shards are contiguous slices without repeats.
    """
    if callable(getattr(dl, "shard", None)):  # first: a DataLoader subclass may know better
        return dl.shard(rank, world_size)
    if isinstance(dl, DataLoader):
        return _shard_dataloader(dl, rank, world_size, train, seed)
    raise TypeError(
        f"cannot shard the {'training' if train else 'validation'} data ({type(dl).__name__}) for distributed "
        "training: use a torch DataLoader, or give the loader a shard(rank, world_size) method returning "
        "this rank's part (training: the same number of batches on every rank; validation: no repeats)"
    )


class DistributedCallback(Callback):
    """DDP for one fit; added by the Learner when WORLD_SIZE > 1 (see the module docstring).

    `find_unused_parameters` is DDP's option for models whose forward leaves some parameters unused.
    Without torchrun's environment (and no process group) it does nothing.
    """

    order = Order.DISTRIBUTED

    def __init__(self, find_unused_parameters: bool = False):
        self.find_unused_parameters = find_unused_parameters
        self.active = False

    def before_fit(self, learn) -> None:
        global _sharded_fits
        self.active = False
        # a second DistributedCallback (added explicitly as well) or a plain single process: nothing to do
        if isinstance(learn.model, DistributedDataParallel) or not (dist.is_initialized() or env.in_torchrun()):
            return
        if _init_process_group(learn.device):
            atexit.register(_destroy_process_group)  # torch warns at exit about a group left open
        if dist.get_backend() == dist.Backend.NCCL:
            _move_to(learn, torch.device("cuda", torch.cuda.current_device()))
        rank, world_size = dist.get_rank(), dist.get_world_size()
        # every rank must shuffle with the same seed, or the shards would overlap: rank 0's draw wins.
        # Drawn from a fork of torch's generator: repeatable after torch.manual_seed, and the global
        # stream is not advanced, so the ranks' shuffles (and their models' randomness) are those of
        # one process that was never distributed.
        with torch.random.fork_rng(devices=[]):
            self.seed = _broadcast_int(int(torch.empty((), dtype=torch.int64).random_().item()) % 2**31)
        self.originals = []  # (dls, train, valid) of every DataLoaders sharded: a phase may bring its own
        self._shard(learn, rank, world_size)
        device_ids = [learn.device.index] if learn.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(
            learn.model, device_ids=device_ids, find_unused_parameters=self.find_unused_parameters
        )
        learn.model, self.active = self.ddp, True
        # lr_find stops when the loss diverges; every rank must stop at the same batch, so they share it
        from quickfit.callbacks.lr_finder import LRFinder

        self.share_loss = any(isinstance(cb, LRFinder) for cb in learn.cbs)
        _sharded_fits += 1

    def _shard(self, learn, rank: int, world_size: int) -> None:
        dls = learn.dls
        self.originals.append((dls, dls.train, dls.valid))
        dls.train = shard_loader(dls.train, rank, world_size, train=True, seed=self.seed)
        if dls.valid is not None:
            dls.valid = shard_loader(dls.valid, rank, world_size, train=False)
        n_batches = _all_gather_ints(len(dls.train))
        if len(set(n_batches)) > 1:
            self._restore()
            raise ValueError(f"the training shards have different numbers of batches per rank: {n_batches}")

    def _restore(self) -> None:
        for dls, train, valid in reversed(self.originals):
            dls.train, dls.valid = train, valid
        self.originals = []

    def before_epoch(self, learn) -> None:
        if not self.active:
            return
        if all(learn.dls is not dls for dls, _, _ in self.originals):  # a phase switched the data
            self._shard(learn, dist.get_rank(), dist.get_world_size())
        # rank 0 may have just saved a checkpoint in after_epoch: the others wait until it is on disk
        dist.barrier()
        sampler = getattr(learn.dls.train, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(learn.epoch)  # a new shuffle every epoch, the same on every rank

    def before_train(self, learn) -> None:
        if self.active:
            learn.model = self.ddp
            self.ddp.train()

    def before_validate(self, learn) -> None:
        # Validate the plain module: DDP's forward may broadcast buffers, a collective that would hang
        # when ranks have different numbers of validation batches; validation needs no communication.
        if self.active:
            learn.model = self.ddp.module

    def after_loss(self, learn) -> None:
        if self.active and self.share_loss and learn.training:
            loss = learn.loss.detach().float().reshape(1)
            learn.loss = all_reduce_sum(loss)[0] / dist.get_world_size()  # loss_grad stays this rank's

    def after_fit(self, learn) -> None:
        if self.active:  # the last checkpoint of rank 0 is written before anyone loads it (SaveBest)
            dist.barrier()

    def cleanup_fit(self, learn) -> None:
        # Also after an error: never leave the model wrapped. No collective here: after an error the
        # other ranks may be gone (a killed peer), and a barrier would only add a second error.
        global _sharded_fits
        if not self.active:
            return
        _sharded_fits -= 1
        learn.model = self.ddp.module
        self._restore()
        self.ddp = None
        self.active = False


def _init_process_group(device: torch.device) -> bool:
    """Join the process group torchrun describes; returns whether this call created it."""
    if dist.is_initialized():
        return False
    missing = env.torchrun_vars_missing()
    if missing:
        raise RuntimeError(
            f"distributed training needs the environment torchrun sets; missing {', '.join(missing)}. "
            "Launch with `torchrun --nproc_per_node=N script.py`"
        )
    if device.type == "cuda":
        local_rank = env.local_rank() % torch.cuda.device_count()
        torch.cuda.set_device(local_rank)
        backend, extra = "nccl", {"device_id": torch.device("cuda", local_rank)}
    else:
        if device.type != "cpu":
            warnings.warn(f"distributed training on {device.type} uses gloo, which may not support it")
        backend, extra = "gloo", {}
    store = _round_store()
    if store is None:
        dist.init_process_group(backend, **extra)
    else:
        dist.init_process_group(backend, store=store, rank=env.rank(), world_size=env.world_size(), **extra)
    return True


def _round_store() -> dist.Store | None:
    """A store for this round of a torchrun job whose agent keeps one store across restarts; else None.

    torchrun's default (static) rendezvous hosts one TCPStore in the agent for the whole job, and
    `init_process_group("env://")` uses it without a per-restart prefix: in a restarted round the
    keys of the dead round are still there, so a rank can read the gloo address of a process that no
    longer exists and fail with `connectFullMesh ... Connection refused` (or, with NCCL, a stale
    unique id), depending on which rank writes first. Keys under a prefix naming the round (restart
    count) are always the live processes'.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None  # the store is hosted by rank 0 and so is new in every round
    round_ = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        env.world_size(),
        is_master=False,
        timeout=_INIT_TIMEOUT,
    )
    return dist.PrefixStore(f"quickfit/{run_id}/round_{round_}", store)


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _move_to(learn, device: torch.device) -> None:
    """Put model, optimizer state and data on this rank's GPU (all ranks start on cuda:0 otherwise)."""
    if learn.device == device:
        return
    learn.device = device
    learn.model.to(device)  # in place: the optimizer keeps the same Parameter objects
    if learn.opt is not None:
        for state in learn.opt.state.values():
            for k, v in state.items():
                if isinstance(v, torch.Tensor) and v.device.type == "cuda":
                    state[k] = v.to(device)
    if hasattr(learn.dls, "to"):
        learn.dls.to(device)
