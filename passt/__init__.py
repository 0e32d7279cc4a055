"""passt-bench: a reference PaSST (Patchout faSt Spectrogram Transformer) and its benchmarks.

The model core lives at this level (model, patchout, variants, frontend, factory, checkpoints,
plugins); each job has a subpackage, imports flowing down this list:
utils (errors, settings, the registry, tables) -> reductions, data, eval, inference -> train,
measure -> profiling, sweep, tradeoff -> report -> cli. docs/architecture.md draws the house.
"""

from passt.checkpoints import CheckpointMismatchError, load_checkpoint, load_imagenet
from passt.data.factory import DatasetKind, register_dataset
from passt.factory import create_model
from passt.frontend import FrontendConfig, MelFrontend, create_frontend
from passt.inference.run import embed, tag
from passt.model import PaSST, PaSSTConfig, token_counts
from passt.patchout import (
    Patchout,
    create_patchout,
    get_patchout,
    list_patchouts,
    register_patchout,
)
from passt.reductions.block import (
    BlockReduction,
    BlockView,
    create_block_reduction,
    get_block_reduction,
    list_block_reductions,
    register_block_reduction,
)
from passt.reductions.evit import AttentionPruning
from passt.reductions.patch_source import PatchSource
from passt.reductions.tome import TokenMerging
from passt.variants import (
    Variant,
    compose,
    describe,
    get_variant,
    list_reductions,
    list_variants,
    register_variant,
    variant_config,
    with_block_reduction,
    with_patchout,
)

__all__ = [
    "AttentionPruning",
    "BlockReduction",
    "BlockView",
    "CheckpointMismatchError",
    "DatasetKind",
    "FrontendConfig",
    "MelFrontend",
    "PaSST",
    "PaSSTConfig",
    "PatchSource",
    "Patchout",
    "TokenMerging",
    "Variant",
    "compose",
    "create_block_reduction",
    "create_frontend",
    "create_model",
    "create_patchout",
    "describe",
    "embed",
    "get_block_reduction",
    "get_patchout",
    "get_variant",
    "list_block_reductions",
    "list_patchouts",
    "list_reductions",
    "list_variants",
    "load_checkpoint",
    "load_imagenet",
    "register_block_reduction",
    "register_dataset",
    "register_patchout",
    "register_variant",
    "tag",
    "token_counts",
    "variant_config",
    "with_block_reduction",
    "with_patchout",
]
