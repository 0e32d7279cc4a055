"""Block reductions: strategies that merge or drop tokens inside the network, between a block's
attention and its MLP, in training, in eval or both (token merging, attention-based pruning, a
user's own).

A strategy's `BlockReduction.reduce` runs in every block and gets the tokens, how many input
patches each stands for (its *size*, None while every token is one patch), and a `BlockView`
of the block: its index, its attention queries and keys, and the log-mel the tokens came from.
It returns fewer (or the same) tokens and their sizes; the first `PROTECTED` tokens (class and
distillation) must come back first and unchanged. Once sizes are returned, the following
blocks' attention is proportional: the log of each key's size is added to the attention
logits, as a mask of `scaled_dot_product_attention` (ToMe's proportional attention).

Add your own in your own file; it is then available by name everywhere (compositions such as
``reductions="structured+mine"``, variants, the CLI, the benchmarks)::

    from passt import BlockReduction

    class DropLast(BlockReduction, name="drop-last"):
        def reduce(self, x, size, view):
            return x[:, :-1], None if size is None else size[:, :-1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from passt.reductions.patch_source import PatchSource
from passt.utils.errors import check_choice
from passt.utils.registry import Registry

Grid = tuple[int, int]
Acts = Literal["train", "eval", "both"]  # when a strategy acts: in training, in eval, or both
ACTS: tuple[str, ...] = get_args(Acts)
PROTECTED = 2  # the class and distillation tokens lead the sequence and are never reduced
BLOCK_REDUCTIONS: Registry[type[BlockReduction]] = Registry("block reduction")


def register_block_reduction(name: str):
    """Class decorator that registers a `BlockReduction` subclass under ``name``."""
    return lambda cls: BLOCK_REDUCTIONS.register_class(name, cls, BlockReduction)


def list_block_reductions() -> list[str]:
    """Names of every registered block reduction, built-in and user-defined."""
    return sorted(BLOCK_REDUCTIONS)


def get_block_reduction(name: str) -> type[BlockReduction]:
    """The block reduction class registered under ``name``."""
    return BLOCK_REDUCTIONS.get(name)


def create_block_reduction(name: str, **kwargs: Any) -> BlockReduction:
    """Instantiate the block reduction ``name`` with its parameters."""
    return BLOCK_REDUCTIONS.create(name, **kwargs)


def size_bias(size: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """The additive attention mask of proportional attention, ``log(size)`` of each key as
    ``[B, 1, 1, N]`` (None without sizes: plain attention)."""
    if size is None:
        return None
    return size.log().to(dtype).transpose(1, 2).unsqueeze(1)


@dataclass(frozen=True)
class BlockView:
    """What a block reduction sees of the block it acts in."""

    block: int  # the block's index, from 0
    depth: int  # blocks in the model
    queries: Tensor  # [B, H, N, D] the block's attention queries
    keys: Tensor  # [B, H, N, D] and keys
    scale: float  # the attention's logit scale, 1/sqrt(D)
    size: Tensor | None  # [B, N, 1] input patches per token (None: one each)
    first_patches: int  # patch tokens that entered the first block (for relative settings)
    source: PatchSource | None  # the log-mel the tokens came from

    def attention_of(self, token: int = 0) -> Tensor:
        """``[B, N]``: the attention of query ``token`` (0: the class token) over every key,
        averaged over heads, as the block computed it (proportional to sizes). SDPA never
        returns its weights, so this row is computed again: one row of the N x N scores,
        ``B*H*N*D`` multiply-adds, 1/N of the attention scores'."""
        q = self.queries[:, :, token:token + 1]
        logits = (q @ self.keys.transpose(-2, -1)) * self.scale
        bias = size_bias(self.size, logits.dtype)
        if bias is not None:
            logits = logits + bias
        return logits.float().softmax(dim=-1).mean(dim=1)[:, 0]


class BlockReduction(nn.Module):
    """Base class: merges or drops tokens after a block's attention. Subclass with ``name=``
    to register; ``acts`` (a class default, or the ``acts=`` argument) says when it acts."""

    name: str = ""
    acts: Acts = "both"

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if name is not None:
            BLOCK_REDUCTIONS.register_class(name, cls, BlockReduction)

    def __init__(self, acts: Acts | None = None):
        super().__init__()
        if acts is not None:
            check_choice("acts", acts, ACTS)
            self.acts = acts

    @property
    def active(self) -> bool:
        """Whether it acts in the model's current mode (training or eval)."""
        return self.acts == "both" or self.acts == ("train" if self.training else "eval")

    def check(self, depth: int) -> None:
        """Raise `UsageError` when the strategy cannot act in a model of ``depth`` blocks
        (called when the model is built)."""

    def reduce(self, x: Tensor, size: Tensor | None,
               view: BlockView) -> tuple[Tensor, Tensor | None]:
        """The tokens ``x`` (``[B, N, E]``) and sizes after this block's reduction; the first
        `PROTECTED` tokens come first, unchanged."""
        raise NotImplementedError

    def rescaled(self, full: Grid, grid: Grid) -> dict[str, Any]:
        """Parameters that reduce on ``grid`` (a shorter clip's patch grid) as the strategy
        reduces on ``full``: the counts scaled, ``{}`` when they are relative already."""
        return {}

    def forward(self, x: Tensor, size: Tensor | None,
                view: BlockView) -> tuple[Tensor, Tensor | None]:
        return self.reduce(x, size, view)

    def extra_repr(self) -> str:
        return f"acts={self.acts}"


class NoReduction(BlockReduction, name="none"):
    """Every token goes on to the next block."""

    @property
    def active(self) -> bool:
        return False

    def reduce(self, x: Tensor, size: Tensor | None,
               view: BlockView) -> tuple[Tensor, Tensor | None]:
        return x, size
