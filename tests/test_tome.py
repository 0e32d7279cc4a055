"""Token merging (ToMe) against the paper's definition: r=0 is the unreduced model, N - r*i
tokens per block, bipartite matching and size-weighted merging by a plain reference, and
proportional attention that makes a merged pair of identical tokens invisible to the others."""

from __future__ import annotations

import pytest
import torch

import passt
from passt.reductions.block import PROTECTED, BlockView
from tests import helpers
from tests.helpers import NoHostSync

SMALL = {**helpers.SMALL, "depth": 3, "frames": 200}


def _pair(reduction_args: dict, reductions: str = "tome", **overrides):
    """The model without its block reduction and the one with it (``reductions``), the same
    weights, eval mode."""
    torch.manual_seed(0)
    plain = "+".join(n for n in reductions.split("+") if n != "tome") or "none"
    base = passt.create_model(reductions=plain, **{**SMALL, **overrides}).eval()
    model = passt.create_model(reductions=reductions, **{**SMALL, **overrides}, **reduction_args)
    model.load_state_dict(base.state_dict(), strict=True)
    return base, model.eval()


@pytest.mark.parametrize("train", [False, True])
def test_r_zero_is_the_unreduced_model_exactly(train):
    base, model = _pair({"r": 0}, reductions="structured+tome", time=3, freq=1)
    base.train(train), model.train(train)
    mel = torch.randn(2, 1, 128, 200)
    torch.manual_seed(1)
    expected = base(mel)
    torch.manual_seed(1)  # the same patchout draw
    assert torch.equal(model(mel), expected)


def _expected_counts(n: int, r: int, depth: int) -> list[int]:
    counts = [n]
    for _ in range(depth - 1):
        counts.append(counts[-1] - min(r, (counts[-1] - PROTECTED) // 2))
    return counts


@pytest.mark.parametrize("r", [1, 8, 30, 200])
def test_tokens_per_block_follow_n_minus_r_i(r):
    _, model = _pair({"r": r}, depth=6)
    counts = passt.token_counts(model, torch.randn(1, 1, 128, 200))
    n = 12 * 19 + PROTECTED  # 200 frames: 19 columns
    if r * 5 <= (n - PROTECTED) // 2:  # no block runs out of tokens to merge
        assert counts == [n - r * i for i in range(6)]
    assert counts == _expected_counts(n, r, 6)
    assert passt.variants.seq_len_per_block(model.cfg, 200) == counts  # meta device alike


def test_a_fraction_and_a_schedule():
    _, model = _pair({"r": 0.1})
    assert passt.token_counts(model, torch.randn(1, 1, 128, 200)) == [230, 208, 186]  # 22/block
    _, model = _pair({"r": [5, 0, 7]})
    assert passt.token_counts(model, torch.randn(1, 1, 128, 200)) == [230, 225, 225]
    with pytest.raises(ValueError, match="r lists 2 counts for a model of 3 blocks"):
        passt.create_model(reductions="tome", r=[1, 2], **SMALL)
    with pytest.raises(ValueError, match=r"tome: r=0.7 is not accepted; accepted: tokens "):
        passt.create_model(reductions="tome", r=0.7, **SMALL)


def _reference_merge(x, size, keys, r):
    """ToMe's bipartite soft matching written out per sample with Python loops."""
    out_x, out_s = [], []
    for xs, ss, ks in zip(x, size, keys.mean(1), strict=True):
        tokens, sizes = xs[PROTECTED:], ss[PROTECTED:]
        metric = torch.nn.functional.normalize(ks[PROTECTED:], dim=-1)
        a, b = list(range(0, len(tokens), 2)), list(range(1, len(tokens), 2))
        match = {i: max(b, key=lambda j, i=i: float(metric[i] @ metric[j])) for i in a}
        best = sorted(a, key=lambda i: -float(metric[i] @ metric[match[i]]))[:r]
        groups = {j: [j] for j in b}
        for i in best:
            groups[match[i]].append(i)
        kept = [i for i in a if i not in best]
        merged_x = [tokens[i] for i in kept] + [
            sum(tokens[k] * sizes[k] for k in groups[j]) / sum(sizes[k] for k in groups[j])
            for j in b]
        merged_s = [sizes[i] for i in kept] + [sum(sizes[k] for k in groups[j]) for j in b]
        out_x.append(torch.cat([xs[:PROTECTED], torch.stack(merged_x)]))
        out_s.append(torch.cat([ss[:PROTECTED], torch.stack(merged_s)]))
    return torch.stack(out_x), torch.stack(out_s)


def test_matching_and_merging_follow_the_definition():
    torch.manual_seed(0)
    tome = passt.create_block_reduction("tome", r=4)
    x, keys = torch.randn(2, 13, 8), torch.randn(2, 2, 13, 4)
    size = torch.randint(1, 4, (2, 13, 1)).float()
    view = BlockView(0, 1, keys, keys, 0.5, size, 11, None)
    got_x, got_s = tome(x, size, view)
    want_x, want_s = _reference_merge(x, size, keys, 4)
    assert got_x.shape == (2, 13 - 4, 8)
    torch.testing.assert_close(got_x, want_x)
    assert torch.equal(got_s, want_s)
    assert torch.equal(got_x[:, :PROTECTED], x[:, :PROTECTED])  # never merged


def test_proportional_attention_merges_identical_tokens_invisibly():
    # Two identical patch tokens merged into one of size 2: with log(2) added to its attention
    # logit, every other token attends as before, so their outputs, and the model's, stay.
    torch.manual_seed(0)
    model = passt.create_model(reductions="tome", r=[1, 0], **{**SMALL, "depth": 2}).eval()
    base = passt.create_model(reductions="none", **{**SMALL, "depth": 2}).eval()
    base.load_state_dict(model.state_dict())
    x = torch.randn(1, 12, 64)
    x[:, PROTECTED + 1] = x[:, PROTECTED]  # patches 0 (set A) and 1 (set B): cosine 1
    with torch.no_grad():
        merged = model.blocks(x, model.reduction)
        plain = base.blocks(x, base.reduction)
    assert merged.shape[1] == 11
    # after the merge: class, distillation, set A less patch 0 (patches 2, 4, 6, 8), then set B
    # with patch 1 standing for both (1, 3, 5, 7, 9); their places before it
    before = [0, 1, *(PROTECTED + p for p in (2, 4, 6, 8, 1, 3, 5, 7, 9))]
    torch.testing.assert_close(merged, plain[:, before], atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # without proportional attention the others' outputs change
        plain_again = base.blocks(torch.cat([x[:, :PROTECTED + 1], x[:, PROTECTED + 2:]], 1),
                                  base.reduction)
    assert not torch.allclose(plain_again[:, :2], plain[:, :2], atol=1e-4)


@pytest.mark.parametrize("path", ["sdpa", "math"])
def test_size_bias_equals_duplicated_keys(path):
    # attention over keys (k1 of size 2, k2, ...) = attention over (k1, k1, k2, ...)
    torch.manual_seed(0)
    attn = passt.model.Attention(16, 2, 0.0, 0.0, path).eval()
    x = torch.randn(1, 5, 16)
    dup = torch.cat([x[:, :1], x], dim=1)
    size = torch.tensor([[2.0, 1, 1, 1, 1]]).unsqueeze(-1)
    with torch.no_grad():
        out, _, _ = attn(x, passt.reductions.block.size_bias(size, x.dtype))
        want, _, _ = attn(dup)
    torch.testing.assert_close(out, want[:, 1:], atol=1e-6, rtol=1e-5)


def test_training_step_makes_no_host_sync():
    _, model = _pair({"r": 5}, reductions="structured+tome", time=3, freq=1)
    model.train()
    with NoHostSync():
        model(torch.randn(2, 1, 128, 200)).sum().backward()


@pytest.mark.slow
def test_compiled_training_step_has_no_graph_break_and_no_host_sync():
    # One forward and one backward graph (fullgraph=True would raise on a graph break), and
    # none of their ops reads a value back to the host. The graphs are AOT autograd's, kept
    # before inductor's code generation, to keep the test short; the frontend compiles in
    # test_compile.py.
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def keep(gm, example_inputs):
        graphs.append(gm)
        return gm

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = passt.create_model("passt-s-tome", **{**helpers.TINY, "depth": 2},
                               **helpers.FEW_PATCHES, frames=200).train()

    def step(mel, targets):
        return torch.nn.functional.binary_cross_entropy_with_logits(model(mel), targets)

    compiled = torch.compile(step, fullgraph=True,
                             backend=aot_autograd(fw_compiler=keep, bw_compiler=keep))
    for batch in (2, 3):  # a symbolic batch, as the GPU preset compiles
        mel, targets = torch.randn(batch, 1, 128, 200), torch.rand(batch, 527)
        torch._dynamo.mark_dynamic(mel, 0)
        torch._dynamo.mark_dynamic(targets, 0)
        compiled(mel, targets).backward()
    ops = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    assert len(graphs) == 2  # compiled once for both batches: forward and backward
    assert "aten.scatter_reduce.two" in ops  # the merge is in the graph
    assert not {op for op in ops if "local_scalar_dense" in op or op.endswith(".item")}
    torch._dynamo.reset()
