"""Shared fixtures: the tiny model, step settings, train config and plugin file, and the
official hear21passt code as an oracle. Plain helpers and the sizes live in tests/helpers.py."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import pytest
import torch

import passt
from tests.helpers import (
    SMALL,
    TINY_PLUGIN,
    forgetting_registrations,
    step_settings,
    train_config,
)


def pytest_collection_modifyitems(items):
    """An integration test is slow too: `-m "not slow"` leaves out every subprocess run."""
    for item in items:
        if item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def registries():
    """Let a test register strategies, reductions, variants, datasets, ... without leaking
    them into other tests."""
    with forgetting_registrations():
        yield


@pytest.fixture
def small_model():
    """Factory for a narrow, shallow model with the full-size patch grid."""

    def make(name: str = "passt-s", **overrides) -> passt.PaSST:
        return passt.create_model(name, **{**SMALL, **overrides})

    return make


@pytest.fixture
def tiny_step():
    """Factory for step settings of the small model on 1 s clips (see helpers.step_settings)."""
    return step_settings


@pytest.fixture
def tiny_train_config(tmp_path):
    """Factory for a tiny model's training config writing to ``tmp_path``."""

    def make(**changes):
        return train_config(tmp_path, **changes)

    return make


@pytest.fixture
def tiny_plugin(tmp_path) -> Path:
    """A plugin file registering 'tiny-s', a small passt-s (helpers.TINY_PLUGIN)."""
    plugin = tmp_path / "tiny_variant.py"
    plugin.write_text(TINY_PLUGIN)
    return plugin


@pytest.fixture(scope="session")
def official_passt_s():
    """The official PaSST-S (hear21passt, random weights, eval mode)."""
    pytest.importorskip("hear21passt")
    from hear21passt.models.passt import get_model

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False,
                          s_patchout_t=40, s_patchout_f=4)
    return model.eval()
