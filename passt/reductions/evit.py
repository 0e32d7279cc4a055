"""Attention-based token pruning (EViT; Liang et al., ICLR 2022) as the block reduction
``evit``.

At the blocks of ``locations``, after attention, the ``keep_rate`` fraction of the patch
tokens (rounded up) that the class token attends to most stay, in their order, and the others
are fused into one token, their sum weighted by that attention (the paper's "inattentive token
fusion"), which goes last. The class and distillation tokens always stay. SDPA does not return
attention weights, so the class token's row is computed again from the block's queries and
keys: ``B*H*N*D`` multiply-adds, 1/N of the attention scores' (`BlockView.attention_of`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from passt.reductions.block import PROTECTED, Acts, BlockReduction, BlockView
from passt.utils.errors import UsageError


def paper_locations(depth: int) -> tuple[int, ...]:
    """The paper's blocks for a model of ``depth``: after a quarter, half and three quarters
    of it (blocks 3, 6 and 9 of 12, the 4th, 7th and 10th)."""
    return tuple(dict.fromkeys(depth * k // 4 for k in (1, 2, 3)))


class AttentionPruning(BlockReduction, name="evit"):
    """Keep the patch tokens the class token attends to most; fuse the rest (EViT).

    ``keep_rate``: the fraction kept at each location, in (0, 1] (1: nothing pruned);
    ``locations``: block indices (default: `paper_locations` of the model's depth);
    ``fuse``: fuse the pruned tokens into one (the paper's default) or drop them.
    """

    def __init__(self, keep_rate: float = 0.7, locations: Sequence[int] | None = None,
                 fuse: bool = True, acts: Acts | None = None):
        super().__init__(acts)
        if isinstance(keep_rate, bool) or not isinstance(keep_rate, (int, float)) \
                or not 0.0 < keep_rate <= 1.0:
            raise UsageError(f"evit: keep_rate must be in (0, 1], got {keep_rate!r}")
        if locations is not None:
            if isinstance(locations, int):
                locations = (locations,)
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in locations):
                raise UsageError(f"evit: locations must be block indices (ints >= 0), got "
                                 f"{locations!r}")
            locations = tuple(sorted(set(locations)))
        self.keep_rate, self.locations, self.fuse = float(keep_rate), locations, fuse

    def check(self, depth: int) -> None:
        if self.locations is not None and max(self.locations, default=0) >= depth:
            raise UsageError(f"evit: locations {list(self.locations)} reach past the model's "
                             f"{depth} blocks; accepted: 0 to {depth - 1}")

    def acts_at(self, depth: int) -> tuple[int, ...]:
        """The blocks it prunes after, in a model of ``depth`` blocks."""
        return self.locations if self.locations is not None else paper_locations(depth)

    def reduce(self, x: Tensor, size: Tensor | None,
               view: BlockView) -> tuple[Tensor, Tensor | None]:
        patches = x.shape[1] - PROTECTED
        keep = math.ceil(self.keep_rate * patches)
        if view.block not in self.acts_at(view.depth) or keep >= patches:
            return x, size
        attention = view.attention_of(0)[:, PROTECTED:].to(x.dtype)  # [B, patches]
        top = attention.topk(keep, dim=1).indices.sort(dim=1).values
        E = x.shape[-1]
        parts = [x[:, :PROTECTED], x[:, PROTECTED:].gather(1, top.unsqueeze(-1).expand(-1, -1, E))]
        sizes = None if size is None else [size[:, :PROTECTED],
                                           size[:, PROTECTED:].gather(1, top.unsqueeze(-1))]
        if self.fuse:
            pruned = torch.ones_like(attention).scatter(1, top, 0.0)  # 1 where not kept
            weights = (attention * pruned).unsqueeze(-1)
            parts.append((x[:, PROTECTED:] * weights).sum(dim=1, keepdim=True))
            if sizes is not None:
                sizes.append((size[:, PROTECTED:] * pruned.unsqueeze(-1)).sum(1, keepdim=True))
        return torch.cat(parts, dim=1), None if sizes is None else torch.cat(sizes, dim=1)

    def extra_repr(self) -> str:
        return (f"keep_rate={self.keep_rate}, locations={self.locations}, fuse={self.fuse}, "
                f"{super().extra_repr()}")
