"""`Cluster`: this process's place in a run (rank, world size, device), the ``torchrun`` process
group it joins, and the collectives training and evaluation use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from passt.utils.device import resolve_device


@dataclass(frozen=True)
class Cluster:
    """Rank, world size and device of this process; one process unless under ``torchrun``.
    Every rank must call the collectives (`any`, `mean`, `gather`, `all_gather`)."""

    rank: int
    world_size: int
    device: torch.device

    @classmethod
    @contextmanager
    def join(cls, device: str) -> Iterator[Cluster]:
        """For the block, the process group the ``torchrun`` environment names (gloo on CPU,
        nccl on CUDA), on ``device`` (``auto``: this rank's GPU if any); a group this call
        creates is left after the block."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        dev = resolve_device(device, index=int(os.environ.get("LOCAL_RANK", "0")))
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if world == 1:
            yield cls(0, 1, dev)
            return
        created = not dist.is_initialized()
        if created:
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        try:
            yield cls(dist.get_rank(), dist.get_world_size(), dev)
        finally:
            if created:
                dist.destroy_process_group()

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and gets gathered results."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every rank has come here."""
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank."""
        if not self.distributed:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks."""
        if not self.distributed:
            return value
        t = torch.tensor([value], device=self.device, dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.world_size

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None on the others."""
        if not self.distributed:
            return [obj]
        parts: list[Any] = [None] * self.world_size
        dist.gather_object(obj, parts if self.main else None, dst=0)
        return parts if self.main else None

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` on every rank (in rank order)."""
        if not self.distributed:
            return [obj]
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, obj)
        return parts
