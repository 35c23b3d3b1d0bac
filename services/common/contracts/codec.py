"""A field-table codec for the messages carried by Redis streams and hashes.

A message is declared once, as a frozen dataclass whose annotated attributes
are its field table; ``@message(kind)`` compiles it into ``to_fields`` and
``from_fields`` (inherited from :class:`Message`). How an annotation is stored:

- ``str``/``int`` as text, ``float`` as its ``repr`` (finite only), ``bytes`` as
  is, a ``Literal`` as its text (checked against the choices);
- ``X | None``: ``None`` is stored empty; empty or absent reads as ``None``;
- an absent field reads as the attribute's default or ``IfAbsent(value)``
  (fields older writers did not store), else it is an error;
- ``Annotated`` extras: checks (``at_least``, ``within``, ``non_empty``), a
  :class:`Codec` (JSON, lists), ``COLUMNS`` (a nested dataclass stored as one
  field per attribute), ``NOT_STORED``;
- fields are written in declaration order; ``order=`` pins the fields that
  were written in another order before this codec existed.

A record stored as *one JSON object* (a hash field or a list entry: the state
machine, a session summary, a command's reply) is a plain dataclass read and
written by a :class:`JsonRecord`: pydantic checks it against the same
annotations (nested dataclasses, ``Literal`` choices, tuples), an ``upgrade``
turns what older writers stored into today's shape, and ``v`` is checked
like a stream entry's.

``from_fields`` accepts what redis-py returns with ``decode_responses=False``
(``str`` keys and values too) and raises :class:`MessageError` naming the
message, the field and what was wrong, never a bare ``KeyError``/``ValueError``.
Every message carries ``v`` (schema version); a reader refuses other major
versions with a clear error.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from functools import cached_property
from operator import attrgetter
from types import UnionType
from typing import (
    Annotated,
    Any,
    ClassVar,
    Generic,
    Literal,
    Self,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from pydantic import TypeAdapter, ValidationError

SCHEMA_VERSION = 1

Fields = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]


class MessageError(ValueError):
    """A stream entry that does not match its contract."""


# --------------------------------------------------------------------------- how values are stored

Encode = Callable[[Any], bytes]
Parse = Callable[[bytes, str], Any]  # (stored value, "<kind>: field '<name>'") -> value, or MessageError
Check = Callable[[Any, str], None]  # (value read, "<kind>: field '<name>'") -> None, or MessageError


@dataclass(frozen=True, slots=True)
class Codec:
    """How one value is written to a stream field and parsed back."""

    encode: Encode
    parse: Parse


@dataclass(frozen=True, slots=True)
class IfAbsent:
    """What a reader makes of an entry without the field (written before the field existed)."""

    value: Any


COLUMNS = object()  # a nested dataclass stored as one field per attribute, all required
NOT_STORED = object()  # an attribute that is not one of the stored fields


def text(value: object, errors: str = "strict") -> str:
    """What redis-py returned, as text: ``bytes`` decoded as UTF-8, anything else through ``str``."""
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)


def read_text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError(f"{where} is not valid UTF-8") from None


def _int(raw: bytes, where: str) -> int:
    text = read_text(raw, where)
    try:
        return int(text)
    except ValueError:
        raise MessageError(f"{where}: expected an integer, got {text!r}") from None


def _float(raw: bytes, where: str) -> float:
    text = read_text(raw, where)
    try:
        value = float(text)
    except ValueError:
        raise MessageError(f"{where}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise MessageError(f"{where}: expected a finite number, got {text!r}")
    return value


def read_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(read_text(raw, where))
    except json.JSONDecodeError as exc:
        raise MessageError(f"{where}: invalid JSON ({exc.msg})") from None


def _choice(allowed: tuple[str, ...]) -> Codec:
    def parse(raw: bytes, where: str) -> str:
        text = read_text(raw, where)
        if text not in allowed:
            raise MessageError(f"{where}: {text!r} is not one of {', '.join(allowed)}")
        return text

    return Codec(str.encode, parse)


def _number_map(raw: bytes, where: str) -> dict[str, float]:
    value = read_json(raw, where)
    if not isinstance(value, dict) or not all(isinstance(v, int | float) for v in value.values()):
        raise MessageError(f"{where}: expected a JSON object of numbers")
    return {k: float(v) for k, v in value.items()}


_SCALARS: dict[object, Codec] = {
    str: Codec(str.encode, read_text),
    int: Codec(lambda v: str(v).encode(), _int),
    float: Codec(lambda v: repr(float(v)).encode(), _float),  # repr: the exact value, read back unchanged
    bytes: Codec(lambda v: v, lambda raw, where: raw),
}
NUMBER_MAP = Codec(lambda v: json.dumps(v, separators=(",", ":")).encode(), _number_map)  # compact JSON object


def at_least(low: int) -> Check:
    def check(value: int, where: str) -> None:
        if value < low:
            raise MessageError(f"{where}: must be >= {low}, got {value}")

    return check


def within(low: float, high: float) -> Check:
    def check(value: float, where: str) -> None:
        if not low <= value <= high:
            raise MessageError(f"{where}: must be within {low:g}..{high:g}, got {value}")

    return check


def non_empty(value: str, where: str) -> None:
    if not value:
        raise MessageError(f"{where} is empty")


NonNegative = Annotated[int, at_least(0)]
Positive = Annotated[int, at_least(1)]
Probability = Annotated[float, within(0.0, 1.0)]


# --------------------------------------------------------------------------- compiling a field table

Read = Callable[[Mapping[str, bytes]], Any]
Writer = tuple[str, str, Encode]  # stored key, attribute path ("counts.draws"), encoder


def _reader(kind: str, key: str, parse: Parse, checks: list[Check], absent: Any, optional: bool) -> Read:
    """How one stored field is read from a normalized entry (a closure: this runs per frame)."""
    where, missing = f"{kind}: field {key!r}", f"{kind}: missing field {key!r}"

    def read(raw: Mapping[str, bytes]) -> Any:
        value = raw.get(key)
        if optional and not value:
            return None
        if value is None:
            if absent is MISSING:
                raise MessageError(missing)
            return copy.copy(absent)  # a fresh {} each time
        result = parse(value, where)
        for check in checks:
            check(result, where)
        return result

    return read


def _compile(kind: str, name: str, hint: Any, absent: Any, extras: tuple[Any, ...] = ()) -> tuple[list[Writer], Read]:
    """One attribute: its stored fields and its reader."""
    if get_origin(hint) is Annotated:
        hint, *more = get_args(hint)
        extras = (*extras, *more)
    absent = next((x.value for x in extras if isinstance(x, IfAbsent)), absent)
    if COLUMNS in extras:
        inner = tuple(x for x in extras if x is not COLUMNS)
        nested = get_type_hints(hint, include_extras=True)
        parts = {f.name: _compile(kind, f.name, nested[f.name], MISSING, inner) for f in fields(hint)}
        return (
            [(key, f"{name}.{path}", enc) for writers, _ in parts.values() for key, path, enc in writers],
            lambda raw: hint(**{n: read(raw) for n, (_, read) in parts.items()}),
        )
    optional = get_origin(hint) in (Union, UnionType) and type(None) in get_args(hint)
    if optional:
        (hint,) = (a for a in get_args(hint) if a is not type(None))
    codec = next((x for x in extras if isinstance(x, Codec)), None)
    codec = codec or (_choice(get_args(hint)) if get_origin(hint) is Literal else _SCALARS.get(hint))
    if codec is None:
        raise TypeError(f"{kind}: field {name!r}: no codec for {hint!r}; annotate it with a Codec")
    checks = [x for x in extras if callable(x)]  # the other extras (Codec, IfAbsent, markers) are not
    encode = _empty_for_none(codec.encode) if optional else codec.encode
    return [(name, name, encode)], _reader(kind, name, codec.parse, checks, absent, optional)


def _empty_for_none(encode: Encode) -> Encode:
    return lambda value: b"" if value is None else encode(value)


class Message:
    """Base of the message dataclasses: ``to_fields``/``from_fields`` from the table ``@message`` compiled."""

    __slots__ = ()
    _kind: ClassVar[str]
    _writers: ClassVar[tuple[tuple[bytes, Callable[[Any], Any], Encode], ...]]
    _readers: ClassVar[tuple[tuple[str, Read], ...]]

    def to_fields(self) -> dict[bytes, bytes]:
        out = {b"v": _VERSION}
        for key, get, encode in self._writers:
            out[key] = encode(get(self))
        return out

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        return cls._decode(fields)

    @classmethod
    def _decode(cls, fields: Fields, **extra: Any) -> Self:
        raw = _normalize(cls._kind, fields)
        return cls(**{name: read(raw) for name, read in cls._readers}, **extra)

    def _stored_values(self) -> dict[str, Any]:
        """The stored fields as Python values, in stored order (``victories``, not ``counts``)."""
        return {key.decode(): get(self) for key, get, _ in self._writers}


_VERSION = str(SCHEMA_VERSION).encode()
M = TypeVar("M", bound=Message)


def message(kind: str, *, order: tuple[str, ...] = ()) -> Callable[[type[M]], type[M]]:
    """Compile a message dataclass's field table; goes above ``@dataclass``.

    ``kind`` names the message in errors; ``order`` lists the attributes stored
    first (the rest follow in declaration order).
    """

    def build(cls: type[M]) -> type[M]:
        if not is_dataclass(cls):
            raise TypeError(f"@message({kind!r}) goes above @dataclass")
        declared = {f.name: f for f in fields(cls)}
        if unknown := set(order) - declared.keys():
            raise TypeError(f"@message({kind!r}): order names unknown attributes {sorted(unknown)}")
        hints = get_type_hints(cls, include_extras=True)
        writers: list[tuple[bytes, Callable[[Any], Any], Encode]] = []
        readers: list[tuple[str, Read]] = []
        for name in (*order, *(n for n in declared if n not in order)):
            f = declared[name]
            if NOT_STORED in getattr(hints[name], "__metadata__", ()):
                continue
            absent = f.default if f.default_factory is MISSING else f.default_factory()
            stored, read = _compile(kind, name, hints[name], absent)
            writers += [(key.encode(), attrgetter(path), enc) for key, path, enc in stored]
            readers.append((name, read))
        cls._kind, cls._writers, cls._readers = kind, tuple(writers), tuple(readers)
        return cls

    return build


def _check_version(kind: str, version: object) -> None:
    try:
        major = int(text(version))
    except ValueError:
        raise MessageError(f"{kind}: field 'v': expected an integer, got {version!r}") from None
    if major != SCHEMA_VERSION:
        raise MessageError(
            f"{kind}: schema version {major} is not supported (expected {SCHEMA_VERSION});"
            " are all services the same version?"
        )


def _normalize(kind: str, fields: Fields) -> dict[str, bytes]:
    raw: dict[str, bytes] = {}
    for k, v in fields.items():
        key = text(k, "replace")
        raw[key] = v if isinstance(v, bytes) else str(v).encode("utf-8")
    version = raw.get("v")
    if version is not None:
        _check_version(kind, version)
    return raw


# --------------------------------------------------------------------------- records stored as one JSON object

T = TypeVar("T")
Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


class JsonRecord(Generic[T]):
    """A dataclass stored as one JSON object; pydantic reads it against the dataclass's annotations.

    ``required``: keys every stored form has had (a dataclass default does not
    make an empty object a valid record); ``upgrade``: today's shape from what
    older writers stored (and from a flattened form, see ``SessionSummary``);
    ``as_dict``: the stored object when it is not the dataclass's fields;
    ``versioned``: ``v`` is written first and checked on read; ``compact``:
    no spaces after separators. Any of these that a record has always done is
    kept, so a stored record writes back byte for byte.
    """

    def __init__(self, cls: type[T], kind: str, *, required: tuple[str, ...] = (), upgrade: Upgrade | None = None,
                 as_dict: Callable[[T], dict[str, Any]] | None = None, versioned: bool = True,
                 compact: bool = True) -> None:
        self.cls, self.kind, self.required, self.upgrade = cls, kind, required, upgrade
        self.as_dict, self.versioned = as_dict, versioned
        self.separators = (",", ":") if compact else (", ", ": ")

    @cached_property
    def adapter(self) -> TypeAdapter[T]:  # built on first use, not at import
        return TypeAdapter(self.cls)

    def dumps(self, value: T) -> str:
        body = self.as_dict(value) if self.as_dict else self.adapter.dump_python(value, mode="json")
        return json.dumps({"v": SCHEMA_VERSION, **body} if self.versioned else body, separators=self.separators)

    def loads(self, data: bytes | str) -> T:
        """The record, or :class:`MessageError` naming what is wrong (never a half-read record)."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object")
            if missing := [key for key in self.required if key not in raw]:
                raise ValueError(f"missing {', '.join(missing)}")
            if self.versioned and "v" in raw:
                _check_version(self.kind, raw.pop("v"))
            return self.adapter.validate_python(self.upgrade(raw) if self.upgrade else raw)
        except MessageError:
            raise
        except ValidationError as exc:
            wrong = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            raise MessageError(f"{self.kind}: not valid ({wrong})") from None
        except (KeyError, TypeError, ValueError) as exc:  # ValueError: bad JSON, or bytes that are not UTF-8
            raise MessageError(f"{self.kind}: not valid ({exc})") from None
