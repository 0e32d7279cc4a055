"""Named classes of one kind (patchout strategies, block reductions): the rules shared by their
registries. Each registry is a module's own ``dict`` of name to class; these functions keep,
look up and instantiate its entries with errors that name the kind and the names known."""

from __future__ import annotations

from typing import Any, TypeVar

from passt.utils.errors import UsageError

T = TypeVar("T")


def register(registry: dict[str, type[T]], kind: str, name: str, cls: type[T]) -> None:
    """Keep ``cls`` under ``name`` (and as ``cls.name``); a second class under a name taken is
    an error, the same class again (a module reloaded) is not."""
    if not name or not isinstance(name, str):
        raise UsageError(f"a {kind} needs a non-empty string name, got {name!r}")
    known = registry.get(name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise UsageError(f"{kind} {name!r} is already registered by {known!r}")
    cls.name = name
    registry[name] = cls


def lookup(registry: dict[str, type[T]], kind: str, name: str) -> type[T]:
    """The class registered under ``name``."""
    try:
        return registry[name]
    except KeyError:
        raise UsageError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}"
                         ) from None


def instantiate(registry: dict[str, type[T]], kind: str, name: str, kwargs: dict[str, Any]) -> T:
    """An instance of the class ``name`` with ``kwargs``; a wrong keyword names the class."""
    cls = lookup(registry, kind, name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise UsageError(f"{kind} {name!r}: {e}") from None
