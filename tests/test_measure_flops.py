"""Tests for passt.measure.flops: three FLOP counts that agree, the 3x training rule, MFU."""

import pytest
import torch

import passt
from passt import variant_config
from passt.measure import StepSettings, build_step, flops
from tests.helpers import FEW_PATCHES, SMALL

TINY = {**SMALL, "depth": 2, **FEW_PATCHES}


@pytest.fixture(scope="module")
def full_size():
    """Full-size reports at batch 1 and 10 s clips: passt-b in eval, passt-s in training."""
    return {
        "passt-b": flops.count_flops(StepSettings("passt-b"), kind="inference"),
        "passt-s": flops.count_flops(StepSettings("passt-s"), kind="train"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("variant, seq_len", [("passt-b", 1190), ("passt-s", 474)])
def test_three_counts_agree_on_full_size_models(full_size, variant, seq_len):
    report = full_size[variant]
    assert report.seq_len == seq_len
    counts = [report.forward_fvcore, report.forward_torch, report.forward_analytic]
    assert max(counts) / min(counts) < 1.02, counts
    assert report.forward_torch == pytest.approx(report.forward_analytic, rel=1e-6)


@pytest.mark.slow
def test_passt_s_in_eval_costs_what_passt_b_does(full_size):
    b, s = variant_config("passt-b"), variant_config("passt-s")
    assert flops.analytic_flops(s, 1190, 1000) == flops.analytic_flops(b, 1190, 1000)
    assert full_size["passt-b"].forward_analytic == pytest.approx(
        flops.analytic_flops(s, 1190) / 1e9)


@pytest.mark.slow
def test_training_step_is_about_three_forwards(full_size):
    report = full_size["passt-s"]
    assert report.step_analytic == pytest.approx(3 * report.forward_analytic)
    # Linear layers cost exactly 3x; attention's backward 2.5x its forward, the patch
    # embedding's 1x (its input needs no gradient): the whole step is slightly above 3x.
    assert 3.0 < report.step_over_forward < 3.1
    assert full_size["passt-b"].step_over_forward == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("attention", ["sdpa", "math"])
@pytest.mark.parametrize("kind", ["train", "inference"])
def test_counts_agree_on_a_tiny_model(attention, kind):
    settings = StepSettings(batch_size=2, clip_seconds=1.0, attention=attention,
                            model_overrides=TINY)
    report = flops.count_flops(settings, kind)
    counts = [report.forward_fvcore, report.forward_torch, report.forward_analytic]
    assert max(counts) / min(counts) < 1.02, counts
    assert report.seq_len == (79 if kind == "train" else 110)


def test_cpu_attention_formulas_match_torch_math_path():
    q, k, v = (torch.randn(2, 3, 50, 8, requires_grad=True) for _ in range(3))

    def attention(sdpa: bool) -> None:
        if sdpa:
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            out = (q @ k.transpose(-2, -1)).softmax(-1) @ v
        out.sum().backward()

    forward = 4 * 2 * 3 * 50 * 50 * 8
    assert flops.torch_flops(lambda: attention(True)) == forward + 2.5 * forward
    assert flops.torch_flops(lambda: attention(False)) == forward + 2 * forward


def test_fvcore_counts_a_model_with_sdpa():
    step = build_step(StepSettings(batch_size=1, clip_seconds=1.0, model_overrides=TINY),
                      kind="inference")
    mel = step.frontend(step.inputs)
    with_attention = flops.fvcore_forward_flops(step.model, mel)
    step.model.set_attention("math")
    assert flops.fvcore_forward_flops(step.model, mel) == with_attention


@pytest.mark.parametrize(
    "name, dtype, peak",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
        ("NVIDIA H100 80GB HBM3", "fp32", 67.0),
        ("NVIDIA H100 PCIe", "fp16", 756.0),
        ("NVIDIA H200", "bf16", 989.4),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
        ("NVIDIA A10", "fp16", 125.0),
        ("NVIDIA L40S", "bf16", 362.05),
        ("NVIDIA L4", "fp32", 30.3),
        ("Tesla V100-SXM2-16GB", "fp16", 125.0),
        ("Tesla V100-SXM2-16GB", "bf16", None),
        ("NVIDIA TITAN RTX", "fp16", 130.5),
        ("Tesla T4", "fp32", 8.1),
        ("NVIDIA A10G", "bf16", None),
        ("cpu", "fp32", None),
    ],
)
def test_peak_table_lookup(name, dtype, peak):
    assert flops.peak_tflops(name, dtype) == peak


def test_peak_lookup_rejects_unknown_dtype():
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        flops.peak_tflops("NVIDIA H100 80GB HBM3", "int8")


def test_mfu_by_hand():
    # 270 GFLOPs per training sample at 1500 samples/s is 405 TFLOPS: 40.93 % of 989.4.
    assert flops.mfu(270e9, 1500, 989.4) == pytest.approx(405 / 989.4)
    with pytest.raises(ValueError, match="peak_tflops must be positive"):
        flops.mfu(1.0, 1.0, 0.0)


def test_matmul_ceiling_on_cpu():
    assert 0 < flops.matmul_ceiling_tflops("cpu", "fp32", n=256, iters=3) < 100


def test_a_users_strategy_gets_plain_ints_under_fvcores_trace(registries):

    class HalfTheColumns(passt.Patchout, name="test-half-columns"):
        """A user's strategy that does arithmetic on the grid as the type hint promises: ints."""

        def num_kept(self, grid):
            return grid[0] * round(grid[1] / 2)

        def draw(self, grid, batch, device, generator):
            cols = round(grid[1] / 2)
            return (torch.arange(grid[0], device=device)[:, None] * grid[1]
                    + torch.arange(cols, device=device)).flatten()

    passt.register_variant(passt.Variant("test-half", ("test-half-columns",), settings=SMALL))
    settings = StepSettings(variant="test-half", clip_seconds=1.0)
    report = flops.count_flops(settings, "train")
    assert report.notes == () and report.forward_fvcore == pytest.approx(report.forward_torch)


@pytest.mark.slow
@pytest.mark.parametrize("variant, overrides", [
    ("passt-s-tome", {"r": 20}), ("passt-s-evit", {"keep_rate": 0.5, "locations": (0,)}),
    ("passt-s-flex", {"time": 2, "freq": 1}),
])
def test_counts_follow_the_tokens_of_each_block(variant, overrides):
    # the formula at each block's tokens agrees with FlopCounterMode within 1% (what the
    # reduction computes itself is the gap); fvcore traces every strategy
    settings = StepSettings(variant, clip_seconds=1.0, model_overrides={**TINY, **overrides})
    report = flops.count_flops(settings, "inference")
    assert report.forward_fvcore == pytest.approx(report.forward_torch, rel=1e-6)
    if variant == "passt-s-flex":  # the kernel's resize, once a batch: 16x16 -> 20x20
        resize = 2 * 64 * 16**2 * 20**2 / 1e9
        assert report.forward_torch - report.forward_analytic == pytest.approx(resize)
        assert report.notes[0].startswith("forward FLOPs: FlopCounterMode counts")
    else:
        assert report.forward_torch == pytest.approx(report.forward_analytic, rel=0.01)
        assert not report.notes
    cfg = variant_config(variant, **{**TINY, **overrides})
    step = build_step(settings, "inference")
    mel = step.frontend(step.inputs[:1])
    by_hand = flops.analytic_flops(cfg, passt.token_counts(step.model, mel, leaving=True),
                                   step.frames)
    assert report.forward_analytic == pytest.approx(by_hand / 1e9)
    if variant != "passt-s-flex":
        assert len(set(step.seq_len_per_block)) > 1
        assert by_hand < flops.analytic_flops(cfg, step.seq_len, step.frames)


def test_a_uniform_sequence_is_the_old_formula_and_gaps_get_a_note():
    cfg = variant_config("passt-s", **TINY)
    assert flops.analytic_flops(cfg, [110, 110]) == flops.analytic_flops(cfg, 110)
    assert flops.analytic_gap_note(1.005e9, 1e9) is None
    note = flops.analytic_gap_note(45.5e9, 64.1e9)
    assert note.startswith("forward FLOPs: FlopCounterMode counts 45.5 GFLOPs, the analytic "
                           "formula 64.1 (-29.0%)")


def test_the_cpu_ceiling_is_measured_at_the_steps_size(monkeypatch):
    """Never shrunk on a slow or busy machine: small matmuls measure overheads, not a
    ceiling (128x128 gave 0.7 GFLOP/s where 1024x1024 gave 115 at the same time)."""
    sizes = []
    real_randn = torch.randn

    def randn(*size, **kwargs):
        sizes.append(size)
        return real_randn(*size, **kwargs)

    monkeypatch.setattr(flops.torch, "randn", randn)
    flops.matmul_ceiling_tflops("cpu", "fp32", iters=1, repeats=1, window_s=1e-9)
    assert set(sizes) == {(1024, 1024)}
