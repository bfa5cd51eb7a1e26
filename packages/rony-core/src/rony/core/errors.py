"""One error tree for all of Rony.

Every error carries its wire code (Go Rony's ``E00``..``E13``), an ``items`` word saying what
failed (upper case by convention: ``REQUEST``, ``HANDLER``, ``SERVER``) and a free description,
plus the HTTP status the gateway answers with. So any exception turns into an ``Error`` envelope
or an HTTP status without an if-ladder, and an ``Error`` message read off the wire turns back into
the matching exception class.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from rony.core.pb import msg_pb2

__all__ = [
    "AccessError",
    "AlreadyExistsError",
    "BusyError",
    "Code",
    "ExpiredError",
    "IncompleteError",
    "InternalError",
    "InvalidError",
    "MalformedError",
    "NotImplementedRonyError",
    "OutOfRangeError",
    "PartiallyAppliedError",
    "RequestTimeoutError",
    "RonyError",
    "TooFewError",
    "TooManyError",
    "UnavailableError",
    "from_message",
    "from_wire",
    "http_status_of",
]


class Code(enum.Enum):
    """Go Rony's error codes (``errors/code.go``) with their names and HTTP statuses."""

    INTERNAL = ("E00", "Internal", 500)
    INVALID = ("E01", "Invalid", 400)
    UNAVAILABLE = ("E02", "Unavailable", 404)
    TOO_MANY = ("E03", "TooMany", 417)
    TOO_FEW = ("E04", "TooFew", 417)
    INCOMPLETE = ("E05", "Incomplete", 422)
    TIMEOUT = ("E06", "Timeout", 408)
    ACCESS = ("E07", "Access", 403)
    ALREADY_EXISTS = ("E08", "AlreadyExists", 208)
    BUSY = ("E09", "Busy", 503)
    OUT_OF_RANGE = ("E10", "OutOfRange", 416)
    PARTIALLY_APPLIED = ("E11", "PartiallyApplied", 206)
    EXPIRED = ("E12", "Expired", 417)
    NOT_IMPLEMENTED = ("E13", "NotImplemented", 501)

    def __init__(self, wire: str, title: str, http_status: int) -> None:
        self.wire = wire
        self.title = title
        self.http_status = http_status

    @classmethod
    def from_wire(cls, wire: str) -> Code | None:
        return _BY_WIRE.get(wire)


_BY_WIRE: dict[str, Code] = {c.wire: c for c in Code}


def http_status_of(wire_code: str) -> int:
    """HTTP status for a wire code; like Go Rony, a numeric code ("404") is its own status."""
    code = Code.from_wire(wire_code)
    if code is not None:
        return code.http_status
    # isascii: str.isdigit() also accepts "²", which int() refuses; the length bound keeps
    # int() away from its 4300-digit limit on a hostile code read off the wire.
    if wire_code.isascii() and wire_code.isdigit() and len(wire_code) <= 6:
        status = int(wire_code)
        if 100 <= status <= 599:
            return status
    return 500


class RonyError(Exception):
    """Base of every Rony error. ``code`` is the wire code string (``"E01"``)."""

    default_code: ClassVar[Code] = Code.INTERNAL
    default_items: ClassVar[str] = "SERVER"

    def __init__(
        self, items: str | None = None, description: str = "", *, code: str | None = None
    ) -> None:
        self.code = code if code is not None else self.default_code.wire
        self.items = items if items is not None else self.default_items
        self.description = description
        super().__init__(str(self))

    def __str__(self) -> str:
        # Go Rony renders "Code:Items (Description)".
        text = f"{self.code}:{self.items}"
        return f"{text} ({self.description})" if self.description else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.items!r}, {self.description!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RonyError):
            return NotImplemented
        return (self.code, self.items, self.description) == (
            other.code,
            other.items,
            other.description,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.items, self.description))

    @property
    def http_status(self) -> int:
        return http_status_of(self.code)

    def to_message(self) -> msg_pb2.Error:
        return msg_pb2.Error(Code=self.code, Items=self.items, Description=self.description)


class InternalError(RonyError):
    default_code = Code.INTERNAL
    default_items = "SERVER"


class InvalidError(RonyError):
    default_code = Code.INVALID
    default_items = "REQUEST"


class MalformedError(InvalidError):
    """Bytes that do not decode as a Rony message, or break a codec limit."""


class UnavailableError(RonyError):
    default_code = Code.UNAVAILABLE
    default_items = "REQUEST"


class TooManyError(RonyError):
    default_code = Code.TOO_MANY
    default_items = "REQUEST"


class TooFewError(RonyError):
    default_code = Code.TOO_FEW
    default_items = "REQUEST"


class IncompleteError(RonyError):
    default_code = Code.INCOMPLETE
    default_items = "REQUEST"


class RequestTimeoutError(RonyError):
    default_code = Code.TIMEOUT
    default_items = "REQUEST"


class AccessError(RonyError):
    default_code = Code.ACCESS
    default_items = "REQUEST"


class AlreadyExistsError(RonyError):
    default_code = Code.ALREADY_EXISTS
    default_items = "REQUEST"


class BusyError(RonyError):
    default_code = Code.BUSY
    default_items = "SERVER"


class OutOfRangeError(RonyError):
    default_code = Code.OUT_OF_RANGE
    default_items = "REQUEST"


class PartiallyAppliedError(RonyError):
    default_code = Code.PARTIALLY_APPLIED
    default_items = "REQUEST"


class ExpiredError(RonyError):
    default_code = Code.EXPIRED
    default_items = "REQUEST"


class NotImplementedRonyError(RonyError):
    default_code = Code.NOT_IMPLEMENTED
    default_items = "HANDLER"


_CLASS_BY_CODE: dict[Code, type[RonyError]] = {
    Code.INTERNAL: InternalError,
    Code.INVALID: InvalidError,
    Code.UNAVAILABLE: UnavailableError,
    Code.TOO_MANY: TooManyError,
    Code.TOO_FEW: TooFewError,
    Code.INCOMPLETE: IncompleteError,
    Code.TIMEOUT: RequestTimeoutError,
    Code.ACCESS: AccessError,
    Code.ALREADY_EXISTS: AlreadyExistsError,
    Code.BUSY: BusyError,
    Code.OUT_OF_RANGE: OutOfRangeError,
    Code.PARTIALLY_APPLIED: PartiallyAppliedError,
    Code.EXPIRED: ExpiredError,
    Code.NOT_IMPLEMENTED: NotImplementedRonyError,
}


def from_wire(code: str, items: str = "", description: str = "") -> RonyError:
    """The exception for a wire code; an unknown code gives a plain ``RonyError``."""
    known = Code.from_wire(code)
    cls = _CLASS_BY_CODE[known] if known is not None else RonyError
    return cls(items, description, code=code)


def from_message(message: msg_pb2.Error) -> RonyError:
    """The exception for an ``Error`` message read off the wire."""
    return from_wire(message.Code, message.Items, message.Description)
