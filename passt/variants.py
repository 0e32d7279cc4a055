"""Named models: the transformer rows of the paper's Table 1 as compositions of reductions.

The paper studies five sequence reductions: three token-dropping strategies (``none``,
``unstructured``, ``structured``; see `passt.patchout`, user strategies included) and two
architectural ones, ``no-overlap`` (patch stride = patch size) and ``reduced-depth`` (every
other block kept). A variant names a composition of them plus its strategy's parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from passt.errors import UsageError
from passt.model import PaSST, PaSSTConfig, grid_size
from passt.patchout import create_patchout, get_patchout, list_patchouts

ARCH_REDUCTIONS = ("no-overlap", "reduced-depth")
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(PaSSTConfig))


def reduced_depth_blocks(depth: int) -> list[int]:
    """Blocks kept by depth reduction: the first, then every other one (0, 1, 3, 5, ... of 12)."""
    return [0, *range(1, depth, 2)]


def list_reductions() -> list[str]:
    """Every reduction a composition may name: the patchout strategies and the architectural two."""
    return [*list_patchouts(), *ARCH_REDUCTIONS]


def parse_reductions(reductions: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise ``"structured+no-overlap"`` or a list of names; unknown names are an error."""
    names = reductions.split("+") if isinstance(reductions, str) else list(reductions)
    names = [n.strip() for n in names if n.strip()]
    known = list_reductions()
    for name in names:
        if name not in known:
            raise UsageError(f"unknown reduction {name!r}; known: {', '.join(known)}")
    strategies = [n for n in names if n not in ARCH_REDUCTIONS]
    if len(strategies) > 1:
        raise UsageError(
            f"a composition takes at most one token-dropping strategy, got {strategies}"
        )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Variant:
    """A named composition of reductions with its strategy parameters, input length and any
    other model settings (a narrow model for quick runs, say)."""

    name: str
    reductions: tuple[str, ...]
    patchout_args: Mapping[str, Any] = field(default_factory=dict)
    frames: int = 998
    paper_row: str | None = None  # row id in the paper's table1.csv
    description: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)  # PaSSTConfig fields, e.g. depth

    @property
    def strategy(self) -> str:
        return next((r for r in self.reductions if r not in ARCH_REDUCTIONS), "none")


_VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> Variant:
    """Make ``variant`` available by name to `create_model`, the CLI and the bench."""
    try:
        compose(variant.reductions, variant.patchout_args, frames=variant.frames,
                **variant.settings)
    except ValueError as e:
        raise UsageError(f"variant {variant.name!r}: {e}") from None
    _VARIANTS[variant.name] = variant
    return variant




def list_variants() -> list[str]:
    """Names of the registered variants, in registration order."""
    return list(_VARIANTS)


def get_variant(name: str | Variant) -> Variant:
    """The registered variant ``name`` (a `Variant` is returned as it is)."""
    if isinstance(name, Variant):
        return name
    try:
        return _VARIANTS[name]
    except KeyError:
        raise UsageError(f"unknown variant {name!r}; known: {', '.join(_VARIANTS)} (a plugin's "
                         "variants need --plugin FILE, or $PASST_PLUGINS)") from None


def with_patchout(name: str | Variant, strategy: str) -> Variant:
    """Variant ``name`` with its token-dropping strategy replaced by ``strategy`` (its
    architectural reductions kept): the variant itself for its own strategy, else with the
    new strategy's default parameters (Table 2's B, U and S fine-tune one architecture with
    none, unstructured and structured patchout)."""
    v = get_variant(name)
    get_patchout(strategy)
    if strategy == v.strategy:
        return v
    arch = tuple(r for r in v.reductions if r in ARCH_REDUCTIONS)
    return dataclasses.replace(v, name=f"{v.name}+{strategy}", reductions=(strategy, *arch),
                               patchout_args={}, paper_row=None,
                               description=f"{v.name} with {strategy} patchout")


def _strategy_params(strategy: str) -> list[str]:
    sig = inspect.signature(get_patchout(strategy).__init__)
    return [p for p in sig.parameters if p != "self"]


def compose(
    reductions: str | Iterable[str] = ("none",),
    patchout_args: Mapping[str, Any] | None = None,
    frames: int = 998,
    **overrides: Any,
) -> PaSSTConfig:
    """The `PaSSTConfig` of a composition of reductions applied to a base with ``overrides``.

    Overrides set the base before the reductions act (``depth=4`` with reduced-depth gives
    3 blocks); they are `PaSSTConfig` fields (``embed_dim``, ``depth``, ``num_heads``,
    ``stride``, ...) or parameters of the composition's patchout strategy (``time=20``).
    """
    names = parse_reductions(reductions)
    strategy = next((r for r in names if r not in ARCH_REDUCTIONS), "none")
    args = dict(patchout_args or {})
    accepted = _strategy_params(strategy)
    settings: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _CONFIG_FIELDS and key not in ("patchout", "patchout_args"):
            settings[key] = value
        elif key in accepted:
            args[key] = value
        else:
            raise UsageError(
                f"unknown option {key!r}: not a model setting ({', '.join(_CONFIG_FIELDS)}) nor "
                f"a parameter of patchout {strategy!r} ({', '.join(accepted) or 'none'})"
            )
    base = PaSSTConfig(frames=frames, patchout=strategy, patchout_args=args, **settings)
    reduced: dict[str, Any] = {}
    if "no-overlap" in names:
        if settings.get("stride", base.patch_size) != base.patch_size:
            raise UsageError(
                f"no-overlap sets stride to the patch size ({base.patch_size}); "
                f"stride={settings['stride']} contradicts it"
            )
        reduced["stride"] = base.patch_size
    if "reduced-depth" in names:
        reduced["depth"] = len(reduced_depth_blocks(base.depth))
    return dataclasses.replace(base, **reduced)


def variant_config(name: str | Variant, **overrides: Any) -> PaSSTConfig:
    """The `PaSSTConfig` of a registered variant, with overrides (see `compose`)."""
    v = get_variant(name)
    frames = overrides.pop("frames", v.frames)
    return compose(v.reductions, v.patchout_args, frames=frames, **{**v.settings, **overrides})


def proportional_patchout(name: str | Variant, frames: int, **overrides: Any
                          ) -> dict[str, Any]:
    """Strategy parameters under which ``frames``-long inputs keep the fraction of patches
    that full-length inputs keep (for short-clip benchmarks of the real architecture)."""
    cfg = variant_config(name, **overrides)
    strategy = create_patchout(cfg.patchout, **cfg.patchout_args)
    grid = (cfg.grid[0], grid_size(frames, cfg.patch_size, cfg.stride))
    return {**cfg.patchout_args, **strategy.rescaled(cfg.grid, grid)}


def describe(name: str) -> dict[str, Any]:
    """One row of ``passt variants``: the variant's settings, sequence lengths and size."""
    v = get_variant(name)
    cfg = variant_config(name)
    with torch.device("meta"):
        model = PaSST(cfg)
    return {
        "name": v.name,
        "reductions": "+".join(v.reductions),
        "strategy": v.strategy,
        "patchout_args": dict(v.patchout_args),
        "stride": cfg.stride,
        "depth": cfg.depth,
        "frames": cfg.frames,
        "grid": list(cfg.grid),
        "train_seq_len": model.seq_len(training=True),
        "eval_seq_len": model.seq_len(training=False),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "paper_row": v.paper_row,
    }


# The transformer rows of the paper's Table 1.
for _v in (
    Variant("passt-b", ("none",), paper_row="passt_b", description="PaSST, no patchout"),
    Variant("passt-u", ("unstructured",), {"drop": 400}, paper_row="passt_u",
            description="unstructured patchout, 400 patches dropped"),
    Variant("passt-s", ("structured",), {"time": 40, "freq": 4}, paper_row="passt_s",
            description="structured patchout, 40 time columns and 4 frequency rows dropped"),
    Variant("passt-s-l", ("structured", "reduced-depth"), {"time": 40, "freq": 4},
            paper_row="passt_s_l", description="passt-s with every other block (depth 7)"),
    Variant("passt-s-n", ("structured", "no-overlap"), {"time": 20, "freq": 2},
            paper_row="passt_s_n", description="no-overlap patches (stride 16), structured "
            "patchout of 20 time columns and 2 frequency rows"),
    Variant("ast", ("none",), frames=1024, paper_row="ast",
            description="AST: 1024 frames, stride 10, no patchout"),
    Variant("ast-n", ("no-overlap",), paper_row="ast_n",
            description="AST-N: no-overlap patches (stride 16), no patchout"),
):
    register_variant(_v)
