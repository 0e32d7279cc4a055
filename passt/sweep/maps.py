"""The mAP sweep's records and their only reader and writer: ``maps.csv`` (a row per variant and
seed), ``curves.csv`` (the learning curves: a row per evaluation) and ``maps_summary.csv`` (per
variant: mean, standard deviation and a Student t 95% interval over seeds).

A legacy ``maps.csv`` (columns ``variant,map`` and optionally others) reads as one seed each.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from passt.utils.atomic import write_text_atomic
from passt.utils.errors import UsageError
from passt.utils.tables import columns_of, csv_text, markdown_table, record_rows

MAPS_FILE = "maps.csv"
CURVES_FILE = "curves.csv"
SUMMARY_FILE = "maps_summary.csv"
SUMMARY_MARKDOWN = "summary.md"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class MapRow:
    """One finished training run of a sweep: what it scored and what it was trained with."""

    variant: str
    map: float
    seed: int | None = None
    roc_auc: float | None = None
    d_prime: float | None = None
    chance_map: float | None = None  # an uninformed scorer on the same eval clips
    baseline_map: float | None = None  # the mean-spectrum baseline on the same task
    steps: int | None = None
    train_samples: int | None = None  # clips seen in training (steps x batch x ranks)
    train_tflops: float | None = None  # training compute spent, counted on the model
    budget_tflops: float | None = None  # the compute budget (None: a step or time budget)
    train_seconds: float | None = None
    task: str | None = None  # the data spec, e.g. synthetic
    train_clips: int | None = None  # distinct training clips: a small set repeats
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    clip_seconds: float | None = None

    def describe(self) -> str:
        """Where the mAP comes from: model size, clips, data and budget."""
        parts = [self.task or "task not recorded"]
        if self.embed_dim is not None:
            parts.append(f"{self.embed_dim}-wide" + (f" {self.depth}-deep" if self.depth else ""))
        if self.clip_seconds is not None:
            parts.append(f"{_g(self.clip_seconds)} s clips")
        if self.train_clips is not None:
            parts.append(f"{self.train_clips} train clips")
        if self.budget_tflops is not None:
            parts.append(f"{_g(self.budget_tflops)} TFLOPs")
        elif self.steps is not None:
            parts.append(f"{self.steps} steps")
        return ", ".join(parts)


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation during a sweep's run: a point of its learning curve."""

    variant: str
    seed: int
    step: int
    train_samples: int
    train_tflops: float
    seconds: float  # training time so far
    map: float


@dataclass(frozen=True)
class MapSummary:
    """A variant's mAP over seeds: mean, sample standard deviation, t interval of the mean."""

    variant: str
    seeds: int
    map_mean: float
    map_std: float | None  # None: one seed
    map_ci_low: float | None
    map_ci_high: float | None
    source: MapRow  # the first seed's row: the settings every seed shares

    @property
    def half_width(self) -> float | None:
        """The interval's half-width (None: one seed)."""
        return None if self.map_ci_high is None else self.map_ci_high - self.map_mean

    def describe(self) -> str:
        """``mean ± CI (task, budget, seeds)``, as Table 1 prints it."""
        value = f"{self.map_mean:.3f}"
        if self.half_width is not None:
            value += f" ± {self.half_width:.3f}"
        n = f"{self.seeds} seed{'s' if self.seeds > 1 else ''}"
        return f"{value} ({self.source.describe()}, {n})"


# what every seed of one variant must share to be averaged
SHARED = ("task", "train_clips", "budget_tflops", "embed_dim", "depth", "num_heads",
          "clip_seconds")


def t_interval(values: Sequence[float],
               confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student t interval of the mean of ``values`` (None for fewer than two)."""
    if len(values) < 2:
        return None
    from scipy.stats import t as student_t  # slow to import; only summaries need it

    mean = statistics.fmean(values)
    half = (student_t.ppf(0.5 + confidence / 2, len(values) - 1)
            * statistics.stdev(values) / math.sqrt(len(values)))
    return mean - half, mean + half


def welch_interval(a: Sequence[float], b: Sequence[float],
                   confidence: float = CONFIDENCE) -> tuple[float, float, float] | None:
    """Mean of ``a`` minus mean of ``b`` with its Welch t interval (unequal variances);
    None unless both have two values or more."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import t as student_t

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = student_t.ppf(0.5 + confidence / 2, df) * math.sqrt(va + vb)
    return diff, diff - half, diff + half


SUMMARY_TABLE = ("variant", "seeds", "mAP", "steps", "train samples", "minus the best")


def summary_markdown(rows: Sequence[MapRow]) -> str:
    """A markdown table of the sweep: per variant the mAP over seeds, what it trained on, and
    how far it is from the best variant (Welch 95% interval of the difference of means)."""
    summaries = summarize(rows)
    if not summaries:
        return ""
    best = max(summaries, key=lambda s: s.map_mean)
    maps = {s.variant: [r.map for r in rows if r.variant == s.variant] for s in summaries}
    table = []
    for s in sorted(summaries, key=lambda s: -s.map_mean):
        runs = [r for r in rows if r.variant == s.variant]
        ci = "" if s.half_width is None else f" ± {s.half_width:.3f}"
        diff = welch_interval(maps[s.variant], maps[best.variant])
        gap = ("-" if s is best or diff is None
               else f"{diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}]")
        steps = sorted({r.steps for r in runs if r.steps is not None})
        samples = sorted({r.train_samples for r in runs if r.train_samples is not None})
        table.append([s.variant, s.seeds, f"{s.map_mean:.3f}{ci}",
                      "/".join(map(str, steps)) or "-", "/".join(map(str, samples)) or "-", gap])
    lines = [f"{rows[0].describe()} (each variant's own depth); 95% intervals over seeds "
             f"(Student t), differences to the best ({best.variant}) by Welch's t.", "",
             *markdown_table(SUMMARY_TABLE, table, right=SUMMARY_TABLE[1:]).splitlines()]
    levels = [(name, [v for v in values if v is not None]) for name, values in (
        ("chance", [r.chance_map for r in rows]),
        ("mean-spectrum baseline", [r.baseline_map for r in rows]))]
    notes = [f"{name} {statistics.fmean(v):.3f}" for name, v in levels if v]
    if notes:
        lines += ["", f"On the same eval clips: {', '.join(notes)}."]
    return "\n".join(lines) + "\n"


def summarize(rows: Iterable[MapRow]) -> list[MapSummary]:
    """Per variant (in order of first appearance): the mAP over its seeds."""
    by_variant: dict[str, list[MapRow]] = {}
    for row in rows:
        by_variant.setdefault(row.variant, []).append(row)
    out = []
    for variant, runs in by_variant.items():
        differ = [name for name in SHARED if len({getattr(r, name) for r in runs}) > 1]
        if differ:
            raise UsageError(f"the rows of {variant} differ in {', '.join(differ)}: seeds "
                             "are averaged only over runs of the same settings")
        values = [r.map for r in runs]
        ci = t_interval(values)
        out.append(MapSummary(
            variant=variant, seeds=len(values), map_mean=statistics.fmean(values),
            map_std=statistics.stdev(values) if len(values) > 1 else None,
            map_ci_low=None if ci is None else ci[0], map_ci_high=None if ci is None else ci[1],
            source=runs[0]))
    return out


def write_maps(path: str | Path, rows: Sequence[MapRow]) -> None:
    """``maps.csv`` of ``rows``, atomically."""
    _write(path, MapRow, rows)


def write_curves(path: str | Path, points: Sequence[CurvePoint]) -> None:
    """``curves.csv`` of ``points``, atomically."""
    _write(path, CurvePoint, points)


SUMMARY_COLUMNS = ("variant", "seeds", "map_mean", "map_std", "map_ci_low", "map_ci_high",
                   "task", "train_clips", "budget_tflops", "embed_dim", "depth", "num_heads",
                   "clip_seconds")


def write_summary(path: str | Path, summaries: Sequence[MapSummary]) -> None:
    """``maps_summary.csv``: `SUMMARY_COLUMNS`, atomically."""
    records = [{**dataclasses.asdict(s.source), **dataclasses.asdict(s)} for s in summaries]
    write_text_atomic(path, csv_text(SUMMARY_COLUMNS, record_rows(records, SUMMARY_COLUMNS)))


def read_maps(path: str | Path) -> list[MapRow]:
    """The rows of a ``maps.csv`` (this module's or a legacy ``variant,map`` one); clear
    errors for anything else. A variant may appear once per seed."""
    rows = [MapRow(**r) for r in _read(path, MapRow, required=("variant", "map"))]
    for r in rows:
        if not 0.0 <= r.map <= 1.0:
            raise UsageError(f"{Path(path).name}: map of {r.variant} is {r.map}; every map "
                             "must be a number in [0, 1]")
    seen: set[tuple[str, int | None]] = set()
    for r in rows:
        if (r.variant, r.seed) in seen:
            what = f"seed {r.seed}" if r.seed is not None else "no seed column"
            raise UsageError(f"{Path(path).name} gives several mAPs for {r.variant} "
                             f"({what}); one row per variant and seed")
        seen.add((r.variant, r.seed))
    return rows


def read_curves(path: str | Path) -> list[CurvePoint]:
    """The points of a ``curves.csv``."""
    return [CurvePoint(**r) for r in _read(path, CurvePoint,
                                           required=tuple(f.name for f in fields(CurvePoint)))]


def _write(path: str | Path, kind: type, records: Sequence[Any]) -> None:
    write_text_atomic(path, csv_text(columns_of(kind), record_rows(records, columns_of(kind))))


_PARSERS = {"str": str, "float": float, "int": int}


def _read(path: str | Path, kind: type, required: tuple[str, ...]) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind.__name__} file not found: {path}")
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            raw = list(reader)
    except UnicodeDecodeError as e:
        raise UsageError(f"{path.name} is not a CSV file: {e}") from None
    absent = [c for c in required if c not in header]
    if absent:
        raise UsageError(f"{path.name} lacks column(s) {', '.join(absent)}; got "
                         f"{', '.join(header) or 'no header'}; expected {', '.join(required)} "
                         f"(and optionally {', '.join(f.name for f in fields(kind))})")
    types = {f.name: str(f.type).split(" | ")[0] for f in fields(kind)}
    out = []
    for line, row in enumerate(raw, start=2):
        values: dict[str, Any] = {}
        for name, text in row.items():
            if name not in types:  # a column of another tool: ignored
                continue
            text = (text or "").strip()
            if text == "":
                if name in required:
                    raise UsageError(f"{path.name} line {line}: {name} is empty")
                continue
            try:
                value = _PARSERS[types[name]](text)
            except ValueError:
                # a whole number written as 800.0 by a tool that mixed it with blanks
                value = _whole(text) if types[name] == "int" else None
                if value is None:
                    raise UsageError(f"{path.name} line {line}: {name} should be "
                                     f"{types[name]}, got {text!r}") from None
            values[name] = value
        out.append(values)
    return out


def _whole(text: str) -> int | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _g(x: float) -> str:
    return f"{x:g}"
