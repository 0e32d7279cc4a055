"""Settings declared once: a dataclass field made by `setting` is also its command-line flag.

The field carries its help text and, where the flag is not simply ``--field-name`` of the
field's type, how the flag is spelt and parsed. `add_flags` adds the flags of chosen fields to
a parser (a ``Literal`` type gives the choices, a ``bool`` a switch); `read_flags` turns the
parsed values back into the dataclass's keywords, leaving out flags not given, so the field's
own default applies.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from passt.utils.errors import UsageError

SCALARS = (str, int, float)


@dataclass(frozen=True)
class KeyFlag:
    """A flag of its own for one key of a dict setting (``--embed-dim`` for
    ``model_overrides["embed_dim"]``); given, it wins over the dict flag's value."""

    help: str
    type: Callable[[str], Any] = str
    choices: Sequence[str] | None = None


@dataclass(frozen=True)
class Flag:
    """How a setting appears on the command line. ``help`` is argparse's (``%(default)s``)."""

    help: str
    name: str | None = None  # default: --field-name, or --no-field-name for a True bool
    parse: Callable[[Any], Any] | None = None  # the flag's value to the field's, e.g. KEY=VALUE
    metavar: str | None = None
    choices: Sequence[str] | None = None  # default: the values of a Literal type
    repeat: bool = False  # may be given many times; ``parse`` gets the list
    many: bool = False  # takes one or more values (``--grid A B C``); ``parse`` gets the list
    keys: Mapping[str, KeyFlag] = field(default_factory=dict)


def setting(default: Any = MISSING, *, default_factory: Any = MISSING, **flag: Any) -> Any:
    """A dataclass field that is also a command-line flag; ``flag``: `Flag`'s keywords."""
    return field(default=default, default_factory=default_factory,
                 metadata={"flag": Flag(**flag)})


def flag_names(cls: type) -> list[str]:
    """The fields of dataclass ``cls`` that are settings, in order."""
    return [f.name for f in dataclasses.fields(cls) if "flag" in f.metadata]


def _dashed(name: str) -> str:
    return "--" + name.replace("_", "-")


def _metavar(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_").upper()


def _key_dest(name: str, key: str) -> str:
    return f"{name}.{key}"


def _settings(cls: type, names: Iterable[str]) -> list[dataclasses.Field]:
    fields = {f.name: f for f in dataclasses.fields(cls) if "flag" in f.metadata}
    names = set(names)
    unknown = sorted(names - set(fields))
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting(s) {unknown}")
    return [f for name, f in fields.items() if name in names]


def _flag_type(hint: Any) -> Any:
    """``X`` of ``X | None``, else ``hint``."""
    args = [a for a in get_args(hint) if a is not type(None)]
    optional = get_origin(hint) in (Union, types.UnionType)
    return args[0] if optional and len(args) == 1 else hint


def _argument(f: dataclasses.Field, hint: Any) -> tuple[str, dict[str, Any]]:
    """The flag of field ``f`` and its `add_argument` keywords."""
    flag: Flag = f.metadata["flag"]
    kind = _flag_type(hint)
    spec: dict[str, Any] = {"dest": f.name, "help": flag.help}
    if kind is bool:
        on = f.default is True
        spec["action"] = "store_false" if on else "store_true"
        return flag.name or _dashed(("no_" if on else "") + f.name), spec
    literal = get_args(kind) if get_origin(kind) is Literal else None
    if flag.parse is None and not (kind in SCALARS or literal):
        raise TypeError(f"setting {f.name} of type {hint} needs a parse function")
    choices = flag.choices or literal
    name = flag.name or _dashed(f.name)
    spec.update(default=None if flag.parse else f.default, choices=choices,
                metavar=flag.metavar or (None if choices else _metavar(name)),
                type=kind if kind in SCALARS and not flag.parse else str)
    if flag.repeat:
        spec["action"] = "append"
    if flag.many:
        spec["nargs"] = "+"
    return name, spec


def add_flags(parser: argparse.ArgumentParser, cls: type, names: Iterable[str]) -> None:
    """Add the flags of the settings ``names`` of dataclass ``cls`` to ``parser``."""
    hints = get_type_hints(cls)
    for f in _settings(cls, names):
        name, spec = _argument(f, hints[f.name])
        parser.add_argument(name, **spec)
        for key, kf in f.metadata["flag"].keys.items():
            parser.add_argument(_dashed(key), dest=_key_dest(f.name, key), type=kf.type,
                                choices=kf.choices, metavar=None if kf.choices else key.upper(),
                                help=kf.help)


def read_flags(cls: type, args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The keywords of ``cls`` given by the flags of ``names`` in ``args``."""
    values: dict[str, Any] = {}
    for f in _settings(cls, names):
        flag: Flag = f.metadata["flag"]
        raw = getattr(args, f.name)
        if raw is not None:
            values[f.name] = flag.parse(raw) if flag.parse else raw
        keys = {key: getattr(args, _key_dest(f.name, key)) for key in flag.keys}
        keys = {key: value for key, value in keys.items() if value is not None}
        if keys:
            values[f.name] = {**values.get(f.name, {}), **keys}
    return values


def parse_overrides(text: str) -> dict[str, Any]:
    """``"embed_dim=64,depth=1,attention=math"`` to a dict of ints, floats, bools and strings."""
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"option {item!r} is not KEY=VALUE; accepted: KEY=VALUE,...")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _parse_value(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)
