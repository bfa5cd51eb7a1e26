"""rony.core.errors: Go Rony's codes E00..E13, their classes, names and HTTP statuses."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rony.core import Error, RonyError, errors
from rony.core.errors import Code, from_message, from_wire, http_status_of

# Inventory §11 (errors/code.go): code, name, HTTP status; and our class for it.
TABLE = [
    ("E00", "Internal", 500, errors.InternalError, "SERVER"),
    ("E01", "Invalid", 400, errors.InvalidError, "REQUEST"),
    ("E02", "Unavailable", 404, errors.UnavailableError, "REQUEST"),
    ("E03", "TooMany", 417, errors.TooManyError, "REQUEST"),
    ("E04", "TooFew", 417, errors.TooFewError, "REQUEST"),
    ("E05", "Incomplete", 422, errors.IncompleteError, "REQUEST"),
    ("E06", "Timeout", 408, errors.RequestTimeoutError, "REQUEST"),
    ("E07", "Access", 403, errors.AccessError, "REQUEST"),
    ("E08", "AlreadyExists", 208, errors.AlreadyExistsError, "REQUEST"),
    ("E09", "Busy", 503, errors.BusyError, "SERVER"),
    ("E10", "OutOfRange", 416, errors.OutOfRangeError, "REQUEST"),
    ("E11", "PartiallyApplied", 206, errors.PartiallyAppliedError, "REQUEST"),
    ("E12", "Expired", 417, errors.ExpiredError, "REQUEST"),
    ("E13", "NotImplemented", 501, errors.NotImplementedRonyError, "HANDLER"),
]


def test_table_covers_every_code() -> None:
    assert [row[0] for row in TABLE] == [c.wire for c in Code] == [f"E{i:02d}" for i in range(14)]


@pytest.mark.parametrize(("wire", "name", "status", "cls", "items"), TABLE)
def test_code_maps_to_class_name_and_status(
    wire: str, name: str, status: int, cls: type[RonyError], items: str
) -> None:
    code = Code.from_wire(wire)
    assert code is not None
    assert (code.wire, code.title, code.http_status) == (wire, name, status)
    assert http_status_of(wire) == status

    err = cls()
    assert (err.code, err.items, err.description, err.http_status) == (wire, items, "", status)
    assert isinstance(err, RonyError)

    got = from_wire(wire, "THING", "why")
    assert type(got) is cls
    assert (got.code, got.items, got.description) == (wire, "THING", "why")


@pytest.mark.parametrize(("wire", "name", "status", "cls", "items"), TABLE)
def test_error_message_round_trip(
    wire: str, name: str, status: int, cls: type[RonyError], items: str
) -> None:
    err = cls("USER", "no such user")
    msg = err.to_message()
    assert msg == Error(Code=wire, Items="USER", Description="no such user")
    back = from_message(Error.FromString(msg.SerializeToString()))
    assert type(back) is cls
    assert back == err
    assert hash(back) == hash(err)


def test_str_is_go_format() -> None:
    assert str(errors.InvalidError("REQUEST", "bad id")) == "E01:REQUEST (bad id)"
    assert str(errors.InvalidError("REQUEST")) == "E01:REQUEST"
    assert str(errors.AccessError()) == "E07:REQUEST"
    assert str(from_wire("X9", "A", "b")) == "X9:A (b)"
    with pytest.raises(errors.AccessError, match=r"^E07:USER \(denied\)$"):
        raise errors.AccessError("USER", "denied")


def test_numeric_code_fallback() -> None:
    err = from_wire("404", "PAGE")
    assert type(err) is RonyError
    assert (err.code, err.http_status) == ("404", 404)
    assert http_status_of("208") == 208
    assert http_status_of("0418") == 418  # Go's strconv.Atoi reads leading zeros
    for odd in ("99", "600", "E99", "", "abc", "²", "٤٠٤", "1" * 5000, "-404", " 404"):
        assert http_status_of(odd) == 500, odd
    assert from_wire("E99").http_status == 500


def test_malformed_is_invalid() -> None:
    err = errors.MalformedError("REQUEST", "truncated")
    assert isinstance(err, errors.InvalidError)
    assert (err.code, err.http_status) == ("E01", 400)
    assert type(from_message(err.to_message())) is errors.InvalidError


def test_explicit_code_overrides_the_class_default() -> None:
    err = errors.InvalidError("X", code="E05")
    assert (err.code, err.http_status) == ("E05", 422)


@pytest.mark.parametrize("err", [errors.MalformedError("REQUEST", "x"), from_wire("777", "A")])
def test_errors_pickle_and_copy(err: RonyError) -> None:
    for back in (pickle.loads(pickle.dumps(err)), copy.copy(err), copy.deepcopy(err)):
        assert type(back) is type(err)
        assert back == err
        assert str(back) == str(err)


@settings(deadline=None)
@given(st.text(), st.text(), st.text())
def test_any_error_message_becomes_an_exception(code: str, items: str, description: str) -> None:
    err = from_wire(code, items, description)
    assert isinstance(err, RonyError)
    assert 100 <= err.http_status <= 599
    assert (err.code, err.items, err.description) == (code, items, description)
