"""`PatchSource`: the log-mel batch a sequence of patch tokens came from, handed to the
strategies that choose tokens by the input ("keep the loudest patches")."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class PatchSource:
    """The model's input and how it was cut into patches."""

    mel: Tensor  # the log-mel batch [B, 1, n_mels, frames]
    patch_size: int  # the patch embedding's kernel, as it ran (flex: the resized one)
    stride: int

    def energies(self) -> Tensor:
        """The mean log-mel of each patch, ``[B, F*T]`` in the tokens' flat order (``f*T + t``,
        the order a strategy's indices use)."""
        pooled = F.avg_pool2d(self.mel.float(), self.patch_size, self.stride)
        return pooled.flatten(1)
