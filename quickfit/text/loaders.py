"""Batches of numericalized texts: language-model streams and length-sorted classifier batches.

Both loaders read from one flat int32 array of token ids and the offsets where each text starts
(see `quickfit.text.corpus`); a batch is array slicing / one gather, never a Python loop over items.

    import numpy as np
    from quickfit.text.loaders import LMDataLoader, SortishDataLoader
    ids, offsets = np.arange(2, 1002, dtype=np.int32), np.array([0, 300, 1000])
    lm = LMDataLoader(ids, offsets, bs=4, seq_len=10, shuffle=True, seed=0)
    x, y = next(iter(lm))            # x (4, L) LongTensor, y = the next token of each x; lm.last_len == L
    clf = SortishDataLoader(ids, offsets, labels=np.array([0, 1]), bs=2, shuffle=True)
    x, y = next(iter(clf))           # x (2, longest) padded with xxpad (index 1) on the right

Language model (`LMDataLoader`): the texts (each starting with `xxbos`), shuffled per epoch in
training, are concatenated into one stream, cut into `bs` equal rows, and read left to right: batch
`k + 1` continues batch `k` in every row, so a model may carry its hidden state across batches.
In training each batch length is drawn as AWD-LSTM does (`seq_len`, or `seq_len / 2` with
probability 0.05, plus normal noise of std 5, at least 5), then all lengths are scaled so that an
epoch reads each row exactly once: `len(dl)` is known before the epoch and stays the same.

Classifier (`SortishDataLoader`): texts of similar length go in the same batch. Training shuffles,
sorts chunks of `50 * bs` texts by length, cuts them into batches, puts the batch with the longest
text first (an out-of-memory error shows at once) and shuffles the other batches; validation is
sorted by length; `sort=False` keeps the order (test sets). `dl.order` gives the text index of
every row of an epoch, in order, to map predictions back. Padding is on the right by default
(`pad_first=False`): an LSTM reading left to right then gives the same outputs at the real tokens
as without padding.

Under torchrun both shard themselves (`shard(rank, world_size)`, called by `DistributedCallback`) so
that N ranks with `bs` read exactly what one process with `N * bs` reads, split N ways: the LM
stream is cut into `N * bs` rows, of which a rank reads its `bs`; a training classifier loader cuts
each global batch into N parts; a validation classifier loader takes a contiguous part of the sorted
texts. Each epoch's random order is rank 0's (the same `seed`, or its draw broadcast).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from quickfit.data.batches import broadcast_from_rank0
from quickfit.data.loader import LoaderBase
from quickfit.text.tokens import gather_texts

__all__ = ["LMDataLoader", "SortishDataLoader"]


def _epoch_rng(rng: np.random.Generator | None, shared: bool = False) -> np.random.Generator:
    # Without a seed, each epoch draws its seed from torch's generator, so `qf.set_seed` (or
    # torch.manual_seed) makes runs repeatable without a second seed to manage. The shards of a
    # distributed run all take rank 0's draw (a seeded generator is the same on every rank already).
    if rng is not None:
        return rng
    seed = torch.randint(0, 2**62, (1,))
    return np.random.default_rng(int((broadcast_from_rank0(seed) if shared else seed).item()))


def _part(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Part `rank` of a batch cut into `world_size` equal parts (repeating its first items to fill up)."""
    if len(batch) % world_size:
        batch = batch[np.arange(-(-len(batch) // world_size) * world_size) % len(batch)]
    k = len(batch) // world_size
    return batch[rank * k : (rank + 1) * k]


class LMDataLoader(LoaderBase):
    """Batches `(x, y)` of `bs` contiguous token streams, `y` being `x` shifted by one token."""

    def __init__(
        self,
        ids: np.ndarray,
        offsets: np.ndarray,
        bs: int = 64,
        seq_len: int = 72,
        shuffle: bool = False,
        vary_seq_len: bool | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(bs, int) or bs < 1:
            raise ValueError(f"LMDataLoader: bs must be a positive int, got {bs!r}")
        if not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"LMDataLoader: seq_len must be a positive int, got {seq_len!r}")
        self.ids, self.offsets = np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64)
        self.bs, self.seq_len, self.shuffle = bs, seq_len, shuffle
        self.vary_seq_len = shuffle if vary_seq_len is None else vary_seq_len
        self._cut_rows()  # a shard reads rows of a stream of world_size * bs rows
        self.last_len = seq_len  # length of the batch last yielded (a model may scale its lr by it)
        self._rng = None if seed is None else np.random.default_rng(seed)

    def _cut_rows(self) -> None:
        n_rows = self.bs * self.world_size
        self.row_len = len(self.ids) // n_rows
        if self.row_len < 2:
            ranks = f" on each of {self.world_size} ranks" if self.world_size > 1 else ""
            raise ValueError(
                f"LMDataLoader: {len(self.ids)} tokens are too few for bs={self.bs} streams{ranks} of at least "
                "2 tokens; use a smaller bs or more text"
            )
        self.n_batches = math.ceil((self.row_len - 1) / self.seq_len)

    @property
    def n_texts(self) -> int:
        return len(self.offsets) - 1

    def shard(self, rank: int, world_size: int) -> LMDataLoader:
        """Rank `rank`'s rows for distributed training: the epoch's stream is cut into `world_size * bs`
        rows (as one process with that batch size cuts it, the same texts order and batch lengths on
        every rank) and this rank reads rows `rank * bs` to `(rank + 1) * bs`. Training and validation alike."""
        out = self._shard_copy(rank, world_size)
        out._cut_rows()
        return out

    def __len__(self) -> int:
        return self.n_batches

    # to(device) (LoaderBase): each epoch's stream is built on the device, batches are slices of it
    def stream(self, rng: np.random.Generator | None = None) -> torch.Tensor:
        """The epoch's `(bs, row_len)` int32 token rows (texts shuffled when `shuffle`)."""
        ids = self.ids
        if self.shuffle:
            ids, _ = gather_texts(self.ids, self.offsets, _epoch_rng(rng).permutation(self.n_texts))
        n_rows, first = self.bs * self.world_size, self.bs * self.rank
        rows = np.ascontiguousarray(ids[: n_rows * self.row_len]).reshape(n_rows, self.row_len)[first : first + self.bs]
        rows = torch.from_numpy(np.ascontiguousarray(rows))
        return rows if self.device is None else rows.to(self.device)

    def batch_lengths(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """The `len(self)` batch lengths of an epoch; they add up to `row_len - 1`."""
        total, n, sl = self.row_len - 1, self.n_batches, self.seq_len
        if self.vary_seq_len and n > 1:
            rng = _epoch_rng(rng)
            base = np.where(rng.random(n) < 0.95, sl, sl / 2)
            draws = np.maximum(5, rng.normal(base, 5)).astype(np.int64)
            ends = np.round(np.cumsum(draws) * (total / draws.sum())).astype(np.int64)
            lengths = np.diff(ends, prepend=0)
            if (lengths >= 1).all():
                return lengths
        lengths = np.full(n, sl, dtype=np.int64)
        lengths[-1] = total - sl * (n - 1)
        return lengths

    def __iter__(self):
        rng = _epoch_rng(self._rng, self.world_size > 1) if (self.shuffle or self.vary_seq_len) else None
        rows = self.stream(rng)
        pos = 0
        for length in self.batch_lengths(rng).tolist():
            self.last_len = length
            # .long() copies the int32 slice into a new contiguous int64 tensor (the model's input).
            yield rows[:, pos : pos + length].long(), rows[:, pos + 1 : pos + 1 + length].long()
            pos += length

    def __repr__(self) -> str:
        return (
            f"LMDataLoader({self.n_texts} texts, {len(self.ids)} tokens, bs={self.bs}, seq_len={self.seq_len}, "
            f"{len(self)} batches, shuffle={self.shuffle})"
        )


class SortishDataLoader(LoaderBase):
    """Batches `(x, y)` (or `(x,)` without labels) of padded texts of similar length."""

    def __init__(
        self,
        ids: np.ndarray,
        offsets: np.ndarray,
        labels: np.ndarray | None = None,
        bs: int = 64,
        shuffle: bool = False,
        sort: bool = True,
        pad_idx: int = 1,
        pad_first: bool = False,
        seed: int | None = None,
        chunk_mult: int = 50,
    ) -> None:
        if not isinstance(bs, int) or bs < 1:
            raise ValueError(f"SortishDataLoader: bs must be a positive int, got {bs!r}")
        self.ids, self.offsets = np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64)
        self.lengths = np.diff(self.offsets)
        if labels is not None:
            labels = np.asarray(labels)
            if len(labels) != len(self.lengths):
                raise ValueError(f"SortishDataLoader: {len(self.lengths)} texts but {len(labels)} labels")
        self.labels, self.bs, self.shuffle, self.sort = labels, bs, shuffle, sort
        self.pad_idx, self.pad_first, self.chunk_mult = pad_idx, pad_first, chunk_mult
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._src = np.append(self.ids, np.int32(pad_idx))  # the last entry is what padding reads
        self._slice = slice(None)  # a validation shard: its contiguous part of the fixed order
        self.order = self._fixed_order()

    @property
    def n(self) -> int:
        return len(self.lengths)

    def __len__(self) -> int:
        return math.ceil(len(range(self.n)[self._slice]) / (self.bs * self.world_size))

    def shard(self, rank: int, world_size: int) -> SortishDataLoader:
        """This rank's part for distributed training. Training (`shuffle`): each epoch's batches are
        drawn as one process with batch size `world_size * bs` draws them (rank 0's order) and this rank
        takes part `rank` of each, so every rank takes the same number of steps. Validation: a contiguous
        part of the sorted order, no text twice."""
        out = self._shard_copy(rank, world_size, training=self.shuffle)
        if not self.shuffle:
            out._slice = slice(rank * self.n // world_size, (rank + 1) * self.n // world_size)
        out.order = out._fixed_order()
        return out

    def _fixed_order(self) -> np.ndarray:
        order = np.argsort(-self.lengths, kind="stable") if self.sort else np.arange(self.n)
        return order[self._slice]

    def batches(self, rng: np.random.Generator | None = None) -> list[np.ndarray]:
        """The text indices of each batch of an epoch."""
        if not self.shuffle:
            order = self._fixed_order()
            return [order[i : i + self.bs] for i in range(0, len(order), self.bs)]
        bs = self.bs * self.world_size  # the global batch of a training shard
        rng = _epoch_rng(rng, self.world_size > 1)
        perm = rng.permutation(self.n)
        chunk = self.chunk_mult * bs
        parts = [perm[i : i + chunk] for i in range(0, self.n, chunk)]
        order = np.concatenate([p[np.argsort(-self.lengths[p], kind="stable")] for p in parts]) if parts else perm
        batches = [order[i : i + bs] for i in range(0, self.n, bs)]
        if len(batches) > 1:
            first = int(np.argmax([self.lengths[b].max() for b in batches]))
            rest = [b for i, b in enumerate(batches) if i != first]
            batches = [batches[first]] + [rest[i] for i in rng.permutation(len(rest))]
        if self.world_size > 1:
            batches = [_part(b, self.rank, self.world_size) for b in batches]
        return batches

    def collate(self, idx: np.ndarray) -> torch.Tensor:
        """The `(len(idx), longest)` LongTensor of texts `idx`, padded with `pad_idx`."""
        lengths = self.lengths[idx]
        width = max(1, int(lengths.max()) if len(idx) else 1)
        cols = np.arange(width)
        shift = (width - lengths)[:, None] if self.pad_first else 0
        pos = self.offsets[idx][:, None] + cols - shift
        real = (cols >= shift) & (cols - shift < lengths[:, None])
        return torch.from_numpy(self._src[np.where(real, pos, len(self.ids))].astype(np.int64))

    def __iter__(self):
        batches = self.batches(self._rng)
        self.order = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        for idx in batches:
            x = self.collate(idx)
            batch = (x,) if self.labels is None else (x, torch.as_tensor(self.labels[idx]))
            yield batch if self.device is None else tuple(t.to(self.device, non_blocking=True) for t in batch)

    def __repr__(self) -> str:
        return f"SortishDataLoader({self.n} texts, bs={self.bs}, {len(self)} batches, shuffle={self.shuffle})"
