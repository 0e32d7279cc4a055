"""The transformer's building blocks, free of any config: the patch embedding, multi-head
attention, the MLP and stochastic depth (their parameter names are the official PaSST ones)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from passt.reductions.flex import pi_resize, pi_resize_matrix


class PatchEmbed(nn.Module):
    """Strided convolution from a one-channel spectrogram to a ``[B, E, F, T]`` patch grid;
    with ``run_patch``/``run_stride`` (flex) the kernel is PI-resized and run at those."""

    def __init__(self, patch_size: int, stride: int, embed_dim: int,
                 run_patch: int | None = None, run_stride: int | None = None):
        super().__init__()
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=stride)
        self.run_patch, self.run_stride = run_patch or patch_size, run_stride or stride
        resize = (None if self.run_patch == patch_size
                  else pi_resize_matrix(patch_size, self.run_patch))
        self.register_buffer("resize", resize, persistent=False)  # not in the state_dict

    def forward(self, x: Tensor) -> Tensor:
        if self.resize is None and self.run_stride == self.proj.stride[0]:
            return self.proj(x)
        weight = (self.proj.weight if self.resize is None
                  else pi_resize(self.proj.weight, self.resize, self.run_patch))
        return F.conv2d(x, weight, self.proj.bias, stride=self.run_stride)

    def extra_repr(self) -> str:
        return f"run_patch={self.run_patch}, run_stride={self.run_stride}"


class Attention(nn.Module):
    """Multi-head self-attention through SDPA, or the explicit matmul-softmax of the paper era."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float, proj_drop: float,
                 path: str = "sdpa"):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)
        self.path = path

    def forward(self, x: Tensor, bias: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The attention's output ``[B, N, C]`` and its queries and keys ``[B, H, N, D]``;
        ``bias`` (``[B, 1, 1, N]``) is added to the logits (proportional attention)."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        drop = self.attn_drop if self.training else 0.0
        if bias is not None:
            bias = bias.to(q.dtype)
        if self.path == "sdpa":
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            if bias is not None:
                attn = attn + bias
            attn = F.dropout(attn.softmax(dim=-1), drop, self.training)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x)), q, k

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, path={self.path}"


class Mlp(nn.Module):
    """Two-layer feed-forward network with exact GELU."""

    def __init__(self, dim: int, hidden: int, drop: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability ``p``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
