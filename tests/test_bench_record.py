"""`BenchRecord`: its JSON round trip, rows of earlier versions, bad rows, the field table of
docs/benchmarks.md, and that every field the readers read exists."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from passt.measure.bench_file import load_bench_file
from passt.measure.bench_record import (
    GROUPS,
    BenchRecord,
    required_fields,
)
from passt.measure.field_table import HEADER, field_table
from passt.report import write_report
from passt.report.inputs import TABLE1_NEEDS
from passt.utils.errors import UsageError
from tests.doc_pages import PAGES
from tests.record_reads import record_reads

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "bench_small.json"
OLD_SCHEMA = [FIXTURE]
COMMITTED = [ROOT / "reports" / "bench.json",
             *sorted((ROOT / "reports" / "baselines").glob("*.json"))]
READERS = ["passt/report/table.py", "passt/report/inputs.py", "passt/measure/regress.py",
           "passt/report/ablation.py", "bench/campaign.py"]
NAMES = {f.name for f in dataclasses.fields(BenchRecord)}
SETTINGS = BenchRecord(variant="passt-s", kind="train", batch_size=2, clip_seconds=3.0,
                       dtype="bf16", attention="sdpa", compile=True, device="cuda:0")


def every_field_set() -> BenchRecord:
    """A record with no field left at its default."""
    measured = BenchRecord.from_json(
        json.loads(FIXTURE.read_text())["benchmarks"][0]["extra_info"])
    return dataclasses.replace(
        measured, compile=True, compile_mode="max-autotune", peer="official",
        implementation="hear21passt 0.0.26", note="a note", ablation="fp16",
        patchout_args={"time": 12, "freq": 4}, reduction="tome", reduction_args={"r": 8},
        acts="both", seq_len_per_block=(350, 342), peak_memory_bytes_per_sample=4.5e8,
        peak_memory_intercept_bytes=2e9, peak_memory_points={16: 9_000_000_000, 64: None},
        oom_batch_sizes=(64,), timed_rounds=20, warmup_rounds=5, peak_tflops=989.0, mfu=0.4,
        instructions=2.8e7, instructions_spread=0.002,
        instructions_settings={"batch_size": 1, "repeats": 3},
        joules_per_sample=1.5, mean_power_w=500.0, mean_gpu_util_pct=97.0,
        energy_window_s=3.0, energy_steps=24, sm_clock_min_mhz=1755, sm_clock_max_mhz=1980,
        sm_clock_median_mhz=1950.0, timed_power_w=610.0, oom_stage="memory-fit",
        requested_batch_size=128, compile_graphs=1, compile_graph_breaks=0, compile_recompiles=0,
        compile_seconds=12.5, compile_cudagraph_skips=1,
        compile_cudagraph_skip_reasons=("mutated inputs",), oom=True, notes=("fvcore failed",),
        median_ci_low_s=0.9, median_ci_high_s=1.1, ci_half_width=0.1, iqr_over_median=0.05,
        unstable=True, replica_medians_s=(0.95, 1.0, 1.05), foreign_cpu_fraction=0.2,
        probe_median_s=0.025, probe_ci_low_s=0.024, probe_ci_high_s=0.026, machine_drift=0.04,
        speedup_vs_ours=1.2, speedup_ci_low=1.1, speedup_ci_high=1.3,
        ours_median_s=1.2, above_ceiling=False, gpu_throttle_reasons=("hw_slowdown",),
        step_settings={"variant": "passt-s", "batch_size": 2}, round_plan={"preset": "gpu"},
        reference_settings={"variant": "passt-s", "batch_size": 2})


def test_round_trip_through_json():
    record = every_field_set()
    defaults = BenchRecord(**{n: getattr(record, n) for n in required_fields()})
    left = [n for n in NAMES - set(required_fields())
            if getattr(record, n) == getattr(defaults, n)]
    assert left == []  # the test covers every field
    data = record.to_json()
    assert list(data) == [f.name for f in dataclasses.fields(BenchRecord)]
    assert json.loads(json.dumps(data)) == data  # JSON-ready as it is
    assert BenchRecord.from_json(json.loads(json.dumps(data))) == record
    assert data["peak_memory_points"] == {"16": 9_000_000_000, "64": None}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_runs_load_with_their_stability(path):
    measured = [r for r in load_bench_file(path).records if not r.oom]
    assert measured and all(r.timed_rounds >= 6 and r.median_ci_low_s <= r.median_step_s
                            <= r.median_ci_high_s and r.round_plan is not None
                            for r in measured)


@pytest.mark.parametrize("path", OLD_SCHEMA, ids=lambda p: p.name)
def test_files_of_the_previous_schema_load(path):
    records = load_bench_file(path).records
    assert records and all(r.timed_rounds is None and r.compile_mode is None
                           and r.compile_graphs is None and r.energy_window_s is None
                           for r in records)
    measured = [r for r in records if not r.oom]
    assert all(r.samples_per_s > 0 and r.seq_len > 0 for r in measured)


def test_old_rows_by_kind():
    rows = {(r.variant, r.kind, r.peer): r for r in load_bench_file(FIXTURE).records}
    oom = rows[("passt-u", "train", None)]
    assert oom.oom and oom.batch_size == 2 and oom.samples_per_s is None and oom.notes == ()
    peer = rows[("passt-s", "train", "official")]
    assert peer.implementation == "hear21passt 0.0.26" and peer.attention == "math"
    assert peer.forward_gflops_per_sample_fvcore is None
    inference = rows[("passt-s", "inference", None)]
    assert inference.train_gflops_per_sample is None and inference.seq_len == 350
    assert rows[("passt-b", "train", None)].peak_memory_points == {}


@pytest.mark.slow
def test_the_committed_report_comes_from_the_committed_run(tmp_path):
    """reports/table1.* are what `tox -e bench` writes from the committed run and sweep."""
    write_report(ROOT / "reports" / "bench.json", tmp_path,
                 ROOT / "reports/sweep/equal-compute/maps.csv")
    for name in ("table1.csv", "table1.md"):
        assert (tmp_path / name).read_text() == (ROOT / "reports" / name).read_text(), name


def test_unknown_keys_are_dropped():
    record = BenchRecord.from_json({**SETTINGS.to_json(), "written_by_a_later_version": 1})
    assert record == SETTINGS and "written_by_a_later_version" not in record.to_json()


@pytest.mark.parametrize(("change", "message"), [
    ({"variant": None, "device": None}, "lacks fields variant, device"),
    ({"seq_len": "long"}, "field seq_len should be an integer, got 'long'"),
    ({"batch_size": True}, "field batch_size should be an integer, got True"),
    ({"samples_per_s": "1.5"}, "field samples_per_s should be a number"),
    ({"compile": 1}, "field compile should be true or false"),
    ({"notes": "a note"}, "field notes should be a list"),
    ({"peak_memory_points": {"sixteen": 1}}, "field peak_memory_points should have integer "
                                              "keys, got 'sixteen'"),
])
def test_bad_rows_name_the_field(change, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        BenchRecord.from_json({**SETTINGS.to_json(), **change})


def test_a_bad_row_in_a_file_names_the_file_and_benchmark(tmp_path):
    data = json.loads(FIXTURE.read_text())
    data["benchmarks"][2]["extra_info"]["seq_len"] = 1.5
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=re.escape(
            "run.json: benchmark bench/test_passt.py::test_step[passt-s-train]: field seq_len "
            "should be an integer, got 1.5")):
        load_bench_file(path)


def test_every_field_has_a_group_and_a_doc():
    for f in dataclasses.fields(BenchRecord):
        assert f.metadata["group"] in GROUPS and f.metadata["doc"], f.name
    used = {f.metadata["group"] for f in dataclasses.fields(BenchRecord)}
    assert list(GROUPS) == [g for g in GROUPS if g in used]  # no empty group


def test_named_fields_exist():
    for name in TABLE1_NEEDS:
        assert name in NAMES, name


def test_readers_read_only_fields_of_the_record():
    sources = {p: (ROOT / p).read_text() for p in READERS}
    reads = record_reads(sources)
    attributes = set(dir(BenchRecord)) | NAMES
    assert [r for r in reads if r.attr not in attributes] == []
    # the check sees the reads of every reader, not none
    assert {r.path for r in reads} == set(READERS)
    assert len(reads) > 60


def test_the_reader_check_catches_a_misspelt_field():
    code = '''
def speed(rows: list[BenchRecord]) -> float:
    return sum(r.sample_per_s for r in rows if not r.oom)
'''
    assert {r.attr for r in record_reads({"x.py": code})} == {"sample_per_s", "oom"}


def shown_field_tables() -> dict[str, str]:
    """Each page of README.md and docs/ that shows a table starting with the field table's
    header: that table, through its last row."""
    shown = {}
    for page in PAGES:
        lines = page.read_text().splitlines()
        if HEADER[0] in lines:
            start = lines.index(HEADER[0])
            end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")),
                       len(lines))
            shown[str(page.relative_to(ROOT))] = "\n".join(lines[start:end]) + "\n"
    return shown


def test_the_docs_field_table_is_generated():
    """docs/benchmarks.md, and no other page, shows `python -m passt.measure.field_table`
    verbatim."""
    assert shown_field_tables() == {"docs/benchmarks.md": field_table()}


def test_the_run_s_commit_and_time_are_read(tmp_path):
    data = json.loads((ROOT / "reports" / "bench.json").read_text())
    run = load_bench_file(ROOT / "reports" / "bench.json")
    assert run.commit_info == data["commit_info"] and run.commit_info["id"]
    assert run.datetime == data["datetime"]
    del data["commit_info"], data["datetime"]  # a file of a run outside git, or hand-made
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(data))
    bare = load_bench_file(path)
    assert bare.commit_info == {} and bare.datetime is None
