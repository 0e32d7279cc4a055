"""The settings of ``passt profile``, each a documented field and its command-line flag."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from passt.measure.overrides import BenchOverrides
from passt.measure.presets import PRESETS, Preset, get_preset
from passt.measure.step import KINDS
from passt.profiling.scaling import CLIP_SECONDS, VARIANTS
from passt.utils.errors import UsageError, check_choice
from passt.utils.settings import add_flags, flag_names, read_flags, setting
from passt.utils.values import check_int, parse_list
from passt.variants import list_variants

# the `BenchOverrides` that passt profile takes, as flags of their own (--batch-size, ...)
PROFILE_OVERRIDES = ("batch_size", "clip_seconds", "dtype", "attention", "device")


@dataclass(frozen=True)
class ProfileConfig:
    """What to profile, under which benchmark preset, and where the files go."""

    variants: tuple[str, ...] | None = setting(
        None, parse=partial(parse_list, what="--variants"), metavar="A,B",
        help="comma-separated variants; default: every registered variant (with --scaling: "
             f"{','.join(VARIANTS)})")
    preset: str = setting(
        "auto", help=f"the benchmark preset whose settings the steps use: auto (gpu with CUDA, "
                     f"else cpu-small), {', '.join(PRESETS)} or a plugin's; default: %(default)s")
    # the preset's settings changed: the fields PROFILE_OVERRIDES, flags of their own
    step: BenchOverrides = field(default_factory=BenchOverrides)
    kinds: tuple[str, ...] = setting(
        KINDS, parse=partial(parse_list, what="--kinds"), metavar="train,inference",
        help="the steps to break down; default: train,inference")
    peers: tuple[str, ...] = setting(
        (), parse=partial(parse_list, what="--peers"), metavar="official,official-sdpa,hf-ast",
        help="also break down these peers' training steps (where installed)")
    warmup: int = setting(2, help="untimed steps first; default: %(default)s")
    repeats: int = setting(3, help="profiled (and unprofiled) steps; the median is reported; "
                                   "default: %(default)s")
    memory_history: bool = setting(
        False, help="on CUDA, after each training step is profiled, record one more step's "
                    "allocator history (Python stacks, 20k events) into "
                    "memory_<variant>.pickle for https://pytorch.org/memory_viz")
    scaling: bool = setting(False, help="measure the training step against clip length "
                                        "instead (scaling.csv, scaling.png); on CUDA at the "
                                        "preset's batch size, else batch 1")
    clips: tuple[float, ...] = setting(
        CLIP_SECONDS, parse=partial(parse_list, what="--clips", item=float, above=0),
        metavar="S1,S2,...",
        help=f"the clip lengths of --scaling; default: {','.join(map(str, CLIP_SECONDS))}")
    out: str = setting("reports/profile", help="output folder; default: %(default)s")

    def __post_init__(self) -> None:
        get_preset(self.preset)  # an unknown preset is an error before anything is measured
        for kind in self.kinds:
            check_choice("step kind", kind, KINDS)
        if self.scaling and self.step.clip_seconds is not None:
            raise UsageError("--clip-seconds does not go with --scaling, which measures the clip "
                             "lengths of --clips")
        check_int("warmup", self.warmup, minimum=0)
        check_int("repeats", self.repeats, minimum=1)

    @classmethod
    def add_flags(cls, parser: Any) -> None:
        """Add ``passt profile``'s flags to ``parser``, the overrides after the preset."""
        names = flag_names(cls)
        add_flags(parser, cls, names[:names.index("preset") + 1])
        add_flags(parser, BenchOverrides, PROFILE_OVERRIDES)
        add_flags(parser, cls, names[names.index("preset") + 1:])

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> ProfileConfig:
        """The config of ``passt profile``'s flags (added by `add_flags`) in ``args``."""
        return cls(**read_flags(cls, args, flag_names(cls)),
                   step=BenchOverrides.from_flags(args, PROFILE_OVERRIDES))

    @property
    def chosen_variants(self) -> tuple[str, ...]:
        """The variants to measure: as given, else every registered one (scaling: three)."""
        return self.variants or (VARIANTS if self.scaling else tuple(list_variants()))

    @property
    def benchmark_preset(self) -> Preset:
        return get_preset(self.preset)

    @property
    def overrides(self) -> dict[str, Any]:
        """The preset's settings changed here."""
        return self.step.step
