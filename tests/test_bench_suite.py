"""The pytest-benchmark suite end to end on a tiny variant, and its option errors."""

from __future__ import annotations

import json
import math
import statistics
import sys
import textwrap
from pathlib import Path

import pytest

from passt.cli import main
from passt.measure.instructions import INSTALL_HINT
from passt.measure.journal import Journal
from tests.helpers import SMALL, run_bench

pytestmark = pytest.mark.integration

# Filled from measurement on every device.
MEASURED = ("seq_len", "params", "forward_gflops_per_sample", "train_gflops_per_sample",
            "activation_bytes_per_sample", "samples_per_s",
            "median_step_s", "achieved_tflops", "matmul_ceiling_tflops", "mfu_of_ceiling")
# Only measurable on a GPU with NVML and a datasheet peak.
GPU_ONLY = ("mfu", "peak_tflops", "joules_per_sample", "mean_power_w",
            "peak_memory_bytes_per_sample")


def test_suite_fills_every_field_from_measurement(tmp_path, tiny_plugin):
    out, journal = tmp_path / "out.json", tmp_path / "journal.jsonl"
    # a PATH without valgrind: --bench-instructions leaves the counts null and says why
    proc = run_bench(tiny_plugin, "--bench-variants", "tiny-s", "--bench-clip-seconds", "1",
                     "--bench-max-seconds", "2", f"--benchmark-json={out}",
                     f"--bench-journal={journal}", "--bench-instructions",
                     PATH=str(Path(sys.executable).parent))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["machine_info"]["passt_preset"] == "cpu-small"
    assert data["machine_info"]["torch"]
    by_kind = {b["extra_info"]["kind"]: b for b in data["benchmarks"]}
    assert set(by_kind) == {"train", "inference"}
    train = by_kind["train"]["extra_info"]
    assert train["variant"] == "tiny-s" and train["oom"] is False
    assert train["seq_len"] == 2 + (12 - 2) * (9 - 1)  # 1 s: 100 frames, 9 columns; 1 dropped
    for field in MEASURED:
        assert isinstance(train[field], (int, float)) and train[field] > 0, field
    for field in GPU_ONLY:
        assert field in train
    assert train["instructions"] is None and INSTALL_HINT in train["notes"]
    assert train["samples_per_s"] == pytest.approx(2 / by_kind["train"]["stats"]["median"])
    assert by_kind["inference"]["extra_info"]["seq_len"] == 2 + 12 * 9
    # the machine's speed beside each row, and the run's drift from the two rows' probes
    probes = [b["extra_info"]["probe_median_s"] for b in data["benchmarks"]]
    assert all(b["extra_info"]["probe_ci_low_s"] <= p <= b["extra_info"]["probe_ci_high_s"]
               for b, p in zip(data["benchmarks"], probes, strict=True))
    drift = max(abs(math.log(p / statistics.median(probes))) for p in probes)
    assert train["machine_drift"] == pytest.approx(drift)
    # each benchmark was journaled as soon as it finished
    assert [e["extra_info"]["kind"] for e in Journal(journal).read()] == ["train", "inference"]
    # a run compared with itself shows no regression, however wide its intervals
    assert main(["check", str(out), str(out), "--time-verdict"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--bench-preset", "laptop"],
     "unknown preset 'laptop'; known: auto, cpu-small, cpu-quick, paper, gpu; add your own "
     "with a plugin: --plugin FILE (pytest bench/: --bench-plugin FILE)"),
    (["--bench-variants", "passt-x"], "unknown variant(s) passt-x; known: passt-b"),
    (["--bench-batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    (["--bench-clip-seconds", "0.1"], "shorter than one patch (16 frames)"),
])
def test_bad_options_are_clear_errors(args, message, tiny_plugin):
    variants = [] if "--bench-variants" in args else ["--bench-variants", "tiny-s"]
    proc = run_bench(tiny_plugin, *variants, *args)
    assert proc.returncode == 4  # pytest's usage error: nothing was measured
    assert message in proc.stderr + proc.stdout


OOM_PLUGIN = textwrap.dedent(f"""
    import torch
    import passt
    from passt.patchout import StructuredPatchout

    class OomAtThree(StructuredPatchout, name="oom-at-three"):
        \"\"\"Structured patchout that runs out of memory on batches of three: the bench first
        sees that batch size in the timed steps' warm-up.\"\"\"

        def draw(self, grid, batch, device, generator):
            if batch == 3:
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")
            return super().draw(grid, batch, device, generator)

    passt.register_variant(passt.Variant(
        "tiny-oom", ("oom-at-three",), {{"time": 10, "freq": 2}}, settings={SMALL!r}))
""")


def test_an_oom_while_timing_is_a_row_and_the_next_benchmark_runs(tmp_path, tiny_plugin):
    plugin = tmp_path / "oom_variant.py"
    plugin.write_text(OOM_PLUGIN)
    out, journal = tmp_path / "out.json", tmp_path / "journal.jsonl"
    proc = run_bench(tiny_plugin, f"--bench-plugin={plugin}", "--bench-variants", "tiny-oom",
                     "--bench-clip-seconds", "1", "--bench-batch-size", "3",
                     "--bench-rounds", "2", "--bench-max-rounds", "2", "--bench-warmup", "1",
                     "--bench-replicas", "1", f"--benchmark-json={out}",
                     f"--bench-journal={journal}", "-k", "test_step")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {b["extra_info"]["kind"]: b["extra_info"] for b in json.loads(out.read_text())[
        "benchmarks"]}
    assert rows["train"]["oom"] is True and rows["train"]["batch_size"] == 3
    assert rows["inference"]["oom"] is False and rows["inference"]["samples_per_s"] > 0
    journaled = {e["extra_info"]["kind"]: e for e in Journal(journal).read()}
    assert journaled["train"]["extra_info"]["oom"] is True
    assert journaled["train"]["times_s"] == [] and len(journaled["inference"]["times_s"]) == 2


def test_resume_takes_finished_benchmarks_from_the_journal(tmp_path, tiny_plugin):
    journal = tmp_path / "journal.jsonl"
    args = ["--bench-variants", "tiny-s", "--bench-clip-seconds", "1", "--bench-rounds", "2",
            "--bench-max-rounds", "2",
            "--bench-warmup", "0", f"--bench-journal={journal}", "-k", "inference"]
    first = run_bench(tiny_plugin, *args, f"--benchmark-json={tmp_path / 'a.json'}")
    assert first.returncode == 0, first.stdout[-3000:]
    again = run_bench(tiny_plugin, *args, "--bench-resume",
                      f"--benchmark-json={tmp_path / 'b.json'}")
    assert again.returncode == 0, again.stdout[-3000:]
    assert len(Journal(journal).read()) == 1  # nothing measured the second time
    a, b = (json.loads((tmp_path / n).read_text())["benchmarks"][0] for n in ("a.json", "b.json"))
    assert a["stats"]["data"] == b["stats"]["data"] and a["extra_info"] == b["extra_info"]
    other = run_bench(tiny_plugin, *args, "--bench-resume", "--bench-rounds", "3",
                      "--bench-max-rounds", "3",
                      f"--benchmark-json={tmp_path / 'c.json'}")
    assert other.returncode == 0, other.stdout[-3000:]
    assert len(Journal(journal).read()) == 2  # other settings: measured again
    # the whole timing plan decides, replicas included (`Preset.plan_record`)
    replicas = run_bench(tiny_plugin, *args, "--bench-resume", "--bench-replicas", "2",
                         f"--benchmark-json={tmp_path / 'd.json'}")
    assert replicas.returncode == 0, replicas.stdout[-3000:]
    assert len(Journal(journal).read()) == 3


def test_bench_profile_breaks_down_the_benchmarked_variants(tmp_path, tiny_plugin):
    out = tmp_path / "profile"
    proc = run_bench(tiny_plugin, "--bench-variants", "tiny-s", "--bench-clip-seconds", "1",
                     "--bench-rounds", "1", "--bench-max-rounds", "1", "--bench-warmup", "0",
                     "--bench-journal=",
                     f"--bench-profile={out}", "-k", "inference")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = (out / "profile.csv").read_text().splitlines()
    assert {r.split(",")[0] for r in rows[1:]} == {"tiny-s"}
    assert {r.split(",")[1] for r in rows[1:]} == {"train", "inference"}
