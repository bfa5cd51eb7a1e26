"""Constructor ids and the registry that maps them to message classes.

A constructor id names a message on the wire. Go Rony computes it as CRC-64 with Go's
``crc64.ISO`` table (reflected polynomial 0xD800000000000000, init and final xor ~0) over the
message's bare name; an RPC method's id is the same over ``ServiceName + MethodName``. We
compute exactly that, so ids agree with Go Rony's generated code byte for byte.

The registry maps id -> (name, message class). Every generated module registers its messages
and methods at import. Unlike Go Rony, registering the *same* class twice is harmless (modules
can be re-imported); a *different* class under a taken id raises, naming both.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

__all__ = [
    "ConstructorClashError",
    "Registry",
    "crc64_iso",
    "message_id",
    "method_id",
    "registry",
]

_POLY_ISO_REFLECTED = 0xD800000000000000
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY_ISO_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc64_iso(data: bytes | str) -> int:
    """CRC-64 as Go's ``crc64.Checksum(data, crc64.MakeTable(crc64.ISO))``."""
    if isinstance(data, str):
        data = data.encode()
    crc = _MASK64
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


def message_id(name: str) -> int:
    """Constructor id of a message: CRC-64/ISO of its bare name (``"Ping"``)."""
    return crc64_iso(name.rsplit(".", 1)[-1])


def method_id(service: str, method: str) -> int:
    """Constructor id of an RPC method: CRC-64/ISO of ``service + method`` (no separator)."""
    return crc64_iso(service.rsplit(".", 1)[-1] + method)


class ConstructorClashError(ValueError):
    """Two different names or classes were registered under one constructor id."""


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    message_class: type[Message]


class Registry:
    """Constructor id <-> name <-> message class.

    For an RPC method the class is the method's *input* message (as Go Rony), so a server can
    decode a request envelope knowing only its constructor.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, _Entry] = {}
        self._by_name: dict[str, int] = {}
        # id -> class, kept beside _by_id for the codec's hot path (one dict lookup per unwrap).
        # _codec binds this dict's .get once: update it in place, never rebind it.
        self._classes: dict[int, type[Message]] = {}

    def register(self, constructor: int, name: str, message_class: type[Message]) -> None:
        old = self._by_id.get(constructor)
        if old is not None:
            if old.name == name and old.message_class is message_class:
                return
            if old.name == name and (
                old.message_class.DESCRIPTOR.full_name == message_class.DESCRIPTOR.full_name
            ):
                # The same proto module loaded again (e.g. importlib.reload): take the new class.
                self._by_id[constructor] = _Entry(name, message_class)
                self._classes[constructor] = message_class
                return
            raise ConstructorClashError(
                f"constructor {constructor} is taken by {old.name!r} "
                f"({old.message_class.DESCRIPTOR.full_name}); cannot register {name!r} "
                f"({message_class.DESCRIPTOR.full_name})"
            )
        self._by_id[constructor] = _Entry(name, message_class)
        self._by_name[name] = constructor
        self._classes[constructor] = message_class

    def register_message(self, message_class: type[Message]) -> int:
        """Register a message class under its own constructor id; return the id."""
        name = message_class.DESCRIPTOR.name
        cid = message_id(name)
        self.register(cid, name, message_class)
        return cid

    def name_of(self, constructor: int) -> str | None:
        entry = self._by_id.get(constructor)
        return entry.name if entry else None

    def id_of(self, name: str) -> int | None:
        return self._by_name.get(name)

    def class_of(self, constructor: int) -> type[Message] | None:
        return self._classes.get(constructor)

    def __contains__(self, constructor: object) -> bool:
        return constructor in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)


registry = Registry()
"""The process-wide registry, filled by every generated module at import."""
