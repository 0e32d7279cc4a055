"""Patchout strategies: token counts, reproducibility, structure, registry and errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import passt
import passt.patchout
import passt.variants
from passt.patchout import Patchout, StructuredPatchout, UnstructuredPatchout
from tests.helpers import SMALL, token_count

GRID = (12, 99)


@pytest.mark.parametrize("name, args, expected", [
    ("none", {}, 1190),
    ("unstructured", {"drop": 400}, 790),
    ("unstructured", {"drop": 0.5}, 594 + 2),
    ("structured", {"time": 40, "freq": 4}, 474),
    ("structured", {"time": 0.5, "freq": 0}, 12 * 50 + 2),
])
def test_training_uses_exactly_the_expected_tokens(name, args, expected):
    model = passt.create_model(reductions=name, **SMALL, **args)
    x = torch.randn(2, 128, 998)
    assert token_count(model.train(), x) == expected
    assert model.seq_len(training=True) == expected
    with torch.no_grad():
        assert token_count(model.eval(), x) == 1190


def _grid_tokens(batch: int = 3) -> torch.Tensor:
    """Tokens whose value is their flat grid index, so kept positions can be read back."""
    n = GRID[0] * GRID[1]
    return torch.arange(n, dtype=torch.float32).view(1, n, 1).expand(batch, n, 2).clone()


def test_same_seed_same_draws_and_different_seeds_differ():
    def draws(seed):
        gen = torch.Generator().manual_seed(seed)
        return [UnstructuredPatchout(400).draw(GRID, 2, torch.device("cpu"), gen)
                for _ in range(3)]

    a, b, c = draws(1), draws(1), draws(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])  # successive draws differ


def test_model_seed_makes_training_reproducible(small_model):
    x = torch.randn(2, 128, 998)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)  # same weights
        model = small_model("passt-s", seed=123).train()
        outs.append(model(x))
    torch.testing.assert_close(outs[0], outs[1])


@pytest.mark.parametrize("per_sample", [False, True])
def test_structured_patchout_removes_whole_rows_and_columns(per_sample):
    strategy = StructuredPatchout(time=40, freq=4, per_sample=per_sample).train()
    kept = strategy(_grid_tokens(), GRID, torch.Generator().manual_seed(0))[..., 0].long()
    assert kept.shape == (3, 8 * 59)
    for sample in kept:
        rows, cols = sample // GRID[1], sample % GRID[1]
        rows_kept, cols_kept = rows.unique(), cols.unique()
        assert len(rows_kept) == 8 and len(cols_kept) == 59
        # every kept row has every kept column: whole rows and columns were dropped
        expected = (rows_kept[:, None] * GRID[1] + cols_kept[None, :]).flatten()
        assert torch.equal(sample, expected)
    if per_sample:
        assert not torch.equal(kept[0], kept[1])
    else:
        assert torch.equal(kept[0], kept[1]) and torch.equal(kept[1], kept[2])


def test_unstructured_patchout_keeps_distinct_sorted_patches():
    strategy = UnstructuredPatchout(drop=400, per_sample=True).train()
    kept = strategy(_grid_tokens(), GRID, torch.Generator().manual_seed(0))[..., 0].long()
    assert kept.shape == (3, 788)
    for sample in kept:
        assert len(sample.unique()) == 788 and torch.all(sample[1:] > sample[:-1])
    assert not torch.equal(kept[0], kept[1])


def test_eval_sees_every_patch():
    x = _grid_tokens()
    for strategy in (StructuredPatchout(), UnstructuredPatchout()):
        assert torch.equal(strategy.eval()(x, GRID), x)


def test_patchout_larger_than_grid_is_a_clear_error():
    with pytest.raises(ValueError, match=r"drops 100 time columns but the patch grid 12x99 .*"
                                         r"accepted: fewer than 99"):
        passt.create_model("passt-s", time=100, **SMALL)
    with pytest.raises(ValueError, match=r"drops 2000 patches but the patch grid 12x99 has only "
                                         r"1188"):
        passt.create_model("passt-u", drop=2000, **SMALL)
    with pytest.raises(ValueError, match=r"fraction 1.5 not in \[0, 1\)"):
        UnstructuredPatchout(drop=1.5)


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown patchout strategy 'spiral'; known: none, "
                                         r"unstructured, structured; add your own with "
                                         r"a plugin: --plugin FILE"):
        passt.create_patchout("spiral")
    with pytest.raises(ValueError, match=r"unknown reduction 'spiral'; known: .*no-overlap, .*; "
                                         r"add your own with a plugin"):
        passt.create_model(reductions="spiral+no-overlap")




def test_user_strategy_by_subclass_is_usable_everywhere(registries):
    class EveryOther(Patchout, name="test-every-other"):
        """A user strategy: keeps every other patch."""

        def num_kept(self, grid):
            return (grid[0] * grid[1] + 1) // 2

        def draw(self, grid, batch, device, generator):
            return torch.arange(0, grid[0] * grid[1], 2, device=device)

    assert "test-every-other" in passt.list_patchouts()
    assert "test-every-other" in passt.list_reductions()
    model = passt.create_model(reductions="test-every-other+no-overlap", **SMALL)
    assert token_count(model.train(), torch.randn(1, 128, 998)) == 8 * 62 // 2 + 2
    variant = passt.register_variant(
        passt.Variant("test-eo", ("test-every-other",), description="every other patch"))
    assert variant.name in passt.list_variants()
    assert passt.describe("test-eo")["train_seq_len"] == 594 + 2


def test_user_strategy_by_decorator(registries):
    @passt.register_patchout("test-first-half")
    class FirstHalf(Patchout):
        def num_kept(self, grid):
            return grid[0] * grid[1] // 2

        def draw(self, grid, batch, device, generator):
            return torch.arange(self.num_kept(grid), device=device)

    assert passt.get_patchout("test-first-half") is FirstHalf
    with pytest.raises(TypeError, match="expects a Patchout subclass"):
        passt.register_patchout("test-bad")(object)


@pytest.mark.integration
def test_plugin_file_reaches_the_cli(tmp_path):
    plugin = tmp_path / "my_strategy.py"
    plugin.write_text(textwrap.dedent("""
        import torch
        import passt

        class Corners(passt.Patchout, name="corners"):
            def num_kept(self, grid):
                return 4

            def draw(self, grid, batch, device, generator):
                f, t = grid
                return torch.tensor([0, t - 1, (f - 1) * t, f * t - 1], device=device)

        passt.register_variant(passt.Variant("passt-corners", ("corners",)))
    """))
    out = subprocess.run([sys.executable, "-m", "passt.cli", "--plugin", str(plugin),
                          "variants"], capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("passt-corners"))
    assert row.split()[1] == "corners" and "6" in row.split()  # 4 patches + 2 tokens


@pytest.mark.parametrize("name, frames, expected_args", [
    ("passt-s", 998, {"time": 40, "freq": 4}),
    ("passt-s", 500, {"time": 20, "freq": 4}),      # 49 of 99 columns: 40 * 49 / 99 = 19.8
    ("passt-u", 300, {"drop": 117}),                # 348 of 1188 patches: 400 * 348 / 1188
    ("passt-s-n", 300, {"time": 6, "freq": 2}),     # 18 of 62 columns: 20 * 18 / 62 = 5.8
    ("passt-b", 300, {}),
])
def test_proportional_patchout_for_short_clips(name, frames, expected_args):
    from passt.variants import proportional_patchout

    assert proportional_patchout(name, frames) == expected_args
    # relative amounts need no rescaling
    assert proportional_patchout("passt-s", 300, time=0.4) == {"time": 0.4, "freq": 4}
