"""Table 1 variants: sequence lengths, parameter counts, compositions and the CLI listing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import passt
import passt.variants
from tests.helpers import SMALL, token_count

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "table1.csv"
# (variant, training sequence length incl. the two tokens, eval length, Table 1 row)
EXPECTED = [
    ("passt-b", 1190, 1190, "passt_b"),
    ("passt-u", 790, 1190, "passt_u"),
    ("passt-s", 474, 1190, "passt_s"),
    ("passt-s-l", 474, 1190, "passt_s_l"),
    ("passt-s-n", 254, 498, "passt_s_n"),
    ("ast", 1214, 1214, "ast"),
    ("ast-n", 498, 498, "ast_n"),
]


@pytest.mark.parametrize("name, train_len, eval_len, row", EXPECTED)
def test_sequence_lengths_are_the_papers(name, train_len, eval_len, row):
    model = passt.create_model(name, **SMALL)
    x = torch.randn(1, 128, model.cfg.frames)
    assert token_count(model.train(), x) == train_len
    with torch.no_grad():
        assert token_count(model.eval(), x) == eval_len
    info = passt.describe(name)
    assert (info["train_seq_len"], info["eval_seq_len"]) == (train_len, eval_len)
    assert info["paper_row"] == row
    if PAPER.exists():
        paper = {r["row"]: r for r in csv.DictReader(PAPER.open())}[row]
        # the paper counts the two tokens, except for AST, where it counts patches only
        assert int(paper["seq"]) == (train_len - 2 if name == "ast" else train_len)


def test_parameter_counts(official_passt_s):
    official = sum(p.numel() for p in official_passt_s.parameters())
    model = passt.create_model("passt-s")
    assert sum(p.numel() for p in model.parameters()) == official
    assert round(official / 1e6, 2) == 86.15
    assert passt.describe("passt-s")["params_m"] == 86.15
    assert passt.describe("passt-s-l")["params_m"] == 50.71


NEW = ("passt-b-tome", "passt-s-tome", "passt-s-evit", "passt-s-flex")


@pytest.mark.slow
def test_official_checkpoint_loads_strictly_into_every_new_variant(official_passt_s):
    # no reduction adds a parameter or changes a shape: the official layout loads as it is
    sd = official_passt_s.state_dict()
    mel = torch.randn(1, 128, 300)
    for name in NEW:
        model = passt.create_model(name, checkpoint=sd).eval()
        with torch.no_grad():
            assert model(mel).shape == (1, 527)


@pytest.mark.parametrize("name, train, evaluation, acts", [
    ("passt-b-tome", 668, 668, "both"), ("passt-s-tome", 270, 668, "both"),
    ("passt-s-evit", 328, 821, "both"), ("passt-s-flex", 345, 822, "both"),
])
def test_new_variants_tokens_per_block(name, train, evaluation, acts):
    info = passt.describe(name)
    assert (info["train_seq_len"], info["eval_seq_len"], info["acts"]) == (train, evaluation,
                                                                            acts)
    per_block = info["eval_seq_len_per_block"]
    if name.endswith("tome"):  # 8% of 1188 patches, 95, merged per block
        assert per_block == [1190 - 95 * i for i in range(12)]
    if name.endswith("evit"):  # 70% kept after blocks 3, 6, 9, plus the fused token
        assert per_block == [1190] * 4 + [2 + 832 + 1] * 3 + [2 + 584 + 1] * 3 + [2 + 410 + 1] * 2
    if name.endswith("flex"):  # 20-bin patches every 12 bins: 10 x 82
        assert per_block == [2 + 10 * 82] * 12 and info["train_seq_len"] == 2 + 7 * 49


def test_variant_compositions():
    cfg = passt.variant_config("passt-s-n")
    assert (cfg.stride, cfg.depth, cfg.patchout) == (16, 12, "structured")
    assert cfg.patchout_args == {"time": 20, "freq": 2}
    cfg = passt.variant_config("passt-s-l")
    assert (cfg.stride, cfg.depth) == (10, 7)
    cfg = passt.compose("unstructured+reduced-depth+no-overlap", drop=0.25, depth=4)
    assert (cfg.stride, cfg.depth, cfg.patchout_args) == (16, 3, {"drop": 0.25})
    cfg = passt.variant_config("passt-s", embed_dim=192, num_heads=3, time=10, frames=500)
    assert (cfg.embed_dim, cfg.num_heads, cfg.frames) == (192, 3, 500)
    assert cfg.patchout_args == {"time": 10, "freq": 4}


def test_composition_errors():
    with pytest.raises(ValueError, match=r"unknown variant 'passt-x'; known: passt-b, passt-u.*"
                                         r"ast-n, .*passt-s-flex; add your own with a "
                                         r"plugin: --plugin FILE"):
        passt.create_model("passt-x")
    with pytest.raises(ValueError, match="at most one token-dropping strategy"):
        passt.compose("structured+unstructured")
    with pytest.raises(ValueError, match=r"unknown option 'width': not a model setting .* nor a "
                                         r"parameter of patchout 'structured' \(time, freq"):
        passt.create_model("passt-s", width=3)
    with pytest.raises(ValueError, match="no-overlap sets stride to the patch size"):
        passt.compose("no-overlap", stride=10)
    with pytest.raises(ValueError, match="a variant name or reductions"):
        passt.create_model()


@pytest.mark.integration
def test_cli_lists_variants_as_table_and_json():
    run = [sys.executable, "-m", "passt.cli", "variants"]
    table = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    row = next(line.split() for line in table.splitlines() if line.startswith("passt-s-l "))
    assert row[3:] == ["-", "train", "16", "10", "7", "998", "474", "1190", "50.71"]
    row = next(line for line in table.splitlines() if line.startswith("passt-s-tome "))
    assert "r=0.08" in row and "270 (474->67)" in row and "668 (1190->145)" in row
    assert "1212" in table and "patches only" in table
    rows = json.loads(subprocess.run(run + ["--json"], capture_output=True, text=True,
                                     check=True).stdout)
    assert [r["name"] for r in rows] == passt.list_variants()
    assert {r["name"]: r["train_seq_len"] for r in rows}["passt-s-n"] == 254


@pytest.mark.integration
def test_cli_bad_plugin_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "passt.cli", "--plugin", "no_such_mod",
                           "variants"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "plugin 'no_such_mod' is neither a .py file nor an importable module" in proc.stderr


def test_variant_settings_and_validation(registries):
    tiny = passt.register_variant(passt.Variant(
        "test-tiny", ("structured", "no-overlap"), {"time": 4, "freq": 1},
        settings={"embed_dim": 32, "depth": 2, "num_heads": 2}))
    cfg = passt.variant_config(tiny.name)
    assert (cfg.embed_dim, cfg.depth, cfg.stride, cfg.patchout_args) == (32, 2, 16,
                                                                         {"time": 4, "freq": 1})
    assert passt.variant_config(tiny.name, depth=3).depth == 3  # explicit overrides win
    with pytest.raises(ValueError, match="variant 'test-bad': embed_dim=30 is not divisible"):
        passt.register_variant(passt.Variant("test-bad", ("none",), settings={"embed_dim": 30}))
    assert "test-bad" not in passt.list_variants()
