"""The model against the official PaSST code, and its input handling."""

from __future__ import annotations

import pytest
import torch

import passt
from tests.helpers import NoHostSync, quiet, token_count


@pytest.mark.slow
def test_official_state_dict_loads_strictly_and_logits_match(official_passt_s):
    ours = passt.create_model("passt-s", checkpoint=official_passt_s.state_dict()).eval()
    assert ours.state_dict().keys() == official_passt_s.state_dict().keys()
    for frames in (998, 400):  # full length, and a short input that crops the time embedding
        x = torch.randn(1, 1, 128, frames, generator=torch.Generator().manual_seed(frames))
        with torch.no_grad():
            ref_logits, ref_features = quiet(official_passt_s, x)
            logits = ours(x)
            features = ours.forward_features(x)
        assert logits.shape == (1, 527)
        assert (logits - ref_logits).abs().max() < 1e-4
        assert (features - ref_features).abs().max() < 1e-4


def test_math_and_sdpa_attention_agree(small_model):
    model = small_model("passt-b").eval()
    x = torch.randn(2, 128, 200)
    with torch.no_grad():
        sdpa = model(x)
        model.set_attention("math")
        math = model(x)
    assert model.blocks[0].attn.path == "math"
    torch.testing.assert_close(sdpa, math, atol=1e-5, rtol=1e-4)


def test_input_layouts_and_outputs(small_model):
    model = small_model("passt-b", num_classes=10).eval()
    x = torch.randn(3, 128, 100)
    with torch.no_grad():
        a, b = model(x), model(x.unsqueeze(1))
        features = model.forward_features(x)
    assert a.shape == (3, 10) and features.shape == (3, 64)
    torch.testing.assert_close(a, b)


def test_training_crops_time_embedding_at_random_offsets(small_model):
    model = small_model("passt-b", seed=0).train()
    x = torch.randn(1, 128, 200)
    outs = [model.forward_features(x) for _ in range(4)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), model.forward_features(x))


@pytest.mark.parametrize("shape, match", [
    ((2, 2, 128, 100), r"\[B, 1, 128, T\] or \[B, 128, T\], got shape \[2, 2, 128, 100\]"),
    ((128, 100), r"got shape \[128, 100\]"),
    ((2, 64, 100), r"expected 128 mel bands, got 64"),
    ((1, 128, 1200), r"the input gives 1200 frames, longer than the model's time embedding "
                     r"\(998 frames\); accepted: 16 to 998 frames"),
    ((1, 128, 8), r"8 frames, shorter than one patch \(16 frames\)"),
])
def test_bad_input_is_a_clear_error(small_model, shape, match):
    with pytest.raises(ValueError, match=match):
        small_model("passt-b")(torch.randn(*shape))


def test_config_validation():
    with pytest.raises(ValueError, match="embed_dim=100 is not divisible by num_heads=12"):
        passt.create_model("passt-b", embed_dim=100)
    with pytest.raises(ValueError, match="model setting attention='flash': expected one of "
                                         "sdpa, math"):
        passt.create_model("passt-b", attention="flash")
    with pytest.raises(ValueError, match="model setting depth=0: expected a positive integer"):
        passt.create_model("passt-b", depth=0)
    with pytest.raises(ValueError, match="model setting mlp_ratio='4x': expected a number"):
        passt.create_model("passt-b", mlp_ratio="4x")
    with pytest.raises(ValueError, match="model setting depth=True: expected an integer"):
        passt.create_model("passt-b", depth=True)


def test_training_sequence_is_shorter_only_in_training(small_model):
    model = small_model("passt-s")
    x = torch.randn(2, 128, 998)
    assert token_count(model.train(), x) == 474
    with torch.no_grad():
        assert token_count(model.eval(), x) == 1190


@pytest.mark.parametrize("name, per_sample", [("passt-s", False), ("passt-u", True)])
def test_training_step_draws_without_host_sync(small_model, name, per_sample):
    model = small_model(name, seed=0, per_sample=per_sample).train()
    x = torch.randn(2, 128, 500)
    with NoHostSync():
        model(x).sum().backward()
    # the guard is real: reading a value back trips it
    with pytest.raises(RuntimeError, match="host synchronisation"), NoHostSync():
        model(x).sum().item()
