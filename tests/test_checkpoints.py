"""Checkpoint loading: official layout, containers, class-count changes, ImageNet starts."""

from __future__ import annotations

import pytest
import timm
import torch

import passt
from passt.checkpoints import adapt_imagenet, read_state_dict
from tests import helpers
from tests.helpers import quiet

SMALL = {**helpers.SMALL, "depth": 2}


@pytest.fixture(scope="module")
def small_state():
    torch.manual_seed(0)
    return passt.create_model("passt-s", **SMALL).state_dict()


def test_file_and_wrapped_checkpoints_load(tmp_path, small_state):
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in small_state.items()}}
    path = tmp_path / "ckpt.pt"
    torch.save(wrapped, path)
    model = passt.create_model("passt-s", checkpoint=path, **SMALL)
    for k, v in model.state_dict().items():
        assert torch.equal(v, small_state[k]), k


def test_other_class_count_reinitialises_the_classifier(small_state):
    model = passt.create_model("passt-s", num_classes=10, checkpoint=small_state, **SMALL)
    assert model.head[1].weight.shape == (10, 64)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, small_state["blocks.1.mlp.fc2.weight"])
    assert torch.equal(model.head[0].weight, small_state["head.0.weight"])


def test_mismatch_lists_missing_unexpected_and_wrongly_shaped_keys(small_state):
    bad = dict(small_state)
    del bad["norm.weight"]
    bad["extra.weight"] = torch.zeros(1)
    bad["cls_token"] = torch.zeros(1, 1, 32)
    with pytest.raises(passt.CheckpointMismatchError) as err:
        passt.create_model("passt-s", checkpoint=bad, **SMALL)
    msg = str(err.value)
    assert "missing keys: norm.weight" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "wrongly shaped keys: cls_token [1, 1, 32] (model: [1, 1, 64])" in msg


def test_checkpoint_of_another_architecture_is_refused():
    resnet = timm.create_model("resnet18", pretrained=False).state_dict()
    with pytest.raises(passt.CheckpointMismatchError, match=r"missing keys: .*cls_token"
                                                            r"[\s\S]*unexpected keys: conv1"):
        passt.create_model("passt-s", checkpoint=resnet, **SMALL)
    depth12 = passt.create_model("passt-s", embed_dim=64, num_heads=4).state_dict()
    with pytest.raises(passt.CheckpointMismatchError, match="unexpected keys: blocks.7"):
        passt.create_model("passt-s-l", checkpoint=depth12, embed_dim=64, num_heads=4)


def test_not_a_checkpoint_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="is not a PyTorch checkpoint"):
        read_state_dict(path)
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        read_state_dict(tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def deit_state():
    torch.manual_seed(0)
    return timm.create_model("deit_base_distilled_patch16_384", pretrained=False).state_dict()


@pytest.mark.slow
def test_imagenet_adaptation_matches_the_official_recipe(deit_state):
    from hear21passt.models.passt import adapt_image_pos_embed_to_passt, adapt_input_conv

    model = passt.create_model("passt-s", imagenet=deit_state)
    sd = model.state_dict()
    tok, freq, time = quiet(adapt_image_pos_embed_to_passt, deit_state["pos_embed"],
                            num_tokens=2, gs_new=(12, 99))
    torch.testing.assert_close(sd["new_pos_embed"], tok)
    torch.testing.assert_close(sd["freq_new_pos_embed"], freq)
    torch.testing.assert_close(sd["time_new_pos_embed"], time)
    torch.testing.assert_close(sd["patch_embed.proj.weight"],
                               adapt_input_conv(1, deit_state["patch_embed.proj.weight"]))
    for k in ("cls_token", "dist_token", "norm.weight", "blocks.11.attn.qkv.weight"):
        assert torch.equal(sd[k], deit_state[k]), k
    assert sd["head.1.weight"].shape == (527, 768)


@pytest.mark.slow
def test_imagenet_start_for_reduced_depth_keeps_every_other_block(deit_state):
    model = passt.create_model("passt-s-l", imagenet=deit_state)
    sd = model.state_dict()
    for new, old in enumerate([0, 1, 3, 5, 7, 9, 11]):
        assert torch.equal(sd[f"blocks.{new}.mlp.fc1.weight"],
                           deit_state[f"blocks.{old}.mlp.fc1.weight"])
    assert model.freq_new_pos_embed.shape == (1, 768, 12, 1)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 128, 200))).all()


def test_imagenet_adaptation_refuses_other_state_dicts(small_state):
    model = passt.create_model("passt-s", **SMALL)
    with pytest.raises(ValueError, match="not an ImageNet ViT/DeiT state_dict"):
        adapt_imagenet(small_state, model)


def test_imagenet_vit_without_distillation_token():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict()
    model = passt.create_model("passt-s-n", imagenet=vit, embed_dim=192, num_heads=3)
    sd = model.state_dict()
    assert torch.equal(sd["dist_token"], vit["cls_token"])
    assert torch.equal(sd["new_pos_embed"][:, 1], vit["pos_embed"][:, 0])
    assert sd["time_new_pos_embed"].shape == (1, 192, 1, 62)
