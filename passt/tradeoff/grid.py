"""The grid of ``passt tradeoff``: each strategy's settings as points, beside the unreduced
model."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from passt.model import PaSSTConfig
from passt.reductions.block import create_block_reduction, list_block_reductions
from passt.utils.errors import UsageError
from passt.utils.settings import parse_overrides
from passt.utils.values import parse_list

REFERENCE = "none"  # the unreduced model's strategy name in the rows
FLEX = "flex"
FLEX_PARAMS = {"patch": "flex_patch_size", "stride": "flex_stride"}


@dataclass(frozen=True)
class GridPoint:
    """One setting of one strategy: a block reduction's arguments, flex's patch and stride,
    or the unreduced model (``strategy="none"``)."""

    strategy: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def setting(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.params) or "-"

    def config(self, base: PaSSTConfig) -> PaSSTConfig:
        """``base`` run with this setting in eval: no patchout, no other reduction."""
        cfg = dataclasses.replace(base, patchout="none", patchout_args={}, reduction="none",
                                  reduction_args={}, flex_patch_size=None, flex_stride=None)
        params = dict(self.params)
        if self.strategy == FLEX:
            return dataclasses.replace(cfg, **{FLEX_PARAMS[k]: v for k, v in params.items()})
        if self.strategy != REFERENCE:
            return dataclasses.replace(cfg, reduction=self.strategy, reduction_args=params)
        return cfg


def parse_grid(specs: Sequence[str]) -> list[GridPoint]:
    """``["tome:r=0,2,4", "flex:patch=20,24:stride=12"]`` as grid points, the unreduced model
    first: ``STRATEGY:PARAM=V1,V2,...`` (more ``:PARAM=...`` give every combination)."""
    points = [GridPoint(REFERENCE)]
    strategies = [FLEX, *(n for n in list_block_reductions() if n != REFERENCE)]
    for spec in specs:
        name, _, rest = spec.partition(":")
        if name not in strategies or not rest:
            raise UsageError(f"--grid {spec!r}: expected STRATEGY:PARAM=V1,V2,... with a "
                             f"strategy of {', '.join(strategies)}, e.g. tome:r=0,2,4,8")
        combos: list[tuple[tuple[str, Any], ...]] = [()]
        for part in rest.split(":"):
            key, sep, values = part.partition("=")
            if not sep or not key or not values:
                raise UsageError(f"--grid {spec!r}: {part!r} is not PARAM=V1,V2,...")
            parsed = [parse_overrides(f"{key}={v}")[key]
                      for v in parse_list(values, f"--grid {spec!r}")]
            combos = [(*c, (key, v)) for c in combos for v in parsed]
        for params in combos:
            _check_point(spec, name, dict(params))
            points.append(GridPoint(name, params))
    return list(dict.fromkeys(points))


def _check_point(spec: str, name: str, params: dict[str, Any]) -> None:
    if name == FLEX:
        unknown = sorted(set(params) - set(FLEX_PARAMS))
        if unknown:
            raise UsageError(f"--grid {spec!r}: flex takes {', '.join(FLEX_PARAMS)}, not "
                             f"{', '.join(unknown)}")
        return
    try:
        create_block_reduction(name, **params)
    except UsageError as e:
        raise UsageError(f"--grid {spec!r}: {e}") from None


