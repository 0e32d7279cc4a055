"""The same training steps by other implementations, measured in the same run
(``--bench-peers``, for ``--bench-peer-variants``): the official PaSST code (hear21passt) as
released and with our levers (SDPA, the preset's precision and compilation, fused AdamW), and
HF transformers' AST; each timed in alternating rounds with our step."""

from __future__ import annotations

import functools

import pytest

from passt.measure import peers
from passt.measure.peers import PEERS, build_peer_step, peer_settings, profile_peer
from passt.measure.suite import measure
from passt.variants import variant_config


@pytest.mark.parametrize("peer", PEERS.names())
def test_peer_train_step(benchmark, peer, variant, preset, overrides, ceilings, measured,
                         peers_enabled, peer_variants):
    if not peers_enabled:
        pytest.skip("peers are measured with --bench-peers")
    if variant not in peer_variants:
        pytest.skip(f"peers are measured for --bench-peer-variants "
                    f"({', '.join(peer_variants) or 'none of this run'}), not {variant}")
    reason = peers.peer_unavailable_reason(peer)
    if reason is not None:
        pytest.skip(f"peer {peer!r} is not available: {reason}")
    unsupported = peers.peer_unsupported_reason(variant_config(variant))
    if unsupported is not None:
        pytest.skip(f"{variant}: {unsupported}")
    ours = preset.settings(variant, **overrides)
    skip = peers.peer_variants(peer, peer_variants,
                               lambda v: preset.settings(v, **overrides))[variant]
    if skip is not None:
        pytest.skip(f"peer {peer!r}: {skip}")
    benchmark.group = f"train {preset.name}"
    settings = peer_settings(peer, ours)
    # the official code as released runs at the largest batch that fits, said in the row
    measured(lambda: measure(settings, "train", preset, ceilings,
                             build=functools.partial(build_peer_step, peer), profile=profile_peer,
                             reference=ours, shrink_to_fit=peer == "official"),
             settings, peer=peer)

