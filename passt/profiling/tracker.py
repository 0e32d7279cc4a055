"""Which component, and which phase of the step, the op running now belongs to.

Forward: module hooks keep a stack of components. Backward: the autograd node being run was
created in forward at a known point of that stack; autograd numbers its nodes in creation
order, so the node's sequence number finds the component that created it.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from passt.profiling.components import EMBED, ENCODER, FRONTEND, HEAD, OPTIMIZER, components

Phase = Literal["forward", "backward", "optimizer"]


class ComponentTracker:
    """Attributes ops to components of ``model`` and ``frontend`` while installed (a context
    manager); ops outside both belong to ``root`` (the loss, in a training forward)."""

    def __init__(self, model: nn.Module, frontend: nn.Module, root: str = HEAD):
        self.model, self.frontend, self.root = model, frontend, root
        self._stack: list[str] = [root]
        self._segments_seq: list[int] = []  # autograd sequence numbers where the stack changed
        self._segments: list[str] = []  # the component from that point on
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> ComponentTracker:
        self._hook(self.frontend, FRONTEND)
        self._hook(self.model, EMBED)
        modules = dict(self.model.named_modules())
        for name, component in components(modules).items():
            self._hook(modules[name], component, encoder=bool(ENCODER.search(name)))
        self._mark()
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def current(self) -> tuple[Phase, str]:
        """The phase and component of the op being dispatched now."""
        node = torch._C._current_autograd_node()
        if node is not None:
            seq = node._sequence_nr()
            i = bisect.bisect_right(self._segments_seq, seq) - 1
            return "backward", self._segments[i] if i >= 0 else self.root
        top = self._stack[-1]
        return ("optimizer" if top == OPTIMIZER else "forward"), top

    @contextlib.contextmanager
    def label(self, component: str) -> Iterator[None]:
        """Ops run inside belong to ``component`` (the optimizer step, say)."""
        self._push(component)
        try:
            yield
        finally:
            self._pop()

    def _hook(self, module: nn.Module, component: str | None, encoder: bool = False) -> None:
        """Push ``component`` (None: the parent's) while ``module`` runs forward."""
        def pre(m: nn.Module, args: object) -> None:
            self._push(component or self._stack[-1])

        def post(m: nn.Module, args: object, out: object) -> None:
            self._pop()
            if encoder:  # the enclosing module's own ops after the blocks: pooling, head
                self._stack[-1] = HEAD
                self._mark()

        self._handles += [module.register_forward_pre_hook(pre),
                          module.register_forward_hook(post)]

    def _push(self, component: str) -> None:
        self._stack.append(component)
        self._mark()

    def _pop(self) -> None:
        self._stack.pop()
        self._mark()

    def _mark(self) -> None:
        self._segments_seq.append(torch._C._autograd._get_sequence_nr())
        self._segments.append(self._stack[-1])
