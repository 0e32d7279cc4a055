"""Flexible patch size (FlexiViT, Beyer et al., CVPR 2023): one set of weights run at another
patch size and stride.

The patch-embedding kernel is resized by the pseudo-inverse of the bilinear resize (PI-resize):
the resized kernel ``w'`` solves ``<resize(x), w'> = <x, w>`` for every patch ``x``, so a
patch seen at the new size gives the token the native kernel gives the native patch (exactly
when the size grows). The positional embeddings are resized bilinearly to the new grid. The
parameters keep their native shapes: official checkpoints load as they are.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor


@functools.lru_cache(maxsize=16)
def _pi_resize_matrix(old: int, new: int) -> Tensor:
    """``[new*new, old*old]``: the linear map from a native kernel to its PI-resized one."""
    basis = torch.eye(old * old, dtype=torch.float64, device="cpu").reshape(-1, 1, old, old)
    resize = F.interpolate(basis, size=(new, new), mode="bilinear", align_corners=False,
                           antialias=new < old)  # [old^2 inputs, 1, new, new]
    resize = resize.reshape(old * old, new * new).T  # resize(x) = resize @ x
    # w' = pinv(resize^T) w solves resize^T w' = w, i.e. <resize x, w'> = <x, w> for all x
    return torch.linalg.pinv(resize.T)


def pi_resize_matrix(old: int, new: int) -> Tensor:
    """``[new*new, old*old]`` float32 on the CPU: ``pi_resize(w) = matrix @ w.flatten()``."""
    return _pi_resize_matrix(old, new).float().clone()


def pi_resize(weight: Tensor, matrix: Tensor, new: int) -> Tensor:
    """A conv kernel ``[E, C, p, p]`` resized by ``matrix`` (`pi_resize_matrix` to ``new``)
    to ``[E, C, new, new]``."""
    e, c = weight.shape[:2]
    flat = weight.flatten(2) @ matrix.to(weight.dtype).T
    return flat.reshape(e, c, new, new)


def resize_pos_embed(embed: Tensor, size: int, dim: int) -> Tensor:
    """A positional embedding ``[1, E, F, 1]`` or ``[1, E, 1, T]`` resized bilinearly along
    ``dim`` (2 or 3) to ``size`` positions; the same tensor when it has that many."""
    if embed.shape[dim] == size:
        return embed
    shape = list(embed.shape[2:])
    shape[dim - 2] = size
    return F.interpolate(embed, size=tuple(shape), mode="bilinear", align_corners=False,
                         antialias=size < embed.shape[dim])
