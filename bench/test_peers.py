"""The same training steps by other implementations, measured in the same run
(``--bench-peers``): the official PaSST code (hear21passt) as released and with SDPA swapped
in, and HF transformers' AST; each timed in alternating rounds with our step."""

from __future__ import annotations

import functools

import pytest

from passt.measure.peers import (
    PEERS,
    build_peer_step,
    peer_unavailable_reason,
    peer_unsupported_reason,
    profile_peer,
)
from passt.measure.suite import measure
from passt.variants import variant_config


@pytest.mark.parametrize("peer", PEERS)
def test_peer_train_step(benchmark, peer, variant, preset, overrides, ceilings, measured,
                         peers_enabled):
    if not peers_enabled:
        pytest.skip("peers are measured with --bench-peers")
    reason = peer_unavailable_reason(peer)
    if reason is not None:
        pytest.skip(f"peer {peer!r} is not available: {reason}")
    unsupported = peer_unsupported_reason(variant_config(variant))
    if unsupported is not None:
        pytest.skip(f"{variant}: {unsupported}")
    benchmark.group = f"train {preset.name}"
    settings = preset.settings(variant, **overrides)
    measured(lambda: measure(settings, "train", preset, ceilings,
                             build=functools.partial(build_peer_step, peer), profile=profile_peer,
                             reference=settings),
             settings, peer=peer)
