"""The settings of ``passt profile``, each a documented field and its command-line flag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from passt.measure.presets import PRESETS, Preset, get_preset
from passt.measure.step import KINDS
from passt.model import AttentionPath
from passt.profiling.scaling import CLIP_SECONDS, VARIANTS
from passt.utils.errors import UsageError, check_choice
from passt.utils.precision import Dtype
from passt.utils.settings import setting
from passt.variants import list_variants

PresetName = Literal[("auto", *PRESETS)]  # type: ignore[valid-type]  (the presets' names)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _seconds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in _names(text))
    except ValueError:
        raise UsageError(f"--clips: expected seconds like 2.5,5,10, got {text!r}") from None
    if any(not v > 0 for v in values):
        raise UsageError(f"--clips: clip lengths must be positive, got {text!r}")
    return values


@dataclass(frozen=True)
class ProfileConfig:
    """What to profile, under which benchmark preset, and where the files go."""

    variants: tuple[str, ...] | None = setting(
        None, parse=_names, metavar="A,B",
        help="comma-separated variants; default: every registered variant (with --scaling: "
             f"{','.join(VARIANTS)})")
    preset: PresetName = setting(
        "auto", help="the benchmark preset whose settings the steps use (auto: gpu with CUDA, "
                     "else cpu-small); default: %(default)s")
    batch_size: int | None = setting(None, help="override the preset's batch size")
    clip_seconds: float | None = setting(None, help="override the preset's clip length")
    dtype: Dtype | None = setting(None, help="override the preset's precision")
    attention: AttentionPath | None = setting(None, help="override the preset's attention")
    device: str | None = setting(None, help="override the preset's device, e.g. cpu, cuda:1")
    kinds: tuple[str, ...] = setting(
        KINDS, parse=_names, metavar="train,inference",
        help="the steps to break down; default: train,inference")
    peers: tuple[str, ...] = setting(
        (), parse=_names, metavar="official,official-sdpa,hf-ast",
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
        CLIP_SECONDS, parse=_seconds, metavar="S1,S2,...",
        help=f"the clip lengths of --scaling; default: {','.join(map(str, CLIP_SECONDS))}")
    out: str = setting("reports/profile", help="output folder; default: %(default)s")

    def __post_init__(self) -> None:
        for kind in self.kinds:
            check_choice("step kind", kind, KINDS)
        if self.scaling and self.clip_seconds is not None:
            raise UsageError("--clip-seconds does not go with --scaling, which measures the clip "
                             "lengths of --clips")
        if self.warmup < 0 or self.repeats < 1:
            raise UsageError(f"need warmup >= 0 and repeats >= 1, got {self.warmup} and "
                             f"{self.repeats}")

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
        given = {"batch_size": self.batch_size, "clip_seconds": self.clip_seconds,
                 "dtype": self.dtype, "attention": self.attention, "device": self.device}
        return {k: v for k, v in given.items() if v is not None}
