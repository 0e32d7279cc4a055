"""Seeded random generators that live on the device where the draws happen."""

from __future__ import annotations

import torch
from torch import Tensor


class DeviceGenerators:
    """One `torch.Generator` per device, seeded alike, created on first use.

    With ``seed=None`` it hands out ``None``, so draws use torch's default generator and
    ``torch.manual_seed`` makes them reproducible (and ``torch.compile`` sees no generator).
    """

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def get(self, device: torch.device | str) -> torch.Generator | None:
        if self.seed is None:
            return None
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            self._generators[device] = gen
        return gen

    def get_state(self) -> dict[torch.device, Tensor]:
        """Each generator's state, to put back with `set_state` after draws that must not
        count (a dry run)."""
        return {device: gen.get_state() for device, gen in self._generators.items()}

    def set_state(self, state: dict[torch.device, Tensor]) -> None:
        """Put back the states `get_state` returned; generators made since are dropped."""
        for device in list(self._generators):
            if device not in state:
                del self._generators[device]
        for device, value in state.items():
            self._generators[device].set_state(value)

    def reseed(self, seed: int | None) -> None:
        """Restart every draw sequence from ``seed``."""
        self.seed = seed
        self._generators.clear()


def rand(*size: int, device: torch.device | str, generator: torch.Generator | None) -> Tensor:
    """``torch.rand`` on ``device``, from ``generator`` when there is one.

    ``generator=None`` is left out rather than passed: torch.compile cannot trace ``rand`` with
    an explicit ``generator=None`` once a size is symbolic (a batch compiled as dynamic).
    """
    if generator is None:
        return torch.rand(*size, device=device)
    return torch.rand(*size, device=device, generator=generator)


def randint(high: int, size: tuple[int, ...], device: torch.device | str,
            generator: torch.Generator | None) -> Tensor:
    """``torch.randint(high, size)`` on ``device``, from ``generator`` when there is one (see
    `rand`)."""
    if generator is None:
        return torch.randint(high, size, device=device)
    return torch.randint(high, size, device=device, generator=generator)
