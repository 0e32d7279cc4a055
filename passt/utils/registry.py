"""`Registry`: named entries of one kind that users may add to (patchout strategies, block
reductions, variants, datasets, peers, presets, ablations), with the one set of rules for
registering, looking up and reporting a name that is not there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from passt.utils.errors import UsageError

T = TypeVar("T")

PLUGIN_HINT = ("add your own with a plugin: --plugin FILE (pytest bench/: --bench-plugin FILE) "
               "or $PASST_PLUGINS")


def _same(a: Any, b: Any) -> bool:
    """Whether two entries are one definition: equal, or the same class defined again (a
    module or plugin file imported a second time)."""
    if isinstance(a, type) and isinstance(b, type):
        return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)
    return a is b or a == b


class Registry(Generic[T]):
    """Entries of one ``kind`` by name, in registration order.

    A name is registered once: a different entry under a taken name is an error unless
    ``replace=True`` (an entry redefined on purpose); the same definition again (a plugin
    loaded twice) is not.
    """

    def __init__(self, kind: str, *, label: Callable[[T], str] | None = None):
        self.kind = kind
        self.label = label  # how an entry is listed in errors (default: its name)
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Keep ``entry`` under ``name`` and return it."""
        if not name or not isinstance(name, str):
            raise UsageError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        known = self._entries.get(name)
        if known is not None and not replace and not _same(known, entry):
            by = f" by {known.__module__}.{known.__qualname__}" if isinstance(known, type) else ""
            raise UsageError(f"{self.kind} {name!r} is already registered{by}; choose another "
                             "name")
        self._entries[name] = entry
        return entry

    def register_class(self, name: str, cls: Any, base: type) -> Any:
        """Register ``cls``, a subclass of ``base``, under ``name`` and name it so
        (``cls.name``); returns it, so that it serves as a class decorator's body."""
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"a {self.kind} {name!r} expects a {base.__name__} subclass, "
                            f"got {cls!r}")
        self.register(name, cls)
        cls.name = name
        return cls

    def get(self, name: str) -> T:
        """The entry registered under ``name``."""
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(self.unknown(name)) from None

    def create(self, name: str, **kwargs: Any) -> Any:
        """Call the entry ``name`` (a class or factory) with ``kwargs``; a wrong keyword is an
        error that names the entry."""
        factory = self.get(name)
        try:
            return factory(**kwargs)  # type: ignore[operator]
        except TypeError as e:
            raise UsageError(f"{self.kind} {name!r}: {e}") from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def unknown(self, name: object, extra: tuple[str, ...] = ()) -> str:
        """The message for a name that is not registered (``extra``: other accepted names)."""
        listed = [n if self.label is None else self.label(e) for n, e in self._entries.items()]
        return f"unknown {self.kind} {name!r}; known: {', '.join([*extra, *listed])}; {PLUGIN_HINT}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
