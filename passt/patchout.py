"""Patchout: token-dropping strategies that shorten the training sequence (paper, Sec. 2.2).

A strategy picks which patches of the ``F x T`` patch grid the transformer sees in training.
It returns flat indices into the grid (row-major, ``f * T + t``, the order of
``x.flatten(2)`` on a ``[B, E, F, T]`` embedding), sorted, either shared by the batch
(``[K]``, as the official code does) or per sample (``[B, K]``). Eval always sees every patch.
A strategy that chooses by the input overrides `Patchout.select`, which also gets the tokens
and the log-mel they came from (a `PatchSource`: ``source.energies()`` is each patch's mean
log-mel).

Add your own in your own file; it is then available by name everywhere (variants, CLI, bench)::

    from passt import Patchout

    class EveryOther(Patchout, name="every-other"):
        def num_kept(self, grid):
            return (grid[0] * grid[1] + 1) // 2

        def draw(self, grid, batch, device, generator):
            return torch.arange(0, grid[0] * grid[1], 2, device=device)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from passt.reductions.patch_source import PatchSource
from passt.utils.errors import UsageError
from passt.utils.registry import Registry
from passt.utils.rng import rand

Grid = tuple[int, int]

PATCHOUTS: Registry[type[Patchout]] = Registry("patchout strategy")


def register_patchout(name: str):
    """Class decorator that registers a `Patchout` subclass under ``name``."""
    return lambda cls: PATCHOUTS.register_class(name, cls, Patchout)


def list_patchouts() -> list[str]:
    """Names of every registered patchout strategy, built-in and user-defined."""
    return sorted(PATCHOUTS)


def get_patchout(name: str) -> type[Patchout]:
    """The strategy class registered under ``name``."""
    return PATCHOUTS.get(name)


def create_patchout(name: str, **kwargs) -> Patchout:
    """Instantiate the strategy ``name`` with its parameters."""
    return PATCHOUTS.create(name, **kwargs)


class Patchout(nn.Module):
    """Base class: chooses the patches kept in training. Subclass with ``name=`` to register."""

    name: str = ""

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is not None:
            PATCHOUTS.register_class(name, cls, Patchout)

    def __init__(self, per_sample: bool = False):
        super().__init__()
        self.per_sample = per_sample

    def num_kept(self, grid: Grid) -> int:
        """Number of patches kept in training for a patch grid ``(F, T)``."""
        raise NotImplementedError

    def draw(
        self, grid: Grid, batch: int, device: torch.device, generator: torch.Generator | None
    ) -> Tensor:
        """Sorted flat indices of the kept patches, ``[K]`` (shared) or ``[batch, K]``."""
        raise NotImplementedError

    def rescaled(self, full: Grid, grid: Grid) -> dict[str, int | float]:
        """Parameters that keep on ``grid`` the fraction of patches kept on ``full``.

        For benchmarks on clips shorter than the model's input; strategies whose parameters
        are already relative return ``{}``.
        """
        return {}

    def select(self, x: Tensor, grid: Grid, generator: torch.Generator | None,
               source: PatchSource | None) -> Tensor:
        """The kept indices for the tokens ``x`` (``[B, F*T, E]``) of ``source``'s log-mel:
        `draw`'s by default; override it to choose by the input (``source.energies()``)."""
        return self.draw(grid, x.shape[0], x.device, generator)

    def forward(self, x: Tensor, grid: Grid, generator: torch.Generator | None = None,
                source: PatchSource | None = None) -> Tensor:
        """Keep the selected tokens of ``x`` (``[B, F*T, E]``) in training; all in eval."""
        if not self.training:
            return x
        idx = self.select(x, grid, generator, source)
        if idx.dim() == 1:
            return x[:, idx]
        return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    def extra_repr(self) -> str:
        return f"per_sample={self.per_sample}"


def _random_subset(
    n: int, keep: int, batch: int, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """Sorted random ``keep``-subsets of ``range(n)``: ``[batch, keep]``, drawn on ``device``."""
    scores = rand(batch, n, device=device, generator=generator)
    return scores.argsort(dim=1)[:, :keep].sort(dim=1).values


def _count(amount: int | float, total: int, what: str, strategy: str) -> int:
    """Resolve a drop amount given as a count (int) or a fraction (float in [0, 1))."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise UsageError(f"{strategy} patchout: {what} must be an int count or a float fraction")
    if isinstance(amount, float):
        if not 0.0 <= amount < 1.0:
            raise UsageError(f"{strategy} patchout: {what} fraction {amount} not in [0, 1)")
        return int(amount * total)
    if amount < 0:
        raise UsageError(f"{strategy} patchout: {what}={amount} is negative")
    return amount


class NoPatchout(Patchout, name="none"):
    """Every patch is kept (PaSST-B, AST)."""

    def num_kept(self, grid: Grid) -> int:
        return grid[0] * grid[1]

    def forward(self, x: Tensor, grid: Grid, generator: torch.Generator | None = None,
                source: PatchSource | None = None) -> Tensor:
        return x


class UnstructuredPatchout(Patchout, name="unstructured"):
    """Drop ``drop`` patches (a count, or a fraction of the grid) anywhere in the grid (PaSST-U)."""

    def __init__(self, drop: int | float = 400, per_sample: bool = False):
        super().__init__(per_sample)
        _count(drop, 1, "drop", self.name)
        self.drop = drop

    def num_kept(self, grid: Grid) -> int:
        n = grid[0] * grid[1]
        drop = _count(self.drop, n, "drop", self.name)
        if drop >= n:
            raise UsageError(
                f"unstructured patchout drops {drop} patches but the patch grid {grid[0]}x"
                f"{grid[1]} has only {n}; accepted: fewer than {n} (or a fraction below 1)"
            )
        return n - drop

    def rescaled(self, full: Grid, grid: Grid) -> dict[str, int | float]:
        if isinstance(self.drop, float):
            return {}
        return {"drop": round(self.drop * grid[0] * grid[1] / (full[0] * full[1]))}

    def draw(self, grid, batch, device, generator):
        keep = self.num_kept(grid)
        idx = _random_subset(grid[0] * grid[1], keep, 1 if not self.per_sample else batch,
                             device, generator)
        return idx if self.per_sample else idx[0]

    def extra_repr(self) -> str:
        return f"drop={self.drop}, {super().extra_repr()}"


class StructuredPatchout(Patchout, name="structured"):
    """Drop whole time columns and frequency rows of the patch grid (PaSST-S)."""

    def __init__(self, time: int | float = 40, freq: int | float = 4, per_sample: bool = False):
        super().__init__(per_sample)
        _count(time, 1, "time", self.name)
        _count(freq, 1, "freq", self.name)
        self.time, self.freq = time, freq

    def kept_shape(self, grid: Grid) -> Grid:
        """``(rows, columns)`` of the patch grid left after patchout."""
        f, t = grid
        drop_f = _count(self.freq, f, "freq", self.name)
        drop_t = _count(self.time, t, "time", self.name)
        for drop, size, what in ((drop_f, f, "frequency rows"), (drop_t, t, "time columns")):
            if drop >= size:
                raise UsageError(
                    f"structured patchout drops {drop} {what} but the patch grid {f}x{t} has "
                    f"only {size}; accepted: fewer than {size} (or a fraction below 1)"
                )
        return f - drop_f, t - drop_t

    def num_kept(self, grid: Grid) -> int:
        rows, cols = self.kept_shape(grid)
        return rows * cols

    def rescaled(self, full: Grid, grid: Grid) -> dict[str, int | float]:
        out: dict[str, int | float] = {}
        for name, axis in (("freq", 0), ("time", 1)):
            value = getattr(self, name)
            if not isinstance(value, float):
                out[name] = round(value * grid[axis] / full[axis])
        return out

    def draw(self, grid, batch, device, generator):
        rows, cols = self.kept_shape(grid)
        n = batch if self.per_sample else 1
        f_idx = _random_subset(grid[0], rows, n, device, generator)
        t_idx = _random_subset(grid[1], cols, n, device, generator)
        idx = (f_idx.unsqueeze(2) * grid[1] + t_idx.unsqueeze(1)).flatten(1)
        return idx if self.per_sample else idx[0]

    def extra_repr(self) -> str:
        return f"time={self.time}, freq={self.freq}, {super().extra_repr()}"
