"""The long view of many benchmark runs: each benchmark's series across commits, and where it
changed.

Runs (pytest-benchmark JSON files) are ordered by their commit's time in ``commit_info``, runs
of one commit by when they ran (``datetime``); a run outside git is ordered by ``datetime``
alone, with a warning. Each benchmark's series is its instruction count where every run has
one, else its step time over its probe's (`passt.measure.regress.probed_step_time`) where every run
has a probe, else its median step time.

The change-point rule (binary segmentation with Welch's t-test, as Bencher's and asv's
detectors test a window before against one after): in a segment of the series, every split
at a commit boundary with at least ``window`` runs on each side is a candidate; the log values
before and after it are compared by Welch's t-test, each side's variance taken as at least
the mean of its runs' own squared log standard errors (a run's 95% interval over 3.92), so
that identical counts are not infinitely certain. The candidate with the smallest p among
those whose size (the ratio of the geometric means after and before) is beyond
``min_change`` either way is a change point when that p, times the number of candidates
(Bonferroni), is below ``alpha``; the segments before and after it are then searched the same
way. Each change point is reported at its first run (the first bad commit) with its size and
the 95% Welch interval of that ratio.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from passt.measure.bench_file import BenchFile, Benchmark, load_bench_file
from passt.measure.regress import PROBED, Value, parse_percent, probed_step_time, step_time
from passt.utils.errors import UsageError
from passt.utils.optional import require
from passt.utils.settings import setting
from passt.utils.tables import columns_of, csv_text, record_rows

log = logging.getLogger(__name__)

INSTRUCTIONS = "instructions"
Z95 = 1.96
RESOLUTION = 1e-6  # the smallest log standard error of a side: counts are not exact to 1 ppm


@dataclass(frozen=True)
class HistoryConfig:
    """How change points are found, and where the files go."""

    window: int = setting(3, help="runs on each side of a change at least; default: "
                                  "%(default)s")
    alpha: float = setting(0.01, help="false-alarm rate of a segment's test, Bonferroni-"
                                      "corrected over its candidate splits; default: "
                                      "%(default)s")
    min_change_instructions: float = setting(
        0.02, parse=parse_percent, metavar="PERCENT",
        help="smallest change of an instruction count reported; default: 2%%")
    min_change_time: float = setting(
        0.05, parse=parse_percent, metavar="PERCENT",
        help="smallest change of a step time reported; default: 5%%")
    out: str = setting("reports/history", help="output folder; default: %(default)s")

    def __post_init__(self) -> None:
        if self.window < 2:
            raise UsageError(f"--window must be at least 2 (a variance needs two runs), got "
                             f"{self.window}")
        if not 0 < self.alpha < 1:
            raise UsageError(f"--alpha must be between 0 and 1, got {self.alpha}")

    def min_change(self, metric: str) -> float:
        return self.min_change_instructions if metric == INSTRUCTIONS else self.min_change_time


@dataclass(frozen=True)
class Run:
    """One benchmark file and where it sits in history."""

    path: Path
    bench: BenchFile
    commit: str  # commit_info's id; "" outside git
    commit_time: datetime | None
    run_time: datetime | None
    dirty: bool

    @property
    def label(self) -> str:
        """The short commit (``*``: uncommitted changes), else the file's name."""
        if not self.commit:
            return self.path.stem
        return self.commit[:7] + ("*" if self.dirty else "")


@dataclass(frozen=True)
class Shift:
    """A change in a series: its first point, its size (geometric mean after over before) with
    the 95% interval, and the Bonferroni-adjusted p of Welch's test."""

    index: int
    ratio: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class Series:
    """One benchmark's metric across runs: ``points`` as (run index, value)."""

    benchmark: str
    metric: str
    points: tuple[tuple[int, Value], ...]


@dataclass(frozen=True)
class ChangePoint:
    """Where a benchmark's series changed: the first bad run and commit, and the change."""

    benchmark: str
    metric: str
    run: int
    commit: str
    previous_commit: str
    ratio: float
    low: float
    high: float
    p_value: float

    @property
    def label(self) -> str:
        return f"{self.ratio - 1:+.1%} [{self.low - 1:+.1%}, {self.high - 1:+.1%}]"


@dataclass(frozen=True)
class HistoryRow:
    """A row of history.csv: one benchmark in one run."""

    benchmark: str
    run: int
    commit: str
    commit_time: str
    dirty: bool
    file: str
    metric: str
    value: float
    value_low: float
    value_high: float
    median_s: float | None
    median_ci_low_s: float | None
    median_ci_high_s: float | None
    instructions: float | None
    peak_memory_bytes_per_sample: float | None
    activation_bytes_per_sample: float | None
    step_gflops_per_sample: float | None
    change_point: bool
    change_ratio: float | None = None
    change_ratio_low: float | None = None
    change_ratio_high: float | None = None
    change_p_value: float | None = None


@dataclass(frozen=True)
class History:
    runs: tuple[Run, ...]
    series: tuple[Series, ...]
    change_points: tuple[ChangePoint, ...]
    config: HistoryConfig
    warnings: tuple[str, ...] = field(default=())

    def rows(self) -> list[HistoryRow]:
        """A row per benchmark and run, in benchmark then run order."""
        changes = {(c.benchmark, c.run): c for c in self.change_points}
        rows = []
        for s in self.series:
            for i, value in s.points:
                run, change = self.runs[i], changes.get((s.benchmark, i))
                bench = run.bench.benchmarks[s.benchmark]
                r = bench.record
                rows.append(HistoryRow(
                    s.benchmark, i, run.commit,
                    run.commit_time.isoformat() if run.commit_time else "", run.dirty,
                    str(run.path), s.metric, value.value, value.low, value.high,
                    bench.median_s, r.median_ci_low_s, r.median_ci_high_s, r.instructions,
                    r.peak_memory_bytes_per_sample, r.activation_bytes_per_sample,
                    r.step_gflops_per_sample, change is not None,
                    *((change.ratio, change.low, change.high, change.p_value) if change
                      else ())))
        return rows


def find_shifts(values: Sequence[float], noise: Sequence[float] | None = None,
                splits: Iterable[int] | None = None, window: int = 3, alpha: float = 0.01,
                min_change: float = 0.05) -> list[Shift]:
    """The change points of a series of positive ``values`` by the module's rule; ``noise``:
    each value's own log standard error (default 0), ``splits``: the indices a change may
    begin at (default: any)."""
    logs = [math.log(v) for v in values]
    noise = list(noise) if noise is not None else [0.0] * len(logs)
    allowed = set(range(1, len(logs))) if splits is None else set(splits)
    shifts, segments = [], [(0, len(logs))]
    while segments:
        lo, hi = segments.pop()
        candidates = sorted(k for k in allowed if lo + window <= k <= hi - window)
        best: Shift | None = None
        for k in candidates:
            shift = _welch(k, logs[lo:k], logs[k:hi], noise[lo:k], noise[k:hi])
            big = abs(math.log(shift.ratio)) >= math.log1p(min_change)
            if big and (best is None or shift.p_value < best.p_value):
                best = shift
        if best is not None and best.p_value * len(candidates) < alpha:
            shifts.append(Shift(best.index, best.ratio, best.low, best.high,
                                min(1.0, best.p_value * len(candidates))))
            segments += [(lo, best.index), (best.index, hi)]
    return sorted(shifts, key=lambda s: s.index)


def _welch(k: int, before: list[float], after: list[float], noise_before: list[float],
           noise_after: list[float]) -> Shift:
    """Welch's test of the mean logs after against before (variances floored by the runs' own
    noise); the ratio of geometric means, its 95% interval and the unadjusted p."""
    parts = []
    for xs, noise in ((before, noise_before), (after, noise_after)):
        n, mean = len(xs), sum(xs) / len(xs)
        var = sum((x - mean) ** 2 for x in xs) / (n - 1)
        floor = max(RESOLUTION ** 2, sum(s * s for s in noise) / n)
        parts.append((n, mean, max(var, floor) / n))
    (n1, m1, v1), (n2, m2, v2) = parts
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    diff = m2 - m1
    student_t = require("scipy.stats", "change points").t  # slow to import: only here
    p = 2 * float(student_t.sf(abs(diff) / se, df))
    half = float(student_t.ppf(0.975, df)) * se
    return Shift(k, math.exp(diff), math.exp(diff - half), math.exp(diff + half), p)


def log_se(value: Value) -> float:
    """A value's log standard error, its interval taken as a 95% one (0: a point)."""
    if value.low <= 0 or value.high <= value.low:
        return 0.0
    return math.log(value.high / value.low) / (2 * Z95)


def instruction_count(bench: Benchmark) -> Value | None:
    """The instruction count, the repeats' range as its interval."""
    r = bench.record
    if r.instructions is None:
        return None
    half = (r.instructions_spread or 0.0) / 2
    return Value(r.instructions, r.instructions * (1 - half), r.instructions * (1 + half))


def series_metric(benches: Sequence[Benchmark]) -> tuple[str, Callable[[Benchmark],
                                                                        Value | None]]:
    """The metric a benchmark's series follows: instructions where every run counted them,
    else the probed step time where every run has a probe, else the median step time."""
    if all(instruction_count(b) is not None for b in benches):
        return INSTRUCTIONS, instruction_count
    if all(probed_step_time(b) is not None for b in benches):
        return PROBED, probed_step_time
    return "median_s", step_time


def bench_paths(paths: Iterable[str | Path]) -> list[Path]:
    """The files given, and every ``*.json`` under the folders given (sorted), once each."""
    out: dict[Path, None] = {}
    for p in map(Path, paths):
        if p.is_dir():
            out.update(dict.fromkeys(sorted(p.rglob("*.json"))))
        elif p.exists():
            out[p] = None
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return list(out)


def load_runs(paths: Iterable[str | Path]) -> tuple[list[Run], list[str]]:
    """The runs of the files and folders ``paths`` in history's order, and warnings. In a
    folder, JSON that is not a benchmark run is skipped with a warning; a file named alone
    must be one."""
    given = [Path(p) for p in paths]
    runs, warnings = [], []
    for path in bench_paths(given):
        try:
            bench = load_bench_file(path)
        except UsageError as e:
            if path in given:
                raise
            warnings.append(f"skipped {e}")
            continue
        runs.append(_run(path, bench))
    if not runs:
        skipped = f"; {warnings[0]}" if warnings else ""
        raise UsageError(f"no benchmark runs in {', '.join(map(str, given)) or 'nothing'} "
                         f"(give pytest-benchmark JSON files, or folders of them){skipped}")
    outside = [r.path.name for r in runs if r.commit_time is None]
    if outside:
        warnings.append(f"{len(outside)} run(s) without a commit in commit_info "
                        f"({', '.join(outside[:3])}{', ...' if len(outside) > 3 else ''}): "
                        "every run is ordered by when it ran (datetime) instead")
        timeless = [r.path.name for r in runs if r.run_time is None]
        if timeless:
            raise UsageError(f"{timeless[0]} has neither a commit time (commit_info) nor a "
                             "datetime: it cannot be placed in history (write runs with "
                             "pytest --benchmark-json=FILE in a git checkout)")
        runs.sort(key=lambda r: r.run_time)
    else:
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        runs.sort(key=lambda r: (r.commit_time, r.run_time or epoch))
    dirty = [r.label for r in runs if r.dirty]
    if dirty:
        warnings.append(f"{len(dirty)} run(s) of uncommitted changes (marked *): "
                        f"{', '.join(dirty[:3])}{', ...' if len(dirty) > 3 else ''}")
    return runs, warnings


def _run(path: Path, bench: BenchFile) -> Run:
    info = bench.commit_info
    commit = info.get("id") if isinstance(info.get("id"), str) else ""
    commit_time = _time(path, "commit_info.time", info.get("time"))
    if commit == "unversioned" or commit_time is None:  # pytest-benchmark outside git
        commit, commit_time = "", None
    return Run(path, bench, commit, commit_time, _time(path, "datetime", bench.datetime),
               bool(info.get("dirty")) and bool(commit))


def _time(path: Path, name: str, text: object) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise UsageError(f"{path.name}: {name} is not an ISO time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def build_history(runs: Sequence[Run], config: HistoryConfig = HistoryConfig(),
                  warnings: Sequence[str] = ()) -> History:
    """Every benchmark's series over ``runs`` (in order) and its change points."""
    names = sorted({n for r in runs for n, b in r.bench.benchmarks.items() if not b.record.oom})
    series, changes = [], []
    for name in names:
        present = [(i, r.bench.benchmarks[name]) for i, r in enumerate(runs)
                   if name in r.bench.benchmarks and not r.bench.benchmarks[name].record.oom]
        metric, measure = series_metric([b for _, b in present])
        points = tuple((i, v) for i, b in present if (v := measure(b)) is not None
                       and v.value > 0)
        series.append(Series(name, metric, points))
        commits = [runs[i].commit or runs[i].path.name for i, _ in points]
        splits = [k for k in range(1, len(points)) if commits[k] != commits[k - 1]]
        for s in find_shifts([v.value for _, v in points], [log_se(v) for _, v in points],
                             splits, config.window, config.alpha, config.min_change(metric)):
            run, before = points[s.index][0], points[s.index - 1][0]
            changes.append(ChangePoint(name, metric, run, runs[run].commit,
                                       runs[before].commit, s.ratio, s.low, s.high,
                                       s.p_value))
    return History(tuple(runs), tuple(series), tuple(changes), config, tuple(warnings))


def history_of(paths: Iterable[str | Path], config: HistoryConfig = HistoryConfig()) -> History:
    """Read the runs of ``paths`` (files or folders) and build their history."""
    runs, warnings = load_runs(paths)
    return build_history(runs, config, warnings)


CSV_COLUMNS = columns_of(HistoryRow)


def format_csv(rows: Sequence[HistoryRow]) -> str:
    return csv_text(CSV_COLUMNS, record_rows(rows, CSV_COLUMNS))


def short_name(benchmark: str) -> str:
    """A benchmark's name without its file (``test_step[passt-s-train]``)."""
    return benchmark.rsplit("::", 1)[-1]


def format_history(history: History) -> str:
    """The runs, the change points (or that there are none) and the warnings, as text."""
    runs = history.runs
    lines = [f"{len(runs)} runs, {runs[0].label} .. {runs[-1].label}; "
             f"{len(history.series)} benchmarks"]
    for c in history.change_points:
        lines.append(f"change point: {short_name(c.benchmark)} {c.metric} {c.label} at "
                     f"{c.commit[:7] or runs[c.run].label} (after "
                     f"{c.previous_commit[:7] or '?'}), p={c.p_value:.2g}")
    if not history.change_points:
        window = history.config.window
        few = (f" (a change needs {window} runs on each side: {len(runs)} runs cannot show one)"
               if len(runs) < 2 * window else "")
        lines.append("no change point" + few)
    lines += [f"warning: {w}" for w in history.warnings]
    return "\n".join(lines)
