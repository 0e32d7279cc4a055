"""The block-reduction contract: a user's strategy in one class, registered by name, composed
with patchout, acting in training, eval or both; token counts per block; strategies that see
the input (patch energies)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import passt
import passt.patchout
import passt.reductions.block
import passt.variants
from passt.reductions.block import PROTECTED
from tests import helpers

SMALL = {**helpers.SMALL, "depth": 3, "frames": 200}




def _drop_half(acts_default: str = "both"):
    class DropHalf(passt.BlockReduction, name="test-drop-half"):
        """Keep the first half of the patch tokens after every block."""

        acts = acts_default

        def reduce(self, x, size, view):
            keep = PROTECTED + (x.shape[1] - PROTECTED + 1) // 2
            return x[:, :keep], None if size is None else size[:, :keep]

    return DropHalf


def test_a_users_strategy_composes_by_name_and_acts_when_it_says(registries):
    _drop_half()
    assert "test-drop-half" in passt.list_block_reductions()
    assert "test-drop-half" in passt.list_reductions()
    mel = torch.randn(1, 1, 128, 200)
    both = passt.create_model(reductions="structured+test-drop-half", time=3, freq=1, **SMALL)
    assert passt.token_counts(both.train(), mel) == [2 + 11 * 16, 2 + 88, 2 + 44]
    assert passt.token_counts(both.eval(), mel) == [230, 2 + 114, 2 + 57]
    train_only = passt.create_model(reductions="test-drop-half", acts="train", **SMALL)
    assert passt.token_counts(train_only.eval(), mel) == [230] * 3
    assert passt.token_counts(train_only.train(), mel) == [230, 116, 59]
    eval_only = passt.create_model(reductions="test-drop-half", acts="eval", **SMALL)
    assert passt.token_counts(eval_only.train(), mel) == [230] * 3
    passt.register_variant(passt.Variant("test-half", ("structured", "test-drop-half"),
                                         {"time": 40, "freq": 4}))
    row = passt.describe("test-half")
    expected, patches = [], 472
    for _ in range(12):
        expected.append(PROTECTED + patches)
        patches = (patches + 1) // 2
    assert (row["reduction"], row["acts"], row["train_seq_len_per_block"]) == (
        "test-drop-half", "both", expected)


def test_composition_errors(registries):
    _drop_half()
    with pytest.raises(ValueError, match="at most one block reduction"):
        passt.compose("tome+evit")
    with pytest.raises(ValueError, match=r"unknown option 'q': .* of the block reduction "
                                         r"'tome' \(r, acts\)"):
        passt.compose("tome", q=3)
    with pytest.raises(ValueError, match=r"acts 'never'"):
        passt.create_model(reductions="test-drop-half", acts="never", **SMALL)
    with pytest.raises(TypeError, match="expects a BlockReduction subclass"):
        passt.register_block_reduction("test-bad")(object)
    with pytest.raises(ValueError, match="already registered"):
        class Other(passt.BlockReduction, name="tome"):
            pass


def test_decorator_and_variants_of_another_reduction(registries):
    @passt.register_block_reduction("test-nothing")
    class Nothing(passt.BlockReduction):
        def reduce(self, x, size, view):
            return x, size

    assert passt.get_block_reduction("test-nothing") is Nothing
    v = passt.with_block_reduction("passt-s", "tome", r=3)
    assert v.reductions == ("structured", "tome") and dict(v.reduction_args) == {"r": 3}
    assert passt.with_block_reduction("passt-s-tome", "none").reductions == ("structured",)
    cfg = passt.variant_config(v)
    assert (cfg.patchout, cfg.reduction, cfg.reduction_args) == ("structured", "tome", {"r": 3})


def test_token_counts_spend_no_draw():
    model = passt.create_model("passt-s", seed=3, time=3, freq=1, **SMALL).train()
    twin = passt.create_model("passt-s", seed=3, time=3, freq=1, **SMALL).train()
    twin.load_state_dict(model.state_dict())
    mel = torch.randn(2, 1, 128, 200)
    torch.manual_seed(0)
    assert passt.token_counts(model, mel) == [2 + 11 * 16] * 3
    assert torch.equal(model(mel), twin(mel))  # the same next draw as a model never counted
    with pytest.raises(ValueError, match="needs a model with its transformer blocks in .blocks"):
        passt.token_counts(torch.nn.Linear(2, 2), mel)


def test_a_strategy_sees_the_input_through_patch_energies(registries):
    class Loudest(passt.Patchout, name="test-loudest"):
        def num_kept(self, grid):
            return grid[0] * grid[1] // 4

        def select(self, x, grid, generator, source):
            energy = source.energies()
            return energy.topk(self.num_kept(grid), dim=1).indices.sort(dim=1).values

    model = passt.create_model(reductions="test-loudest", **SMALL).train()
    mel = torch.randn(2, 1, 128, 200)
    mel[0, :, 16:32, 100:140] += 5.0  # a loud region: rows 1-2, columns 8-12 overlap it
    seen = []
    model.patchout.register_forward_hook(lambda m, args, out: seen.append(out))
    with torch.no_grad():
        model(mel)
    model.patchout.eval()  # every token, to pick the expected ones from
    with torch.no_grad():
        all_tokens = model.tokens(mel)
    # independently: the mean of each 16x16 window every 10 bins, flattened f * T + t
    energy = F.unfold(mel, 16, stride=10).mean(1)
    top = energy.topk(12 * 19 // 4, dim=1).indices.sort(dim=1).values
    expected = torch.gather(all_tokens[:, PROTECTED:], 1,
                            top.unsqueeze(-1).expand(-1, -1, all_tokens.shape[-1]))
    torch.testing.assert_close(seen[0], expected)
    assert set(range(1 * 19 + 9, 1 * 19 + 12)) <= set(top[0].tolist())
