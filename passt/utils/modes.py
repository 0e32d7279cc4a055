"""`module_mode`: a block run with modules in training or eval mode, each put back after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def module_mode(*modules: nn.Module, training: bool) -> Iterator[None]:
    """Set ``modules`` to training (or eval) mode for the block; each gets its own mode back
    after, whatever happens inside."""
    modes = [m.training for m in modules]
    for m in modules:
        m.train(training)
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)
