"""Payload conversion: dataclasses, pydantic models, plain types, bytes."""

from __future__ import annotations

import dataclasses
from typing import Optional

import pytest

from weft.converter import ConversionError, from_payload, to_payload


@dataclasses.dataclass
class Label:
    name: str
    description: str = ""


@dataclasses.dataclass
class Request:
    text: str
    labels: list[Label]
    limit: Optional[int] = None


def test_dataclasses_round_trip() -> None:
    r = Request("refund me", [Label("billing", "money"), Label("account")], 3)
    payload = to_payload(r)
    assert from_payload(payload, Request) == r
    assert from_payload(b'{"text":"t","labels":[{"name":"x"}]}', Request) == Request(
        "t", [Label("x")]
    )


def test_what_does_not_fit_names_the_path() -> None:
    with pytest.raises(ConversionError, match=r"\$.labels\[1\]: missing field `name` of Label"):
        from_payload(b'{"text":"t","labels":[{"name":"a"},{}]}', Request)
    with pytest.raises(ConversionError, match=r"\$.text: expected str, got a number"):
        from_payload(b'{"text":1,"labels":[]}', Request)
    with pytest.raises(ConversionError, match="not JSON"):
        from_payload(b"{", Request)
    with pytest.raises(ConversionError, match="cannot encode"):
        to_payload(object())


def test_plain_types_bytes_and_pydantic() -> None:
    assert from_payload(b"[1,2]", list[int]) == [1, 2]
    assert from_payload(b"2", float) == 2.0
    with pytest.raises(ConversionError):
        from_payload(b"true", int)
    assert from_payload(b"\x00\xff", bytes) == b"\x00\xff"
    assert to_payload(b"\x00\xff") == b"\x00\xff"
    assert from_payload(b"", None) is None
    import pydantic  # in the test extra, so this part always runs

    class Ticket(pydantic.BaseModel):  # type: ignore[misc,name-defined]
        text: str
        priority: int = 0

    assert from_payload(b'{"text":"x","priority":2}', Ticket) == Ticket(text="x", priority=2)
    assert to_payload(Ticket(text="x")) == b'{"text":"x","priority":0}'
    with pytest.raises(ConversionError, match="text"):
        from_payload(b'{"priority":2}', Ticket)
