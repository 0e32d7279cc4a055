"""Token Merging (ToMe; Bolya et al., ICLR 2023) as the block reduction ``tome``.

In every block, after attention: the patch tokens are split alternately into sets A and B,
each token of A is matched to its most similar token of B (cosine similarity of the attention
keys, averaged over heads), and the ``r`` most similar pairs are merged into their B token as
an average weighted by the tokens' sizes (how many input patches each already stands for).
The sizes make the next blocks' attention proportional (``log(size)`` added to the logits).
The class and distillation tokens are never matched. Block ``i`` sees ``N - r*i`` tokens
while the blocks have tokens to merge (at most half the patch tokens go per block).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from passt.reductions.block import PROTECTED, Acts, BlockReduction, BlockView, Grid
from passt.utils.errors import UsageError

Merged = int | float | tuple[int, ...]


def _check_r(r: object) -> Merged:
    if isinstance(r, bool):
        raise UsageError(f"tome: r must be an int, a float or a list of ints, got {r!r}")
    if isinstance(r, int) and r >= 0:
        return r
    if isinstance(r, float) and 0.0 <= r < 0.5:
        return r
    if isinstance(r, Sequence) and not isinstance(r, str) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in r):
        return tuple(r)
    raise UsageError(f"tome: r={r!r} is not accepted; accepted: tokens merged per block (an "
                     "int >= 0), a fraction of the first block's patch tokens (a float in "
                     "[0, 0.5)), or a count per block (a list of ints >= 0)")


class TokenMerging(BlockReduction, name="tome"):
    """Merge ``r`` token pairs per block by bipartite soft matching (ToMe).

    ``r``: tokens merged per block (int); a fraction of the patch tokens entering the first
    block, the same count in every block (float, e.g. 0.08: ToMe's r=16 of ViT-B/16's 196
    patches); or one count per block (a list as long as the model is deep).
    """

    def __init__(self, r: int | float | Sequence[int] = 8, acts: Acts | None = None):
        super().__init__(acts)
        self.r = _check_r(r)

    def check(self, depth: int) -> None:
        if isinstance(self.r, tuple) and len(self.r) != depth:
            raise UsageError(f"tome: r lists {len(self.r)} counts for a model of {depth} blocks; "
                             "accepted: one per block")

    def merged(self, block: int, first_patches: int) -> int:
        """Tokens block ``block`` asks to merge, before it is limited to half its patches."""
        if isinstance(self.r, tuple):
            return self.r[block]
        if isinstance(self.r, float):
            return int(self.r * first_patches)
        return self.r

    def rescaled(self, full: Grid, grid: Grid) -> dict[str, int | tuple[int, ...]]:
        if isinstance(self.r, float):
            return {}
        ratio = grid[0] * grid[1] / (full[0] * full[1])
        if isinstance(self.r, tuple):
            return {"r": tuple(round(v * ratio) for v in self.r)}
        return {"r": round(self.r * ratio)}

    def reduce(self, x: Tensor, size: Tensor | None,
               view: BlockView) -> tuple[Tensor, Tensor | None]:
        patches = x.shape[1] - PROTECTED
        r = min(self.merged(view.block, view.first_patches), patches // 2)
        if r <= 0:
            return x, size
        metric = view.keys.mean(dim=1)[:, PROTECTED:]
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[:, ::2], metric[:, 1::2]
        best, match = (a @ b.transpose(1, 2)).max(dim=-1)  # each A token's closest B token
        order = best.argsort(dim=-1, descending=True).unsqueeze(-1)  # [B, |A|, 1]
        merged, kept = order[:, :r], order[:, r:].sort(dim=1).values  # kept in sequence order
        into = match.unsqueeze(-1).gather(1, merged)  # [B, r, 1]: the B token each merges into

        if size is None:
            size = torch.ones_like(x[..., :1])
        E = x.shape[-1]
        weighted, weights = x[:, PROTECTED:] * size[:, PROTECTED:], size[:, PROTECTED:]
        xa, xb = weighted[:, ::2], weighted[:, 1::2]
        sa, sb = weights[:, ::2], weights[:, 1::2]
        xb = xb.scatter_reduce(1, into.expand(-1, -1, E), xa.gather(1, merged.expand(-1, -1, E)),
                               reduce="sum")
        sb = sb.scatter_reduce(1, into, sa.gather(1, merged), reduce="sum")
        sa = sa.gather(1, kept)
        xa = xa.gather(1, kept.expand(-1, -1, E))
        new_size = torch.cat((size[:, :PROTECTED], sa, sb), dim=1)
        new_x = torch.cat((x[:, :PROTECTED], torch.cat((xa, xb), dim=1) / torch.cat((sa, sb), 1)),
                          dim=1)
        return new_x, new_size

    def extra_repr(self) -> str:
        return f"r={self.r}, {super().extra_repr()}"
