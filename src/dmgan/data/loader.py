"""The order a training loop reads its data in, and its one DataLoader.

Each epoch is a seeded permutation of the samples, cut into batches and sharded over the
processes; a run resumed mid-epoch starts at the batch it stopped before. The loader's
workers live for the whole run (not one epoch): the batch sampler hands out
(epoch, index) keys, so a dataset's per-epoch draws (word subsampling, contrast captions)
still follow the epoch inside a long-lived worker.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from dmgan.data.collate import collate
from dmgan.errors import DMGANError


def epoch_batches(n: int, batch: int, epoch: int, seed: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This process's batches of one epoch: a seeded permutation, sharded, last partial dropped."""
    # any seed (a command's --seed is reduced into [0, 2**32), then scaled by the caller):
    # folded into the generator's range, unchanged below 2**63
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    order = torch.randperm(n, generator=g).tolist()
    per = batch * world
    usable = (n // per) * per
    if usable == 0:
        raise DMGANError(f"{n} samples cannot fill one batch of {batch} x {world} processes")
    mine = order[:usable][rank::world]
    return [mine[i:i + batch] for i in range(0, len(mine), batch)]


class EpochBatches:
    """A batch sampler: the batches of the current epoch from a given batch on, as
    (epoch, index) keys for EpochIndexed. `start(epoch, first)` before each pass."""

    def __init__(self, n: int, batch: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch, self.seed, self.rank, self.world = n, batch, seed, rank, world
        self.epoch, self.first = 0, 0
        self._batches = epoch_batches(n, batch, 0, seed, rank, world)  # refuses n < batch

    def start(self, epoch: int, first: int = 0) -> None:
        if epoch != self.epoch:
            self._batches = epoch_batches(self.n, self.batch, epoch, self.seed, self.rank,
                                          self.world)
        self.epoch, self.first = epoch, first

    @property
    def per_epoch(self) -> int:
        """Batches in one epoch (for this process)."""
        return len(self._batches)

    def __iter__(self):
        for batch in self._batches[self.first:]:
            yield [(self.epoch, i) for i in batch]

    def __len__(self) -> int:
        return len(self._batches) - self.first


class EpochIndexed(Dataset):
    """Reads (epoch, index) keys, setting the wrapped dataset's epoch when it changes."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if getattr(self.dataset, "epoch", epoch) != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def epoch_loader(dataset, batch: int, *, seed: int, rank: int = 0, world: int = 1,
                 workers: int = 0, pin_memory: bool = False) -> tuple[EpochBatches, DataLoader]:
    """(sampler, loader): call sampler.start(epoch, first_batch), then iterate the loader."""
    order = EpochBatches(len(dataset), batch, seed, rank, world)
    loader = DataLoader(EpochIndexed(dataset), batch_sampler=order, collate_fn=collate,
                        num_workers=workers, pin_memory=pin_memory,
                        persistent_workers=workers > 0,
                        # its own generator: making an iterator must not draw from the
                        # global RNG, or a resumed run would diverge from a straight one
                        generator=torch.Generator().manual_seed(seed))
    return order, loader
