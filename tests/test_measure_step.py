"""Tests for passt.measure.step: settings validation and the training and inference steps."""

import pytest
import torch

from passt.measure import StepSettings, build_step
from tests.helpers import FEW_PATCHES, SMALL

TINY = {**SMALL, **FEW_PATCHES}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(variant="passt-xl"), r"unknown variant 'passt-xl'; known: passt-b, passt-u"),
        (dict(batch_size=0), r"batch_size must be an integer >= 1, got 0"),
        (dict(batch_size=2.0), r"batch_size must be an integer"),
        (dict(clip_seconds=0.15), r"a clip of 0.15 s gives 15 frames, shorter than one patch "
                                  r"\(16 frames\); accepted: 16 to 998 frames \(clips of 0.151 "
                                  r"to 9.98 s\)"),
        (dict(clip_seconds=0.001), r"gives 0 frames, shorter than one patch"),
        (dict(clip_seconds=0.0), r"clip_seconds must be a number > 0"),
        (dict(clip_seconds=11.0), r"a clip of 11.0 s gives 1100 frames, longer than the "
                                  r"model's time embedding \(998 frames\)"),
        (dict(dtype="fp8"), r"unknown dtype 'fp8'; accepted: fp32, fp16, bf16"),
        (dict(attention="flash"), r"unknown attention path 'flash'; accepted: sdpa, math"),
        (dict(device="gpu0"), r"unknown device 'gpu0'"),
        (dict(model_overrides={"attention": "math"}), r"set attention on StepSettings"),
        (dict(model_overrides={"widht": 3}), r"unknown option 'widht'"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StepSettings(**kwargs)


def test_shortest_clip_is_one_patch(tiny_step):
    settings = tiny_step(variant="passt-b", clip_seconds=0.151,
                    model_overrides=SMALL)
    step = build_step(settings, kind="inference")
    assert step.frames == 16 and step.seq_len == 12 * 1 + 2
    step()


def test_clip_too_short_for_patchout_is_explained():
    with pytest.raises(ValueError, match=r"2.0 s gives 200 frames, too few for the model's "
                                         r"patchout: .*40 time columns"):
        StepSettings(variant="passt-s", clip_seconds=2.0)


def test_unknown_step_kind(tiny_step):
    with pytest.raises(ValueError, match=r"unknown step kind 'eval'; accepted: train, inference"):
        build_step(tiny_step(), kind="eval")


def test_train_step_updates_the_model_on_fixed_data(tiny_step):
    step = build_step(tiny_step())
    assert step.frames == 100 and step.seq_len == 11 * 7 + 2
    assert step.inputs.shape == (2, 32000) and step.targets.shape == (2, 527)
    assert step.num_params == sum(p.numel() for p in step.model.parameters())
    assert step.model.training and step.frontend.training
    before = [p.detach().clone() for p in step.model.parameters()]
    assert step() is None
    changed = [not torch.equal(a, p) for a, p in zip(before, step.model.parameters(), strict=True)]
    assert sum(changed) > len(changed) // 2
    again = build_step(tiny_step())
    assert torch.equal(again.inputs, step.inputs) and torch.equal(again.targets, step.targets)


def test_inference_step_runs_in_eval_without_grad(tiny_step):
    step = build_step(tiny_step(), kind="inference")
    assert not step.model.training and step.optimizer is None
    assert step.seq_len == 12 * 9 + 2
    before = [p.detach().clone() for p in step.model.parameters()]
    step()
    logits = step.forward()
    assert logits.shape == (2, 527) and not logits.requires_grad
    assert all(torch.equal(a, p) for a, p in zip(before, step.model.parameters(), strict=True))


@pytest.mark.parametrize("dtype, scaled", [("fp16", True), ("bf16", False)])
def test_mixed_precision_train_step_on_cpu(dtype, scaled, tiny_step):
    step = build_step(tiny_step(dtype=dtype, batch_size=1,
                                model_overrides={**TINY, "embed_dim": 32}))
    assert (step.scaler is not None) == scaled
    with step.autocast():
        assert step.model.head[1](torch.ones(1, 32)).dtype == getattr(torch, {
            "fp16": "float16", "bf16": "bfloat16"}[dtype])
    loss = step.forward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    step()
    if scaled:
        assert step.scaler.get_scale() > 0


def test_math_attention_path_is_applied(tiny_step):
    step = build_step(tiny_step(attention="math"))
    assert all(block.attn.path == "math" for block in step.model.blocks)
    step()


@pytest.mark.parametrize("kind, first", [("train", 2 + 11 * 7), ("inference", 2 + 12 * 9)])
def test_a_block_reduction_step_records_tokens_per_block(kind, first, tiny_step):
    from passt.measure.record import step_record

    step = build_step(tiny_step(variant="passt-s-tome", model_overrides={**TINY, "depth": 3,
                                                                   "r": 5}), kind=kind)
    assert step.seq_len == first and step.seq_len_per_block == (first, first - 5, first - 10)
    record = step_record(step, strategy="structured", attention="sdpa", patchout_args={},
                         forward_gflops=1.0, step_gflops=3.0, activation_bytes=None)
    assert record.seq_len_per_block == step.seq_len_per_block
    assert record.seq_len == first - 5  # the mean over the blocks
    assert (record.reduction, record.reduction_args, record.acts) == ("tome", {"r": 5}, "both")
