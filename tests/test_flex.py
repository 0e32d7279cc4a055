"""FlexiViT's patch-size flexibility: the PI-resized kernel sees an upsampled patch as the native
kernel sees the patch, positional embeddings resize bilinearly, the native size is the
unreduced model exactly, and the parameters keep their native shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import passt
from passt.reductions.flex import pi_resize, pi_resize_matrix, resize_pos_embed
from tests.helpers import TINY

SMALL = {**TINY, "depth": 2, "frames": 200}


@pytest.mark.parametrize("new", [16, 20, 24, 32])
def test_pi_resize_keeps_the_token_of_an_upsampled_patch(new):
    # FlexiViT's defining property: <resize(x), PI-resize(w)> = <x, w> for every patch x
    torch.manual_seed(0)
    weight = torch.randn(8, 1, 16, 16, dtype=torch.float64)
    patches = torch.randn(5, 1, 16, 16, dtype=torch.float64)
    upsampled = F.interpolate(patches, size=(new, new), mode="bilinear", align_corners=False)
    resized = pi_resize(weight, pi_resize_matrix(16, new).double(), new)
    assert resized.shape == (8, 1, new, new)
    native = F.conv2d(patches, weight).flatten(1)
    flexed = F.conv2d(upsampled, resized).flatten(1)
    torch.testing.assert_close(flexed, native, atol=1e-4, rtol=1e-4)  # float32 matrix


def test_positional_embeddings_resize_linearly():
    ramp = torch.arange(10.0).reshape(1, 1, 10, 1)
    assert resize_pos_embed(ramp, 10, dim=2) is ramp
    out = resize_pos_embed(ramp, 20, dim=2).flatten()
    centres = (torch.arange(20) + 0.5) * 10 / 20 - 0.5  # align_corners=False sample points
    inside = (centres >= 0) & (centres <= 9)
    torch.testing.assert_close(out[inside], centres[inside])
    assert resize_pos_embed(ramp.transpose(2, 3), 7, dim=3).shape == (1, 1, 1, 7)


def test_native_size_is_the_unreduced_model_and_parameters_keep_their_shapes():
    torch.manual_seed(0)
    base = passt.create_model(reductions="none", **SMALL).eval()
    same = passt.create_model(reductions="flex", flex_patch_size=16, flex_stride=10,
                              **SMALL).eval()
    flex = passt.create_model(reductions="flex", flex_patch_size=24, **SMALL).eval()
    for model in (same, flex):
        model.load_state_dict(base.state_dict(), strict=True)
        assert {k: v.shape for k, v in model.state_dict().items()} == \
               {k: v.shape for k, v in base.state_dict().items()}
    mel = torch.randn(2, 1, 128, 200)
    with torch.no_grad():
        assert torch.equal(same(mel), base(mel))
        flex(mel)
    assert flex.cfg.embed_patch == (24, 15)  # the stride scaled alike: 10 * 24 // 16
    # 7 rows x 12 columns of 24-bin patches every 15 bins
    assert passt.token_counts(flex, mel) == [7 * 12 + 2] * 2
    flex.train()
    flex(mel).sum().backward()  # the native kernel learns through the resize
    assert flex.patch_embed.proj.weight.grad.abs().sum() > 0


def test_flex_needs_a_size_and_checks_clips():
    with pytest.raises(ValueError, match="give flex_patch_size"):
        passt.create_model(reductions="flex", **SMALL)
    model = passt.create_model(reductions="flex", flex_patch_size=24, **SMALL)
    with pytest.raises(ValueError, match=r"20 frames, shorter than one patch \(24 frames\)"):
        model(torch.randn(1, 1, 128, 20))
