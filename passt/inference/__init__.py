"""Running a model on audio: tagging and embedding files of any length in windows (`run`,
`windows`), what they write (`outputs`), and the HEAR 2021 API (`hear`)."""

from passt.inference.outputs import format_tags, save_embeddings
from passt.inference.run import (
    EmbedResult,
    LoadedModel,
    Report,
    TagResult,
    embed,
    load_model,
    tag,
)

__all__ = ["EmbedResult", "LoadedModel", "Report", "TagResult", "embed", "format_tags",
           "load_model", "save_embeddings", "tag"]
