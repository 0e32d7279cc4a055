"""The components a step is broken into, and which module of a model belongs to which.

One table of rules maps a module's qualified name to its component, for our PaSST and the
peers (hear21passt's timm-style names, transformers' AST names). A module's own ops, those of
no child, belong to its component: the attention module's own ops are the attention core
(scores, softmax, weighted sum), a block's own ops are its residual additions. A block
reduction (``reduction``: ToMe's matching and merging, EViT's class-attention row and
pruning) is a component of its own, and so is a module of the model that no rule names
(``unattributed``: a user's own module), rather than being charged to what encloses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, get_args

Component = Literal[
    "frontend",
    "patch embedding",
    "patchout",
    "token reduction",
    "attention: qkv",
    "attention: core",
    "attention: out proj",
    "mlp",
    "norms + residuals",
    "head + loss",
    "optimizer",
    "unattributed",
    "other",
]
COMPONENTS: tuple[str, ...] = get_args(Component)
ATTENTION_CORE = "attention: core"
MLP = "mlp"
# What "other" holds: the step's time after its last op (returning, synchronising).
OTHER = "other"
# Ops of a module of the model (a direct child) that no rule names.
UNATTRIBUTED = "unattributed"
REDUCTION = "token reduction"
FRONTEND, EMBED, HEAD, OPTIMIZER = "frontend", "patch embedding", "head + loss", "optimizer"

# (pattern on the module's qualified name, component); the first match wins.
RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), c) for p, c in (
    (r"(^|\.)(head|head_dist|classifier)(\.|$)", HEAD),
    (r"(^|\.)(attn\.qkv|attention\.attention\.(query|key|value))$", "attention: qkv"),
    (r"(^|\.)(attn\.proj|attention\.output\.dense)$", "attention: out proj"),
    (r"(^|\.)(attn|attention(\.attention|\.output)?)$", ATTENTION_CORE),
    (r"(^|\.)(mlp|intermediate|layer\.\d+\.output)(\.|$)", MLP),
    (r"norm", "norms + residuals"),
    (r"(^|\.)(blocks|encoder|layer)(\.\d+)?$|drop_path", "norms + residuals"),
    (r"(^|\.)patchout$", "patchout"),
    (r"^reduction$", REDUCTION),
    (r"(^|\.)(patch_embed|embeddings|pos_drop)(\.|$)", EMBED),
))
# Containers of the transformer blocks: the model's own ops after them belong to the head.
ENCODER = re.compile(r"(^|\.)(blocks|encoder)$")


def component_of(qualified_name: str) -> str | None:
    """The component of the model's submodule ``qualified_name``; None for the model itself
    (its own ops are the embedding before the blocks and the head after them) and for
    modules no rule names (they belong to their parent's component)."""
    for pattern, component in RULES:
        if pattern.search(qualified_name):
            return component
    return None


def components(names: Iterable[str]) -> dict[str, str | None]:
    """`component_of` each of a model's submodule ``names`` (``named_modules``), except that
    a direct child of the model that no rule names, nor any module inside it, is
    `UNATTRIBUTED` (a user's module, not a wrapper around the known ones)."""
    names = [n for n in names if n]
    out = {name: component_of(name) for name in names}
    for name, component in out.items():
        if component is None and "." not in name and not any(
                out[n] is not None for n in names if n.startswith(name + ".")):
            out[name] = UNATTRIBUTED
    return out
