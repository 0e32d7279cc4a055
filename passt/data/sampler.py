"""Class-balanced sampling as in PaSST: rare labels weigh more, an epoch drawn without
replacement."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from passt.utils.errors import UsageError


def balanced_weights(targets: np.ndarray, offset: float = 100.0) -> np.ndarray:
    """Per-sample weights of the PaSST repository (``get_ft_cls_balanced_sample_weights`` with
    ``sample_weight_sum=True``): ``w_i = sum_c y_ic * 1000 / (n_c + offset)``, where ``n_c``
    counts the positives of class ``c``. The offset damps the boost of very rare classes;
    a sample without labels weighs 0."""
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2:
        raise UsageError(f"targets must be [samples, classes], got shape {targets.shape}")
    if offset < 0:
        raise UsageError(f"offset must be >= 0, got {offset}")
    counts = (targets > 0).sum(axis=0)
    with np.errstate(divide="ignore"):
        per_class = np.where(counts + offset > 0, 1000.0 / (counts + offset), 0.0)
    return targets @ per_class


class BalancedSampler(Sampler[int]):
    """Draws ``num_samples`` indices per epoch (default: all) without replacement, each pick
    proportional to `balanced_weights`, as PaSST's epochs of 100k of the 2M AudioSet clips.

    Without replacement the weighting changes *which* samples an epoch holds only when
    ``num_samples`` is well below the number of samples: with all of them an epoch is merely a
    weighted permutation. The draw is a pure function of ``(seed, epoch)``: call
    `set_epoch` before each epoch. With DDP every rank makes the same draw and takes every
    ``num_replicas``-th index from ``rank`` on, so ranks get disjoint, equal shares.
    """

    def __init__(self, targets: np.ndarray, num_samples: int | None = None,
                 offset: float = 100.0, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.weights = torch.as_tensor(balanced_weights(targets, offset))
        drawable = int((self.weights > 0).sum())
        self.num_samples = drawable if num_samples is None else num_samples
        if not 0 < self.num_samples <= drawable:
            raise UsageError(f"num_samples must be in [1, {drawable}] (the samples with at least "
                             f"one label), got {self.num_samples}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise UsageError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got "
                             f"num_replicas={num_replicas}, rank={rank}")
        if self.num_samples < num_replicas:
            raise UsageError(f"num_samples ({self.num_samples}) is fewer than the "
                             f"{num_replicas} replicas")
        self.seed = seed
        self.epoch = 0
        self.num_replicas = num_replicas
        self.rank = rank

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose draw the next iteration yields."""
        self.epoch = epoch

    def draw(self) -> torch.Tensor:
        """This epoch's indices for all replicas together, ``[num_samples]``."""
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(2, np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        return torch.multinomial(self.weights, self.num_samples, replacement=False,
                                 generator=generator)

    def __iter__(self) -> Iterator[int]:
        share = self.draw()[self.rank::self.num_replicas][:len(self)]
        return iter(share.tolist())

    def __len__(self) -> int:
        return self.num_samples // self.num_replicas
