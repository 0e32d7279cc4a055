"""Table 1's settings: what the run measured under (device, dtype, batch, preset, ...), what the
figure and notes need of the proxy mAPs, and the table's notes; stated above the table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from passt.measure.bench_record import BenchRecord
from passt.model import PaSSTConfig
from passt.report.inputs import Maps
from passt.variants import variant_config

MemoryMeasure = Literal["peak", "activation"]
MEMORY_LABELS = {"peak": "peak GB/sample (CUDA allocator)",
                 "activation": "activation GB/sample (CPU: saved for backward)"}


@dataclass(frozen=True)
class Table1Settings:
    """The settings of the run's (our) training benchmarks, a setting the rows differ in as
    their values joined by ``/``; the proxy mAPs' file, sources and reference levels (None
    without ``--maps``); what the table holds; and its notes."""

    bench: str
    device: str
    device_name: str
    dtype: str | None
    batch_size: int | str | None
    preset: str
    clip_seconds: float | str | None
    attention: str | None
    compile: bool | str | None
    torch: str | None
    memory_measure: MemoryMeasure
    maps_file: str | None = None
    proxy_sources: dict[str, str] = field(default_factory=dict)
    chance_map: float | None = None
    baseline_map: float | None = None
    has_reference: bool = False  # our passt-b was measured: ratios to PaSST-B exist
    vs: str | None = None
    has_inference: bool = False
    model_mismatch: str | None = None  # speed and proxy mAP are of different models
    notes: tuple[str, ...] = ()

    @property
    def memory_label(self) -> str:
        return MEMORY_LABELS[self.memory_measure]


def bench_config(record: BenchRecord) -> PaSSTConfig | None:
    """The model a row benchmarked (None: its variant is unknown here)."""
    overrides = (record.step_settings or {}).get("model_overrides") or {}
    try:
        return variant_config(record.variant, **overrides)
    except ValueError:
        return None


def _bench_size(record: BenchRecord) -> tuple[int, int] | None:
    """``(width, depth)`` of the model a row benchmarked (None: its variant is unknown here)."""
    cfg = bench_config(record)
    return None if cfg is None else (cfg.embed_dim, cfg.depth)


def model_mismatch(train: dict[str, BenchRecord], maps: Maps | None) -> str | None:
    """What the figure and notes say when the speeds are of another model than the proxy
    mAPs (the full-size architecture benchmarked, a narrow one trained by the sweep)."""
    if maps is None:
        return None
    pairs = set()
    for record in train.values():
        summary, size = maps.summaries.get(record.variant), _bench_size(record)
        if summary is None or size is None or summary.source.embed_dim in (None, size[0]):
            continue
        pairs.add((f"{size[0]}-wide {size[1]}-deep",
                   f"{summary.source.embed_dim}-wide {summary.source.depth}-deep"))
    if not pairs:
        return None
    speeds, maps_ = (", ".join(sorted({p[i] for p in pairs})) for i in (0, 1))
    return (f"speed and mAP come from different models: the speed of the benchmarked model "
            f"({speeds}), the proxy mAP of the sweep's ({maps_}); compare the ranking, not "
            "the pairs")


def _maps_settings(maps: Maps | None) -> dict[str, Any]:
    """What the figure and notes need of the proxy mAPs: their file, each variant's source
    (task, model size, clips, budget) and the task's chance and baseline levels."""
    if maps is None:
        return {}
    return {"maps_file": maps.file,
            "proxy_sources": {v: s.source.describe() for v, s in maps.summaries.items()},
            "chance_map": maps.chance_map, "baseline_map": maps.baseline_map}


def _setting(values: Iterable[Any]) -> Any:
    """A run-wide setting: its value, or the distinct values joined by ``/``."""
    values = list(dict.fromkeys(v for v in values if v is not None))
    return values[0] if len(values) == 1 else "/".join(map(str, values)) or None


def run_settings(train: dict[str, BenchRecord], machine_info: dict[str, Any],
                 measure: MemoryMeasure, path: Path, maps: Maps | None,
                 **table: Any) -> Table1Settings:
    """The settings of the run's (our) training benchmarks, of its proxy mAPs and ``table``
    (what the table holds: `Table1Settings`' fields from ``has_reference`` on)."""
    device = str(_setting(r.device for r in train.values()))
    cpu = (machine_info.get("cpu") or {}).get("brand_raw")
    fallback = machine_info.get("gpu") if device.startswith("cuda") else cpu and f"CPU {cpu}"
    return Table1Settings(
        bench=path.name,
        device=device,
        device_name=_setting(r.device_name for r in train.values()) or fallback or device,
        dtype=_setting(r.dtype for r in train.values()),
        batch_size=_setting(r.batch_size for r in train.values()),
        preset=machine_info.get("passt_preset") or "unknown",
        clip_seconds=_setting(r.clip_seconds for r in train.values()),
        attention=_setting(r.attention for r in train.values()),
        compile=_setting(r.compile for r in train.values()),
        torch=machine_info.get("torch"),
        memory_measure=measure,
        model_mismatch=model_mismatch(train, maps),
        **_maps_settings(maps), **table)
