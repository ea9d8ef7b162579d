"""The epoch as an input of the DALI graph: :class:`EpochFeed`, the iterable
``fn.external_source`` that hands the graph this rank's batches of the current epoch, so the
pipeline is built once and ``set_epoch`` only changes what the feed yields.

Per sample the feed gives the file path as uint8 ``[L]`` (UTF-8 bytes, read by
``fn.io.file.read`` on DALI's threads), the dataset index as int32 ``[1]`` and the key as
int64 ``[2]`` ``(seed, epoch)``. Order and padding are those of the ``fn.readers.file`` it
replaces: ``DistributedSampler``'s order (:func:`epoch_order`), rank ``r``'s contiguous
shard, the last batch padded with the shard's last sample (the loader trims it). A pass
may start at any batch (``start(epoch, start_batch=k)``, a resume mid-epoch): the batches
before it are never handed out, so their files are never read.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch


def epoch_order(n: int, *, world_size: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """All ranks' indices of one epoch, rank-major: ``DistributedSampler``'s order and padding
    (``order[r * m:(r + 1) * m]`` is rank ``r``'s list, ``m = ceil(n / world_size)``)."""
    if shuffle:
        g = torch.Generator()
        g.manual_seed(seed + epoch)
        idx = torch.randperm(n, generator=g).numpy()
    else:
        idx = np.arange(n)
    m = math.ceil(n / world_size)
    total = m * world_size
    if total > n:
        idx = np.concatenate([idx, np.resize(idx, total - n)])
    return np.concatenate([idx[r::world_size] for r in range(world_size)]).astype(np.int64)


class EpochFeed:
    """Iterable batch source of ``(paths, index, key)`` (see module doc). DALI takes
    ``iter()`` once, at build, and calls ``next()`` until ``StopIteration`` (the end of the
    epoch) and again after each ``reset()``: :meth:`start` sets the epoch (and its first
    batch) to hand out next, :meth:`stop` ends the current one early (the loader drains what
    DALI prefetched)."""

    def __init__(
        self,
        files: list[str],
        *,
        batch_size: int,
        n_batches: int,
        rank: int,
        world_size: int,
        shuffle: bool,
        seed: int,
    ) -> None:
        self.paths = [np.frombuffer(os.fsencode(f), np.uint8) for f in files]
        self.batch_size, self.n_batches = batch_size, n_batches
        self.rank, self.world_size, self.shuffle, self.seed = rank, world_size, shuffle, seed
        self.epoch = 0
        self._batches: list[np.ndarray] = []
        self._next = 0

    def __iter__(self) -> EpochFeed:
        return self

    def start(self, epoch: int, start_batch: int = 0) -> None:
        """Hand out ``epoch``'s batches ``start_batch, start_batch + 1, ...`` from the next
        ``next()`` on."""
        if not 0 <= start_batch <= self.n_batches:
            raise ValueError(f"start_batch must be in [0, {self.n_batches}], got {start_batch}")
        self.epoch = epoch
        order = epoch_order(
            len(self.paths),
            world_size=self.world_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
        )
        m, b = len(order) // self.world_size, self.batch_size
        mine = order[self.rank * m : (self.rank + 1) * m]
        pad = self.n_batches * b - len(mine)
        if pad > 0:
            mine = np.concatenate([mine, np.full(pad, mine[-1], np.int64)])
        self._batches = [mine[i * b : (i + 1) * b] for i in range(self.n_batches)]
        self._next = start_batch

    def __next__(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        if self._next >= len(self._batches):
            raise StopIteration
        idx = self._batches[self._next]
        self._next += 1
        key = np.array([self.seed, self.epoch], np.int64)
        return (
            [self.paths[i] for i in idx],
            [np.array([i], np.int32) for i in idx],
            [key] * len(idx),
        )

    def stop(self) -> None:
        """End the current epoch at the next batch DALI asks for."""
        self._next = len(self._batches)


__all__ = ["EpochFeed", "epoch_order"]
