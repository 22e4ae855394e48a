"""Batches of (source, target) token ids, sorted by length within shuffled chunks so that padding stays small;
the DDP shard rule of the other loaders."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from quickfit.data.loader import LoaderBase
from quickfit.text.loaders import _epoch_rng

__all__ = ["Seq2SeqDataLoader"]


class Seq2SeqDataLoader(LoaderBase):
    """Batches `(src, tgt_in, tgt_out)` of padded sentence pairs of similar length."""

    def __init__(
        self,
        src: tuple[np.ndarray, np.ndarray],
        tgt: tuple[np.ndarray, np.ndarray],
        bs: int = 64,
        shuffle: bool = False,
        sort: bool = True,
        pad_idx: int = 1,
        raw_targets: Sequence[str] | None = None,
        seed: int | None = None,
        chunk_mult: int = 50,
    ) -> None:
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ValueError(f"Seq2SeqDataLoader: bs must be a positive int, got {bs!r}")
        (self.src_ids, self.src_offsets), (self.tgt_ids, self.tgt_offsets) = src, tgt
        self.src_lengths, self.tgt_lengths = np.diff(self.src_offsets), np.diff(self.tgt_offsets)
        if len(self.src_lengths) != len(self.tgt_lengths):
            raise ValueError(f"Seq2SeqDataLoader: {len(self.src_lengths)} sources but {len(self.tgt_lengths)} targets")
        if len(self.tgt_lengths) and self.tgt_lengths.min() < 2:
            raise ValueError("Seq2SeqDataLoader: every target needs at least 2 tokens (xxbos ... xxeos)")
        self.bs, self.shuffle, self.sort, self.pad_idx, self.chunk_mult = bs, shuffle, sort, pad_idx, chunk_mult
        self.raw_targets = None if raw_targets is None else list(raw_targets)
        self._rng = None if seed is None else np.random.default_rng(seed)
        # Sorted by source length, then target length: both sides of a batch then pad little.
        self._key = self.src_lengths * (int(self.tgt_lengths.max(initial=0)) + 1) + self.tgt_lengths
        self.last_idx = np.zeros(0, dtype=np.int64)

    @property
    def n(self) -> int:
        return len(self.src_lengths)

    def __len__(self) -> int:
        return math.ceil(self.n / self.bs)

    def batches(self, rng: np.random.Generator | None = None) -> list[np.ndarray]:
        """The pair indices of each batch of an epoch (the longest batch first when shuffling)."""
        if not self.shuffle:
            order = np.argsort(-self._key, kind="stable") if self.sort else np.arange(self.n)
            return [order[i : i + self.bs] for i in range(0, self.n, self.bs)]
        rng = _epoch_rng(rng)
        perm, chunk = rng.permutation(self.n), self.chunk_mult * self.bs
        order = np.concatenate(
            [p[np.argsort(-self._key[p], kind="stable")] for p in np.split(perm, range(chunk, self.n, chunk))]
        )
        batches = [order[i : i + self.bs] for i in range(0, self.n, self.bs)]
        if len(batches) > 1:  # the largest batch first: an out-of-memory error shows at once
            first = int(np.argmax([self._key[b].max() for b in batches]))
            rest = [b for i, b in enumerate(batches) if i != first]
            batches = [batches[first]] + [rest[i] for i in rng.permutation(len(rest))]
        return batches

    def _pad(self, ids: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, idx: np.ndarray, cut: int = 0):
        width = max(1, int(lengths[idx].max()) - cut)
        cols = np.arange(width)
        n_real = lengths[idx][:, None] - cut
        pos = offsets[idx][:, None] + cols
        out = np.where(cols < n_real, ids[np.minimum(pos, len(ids) - 1)], self.pad_idx)
        return torch.from_numpy(out.astype(np.int64))

    def collate(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(src, tgt_in, tgt_out)` of pairs `idx`, right-padded with `pad_idx`."""
        src = self._pad(self.src_ids, self.src_offsets, self.src_lengths, idx)
        tgt_in = self._pad(self.tgt_ids, self.tgt_offsets, self.tgt_lengths, idx, cut=1)  # drops the last token
        tgt_out = self._pad(self.tgt_ids, self.tgt_offsets + 1, self.tgt_lengths, idx, cut=1)  # drops xxbos
        return src, tgt_in, tgt_out

    def __iter__(self):
        for idx in self.batches(self._rng):
            self.last_idx = idx
            batch = self.collate(idx)
            yield batch if self.device is None else tuple(t.to(self.device, non_blocking=True) for t in batch)

    def __repr__(self) -> str:
        return f"Seq2SeqDataLoader({self.n} pairs, bs={self.bs}, {len(self)} batches, shuffle={self.shuffle})"
