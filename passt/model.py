"""PaSST: the Patchout faSt Spectrogram Transformer, with the official parameter layout.

A ViT/DeiT over 16x16 patches of a log-mel spectrogram, with separate frequency and time
positional embeddings, class and distillation tokens, Patchout in training, and optionally a
block reduction between the blocks (token merging, pruning: `passt.reductions.block`) and a
patch embedding run at another patch size (`passt.reductions.flex`). Its layers (patch embedding,
attention, MLP, stochastic depth) are in `passt.layers`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from passt.layers import Attention, DropPath, Mlp, PatchEmbed
from passt.patchout import Patchout, create_patchout
from passt.reductions.block import (
    PROTECTED,
    BlockReduction,
    BlockView,
    create_block_reduction,
    size_bias,
)
from passt.reductions.flex import resize_pos_embed
from passt.reductions.patch_source import PatchSource
from passt.utils.errors import UsageError, check_choice
from passt.utils.rng import DeviceGenerators, randint
from passt.utils.settings import check_options

AttentionPath = Literal["sdpa", "math"]  # F.scaled_dot_product_attention, or matmul-softmax
ATTENTION_PATHS: tuple[str, ...] = get_args(AttentionPath)


def grid_size(length: int, patch: int, stride: int) -> int:
    """Patches along one axis of ``length`` bins for a ``patch``-wide kernel moved by ``stride``."""
    return (length - patch) // stride + 1


@dataclass
class PaSSTConfig:
    """Architecture and training-time behaviour of one PaSST model."""

    num_classes: int = 527
    n_mels: int = 128
    frames: int = 998  # input frames the time embedding covers
    patch_size: int = 16
    stride: int = 10
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    patchout: str = "none"
    patchout_args: dict[str, Any] = field(default_factory=dict)
    reduction: str = "none"  # the block reduction between attention and MLP of every block
    reduction_args: dict[str, Any] = field(default_factory=dict)
    # FlexiViT: run the patch embedding at this patch size and stride, the kernel and the
    # positional embeddings resized (the parameters keep patch_size's and stride's shapes);
    # None: patch_size, and stride scaled by flex_patch_size / patch_size
    flex_patch_size: int | None = None
    flex_stride: int | None = None
    attention: AttentionPath = "sdpa"
    seed: int | None = None  # patchout and time-crop draws; None uses torch's default RNG

    def __post_init__(self) -> None:
        check_options(PaSSTConfig, {f.name: getattr(self, f.name) for f in fields(self)},
                      "model setting")
        positive = ("num_classes", "n_mels", "frames", "patch_size", "stride", "embed_dim",
                    "depth", "num_heads", "flex_patch_size", "flex_stride")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"model setting {name}={value!r}: expected a positive integer")
        if self.embed_dim % self.num_heads:
            raise UsageError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}"
            )
        for name, patch in (("patch_size", self.patch_size),
                            ("flex_patch_size", self.flex_patch_size)):
            if patch is not None and (patch > self.n_mels or patch > self.frames):
                raise UsageError(
                    f"{name}={patch} is larger than the input "
                    f"({self.n_mels} mel bands x {self.frames} frames)"
                )

    @property
    def grid(self) -> tuple[int, int]:
        """``(F, T)``: the patch grid of a full-length input at the native patch size and
        stride (the positional embeddings' shape)."""
        return (grid_size(self.n_mels, self.patch_size, self.stride),
                grid_size(self.frames, self.patch_size, self.stride))

    @property
    def embed_patch(self) -> tuple[int, int]:
        """``(patch size, stride)`` the patch embedding runs at: the flex ones where set."""
        if self.flex_patch_size is None and self.flex_stride is None:
            return self.patch_size, self.stride
        patch = self.flex_patch_size or self.patch_size
        return patch, self.flex_stride or max(1, self.stride * patch // self.patch_size)

    @property
    def token_grid(self) -> tuple[int, int]:
        """``(F, T)``: the patch grid of a full-length input as the embedding runs (flex)."""
        patch, stride = self.embed_patch
        return grid_size(self.n_mels, patch, stride), grid_size(self.frames, patch, stride)


# a block reduction bound to one block: (tokens, sizes, queries, keys) -> (tokens, sizes)
Reduce = Callable[[Tensor, "Tensor | None", Tensor, Tensor], tuple[Tensor, "Tensor | None"]]


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: PaSSTConfig, drop_path: float):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, cfg.num_heads, cfg.attn_drop_rate, cfg.drop_rate,
                              cfg.attention)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), cfg.drop_rate)

    def forward(self, x: Tensor, size: Tensor | None = None,
                reduce: Reduce | None = None) -> tuple[Tensor, Tensor | None]:
        """The block's output and the tokens' sizes; ``reduce`` (the block reduction, bound to
        this block) runs between attention and MLP."""
        out, q, k = self.attn(self.norm1(x), size_bias(size, x.dtype))
        x = x + self.drop_path(out)
        if reduce is not None:
            x, size = reduce(x, size, q, k)
        return x + self.drop_path(self.mlp(self.norm2(x))), size


class Blocks(nn.ModuleList):
    """The transformer blocks in order, with a block reduction acting inside each."""

    def forward(self, x: Tensor, reduction: BlockReduction,
                source: PatchSource | None = None) -> Tensor:
        if not reduction.active:
            for block in self:
                x, _ = block(x)
            return x
        size: Tensor | None = None
        first = x.shape[1] - PROTECTED
        for i, block in enumerate(self):
            x, size = block(x, size, _bind(reduction, i, len(self), block.attn.scale, first,
                                           source))
        return x


def _bind(reduction: BlockReduction, block: int, depth: int, scale: float, first: int,
          source: PatchSource | None) -> Reduce:
    """``reduction`` as block ``block`` calls it: with that block's view."""
    def reduce(x: Tensor, size: Tensor | None, q: Tensor, k: Tensor
               ) -> tuple[Tensor, Tensor | None]:
        return reduction(x, size, BlockView(block, depth, q, k, scale, size, first, source))
    return reduce


class PaSST(nn.Module):
    """The Patchout faSt Spectrogram Transformer; ``state_dict`` keys match the official ones."""

    def __init__(self, cfg: PaSSTConfig, patchout: Patchout | None = None,
                 reduction: BlockReduction | None = None):
        super().__init__()
        self.cfg = cfg
        E = cfg.embed_dim
        F_, T = cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.stride, E, *cfg.embed_patch)
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, E, F_, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, E, 1, T))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, E))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, E))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, E))
        self.patchout = patchout or create_patchout(cfg.patchout, **cfg.patchout_args)
        self.patchout.num_kept(cfg.token_grid)  # fail at construction if it cannot fit
        self.reduction = reduction or create_block_reduction(cfg.reduction, **cfg.reduction_args)
        self.reduction.check(cfg.depth)
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = Blocks(Block(cfg, r) for r in rates)
        self.norm = nn.LayerNorm(E, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(E), nn.Linear(E, cfg.num_classes))
        self.head_dist = nn.Linear(E, cfg.num_classes)  # kept for checkpoint parity; unused
        self.draws = DeviceGenerators(cfg.seed)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as ViT/DeiT: truncated normal (std 0.02) embeddings and linear weights."""
        for p in (self.freq_new_pos_embed, self.time_new_pos_embed, self.cls_token,
                  self.dist_token, self.new_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        fan_in = self.patch_embed.proj.weight[0].numel()
        nn.init.trunc_normal_(self.patch_embed.proj.weight, std=math.sqrt(1.0 / fan_in))
        nn.init.zeros_(self.patch_embed.proj.bias)

    def set_attention(self, path: str) -> None:
        """Switch every block between ``"sdpa"`` and the explicit ``"math"`` attention."""
        check_choice("attention path", path, ATTENTION_PATHS)
        self.cfg.attention = path
        for block in self.blocks:
            block.attn.path = path

    def seq_len(self, frames: int | None = None, training: bool = False) -> int:
        """Tokens entering the first block (two included) for an input of ``frames``; a block
        reduction shortens the sequence after it (`token_counts` counts every block's)."""
        cfg = self.cfg
        patch, stride = cfg.embed_patch
        grid = (cfg.token_grid[0], grid_size(frames or cfg.frames, patch, stride))
        patches = self.patchout.num_kept(grid) if training else grid[0] * grid[1]
        return patches + PROTECTED

    def _check_input(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != 1:
            raise UsageError(
                f"expected a log-mel batch [B, 1, {self.cfg.n_mels}, T] or "
                f"[B, {self.cfg.n_mels}, T], got shape {list(x.shape)}"
            )
        if x.shape[2] != self.cfg.n_mels:
            raise UsageError(
                f"expected {self.cfg.n_mels} mel bands, got {x.shape[2]} (input shape "
                f"{list(x.shape)})"
            )
        self.check_frames(x.shape[3])
        return x

    def check_frames(self, frames: int, training: bool = False, source: str = "the input",
                     frame_seconds: float | None = None) -> None:
        """Raise `UsageError` unless ``frames`` log-mel frames fit this model: at least one
        patch, at most its time embedding, and (``training``) enough for its patchout.

        ``source`` names the input in the message (``"a clip of 12.0 s"``); with
        ``frame_seconds`` (the frontend's hop in seconds) the accepted range is also given in
        seconds.
        """
        cfg = self.cfg
        patch, stride = cfg.embed_patch
        accepted = f"{patch} to {cfg.frames} frames"
        if frame_seconds is not None:  # frames = samples // hop + 1, rounded inwards
            shortest = math.ceil(1000 * (patch - 1) * frame_seconds + 1e-6) / 1000
            longest = math.floor(1000 * cfg.frames * frame_seconds) / 1000
            accepted += f" (clips of {shortest} to {longest} s)"
        if frames < patch:
            raise UsageError(f"{source} gives {frames} frames, shorter than one patch "
                             f"({patch} frames); accepted: {accepted}")
        if grid_size(frames, patch, stride) > cfg.token_grid[1]:
            raise UsageError(f"{source} gives {frames} frames, longer than the model's time "
                             f"embedding ({cfg.frames} frames); accepted: {accepted} (longer "
                             "audio is split into windows, or needs a model built with a "
                             "longer time embedding, frames=)")
        if training:
            try:
                self.seq_len(frames, training=True)
            except UsageError as e:
                raise UsageError(f"{source} gives {frames} frames, too few for the model's "
                                 f"patchout: {e}") from None

    def _time_pos_embed(self, t: int, device: torch.device) -> Tensor:
        """The time embedding (resized to the flex grid) cropped to ``t`` columns: a random
        offset in training, 0 in eval."""
        full = resize_pos_embed(self.time_new_pos_embed, self.cfg.token_grid[1], dim=3)
        spare = full.shape[-1] - t
        if spare == 0:
            return full
        if not self.training:
            return full[..., :t]
        offset = randint(spare + 1, (1,), device=device, generator=self.draws.get(device))
        return full.index_select(-1, offset + torch.arange(t, device=device))

    def tokens(self, x: Tensor) -> Tensor:
        """Embed a log-mel batch into the transformer input ``[B, 2 + kept patches, E]``."""
        x = self._check_input(x)
        return self._embed(x, PatchSource(x, *self.cfg.embed_patch))

    def _embed(self, mel: Tensor, source: PatchSource) -> Tensor:
        x = self.patch_embed(mel)
        B, _, F_, T = x.shape
        freq = resize_pos_embed(self.freq_new_pos_embed, self.cfg.token_grid[0], dim=2)
        x = x + self._time_pos_embed(T, x.device) + freq
        x = x.flatten(2).transpose(1, 2)
        # plain ints: under a jit trace (fvcore) shapes are 0-d tensors, which strategies need not
        # expect
        x = self.patchout(x, (int(F_), int(T)), self.draws.get(x.device), source)
        cls = self.cls_token.expand(B, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(B, -1, -1) + self.new_pos_embed[:, 1:]
        return self.pos_drop(torch.cat((cls, dist, x), dim=1))

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled embedding ``[B, E]``: the mean of the class and distillation token outputs."""
        mel = self._check_input(x)
        source = PatchSource(mel, *self.cfg.embed_patch)
        x = self.norm(self.blocks(self._embed(mel, source), self.reduction, source))
        return (x[:, 0] + x[:, 1]) / 2

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` for a log-mel batch ``[B, 1, n_mels, T]``."""
        return self.head(self.forward_features(x))


def token_counts(model: nn.Module, mel: Tensor, leaving: bool = False) -> list[int]:
    """Tokens entering each transformer block (class and distillation tokens included) when
    ``model`` runs on ``mel`` in its current mode (training: after patchout), and with
    ``leaving`` the tokens leaving the last block too; a model on the meta device counts
    without computing. Nothing is learnt and no draw is used up: the random generators are
    put back as they were."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Module) or not len(blocks):
        raise UsageError(f"token_counts needs a model with its transformer blocks in .blocks, "
                         f"got {type(model).__name__}")
    seen: list[int] = []
    handles = [b.register_forward_pre_hook(lambda m, args: seen.append(int(args[0].shape[1])))
               for b in blocks]
    if leaving:
        handles.append(blocks[-1].register_forward_hook(lambda m, args, out: seen.append(
            int((out[0] if isinstance(out, tuple) else out).shape[1]))))
    draws = getattr(model, "draws", None)
    state = draws.get_state() if isinstance(draws, DeviceGenerators) else None
    devices = [mel.device] if mel.device.type == "cuda" else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            model(mel)
    finally:
        for handle in handles:
            handle.remove()
        if state is not None:
            draws.set_state(state)
    return seen
