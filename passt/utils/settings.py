"""Settings declared once: a dataclass field made by `setting` is also its command-line flag.

The field carries its help text and, where the flag is not simply ``--field-name`` of the
field's type, how the flag is spelt and parsed. `add_flags` adds the flags of chosen fields to
a parser (a ``Literal`` type gives the choices, a ``bool`` a switch), or to a pytest option
group, optionally behind a prefix (``--bench-batch-size``); `read_flags` turns the parsed values
back into the dataclass's keywords, leaving out flags not given, so the field's own default
applies.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
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


def _dest(prefix: str, name: str) -> str:
    return prefix.replace("-", "_") + name


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


def _argument(f: dataclasses.Field, hint: Any, prefix: str) -> tuple[str, dict[str, Any]]:
    """The flag of field ``f`` (behind ``prefix``) and its `add_argument` keywords."""
    flag: Flag = f.metadata["flag"]
    kind = _flag_type(hint)
    spec: dict[str, Any] = {"dest": _dest(prefix, f.name), "help": flag.help}
    if kind is bool and flag.parse is None:
        on = f.default is True
        spec["action"] = "store_false" if on else "store_true"
        return "--" + prefix + (flag.name or _dashed(("no_" if on else "") + f.name))[2:], spec
    literal = get_args(kind) if get_origin(kind) is Literal else None
    if flag.parse is None and not (kind in SCALARS or literal):
        raise TypeError(f"setting {f.name} of type {hint} needs a parse function")
    choices = flag.choices or literal
    name = "--" + prefix + (flag.name or _dashed(f.name))[2:]
    spec.update(default=None if flag.parse else f.default, choices=choices,
                metavar=flag.metavar or (None if choices else _metavar(name)),
                type=kind if kind in SCALARS and not flag.parse else str)
    if flag.repeat:
        spec["action"] = "append"
    if flag.many:
        spec["nargs"] = "+"
    return name, spec


def add_flags(parser: Any, cls: type, names: Iterable[str], prefix: str = "") -> None:
    """Add the flags of the settings ``names`` of dataclass ``cls``, each behind ``prefix``
    (``"bench-"``: ``--bench-batch-size``), to ``parser``: an argparse parser or group, or a
    pytest option group (its ``addoption`` takes argparse's keywords)."""
    add = getattr(parser, "add_argument", None) or parser.addoption
    hints = get_type_hints(cls)
    for f in _settings(cls, names):
        name, spec = _argument(f, hints[f.name], prefix)
        add(name, **spec)
        for key, kf in f.metadata["flag"].keys.items():
            add("--" + prefix + _dashed(key)[2:], dest=_key_dest(_dest(prefix, f.name), key),
                type=kf.type, choices=kf.choices, metavar=None if kf.choices else key.upper(),
                help=kf.help)


def read_flags(cls: type, args: argparse.Namespace, names: Iterable[str],
               prefix: str = "") -> dict[str, Any]:
    """The keywords of ``cls`` given by the flags of ``names`` (added behind ``prefix``) in
    ``args`` (argparse's namespace, or pytest's ``config.option``)."""
    values: dict[str, Any] = {}
    for f in _settings(cls, names):
        flag: Flag = f.metadata["flag"]
        dest = _dest(prefix, f.name)
        raw = getattr(args, dest)
        if raw is not None:
            values[f.name] = flag.parse(raw) if flag.parse else raw
        keys = {key: getattr(args, _key_dest(dest, key)) for key in flag.keys}
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


def check_options(target: Callable[..., Any] | type, options: Mapping[str, Any],
                  what: str, known: Iterable[str] | None = None) -> None:
    """Raise `UsageError` for the first of ``options`` (free-form ``KEY=VALUE`` options, e.g.
    ``--data-options``) that ``target`` does not take, or whose value does not fit the type
    hint of ``target``'s field or parameter of that name (int, float, bool, str, a
    ``Literal``, ``X | None``; other hints are left to ``target``). ``known``: the names it
    takes, where not all are in its signature."""
    hints = _hints(target)
    accepted = list(known) if known is not None else list(hints)
    for key, value in options.items():
        if key not in accepted:
            raise UsageError(f"unknown {what} {key!r}; accepted: {', '.join(accepted)}")
        expected = _expected(hints.get(key, Any), value)
        if expected is not None:
            raise UsageError(f"{what} {key}={value!r}: expected {expected}")


def _hints(target: Callable[..., Any] | type) -> dict[str, Any]:
    """The type hints of a dataclass's fields or of a callable's (or class's) parameters."""
    if dataclasses.is_dataclass(target):
        hints = get_type_hints(target)
        return {f.name: hints[f.name] for f in dataclasses.fields(target)}
    function = target.__init__ if isinstance(target, type) else target
    hints = get_type_hints(function)
    return {name: hints.get(name, Any) for name in inspect.signature(function).parameters
            if name not in ("self", "args", "kwargs")}


def _expected(hint: Any, value: Any) -> str | None:
    """What ``hint`` accepts, where ``value`` does not fit it (None: it fits, or the hint is
    not one checked here)."""
    if get_origin(hint) in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(get_args(hint)):
            return None
        misses = [_expected(a, value) for a in options]
        return None if None in misses else " or ".join(m for m in misses if m)
    if get_origin(hint) is tuple and ... not in get_args(hint):
        items = get_args(hint)
        kinds = {_expected(a, object()) or "a value" for a in items}
        kind = kinds.pop().split(" ", 1)[1] + "s" if len(kinds) == 1 else "values"
        wanted = f"a tuple of {len(items)} {kind}"
        if not isinstance(value, tuple | list) or len(value) != len(items):
            return wanted
        return (None if all(_expected(a, v) is None for a, v in zip(items, value, strict=True))
                        else wanted)
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        return None if value in choices else "one of " + ", ".join(map(str, choices))
    checks = {bool: (lambda v: isinstance(v, bool), "true or false"),
              int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
              float: (lambda v: isinstance(v, int | float) and not isinstance(v, bool),
                      "a number"),
              str: (lambda v: isinstance(v, str), "a string")}
    if hint not in checks:
        return None
    fits, name = checks[hint]
    return None if fits(value) else name
