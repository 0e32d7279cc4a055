"""What the GPU campaign hands back: the key numbers (from the benchmark JSON, or from the
journal where a step was cut before pytest wrote it), ``summary.json`` and ``summary.md``, and
``campaign.tar.gz`` of everything else worth keeping, refreshed in the return folder after
every step so that a kill at any moment leaves the last finished step's results there."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from passt.measure.bench_file import load_bench_file
from passt.measure.bench_record import BenchRecord, reported
from passt.measure.journal import Journal
from passt.utils.atomic import atomic_path, write_text_atomic
from passt.utils.errors import UsageError
from passt.utils.tables import markdown_table

# The files brought back (the device hands back at most 8), and the archive's size limit.
RETURNED = ("summary.json", "summary.md", "journal.jsonl", "campaign.jsonl", "campaign.tar.gz")
ARCHIVE_LIMIT_BYTES = 15 * 2**20
# Never in the archive: run folders (checkpoints), weights, memory pickles, audio.
NOT_ARCHIVED_DIRS = ("runs",)
NOT_ARCHIVED_SUFFIXES = (".pt", ".pth", ".ckpt", ".pickle", ".wav", ".flac", ".tmp", ".tar.gz")


@dataclass(frozen=True)
class StepStatus:
    """One step of the campaign as the summary shows it."""

    step: str
    group: str
    cap_s: float
    status: str  # PENDING, PASS, FAIL, CUT, SKIP
    seconds: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class KeyNumber:
    """One training row of a key variant: ours, or a peer beside ours."""

    preset: str
    variant: str
    who: str  # "ours" or the peer's name
    source: str  # the file it was read from
    oom: bool
    oom_stage: str | None
    samples_per_s: float | None
    batch_size: int
    requested_batch_size: int | None
    settings: str  # what this side ran: dtype, attention, compile, optimizer
    ours_settings: str | None  # what our step beside it ran (peers)
    speedup_vs_ours: float | None  # per-sample time of ours over this row's (>1: it is faster)
    speedup_ci: tuple[float | None, float | None]
    metrics: dict[str, float | None]  # the summary's cells of `BenchRecord`'s metrics, by name
    unstable: bool | None


def describe(settings: dict[str, Any] | None) -> str:
    """A step's settings in a few words: precision, attention, compilation, optimizer."""
    if not settings:
        return "-"
    compiled = f"compile {settings.get('compile_mode') or 'default'}" if settings.get(
        "compile") else "eager"
    fused = settings.get("fused_adamw")
    adamw = ("AdamW (fused on a GPU)" if fused is None
             else "fused AdamW" if fused else "unfused AdamW")
    return (f"{settings.get('dtype')}, {settings.get('attention')}, {compiled}, {adamw}, "
            f"batch {settings.get('batch_size')}")


def key_rows(out: Path, preset: str, files: Sequence[str],
             variants: Sequence[str]) -> tuple[str, list[BenchRecord]]:
    """The training rows of ``variants`` under ``preset`` (no ablation rows) and where they
    were read: the first of ``files`` that exists, else the journal (a step cut before pytest
    wrote its JSON); the journal's last entry of a benchmark wins."""
    def wanted(r: BenchRecord) -> bool:
        return r.kind == "train" and not r.ablation and r.variant in variants

    for name in files:
        if (out / name).is_file():
            try:
                return name, [r for r in load_bench_file(out / name).records if wanted(r)]
            except UsageError:
                continue  # unreadable (cut mid-write): fall back to the journal
    latest: dict[str, BenchRecord] = {}
    for entry in Journal(out / "journal.jsonl").read():
        run = entry.get("run") or {}
        if (run.get("plan") or {}).get("preset") != preset:
            continue
        try:
            record = BenchRecord.from_json(entry["extra_info"])
        except (KeyError, UsageError):
            continue
        if wanted(record):
            latest[entry["benchmark"]] = record
    return "journal.jsonl", list(latest.values())


def key_numbers(out: Path, sources: dict[str, tuple[str, ...]],
                variants: Sequence[str]) -> list[KeyNumber]:
    """The key numbers of each preset (``sources``: preset -> its JSON files, best first)."""
    numbers = []
    for preset, files in sources.items():
        source, rows = key_rows(out, preset, files, variants)
        for r in sorted(rows, key=lambda r: (variants.index(r.variant), r.peer or "")):
            numbers.append(KeyNumber(
                preset=preset, variant=r.variant, who=r.peer or "ours", source=source,
                oom=r.oom, oom_stage=r.oom_stage, samples_per_s=r.samples_per_s,
                batch_size=r.batch_size, requested_batch_size=r.requested_batch_size,
                settings=describe(r.step_settings) if r.step_settings else describe(
                    {"dtype": r.dtype, "attention": r.attention, "compile": r.compile,
                     "compile_mode": r.compile_mode, "batch_size": r.batch_size}),
                ours_settings=describe(r.reference_settings) if r.reference_settings else None,
                speedup_vs_ours=r.speedup_vs_ours,
                speedup_ci=(r.speedup_ci_low, r.speedup_ci_high),
                metrics={cell.name: cell.value(getattr(r, name))
                         for name, cell in reported("summary")},
                unstable=r.unstable))
    return numbers


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def key_lines(numbers: Sequence[KeyNumber]) -> list[str]:
    """The key numbers as lines of text, a row and, for a peer, how ours compares."""
    lines = []
    for k in numbers:
        name = f"{k.preset:5} {k.variant} [{k.who}]"
        if k.oom:
            lines.append(f"{name:34} OOM at batch {k.batch_size} ({k.oom_stage})")
            continue
        batch = f"batch {k.batch_size}" + (f" (of {k.requested_batch_size}: did not fit)"
                                           if k.requested_batch_size else "")
        cells = [cell.shown(k.metrics.get(cell.name)) for _, cell in reported("summary")]
        lines.append(f"{name:34} {_fmt(k.samples_per_s, '9.1f')} spec/s  {batch}  "
                     + "  ".join(cells) + ("  unstable" if k.unstable else ""))
        if k.who != "ours":
            low, high = k.speedup_ci
            ours = (f"ours {1 / k.speedup_vs_ours:.2f}x its speed per sample "
                    f"[{_fmt(high and 1 / high, '.2f')}, {_fmt(low and 1 / low, '.2f')}]"
                    if k.speedup_vs_ours else "no speed-up (not timed beside ours)")
            lines.append(f"{'':34} speedup_vs_ours {_fmt(k.speedup_vs_ours, '.3f')}: {ours}")
            lines.append(f"{'':34} it: {k.settings}; ours: {k.ours_settings or '-'}")
    return lines


STEP_COLUMNS = ("step", "group", "status", "seconds", "cap s", "reason")


def _flat(number: KeyNumber) -> dict[str, Any]:
    """A key number as summary.json holds it: its metrics in place, beside its other fields."""
    flat: dict[str, Any] = {}
    for key, value in asdict(number).items():
        flat.update(value if key == "metrics" else {key: value})
    return flat


def write_summary(out: Path, info: dict[str, Any], steps: Sequence[StepStatus],
                  numbers: Sequence[KeyNumber], left_out: Sequence[str]) -> None:
    """``summary.json`` and ``summary.md`` in ``out``, each written in one step."""
    data = {**info, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "steps": [asdict(s) for s in steps], "key_numbers": [_flat(k) for k in numbers],
            "left_out_of_archive": list(left_out)}
    write_text_atomic(out / "summary.json", json.dumps(data, indent=1) + "\n")
    rows = [[s.step, s.group, s.status, f"{s.seconds:.0f}", f"{s.cap_s:.0f}",
             s.reason.replace("|", "/")] for s in steps]
    md = [f"# GPU campaign: {info.get('device', '?')}", "",
          f"mode {info.get('mode')}, budget {info.get('budget_s')} s, updated {data['updated']}",
          "", *markdown_table(STEP_COLUMNS, rows, right=("seconds", "cap s")).splitlines()]
    md += ["", "## Key numbers", "", "```", *(key_lines(numbers) or ["(none yet)"]), "```"]
    if left_out:
        md += ["", "Left out of campaign.tar.gz (size limit): " + ", ".join(left_out)]
    write_text_atomic(out / "summary.md", "\n".join(md) + "\n")


def _archived(out: Path) -> list[Path]:
    files = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if (path.is_file() and rel.parts[0] not in NOT_ARCHIVED_DIRS
                and not path.name.startswith(".") and not path.name.endswith(
                    NOT_ARCHIVED_SUFFIXES)):
            files.append(path)
    return files


def write_archive(out: Path, limit: int = ARCHIVE_LIMIT_BYTES) -> list[str]:
    """``campaign.tar.gz`` of ``out`` (logs, JSONs, reports; not `NOT_ARCHIVED_SUFFIXES` or
    run folders) under ``limit`` bytes: the largest files are left out until it fits; returns
    their names."""
    files = _archived(out)
    left_out: list[str] = []
    while True:
        with atomic_path(out / "campaign.tar.gz") as tmp, tarfile.open(tmp, "w:gz") as tar:
            for path in files:
                tar.add(path, arcname=f"{out.name}/{path.relative_to(out)}")
        if (out / "campaign.tar.gz").stat().st_size <= limit or not files:
            return left_out
        largest = max(files, key=lambda p: p.stat().st_size)
        files.remove(largest)
        left_out.append(str(largest.relative_to(out)))


def hand_back(out: Path, back: Path) -> None:
    """Copy `RETURNED` from ``out`` into ``back``, each file replaced in one step."""
    back.mkdir(parents=True, exist_ok=True)
    for name in RETURNED:
        if (out / name).is_file():
            with atomic_path(back / name) as tmp:
                shutil.copyfile(out / name, tmp)
    os.sync()
