"""passt.profiling: component breakdowns that add up, traces, scaling exponents, bad input."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import os
from pathlib import Path

import pytest
import torch

import passt
from passt.measure import build_step
from passt.measure.flops import torch_flops
from passt.measure.presets import get_preset
from passt.profiling import COMPONENTS, profile_scaling, profile_step, profile_variants
from passt.profiling.components import ATTENTION_CORE, MLP, component_of
from passt.utils.errors import UsageError
from tests import helpers

SMALL = {**helpers.SMALL, "embed_dim": 96, "depth": 2}
PRESET = dataclasses.replace(get_preset("cpu-small"), warmup=1, rounds=1, max_rounds=1)


@pytest.fixture(scope="module")
def tiny_variant():
    with helpers.forgetting_registrations():  # the registry as it was, after these tests
        passt.register_variant(passt.Variant(
            "test-profile-tiny", ("structured",), {"time": 40, "freq": 4}, settings=SMALL))
        yield "test-profile-tiny"


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, tiny_variant):
    out = tmp_path_factory.mktemp("profile")
    profiles = profile_variants([tiny_variant], PRESET, out, warmup=1, repeats=1)
    return out, profiles


@pytest.mark.slow
def test_every_field_is_filled(profiled, tiny_variant):
    out, profiles = profiled
    assert {p.kind for p in profiles} == {"train", "inference"}
    with open(out / "profile.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["variant"] for r in rows} == {tiny_variant}
    for r in rows:
        for field in ("kind", "phase", "component", "ms", "pct_of_step", "gflops", "bytes",
                      "step_ms", "unprofiled_ms", "device", "batch_size", "clip_seconds"):
            assert r[field] != "", (field, r)
    train = [r for r in rows if r["kind"] == "train"]
    assert {r["phase"] for r in train} == {"forward", "backward", "optimizer", "step"}
    assert sum(int(r["bytes"]) for r in train) > 0  # saved for backward
    for name in ("profile.md", "breakdown.png", "breakdown.svg", "saved_bytes.png"):
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_components_add_up_to_the_step(profiled, tiny_variant):
    _, profiles = profiled
    for p in profiles:
        ms = sum(r.ms for r in p.rows)
        assert ms == pytest.approx(p.step_ms, rel=0.05)
        assert all(r.component in COMPONENTS for r in p.rows)
    # the FLOPs add up exactly to FlopCounterMode's count of the same step, run on its own
    train = next(p for p in profiles if p.kind == "train")
    step = build_step(PRESET.settings(tiny_variant, compile=False), "train")
    assert round(1e9 * train.total_gflops) == torch_flops(step)


@pytest.mark.slow
def test_trace_has_an_event_for_every_component(profiled, tiny_variant):
    out, profiles = profiled
    train = next(p for p in profiles if p.kind == "train")
    with gzip.open(out / f"trace_{tiny_variant}.json.gz", "rt") as f:
        trace = json.load(f)
    names = {e["name"] for e in trace["traceEvents"]}
    timed = {r.component for r in train.rows if r.component != "other"}
    assert timed <= names
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in trace["traceEvents"])


@pytest.mark.slow
def test_attention_takes_a_larger_share_of_passt_b_than_of_passt_s():
    shares = {}
    for variant in ("passt-b", "passt-s"):
        settings = PRESET.settings(variant, compile=False, model_overrides=SMALL)
        profile = profile_step(build_step(settings, "train"), warmup=1, repeats=1)
        shares[variant] = profile.share(ATTENTION_CORE, of="gflops")
    assert shares["passt-b"] > shares["passt-s"]


@pytest.mark.slow
def test_attention_flops_grow_quadratically_and_mlp_linearly(tmp_path):
    points = profile_scaling(["passt-b"], PRESET, tmp_path, clips=[2.5, 5.0, 10.0],
                             overrides={"model_overrides": SMALL})
    from passt.profiling.scaling import exponent

    assert exponent(points, "attention_gflops") == pytest.approx(2.0, abs=0.1)
    assert exponent(points, "mlp_gflops") == pytest.approx(1.0, abs=0.05)
    for name in ("scaling.csv", "scaling.md", "scaling.png"):
        assert (tmp_path / name).is_file()


@pytest.mark.parametrize("name, component", [
    ("blocks.3.attn.qkv", "attention: qkv"), ("blocks.3.attn", ATTENTION_CORE),
    ("blocks.3.attn.proj", "attention: out proj"), ("blocks.3.mlp.fc1", MLP),
    ("blocks.3.norm1", "norms + residuals"), ("blocks.3", "norms + residuals"),
    ("head.1", "head + loss"), ("patch_embed.proj", "patch embedding"),
    ("patchout", "patchout"),
    # transformers' AST
    ("audio_spectrogram_transformer.encoder.layer.2.attention.attention.query",
     "attention: qkv"),
    ("audio_spectrogram_transformer.encoder.layer.2.attention.output.dense",
     "attention: out proj"),
    ("audio_spectrogram_transformer.encoder.layer.2.intermediate.dense", MLP),
    ("audio_spectrogram_transformer.encoder.layer.2.layernorm_before", "norms + residuals"),
    ("classifier.dense", "head + loss"),
])
def test_module_names_map_to_components(name, component):
    assert component_of(name) == component


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="unknown variant 'passt-x'"):
        profile_variants(["passt-x"], PRESET, tmp_path)
    with pytest.raises(UsageError, match="11.0 s gives 1100 frames, longer than the model's"):
        profile_variants(["passt-s"], PRESET, tmp_path, overrides={"clip_seconds": 11.0})
    with pytest.raises(UsageError, match="shorter than one patch"):
        profile_scaling(["passt-s"], PRESET, tmp_path, clips=[0.1, 5.0])
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: a file in the way instead
            locked = Path(tmp_path / "a-file")
            locked.write_text("")
        with pytest.raises(UsageError, match="cannot be written"):
            profile_variants(["passt-s"], PRESET, locked / "out")
    finally:
        os.chmod(tmp_path / "locked", 0o700)


def test_the_cli_names_bad_input(tmp_path, capsys):
    from passt.cli import main

    assert main(["profile", "--variants", "passt-x", "--out", str(tmp_path)]) == 2
    assert "unknown variant 'passt-x'" in capsys.readouterr().err
    assert main(["profile", "--scaling", "--clip-seconds", "5", "--out", str(tmp_path)]) == 2
    assert "--clip-seconds does not go with --scaling" in capsys.readouterr().err
    assert main(["profile", "--scaling", "--clips", "5,ten", "--out", str(tmp_path)]) == 2
    assert ("--clips '5,ten': expected a comma-separated list of numbers > 0"
            in capsys.readouterr().err)


class CudaLikeStep:
    """A step the profiler takes for a CUDA training step (its work runs on the CPU)."""

    def __init__(self, settings, kind):
        self.settings, self.kind = settings, kind
        self.device = type("Device", (), {"type": "cuda"})()
        self.calls = 0

    def __call__(self):
        self.calls += 1


@pytest.mark.parametrize("flag", [False, True])
def test_on_cuda_the_memory_history_is_recorded_after_timing_and_only_with_its_flag(
        monkeypatch, tmp_path, tiny_variant, flag):
    from passt.profiling import run

    events = []
    monkeypatch.setattr(run, "build_step", CudaLikeStep)
    monkeypatch.setattr(run, "synchronize", lambda device: None)
    monkeypatch.setattr(run, "profile_step", lambda step, **kw: events.append(
        ("profiled", step.kind)) or step.kind)
    monkeypatch.setattr(run, "write_profile", lambda profiles, out: None)
    monkeypatch.setattr(passt.profiling.run.torch.cuda.memory, "_record_memory_history",
                        lambda **kw: events.append(("history", kw)))
    monkeypatch.setattr(passt.profiling.run.torch.cuda.memory, "_snapshot",
                        lambda: {"segments": []})
    profile_variants([tiny_variant], PRESET, tmp_path, memory_history=flag)
    pickle = tmp_path / f"memory_{tiny_variant}.pickle"
    if not flag:
        assert events == [("profiled", "train"), ("profiled", "inference")]
        assert not pickle.exists()
        return
    assert events == [("profiled", "train"),
                      ("history", {"max_entries": run.HISTORY_ENTRIES, "stacks": "python"}),
                      ("history", {"enabled": None}), ("profiled", "inference")]
    assert run.HISTORY_ENTRIES <= 20_000 and pickle.is_file()


def test_scaling_on_cuda_measures_the_preset_batch_size(monkeypatch):
    from passt.profiling import scaling

    gpu = dataclasses.replace(get_preset("gpu"), device="cpu")  # its batch, on this CPU
    assert scaling.scaling_settings(gpu, "passt-s", 5.0).batch_size == scaling.CPU_BATCH
    monkeypatch.setattr(scaling, "resolve_device", lambda spec: torch.device("cuda", 0))
    assert scaling.scaling_settings(gpu, "passt-s", 5.0).batch_size == gpu.batch_size
    assert scaling.scaling_settings(gpu, "passt-s", 5.0, batch_size=8).batch_size == 8
    assert scaling.STEPS["cuda"][1] >= 5  # repeats: batch-size steps on a GPU vary more


def test_block_reductions_and_unknown_modules_get_rows_of_their_own(monkeypatch):
    # ToMe's matching and merging run inside the blocks: their own row, not the patch
    # embedding's or a block's; a module of the model no rule knows: "unattributed"
    from passt.profiling.components import components

    settings = PRESET.settings("passt-s-tome", compile=False,
                               model_overrides={**SMALL, "r": 10})
    step = build_step(settings, "train")
    step.model.extra = torch.nn.Linear(4, 4)  # a user's module, run in forward
    original = step.model.forward_features
    monkeypatch.setattr(step.model, "forward_features",
                        lambda x: original(x) + step.model.extra(torch.ones(4)).sum() * 0)
    profile = profile_step(step, warmup=1, repeats=1)
    assert profile.share("token reduction") > 0
    assert profile.share("token reduction", of="gflops") > 0  # the matching's matmul
    assert profile.share("unattributed") > 0
    names = components(["", "net", "net.blocks.0.attn", "extra", "extra.inner", "reduction"])
    assert names == {"net": None, "net.blocks.0.attn": ATTENTION_CORE, "extra": "unattributed",
                     "extra.inner": None, "reduction": "token reduction"}


def test_high_profiler_overhead_is_flagged():
    from passt.profiling.breakdown import StepProfile
    from passt.profiling.outputs import format_markdown

    base = dict(name="passt-s", kind="train", device="cpu", batch_size=2, clip_seconds=3.0,
                dtype="fp32", bytes_measure="", rows=[], events=[])
    slow = StepProfile(step_ms=155.0, unprofiled_ms=100.0, **base)
    fine = StepProfile(step_ms=110.0, unprofiled_ms=100.0, **{**base, "name": "passt-b"})
    md = format_markdown([slow, fine])
    assert "| profiler overhead | 55% **(high)** | 10% |" in md
    assert "- warning: the recorders made passt-s's train step 55% slower" in md
    assert "passt-b's train step" not in md
