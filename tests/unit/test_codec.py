"""The field-table codec behind the messages: declarations, extension, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import pytest

from services.common.contracts.codec import NOT_STORED, IfAbsent, Message, MessageError, NonNegative, message
from services.common.contracts.messages import Command, Reply


@message("ping", order=("b",))
@dataclass(frozen=True, slots=True)
class Ping(Message):
    a: str
    b: NonNegative
    mode: Literal["x", "y"] = "x"
    note: int | None = None
    local: Annotated[str, NOT_STORED] = field(default="", compare=False)


def test_a_declaration_is_the_whole_codec() -> None:
    fields = Ping("hi", 3, "y").to_fields()
    assert list(fields.items()) == [(b"v", b"1"), (b"b", b"3"), (b"a", b"hi"), (b"mode", b"y"), (b"note", b"")]
    assert Ping.from_fields(fields) == Ping("hi", 3, "y")
    assert Ping.from_fields({"a": "hi", "b": "0"}) == Ping("hi", 0)  # str keys; absent fields take defaults
    with pytest.raises(MessageError, match="ping: field 'b': must be >= 0, got -1"):
        Ping.from_fields({b"a": b"", b"b": b"-1"})
    with pytest.raises(MessageError, match="ping: field 'mode': 'z' is not one of x, y"):
        Ping.from_fields({b"a": b"", b"b": b"1", b"mode": b"z"})
    with pytest.raises(MessageError, match="ping: missing field 'a'"):
        Ping.from_fields({b"b": b"1"})


def test_adding_a_field_is_one_line_and_old_entries_still_read() -> None:
    @message("ping")
    @dataclass(frozen=True, slots=True)
    class Ping2(Message):
        a: str
        b: NonNegative
        mode: Literal["x", "y"] = "x"
        note: int | None = None
        added: Annotated[float, IfAbsent(0.5)] = 1.0  # the new line

    old_entry = Ping("hi", 3).to_fields()
    assert Ping2.from_fields(old_entry).added == 0.5
    assert Ping2("hi", 3).to_fields()[b"added"] == b"1.0"


def test_declaration_mistakes_fail_at_import() -> None:
    with pytest.raises(TypeError, match="no codec for"):
        @message("bad")
        @dataclass(frozen=True)
        class Bad(Message):
            items: list[str]
    with pytest.raises(TypeError, match="goes above @dataclass"):
        @dataclass(frozen=True)
        @message("bad")
        class Upside(Message):
            a: str
    with pytest.raises(TypeError, match="unknown attributes"):
        @message("bad", order=("nope",))
        @dataclass(frozen=True)
        class Typo(Message):
            a: str


def test_malformed_input_never_escapes_as_a_bare_exception() -> None:
    good = Command("r", "c", "set").to_fields()
    with pytest.raises(MessageError, match="'counts': expected"):  # an OverflowError before the codec
        Command.from_fields({**good, b"counts": b'{"victories": 1, "defeats": 2, "draws": Infinity}'})
    with pytest.raises(MessageError, match="reply: not valid"):  # a UnicodeDecodeError before the codec
        Reply.from_json(b"\xff")
