"""What each op costs, by component: its time (and on CUDA the allocator bytes it leaves), its
FLOPs, and the bytes autograd saves for backward."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from passt.measure.flops import CPU_SDPA_FORMULAS
from passt.profiling.tracker import ComponentTracker, Phase

Key = tuple[str, str]  # (phase, component)


@dataclass(frozen=True)
class OpEvent:
    """One op of a profiled step: where it belongs, when it ran, what it cost."""

    phase: Phase
    component: str
    op: str
    start_s: float  # from the start of the step (device time on CUDA)
    seconds: float
    allocated_bytes: int  # CUDA allocator bytes after the op minus before (0 on the CPU)


class OpRecorder(TorchDispatchMode):
    """Times every op below autograd and attributes it with ``tracker``.

    On the CPU, ops run synchronously: the host clock around each is its time. On CUDA, a
    pair of events around each op is read after the step (`events`), so the times are the
    device's; the allocator's counter, read on the host, gives each op's net allocation.
    """

    def __init__(self, tracker: ComponentTracker, device: torch.device):
        super().__init__()
        self.tracker, self.cuda = tracker, device.type == "cuda"
        self._raw: list[tuple[Phase, str, str, Any, Any, int]] = []
        self._origin: Any = None

    def __enter__(self) -> OpRecorder:
        self._origin = self._clock()
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        phase, component = self.tracker.current()
        before = torch.cuda.memory_allocated() if self.cuda else 0
        start = self._clock()
        out = func(*args, **(kwargs or {}))
        end = self._clock()
        after = torch.cuda.memory_allocated() if self.cuda else 0
        self._raw.append((phase, component, str(func.overloadpacket), start, end, after - before))
        return out

    def _clock(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def events(self) -> list[OpEvent]:
        """The recorded ops (on CUDA, call after synchronising the device)."""
        if self.cuda:
            def seconds(a: Any, b: Any) -> float:
                return a.elapsed_time(b) / 1e3
        else:
            def seconds(a: Any, b: Any) -> float:
                return b - a
        return [OpEvent(phase, component, op, seconds(self._origin, start), seconds(start, end),
                        allocated)
                for phase, component, op, start, end, allocated in self._raw]


class ComponentFlopCounter(FlopCounterMode):
    """torch's `FlopCounterMode` (CPU attention formula included) that also adds each count
    to the component of the op, so the components add up to its total exactly."""

    def __init__(self, tracker: ComponentTracker):
        super().__init__(display=False, custom_mapping=CPU_SDPA_FORMULAS)
        self.tracker = tracker
        self.by_component: Counter[Key] = Counter()

    def _count_flops(self, func_packet, out, args, kwargs):
        if func_packet in self.flop_registry:
            flops = self.flop_registry[func_packet](*args, **kwargs, out_val=out)
            self.by_component[self.tracker.current()] += flops
        return super()._count_flops(func_packet, out, args, kwargs)


@contextlib.contextmanager
def saved_bytes(tracker: ComponentTracker, model: nn.Module) -> Iterator[Counter[Key]]:
    """Bytes of the distinct storages autograd saves for backward inside, by component
    (parameters left out, as in `passt.measure.memory.saved_activation_bytes`)."""
    params = {(p.device, p.untyped_storage().data_ptr()) for p in model.parameters()}
    seen: set[tuple[torch.device, int]] = set()
    counts: Counter[Key] = Counter()

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        key = (t.device, storage.data_ptr())
        if key not in params and key not in seen:
            seen.add(key)
            counts[tracker.current()] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield counts
