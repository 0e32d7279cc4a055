"""EViT attention pruning against the paper's definition: keep_rate=1 is the unreduced model,
tokens follow the keep rate at the given blocks, and one block computed by hand (explicit
softmax attention, top-k by class attention, the rest fused by that attention) gives the
model's logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import passt
from passt.reductions.block import PROTECTED
from passt.reductions.evit import paper_locations
from tests import helpers

SMALL = {**helpers.SMALL, "depth": 4, "frames": 200}


@pytest.mark.parametrize("train", [False, True])
def test_keep_rate_one_is_the_unreduced_model_exactly(train):
    torch.manual_seed(0)
    base = passt.create_model(reductions="structured", time=3, freq=1, **SMALL).train(train)
    model = passt.create_model(reductions="structured+evit", keep_rate=1.0, time=3, freq=1,
                               **SMALL).train(train)
    model.load_state_dict(base.state_dict(), strict=True)
    mel = torch.randn(2, 1, 128, 200)
    torch.manual_seed(1)
    expected = base(mel)
    torch.manual_seed(1)
    assert torch.equal(model(mel), expected)


@pytest.mark.parametrize("keep_rate, locations", [(0.7, None), (0.5, (0, 2)), (0.9, (3,))])
def test_tokens_follow_the_keep_rate(keep_rate, locations):
    model = passt.create_model(reductions="evit", keep_rate=keep_rate, locations=locations,
                               **SMALL).eval()
    counts = passt.token_counts(model, torch.randn(1, 1, 128, 200))
    # written out: after each location, ceil(keep_rate * patch tokens) stay, plus the fused one
    expected, tokens = [], 12 * 19
    for block in range(4):
        expected.append(tokens + PROTECTED)
        if block in (locations if locations is not None else paper_locations(4)):
            tokens = math.ceil(keep_rate * tokens) + 1
    assert counts == expected
    assert paper_locations(12) == (3, 6, 9)


def test_one_pruning_block_by_hand():
    torch.manual_seed(0)
    model = passt.create_model(reductions="evit", keep_rate=0.6, locations=(0,),
                               **{**helpers.TINY, "depth": 2}, frames=100).eval()
    mel = torch.randn(2, 1, 128, 100)
    block = model.blocks[0]
    with torch.no_grad():
        x = model.tokens(mel)
        B, N, E = x.shape
        h = block.norm1(x)
        q, k, v = block.attn.qkv(h).reshape(B, N, 3, 2, E // 2).permute(2, 0, 3, 1, 4)
        weights = ((q @ k.transpose(-2, -1)) / math.sqrt(E // 2)).softmax(-1)
        x = x + block.attn.proj(((weights @ v).transpose(1, 2)).reshape(B, N, E))
        cls_attention = weights[:, :, 0, PROTECTED:].mean(1)  # [B, patches]
        keep = math.ceil(0.6 * (N - PROTECTED))
        rows = []
        for b in range(B):
            top = sorted(cls_attention[b].argsort(descending=True)[:keep].tolist())
            rest = [i for i in range(N - PROTECTED) if i not in top]
            fused = sum(cls_attention[b, i] * x[b, PROTECTED + i] for i in rest)
            rows.append(torch.cat([x[b, :PROTECTED], x[b, PROTECTED:][top], fused[None]]))
        x = torch.stack(rows)
        x = x + block.mlp(block.norm2(x))
        x, _ = model.blocks[1](x)  # a plain block: the fused token is attended to there
        x = model.norm(x)
        expected = model.head((x[:, 0] + x[:, 1]) / 2)
        got = model(mel)
    assert x.shape[1] == PROTECTED + keep + 1
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_fuse_off_drops_and_bad_settings_are_refused():
    model = passt.create_model(reductions="evit", keep_rate=0.5, locations=(1,), fuse=False,
                               **SMALL).eval()
    assert passt.token_counts(model, torch.randn(1, 1, 128, 200)) == [230, 230, 116, 116]
    with pytest.raises(ValueError, match=r"evit: locations \[5\] reach past the model's 4 "
                                         "blocks; accepted: 0 to 3"):
        passt.create_model(reductions="evit", locations=(5,), **SMALL)
    with pytest.raises(ValueError, match=r"evit: keep_rate must be in \(0, 1\], got 0"):
        passt.create_model(reductions="evit", keep_rate=0, **SMALL)


def test_class_attention_row_is_the_attention_the_block_computed():
    # BlockView.attention_of recomputes a row SDPA does not return: it must be the softmax
    # row of the explicit (math path) attention, sizes included
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 4)
    size = torch.tensor([1.0, 1, 2, 1, 3, 1, 1]).expand(2, 7).unsqueeze(-1)
    view = passt.BlockView(0, 1, q, k, 0.5, size, 5, None)
    logits = (q @ k.transpose(-2, -1)) * 0.5 + size.log().transpose(1, 2).unsqueeze(1)
    torch.testing.assert_close(view.attention_of(0), F.softmax(logits, -1)[:, :, 0].mean(1))
