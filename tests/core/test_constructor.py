"""Constructor ids agree with Go Rony's generated code (msg.rony.go, sample.rony.go)."""

from __future__ import annotations

import pytest

import rony.core as rc
from rony.core import ConstructorClashError, Registry, crc64_iso, message_id, method_id

# Values from Go Rony's generated code at HEAD (msg.rony.go, example/echo/rpc/sample.rony.go).
GOLDEN = {
    "MessageEnvelope": 11385363697628734430,
    "Ping": 3584172304239689728,
    "Pong": 3584174915579805696,
    "KeyValue": 9712539143259722476,
    "MessageContainer": 8705479839606992738,
    "Error": 3300063058275074048,
    "Redirect": 12783312295490183931,
    "Edge": 3661905149145645056,
    "Edges": 3202852853167161344,
    "GetNodes": 17614373553603896039,
    "GetAllNodes": 2426091802953969362,
    "HttpBody": 4148778432730789982,
}


@pytest.mark.parametrize(("name", "expected"), sorted(GOLDEN.items()))
def test_message_ids_match_go(name: str, expected: int) -> None:
    assert message_id(name) == expected
    assert getattr(rc, f"C_{name}") == expected
    assert rc.registry.name_of(expected) == name


def test_method_id_is_crc_of_service_plus_method() -> None:
    assert method_id("Sample", "Echo") == 5610266072904040111
    assert method_id("Sample", "Echo") == crc64_iso("SampleEcho")


def test_crc64_iso_check_value() -> None:
    # CRC-64/GO-ISO check value over "123456789".
    assert crc64_iso(b"123456789") == 0xB90956C775A41001


def test_registry_refuses_a_clash() -> None:
    reg = Registry()
    reg.register(1, "Ping", rc.Ping)
    reg.register(1, "Ping", rc.Ping)  # idempotent
    with pytest.raises(ConstructorClashError, match="Ping"):
        reg.register(1, "Pong", rc.Pong)
    assert reg.class_of(1) is rc.Ping
    assert reg.id_of("Ping") == 1
    assert 1 in reg
    assert len(reg) == 1
