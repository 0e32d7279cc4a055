"""torch.compile for measured steps: a fresh compiler per step, a hard failure instead of a
silent fall-back to eager, and the compiler's own counters, so that a row which says
"compiled" provably ran compiled graphs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# torch.compile modes that replay CUDA graphs
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class CompileStats:
    """What dynamo and inductor did since the last `reset_compiler`."""

    graphs: int  # graphs compiled (one per frame compilation without graph breaks)
    graph_breaks: int
    recompiles: int  # compilations of a frame that was already compiled (a guard failed)
    seconds: float  # compile time of all frames
    cudagraph_skips: int  # compiled graphs that asked for CUDA graphs but run without them
    cudagraph_skip_reasons: tuple[str, ...]

    def minus(self, other: CompileStats) -> CompileStats:
        """What happened since ``other`` was read (counters only grow between resets)."""
        return CompileStats(
            graphs=self.graphs - other.graphs, graph_breaks=self.graph_breaks - other.graph_breaks,
            recompiles=self.recompiles - other.recompiles,
            seconds=round(self.seconds - other.seconds, 3),
            cudagraph_skips=self.cudagraph_skips - other.cudagraph_skips,
            cudagraph_skip_reasons=tuple(sorted(set(self.cudagraph_skip_reasons)
                                                - set(other.cudagraph_skip_reasons))))


def reset_compiler() -> None:
    """Forget every compiled graph and zero the counters (inductor's on-disk cache stays, so
    compiling the same graph again is quick)."""
    from torch._dynamo.utils import clear_compilation_metrics, counters  # dynamo imports slowly

    torch._dynamo.reset()
    counters.clear()
    clear_compilation_metrics()


def compile_stats() -> CompileStats:
    """The counters since the last `reset_compiler`."""
    from torch._dynamo.utils import counters, get_compilation_metrics

    metrics = get_compilation_metrics()
    reasons = {m.cudagraph_skip_reason for m in metrics
               if getattr(m, "cudagraph_skip_reason", None)}
    return CompileStats(
        graphs=counters["stats"]["unique_graphs"],
        graph_breaks=sum(counters["graph_break"].values()),
        recompiles=sum(1 for m in metrics if (m.cache_size or 0) > 0),
        seconds=round(sum(m.entire_frame_compile_time_s or 0.0 for m in metrics), 3),
        cudagraph_skips=counters["inductor"]["cudagraph_skips"],
        cudagraph_skip_reasons=tuple(sorted(reasons)),
    )


def check_compiled(stats: CompileStats, mode: str | None, what: str) -> None:
    """Raise unless ``what`` ran compiled graphs (and, for a CUDA-graph ``mode`` on CUDA,
    replayed CUDA graphs): a benchmark must not be labelled compiled after running eager."""
    if stats.graphs == 0:
        raise RuntimeError(f"{what} was meant to run compiled, but dynamo compiled no graph")
    if mode in CUDA_GRAPH_MODES and stats.cudagraph_skips:
        raise RuntimeError(
            f"{what} asked for CUDA graphs (mode {mode!r}) but inductor skipped them: "
            f"{'; '.join(stats.cudagraph_skip_reasons) or 'no reason given'}")


def compile_fn(fn: Callable, *, mode: str | None, fullgraph: bool, static: bool) -> Callable:
    """``torch.compile(fn)`` that raises when dynamo hits its recompile limit, instead of
    running eager from then on.

    ``static``: every new shape compiles a graph of its own (dynamo would otherwise make a
    size that changed symbolic); else dimensions marked dynamic on the inputs are symbolic.
    """
    compiled = torch.compile(fn, mode=mode, fullgraph=fullgraph,
                             dynamic=False if static else None)

    def run(*args: Any) -> Any:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            return compiled(*args)

    return run
