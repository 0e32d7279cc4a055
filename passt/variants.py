"""Named models: the transformer rows of the paper's Table 1 as compositions of reductions,
and their extension by reductions inside the network.

The paper studies five sequence reductions: three token-dropping strategies (``none``,
``unstructured``, ``structured``; see `passt.patchout`, user strategies included) and two
architectural ones, ``no-overlap`` (patch stride = patch size) and ``reduced-depth`` (every
other block kept). Beyond the paper: block reductions acting between the blocks (``tome``,
``evit``; see `passt.reductions.block`, user strategies included) and ``flex``, the patch
embedding run at another patch size (`passt.reductions.flex`). A variant names a composition of them
plus its strategies' parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

import passt.reductions.evit  # noqa: F401 (registers the built-in block reductions)
import passt.reductions.tome  # noqa: F401
from passt.model import PaSST, PaSSTConfig, grid_size, token_counts
from passt.patchout import create_patchout, get_patchout, list_patchouts
from passt.reductions.block import (
    create_block_reduction,
    get_block_reduction,
    list_block_reductions,
)
from passt.utils.errors import UsageError
from passt.utils.registry import PLUGIN_HINT, Registry

ARCH_REDUCTIONS = ("no-overlap", "reduced-depth", "flex")
# what a composition sets through its strategies and reductions, never as a plain override
_STRATEGY_FIELDS = ("patchout", "patchout_args", "reduction", "reduction_args")
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(PaSSTConfig))


def reduced_depth_blocks(depth: int) -> list[int]:
    """Blocks kept by depth reduction: the first, then every other one (0, 1, 3, 5, ... of 12)."""
    return [0, *range(1, depth, 2)]


def _block_reductions() -> list[str]:
    return [n for n in list_block_reductions() if n != "none"]


def list_reductions() -> list[str]:
    """Every reduction a composition may name: the patchout strategies, the block reductions
    and the architectural ones."""
    return [*list_patchouts(), *_block_reductions(), *ARCH_REDUCTIONS]


def parse_reductions(reductions: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise ``"structured+no-overlap"`` or a list of names; unknown names are an error."""
    names = reductions.split("+") if isinstance(reductions, str) else list(reductions)
    names = [n.strip() for n in names if n.strip()]
    known = list_reductions()
    for name in names:
        if name not in known:
            raise UsageError(f"unknown reduction {name!r}; known: {', '.join(known)}; "
                             f"{PLUGIN_HINT}")
    for kind, group in (("token-dropping strategy", list_patchouts()),
                        ("block reduction", _block_reductions())):
        chosen = [n for n in names if n in group]
        if len(chosen) > 1:
            raise UsageError(f"a composition takes at most one {kind}, got {chosen}")
    return tuple(dict.fromkeys(names))


def _patchout_of(names: Iterable[str]) -> str:
    return next((n for n in names if n in list_patchouts()), "none")


def _block_reduction_of(names: Iterable[str]) -> str:
    return next((n for n in names if n in _block_reductions()), "none")


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
    reduction_args: Mapping[str, Any] = field(default_factory=dict)  # the block reduction's

    @property
    def strategy(self) -> str:
        """The patchout strategy (``none``: no patchout)."""
        return _patchout_of(self.reductions)

    @property
    def block_reduction(self) -> str:
        """The block reduction (``none``: every token goes through every block)."""
        return _block_reduction_of(self.reductions)


VARIANTS: Registry[Variant] = Registry("variant")


def register_variant(variant: Variant, replace: bool = False) -> Variant:
    """Make ``variant`` available by name to `create_model`, the CLI and the bench; a name
    taken by another variant (a built-in one, say) is an error unless ``replace``."""
    try:
        compose(variant.reductions, variant.patchout_args, frames=variant.frames,
                reduction_args=variant.reduction_args, **variant.settings)
    except ValueError as e:
        raise UsageError(f"variant {variant.name!r}: {e}") from None
    return VARIANTS.register(variant.name, variant, replace=replace)


def list_variants() -> list[str]:
    """Names of the registered variants, in registration order."""
    return VARIANTS.names()


def get_variant(name: str | Variant) -> Variant:
    """The registered variant ``name`` (a `Variant` is returned as it is)."""
    if isinstance(name, Variant):
        return name
    return VARIANTS.get(name)


def with_patchout(name: str | Variant, strategy: str) -> Variant:
    """Variant ``name`` with its token-dropping strategy replaced by ``strategy`` (its
    architectural reductions kept): the variant itself for its own strategy, else with the
    new strategy's default parameters (Table 2's B, U and S fine-tune one architecture with
    none, unstructured and structured patchout)."""
    v = get_variant(name)
    get_patchout(strategy)
    if strategy == v.strategy:
        return v
    others = tuple(r for r in v.reductions if r not in list_patchouts())
    return dataclasses.replace(v, name=f"{v.name}+{strategy}", reductions=(strategy, *others),
                               patchout_args={}, paper_row=None,
                               description=f"{v.name} with {strategy} patchout")


def with_block_reduction(name: str | Variant, reduction: str, **args: Any) -> Variant:
    """Variant ``name`` with its block reduction replaced by ``reduction`` with ``args``
    (``"none"``: without one); its patchout and architecture kept."""
    v = get_variant(name)
    get_block_reduction(reduction)
    others = tuple(r for r in v.reductions if r not in _block_reductions())
    label = ",".join(f"{k}={val}" for k, val in args.items())
    return dataclasses.replace(
        v, name=f"{v.name}+{reduction}" + (f"({label})" if label else ""),
        reductions=(*others, reduction) if reduction != "none" else others,
        reduction_args=dict(args), paper_row=None,
        description=f"{v.name} with the block reduction {reduction} {label}".strip())


def _params(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [p for p in sig.parameters if p != "self"]


def compose(
    reductions: str | Iterable[str] = ("none",),
    patchout_args: Mapping[str, Any] | None = None,
    frames: int = 998,
    reduction_args: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> PaSSTConfig:
    """The `PaSSTConfig` of a composition of reductions applied to a base with ``overrides``.

    Overrides set the base before the reductions act (``depth=4`` with reduced-depth gives
    3 blocks); they are `PaSSTConfig` fields (``embed_dim``, ``depth``, ``num_heads``,
    ``stride``, ``flex_patch_size``, ...) or parameters of the composition's patchout strategy
    (``time=20``) or block reduction (``r=8``).
    """
    names = parse_reductions(reductions)
    strategy, reduction = _patchout_of(names), _block_reduction_of(names)
    args, block_args = dict(patchout_args or {}), dict(reduction_args or {})
    accepted = _params(get_patchout(strategy))
    block_accepted = [p for p in _params(get_block_reduction(reduction)) if p not in accepted]
    settings: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _CONFIG_FIELDS and key not in _STRATEGY_FIELDS:
            settings[key] = value
        elif key in accepted:
            args[key] = value
        elif key in block_accepted:
            block_args[key] = value
        else:
            raise UsageError(
                f"unknown option {key!r}: not a model setting ({', '.join(_CONFIG_FIELDS)}) nor "
                f"a parameter of patchout {strategy!r} ({', '.join(accepted) or 'none'}) or of "
                f"the block reduction {reduction!r} ({', '.join(block_accepted) or 'none'})"
            )
    flexed = settings.get("flex_patch_size") is not None or settings.get("flex_stride") is not None
    if "flex" in names and not flexed:
        raise UsageError("flex runs the patch embedding at another size: give flex_patch_size "
                         "(and flex_stride, else the stride is scaled alike), e.g. "
                         "flex_patch_size=20")
    base = PaSSTConfig(frames=frames, patchout=strategy, patchout_args=args,
                       reduction=reduction, reduction_args=block_args, **settings)
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
    return compose(v.reductions, v.patchout_args, frames=frames,
                   reduction_args=v.reduction_args, **{**v.settings, **overrides})


def proportional_patchout(name: str | Variant, frames: int, **overrides: Any
                          ) -> dict[str, Any]:
    """Strategy parameters (the patchout's and the block reduction's) under which
    ``frames``-long inputs keep the fraction of patches that full-length inputs keep (for
    short-clip benchmarks of the real architecture)."""
    cfg = variant_config(name, **overrides)
    strategy = create_patchout(cfg.patchout, **cfg.patchout_args)
    reduction = create_block_reduction(cfg.reduction, **cfg.reduction_args)
    patch, stride = cfg.embed_patch
    full, grid = cfg.token_grid, (cfg.token_grid[0], grid_size(frames, patch, stride))
    return {**cfg.patchout_args, **strategy.rescaled(full, grid),
            **cfg.reduction_args, **reduction.rescaled(full, grid)}


def reduction_acts(cfg: PaSSTConfig, reductions: Iterable[str] = ()) -> str:
    """When the sequence of ``cfg`` is shortened: ``train`` (patchout only), ``eval``, ``both``
    or ``none``; ``reductions`` (a composition's names) adds no-overlap, which acts in both
    (reduced-depth shortens the network, not the sequence)."""
    modes = set()
    if cfg.patchout != "none":
        modes.add("train")
    if cfg.reduction != "none":
        acts = create_block_reduction(cfg.reduction, **cfg.reduction_args).acts
        modes.update(("train", "eval") if acts == "both" else (acts,))
    if cfg.embed_patch != (cfg.patch_size, cfg.stride) or "no-overlap" in reductions:
        modes.update(("train", "eval"))
    return "both" if len(modes) == 2 else next(iter(modes), "none")


def seq_len_per_block(cfg: PaSSTConfig, frames: int | None = None,
                      training: bool = False) -> list[int]:
    """Tokens entering each block of a ``cfg`` model on a ``frames``-long input (default: its
    full length), counted by a forward pass on the meta device (nothing computed); on the
    CPU for a strategy the meta device cannot run."""
    frames = frames or cfg.frames
    try:
        with torch.device("meta"):
            model = PaSST(cfg).train(training)
            return token_counts(model, torch.zeros(1, 1, cfg.n_mels, frames))
    except (NotImplementedError, RuntimeError):  # e.g. a value read back from a meta tensor
        model = PaSST(cfg).train(training)
        return token_counts(model, torch.zeros(1, 1, cfg.n_mels, frames))


def mean_seq_len(counts: Iterable[int]) -> int:
    """The tokens per block averaged over the blocks, rounded: the sequence length that
    speed and FLOPs follow (the first block's for a reduction before the blocks)."""
    return round(statistics.fmean(counts))


def describe(name: str) -> dict[str, Any]:
    """One row of ``passt variants``: the variant's settings, sequence lengths and size.

    ``train_seq_len`` and ``eval_seq_len`` are the mean tokens per block; the per-block
    counts are beside them."""
    v = get_variant(name)
    cfg = variant_config(name)
    with torch.device("meta"):
        model = PaSST(cfg)
    train, evaluation = (seq_len_per_block(cfg, training=t) for t in (True, False))
    return {
        "name": v.name,
        "reductions": "+".join(v.reductions),
        "strategy": v.strategy,
        "patchout_args": dict(v.patchout_args),
        "reduction": v.block_reduction,
        "reduction_args": dict(cfg.reduction_args),
        "acts": reduction_acts(cfg, v.reductions),
        "patch_size": cfg.embed_patch[0],
        "stride": cfg.embed_patch[1],
        "depth": cfg.depth,
        "frames": cfg.frames,
        "grid": list(cfg.token_grid),
        "train_seq_len": mean_seq_len(train),
        "eval_seq_len": mean_seq_len(evaluation),
        "train_seq_len_per_block": train,
        "eval_seq_len_per_block": evaluation,
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

# Table 1's extension: reductions inside the network and at inference, each at its paper's
# recommended setting, on PaSST-S's training (passt-b-tome: on PaSST-B's). Their inference
# cost is what patchout cannot lower.
for _v in (
    Variant("passt-b-tome", ("tome",), reduction_args={"r": 0.08},
            description="passt-b with token merging (ToMe) in every block, training and eval: "
                        "8% of the patches merged per block (ToMe's r=16 of ViT-B's 196)"),
    Variant("passt-s-tome", ("structured", "tome"), {"time": 40, "freq": 4},
            reduction_args={"r": 0.08},
            description="passt-s with ToMe in every block, training and eval: 8% of the "
                        "patches entering the first block merged per block"),
    Variant("passt-s-evit", ("structured", "evit"), {"time": 40, "freq": 4},
            reduction_args={"keep_rate": 0.7},
            description="passt-s with EViT attention pruning, training and eval: 70% of the "
                        "patch tokens kept after blocks 3, 6 and 9, the rest fused (the paper's "
                        "setting)"),
    Variant("passt-s-flex", ("structured", "flex"), {"time": 33, "freq": 3},
            settings={"flex_patch_size": 20, "flex_stride": 12},
            description="passt-s's weights run at patch 20, stride 12 (FlexiViT resize), "
                        "training and eval: 10x82 patches; structured patchout keeps PaSST-S's "
                        "fraction of them (3 of 10 rows, 33 of 82 columns dropped)"),
):
    register_variant(_v)
