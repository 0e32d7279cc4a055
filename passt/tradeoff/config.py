"""The settings of ``passt tradeoff``, each a documented field and its command-line flag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from passt.data.factory import data_help
from passt.utils.errors import UsageError
from passt.utils.precision import Dtype
from passt.utils.settings import parse_overrides, setting
from passt.utils.values import check_int, check_number

# Each strategy at settings that span mild to strong reduction; ToMe's r as a fraction of the
# first block's patches works on any clip length.
DEFAULT_GRID = ("tome:r=0.02,0.04,0.08,0.12", "evit:keep_rate=0.9,0.7,0.5",
                "flex:patch=20,24,32")


@dataclass(frozen=True)
class TradeoffConfig:
    """One checkpoint, its eval data, the grid of settings, and how each is measured."""

    checkpoint: str | None = setting(
        None, help="an official PaSST state_dict (see --variant) or a `passt train` checkpoint "
                   "(required)")
    variant: str | None = setting(
        None, help="the architecture of an official state_dict; default: passt-s (a `passt "
                   "train` checkpoint names its own)")
    model_overrides: dict[str, Any] = setting(
        default_factory=dict, parse=parse_overrides, metavar="KEY=VALUE,...",
        help="model settings on top of the variant's, e.g. embed_dim=64,depth=1")
    data: str | None = setting(
        None, help=f"{data_help()}; default: a `passt train` checkpoint's eval data")
    data_options: dict[str, Any] = setting(
        default_factory=dict, parse=parse_overrides, metavar="KEY=VALUE,...",
        help="dataset options, e.g. size=500 (synthetic)")
    split: str = setting("eval", help="default: %(default)s")
    clip_seconds: float | None = setting(
        None, help="default: a `passt train` checkpoint's clip length, else 10")
    grid: tuple[str, ...] = setting(
        DEFAULT_GRID, parse=tuple, many=True, metavar="STRATEGY:PARAM=V1,V2,...",
        help="the settings to measure beside the unreduced model: tome (r), evit (keep_rate, "
             "locations), flex (patch, stride) or a plugin's block reduction; several PARAM= "
             f"parts, separated by ':', give every combination; default: {' '.join(DEFAULT_GRID)}")
    batch_size: int = setting(8, help="clips per forward pass, scoring and timing; default: "
                                      "%(default)s")
    device: str = setting("auto", help="auto | cpu | cuda | cuda:N; default: %(default)s")
    dtype: Dtype = setting("fp32", help="default: %(default)s")
    bootstrap: int = setting(1000, help="resamples of the clips for the accuracy intervals; "
                                        "default: %(default)s")
    warmup: int = setting(2, help="untimed forward passes per setting; default: %(default)s")
    rounds: int = setting(6, help="timed rounds at least (alternating with the unreduced "
                                  "model); default: %(default)s")
    max_seconds: float = setting(10.0, help="time spent timing one setting at most, once "
                                            "--rounds are done; default: %(default)s")
    seed: int = setting(0, help="the bootstrap's seed; default: %(default)s")
    out: str = setting("reports/tradeoff", help="output folder; default: %(default)s")

    def __post_init__(self) -> None:
        if self.checkpoint is None:
            raise UsageError("passt tradeoff needs --checkpoint")
        for name in ("batch_size", "bootstrap", "rounds"):
            check_int(f"--{name.replace('_', '-')}", getattr(self, name), minimum=1)
        check_int("--warmup", self.warmup, minimum=0)
        check_number("--max-seconds", self.max_seconds, above=0)
