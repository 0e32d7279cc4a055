"""Tests for passt.measure.peers: the official code and HF AST measured under our settings."""

import dataclasses
import importlib.util
import math

import pytest
import torch

from passt.measure import StepSettings, activation_bytes_per_sample, build_step, count_flops
from passt.measure.compiled import compile_stats
from passt.measure.peers import (
    PEERS,
    build_peer_step,
    peer_available,
    peer_settings,
    peer_unavailable_reason,
    peer_variants,
    profile_peer,
)
from tests.helpers import SMALL

pytest.importorskip("hear21passt")
pytestmark = [  # hear21passt's frontend uses deprecated torch APIs
    pytest.mark.filterwarnings("ignore:stft with return_complex=False:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*torch.cuda.amp.autocast:FutureWarning"),
]

PATCHOUT = {"passt-s": dict(time=5, freq=2), "passt-u": dict(drop=50),
            "passt-s-n": dict(time=3, freq=1), "passt-b": {}}


def tiny(variant: str = "passt-s", **kwargs) -> StepSettings:
    """2 s clips (200 frames) through a one-block, 64-wide model."""
    overrides = {**SMALL, **PATCHOUT.get(variant, {})}
    return StepSettings(**{"variant": variant, "clip_seconds": 2.0, "batch_size": 2,
                           "model_overrides": overrides, **kwargs})


def test_official_peer_with_our_weights_gives_our_logits():
    settings = tiny()
    ours = build_step(settings, "inference")
    peer = build_peer_step("official", settings, "inference")
    peer.model.net.load_state_dict(ours.model.state_dict())  # same keys, same shapes
    assert peer.num_params == ours.num_params
    # Each step's own frontend and model, waveform to logits.
    torch.testing.assert_close(peer.forward(), ours.forward(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["inference", "train"])
def test_official_sdpa_equals_official(kind):
    settings = tiny()
    explicit = build_peer_step("official", settings, kind)
    sdpa = build_peer_step("official-sdpa", settings, kind)
    sdpa.model.load_state_dict(explicit.model.state_dict())
    outputs = []
    for step in (explicit, sdpa):
        torch.manual_seed(1)  # the same frontend augmentation and patchout draws
        outputs.append(step.forward())
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["passt-s", "passt-u", "passt-s-n", "passt-b"])
@pytest.mark.parametrize("kind", ["train", "inference"])
def test_official_sequence_length_is_ours(variant, kind):
    settings = tiny(variant)
    assert build_peer_step("official", settings, kind).seq_len == build_step(settings,
                                                                             kind).seq_len


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_peer_train_step_runs_and_is_profiled(dtype):
    step = build_peer_step("official-sdpa", tiny(dtype=dtype))
    before = [p.detach().clone() for p in step.model.parameters()]
    step()
    step()
    assert any(not torch.equal(a, p) for a, p in zip(before, step.model.parameters(),
                                                     strict=True))
    record = profile_peer(step)
    numbers = {"seq_len": record.seq_len, "frames": record.frames,
               "batch_size": record.batch_size, "clip_seconds": record.clip_seconds,
               "params": record.params, "forward": record.forward_gflops_per_sample,
               "step": record.step_gflops_per_sample, "train": record.train_gflops_per_sample,
               "activation": record.activation_bytes_per_sample}
    for name, value in numbers.items():
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, name
    assert record.peer == "official-sdpa" and record.implementation.startswith("hear21p")
    assert record.attention == "sdpa" and record.dtype == dtype
    assert record.patchout_args == {"time": 5, "freq": 2}


@pytest.mark.slow
def test_official_costs_what_ours_costs_with_math_attention():
    settings = tiny(batch_size=1, attention="math")
    ours = count_flops(settings, "train")
    official = profile_peer(build_peer_step("official", settings))
    assert official.forward_gflops_per_sample == pytest.approx(ours.forward_torch, rel=1e-2)
    # The step differs only by the official frontend's pre-emphasis, a 2-tap conv1d that
    # the counter sees (ours is a subtraction): 2 * 2 * (samples - 1) FLOPs.
    extra = 2 * 2 * (64000 - 1) / 1e9
    assert official.step_gflops_per_sample == pytest.approx(ours.step_torch + extra, rel=1e-9)
    # Both explicit attentions save the same tensors for backward.
    assert official.activation_bytes_per_sample == pytest.approx(
        activation_bytes_per_sample(settings), rel=1e-2)


@pytest.mark.slow
def test_official_sdpa_costs_what_ours_costs_with_sdpa():
    settings = tiny(batch_size=1)
    ours = count_flops(settings, "train")
    peer = profile_peer(build_peer_step("official-sdpa", settings))
    assert peer.forward_gflops_per_sample == pytest.approx(ours.forward_torch, rel=1e-2)
    assert peer.step_gflops_per_sample == pytest.approx(ours.step_torch, rel=2e-2)


def test_official_code_prints_nothing(capsys):
    step = build_peer_step("official", tiny())
    step()
    assert capsys.readouterr().out == ""


def test_per_sample_patchout_has_no_official_equivalent():
    settings = tiny(model_overrides={**SMALL, "time": 5, "freq": 2, "per_sample": True})
    with pytest.raises(ValueError, match=r"per_sample=True has no official equivalent"):
        build_peer_step("official", settings)


def test_unknown_peer_is_a_clear_error():
    for call in (lambda: peer_available("timm"), lambda: build_peer_step("timm", tiny())):
        with pytest.raises(ValueError, match=r"unknown peer 'timm'; known: official, "
                                             r"official-sdpa, hf-ast"):
            call()


def test_availability_follows_the_installed_packages():
    assert peer_available("official") and peer_available("official-sdpa")
    assert peer_available("hf-ast") == (importlib.util.find_spec("transformers") is not None)
    assert PEERS.names() == ["official", "official-sdpa", "hf-ast"]


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_hf_ast_train_step_runs_unpatched(attention):
    pytest.importorskip("transformers")
    settings = tiny(attention=attention)
    step = build_peer_step("hf-ast", settings)
    assert step.seq_len == build_step(settings, "inference").seq_len  # AST has no patchout
    step()
    record = profile_peer(step)
    assert record.attention == attention and record.patchout_args == {}
    assert "unpatched equivalent of passt-s" in record.note
    assert record.forward_gflops_per_sample > 0


def test_hf_ast_has_the_ast_variants_full_sequence():
    pytest.importorskip("transformers")
    # 10.24 s is 1024 frames, AST's input: 12 x 101 patches and 2 tokens. Full width, one
    # block for speed.
    settings = StepSettings(variant="ast", clip_seconds=10.24, batch_size=2,
                            model_overrides={"depth": 1})
    step = build_peer_step("hf-ast", settings, "inference")
    assert step.frames == 1024 and step.seq_len == 1214
    assert step.model.net.config.hidden_size == 768
    assert step.seq_len == build_step(settings, "inference").seq_len
    assert step.forward().shape == (2, 527)


def test_a_broken_dependency_makes_a_peer_unavailable(monkeypatch):
    # e.g. a torchvision that does not match torch: hear21passt imports timm, which imports
    # torchvision, which raises RuntimeError, not ImportError
    real = importlib.import_module

    def broken(name, *args):
        if name.startswith("hear21passt"):
            raise RuntimeError("operator torchvision::nms does not exist")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", broken)
    assert not peer_available("official")
    assert "RuntimeError: operator torchvision::nms" in peer_unavailable_reason("official-sdpa")
    with pytest.raises(ModuleNotFoundError, match="peer 'official' is not available"):
        build_peer_step("official", tiny())


@pytest.mark.slow
def test_compiled_official_peer_compiles_once():
    # hear21passt's frontend draws fmin/fmax on the host each call: compiled with the model,
    # every call would recompile (and, past the limit, run eager); the model alone compiles once
    step = build_peer_step("official", tiny(compile=True, model_overrides={
        **SMALL, **PATCHOUT["passt-s"], "depth": 1}))
    for _ in range(3):
        step()
    stats = compile_stats()
    assert stats.graphs >= 1 and stats.recompiles == 0


def test_the_official_code_runs_as_released():
    ours = tiny(compile=True, dtype="bf16", attention="sdpa", fused_adamw=True)
    released = peer_settings("official", ours)
    # eager, its own attention, unfused AdamW; fp16 AMP is for GPUs (fp32 on this CPU)
    assert (released.compile, released.attention, released.fused_adamw) == (False, "math", False)
    assert released.dtype == "fp32" and released.compile_mode is None
    assert dataclasses.replace(released, dtype="bf16", attention="sdpa", compile=True,
                               fused_adamw=True) == ours
    assert peer_settings("official-sdpa", ours) == ours and peer_settings("hf-ast", ours) == ours


def test_hf_ast_is_measured_once_per_distinct_ast():
    def settings_of(variant):
        return tiny(variant)  # passt-s-n's AST has stride 16 (no overlap)

    variants = ["passt-s", "passt-b", "passt-u", "passt-s-n"]
    reasons = peer_variants("hf-ast", variants, settings_of)
    assert reasons["passt-s"] is None and reasons["passt-s-n"] is None
    assert reasons["passt-b"] == reasons["passt-u"] == (
        "the same model as for passt-s (hf-ast has no patchout)")
    assert peer_variants("official", variants, settings_of) == dict.fromkeys(variants)
