"""What a repository stores where: :class:`ModelSpec`, its key orders, and the key layout.

Every key a repository writes starts with ``NAMESPACE`` (``0xFF``, a byte :func:`keys.pack` never
starts with, so repository keys and ``keys.pack`` user keys never meet), then
``pack(kind, model, order)`` and the key parts:

- the table (kind ``"t"``): ``… + pack(*primary key)`` -> the record's protobuf bytes;
- a view (kind ``"v"``, order = its alias): ``… + pack(*view key)`` -> a copy of the bytes.
  Views store a copy rather than a pointer so that reading or listing by a view costs what it
  costs on the table (one get, or one scan), the way Go Rony did; the price is the record's
  bytes once more per view on every write, which the same transaction writes (and deletes);
- an index (kind ``"i"``, order = the field): ``… + pack(value) + pack(*primary key)`` -> an
  empty value: the key's tail is the record's packed primary key (a pointer, since an indexed
  value is rarely unique: an index is read to find records, then each is read from the table,
  ``get_many`` in one snapshot). Storing the primary key again as the value would only make
  every index entry bigger (and a write slower);
- a singleton (kind ``"s"``): ``… `` -> its bytes.

A view's key holds every table key field (the declared ones first), so one record has exactly
one entry per view and none can shadow another's. Field values are checked against the field's
type (a str given for an int key is a ``WrongTypeError``, not a silent miss).
"""

from __future__ import annotations

import keyword
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from . import keys
from .errors import InvalidArgumentError, WrongTypeError

__all__ = ["NAMESPACE", "Index", "KeyOrder", "ModelSpec"]

M = TypeVar("M", bound=Message)

NAMESPACE: Final = b"\xff"
"""First byte of every repository key."""

_FLIP = bytes(255 - i for i in range(256))
_F = FieldDescriptor
_INTS = frozenset({_F.CPPTYPE_INT32, _F.CPPTYPE_INT64, _F.CPPTYPE_UINT32, _F.CPPTYPE_UINT64})


def _strict(name: str, kind: type, encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    # A bool given for an int field is that int (True == 1, as everywhere in Python).
    def part(value: Any) -> bytes:
        if type(value) is not kind:  # a message's own values always pass: see _IndexReady
            if not isinstance(value, kind):
                raise WrongTypeError(
                    f"key field {name!r} is {kind.__name__}, not {type(value).__name__}"
                )
            value = kind(value)
        return encode(value)

    part.kind = kind.__name__  # type: ignore[attr-defined]
    return part


def field_encoder(message: type[Message], name: str, *, key: bool) -> Callable[[Any], bytes]:
    """The checked encoder of one key field (``key=False``: an indexed field, which may be
    repeated: the encoder then takes one element)."""
    fd = message.DESCRIPTOR.fields_by_name.get(name)
    full = message.DESCRIPTOR.full_name
    if fd is None:
        raise InvalidArgumentError(f"{full} has no field {name!r}")
    if key and fd.is_repeated:
        raise InvalidArgumentError(f"{full}.{name} is repeated and cannot be part of a key")
    if fd.cpp_type in _INTS or fd.cpp_type == _F.CPPTYPE_ENUM:
        return _strict(name, int, keys.encode_int)
    if fd.cpp_type == _F.CPPTYPE_BOOL:
        return _strict(name, bool, keys.encode_bool)
    if fd.cpp_type in (_F.CPPTYPE_FLOAT, _F.CPPTYPE_DOUBLE):
        return _strict(name, float, keys.encode_float)
    if fd.cpp_type == _F.CPPTYPE_STRING:
        if fd.type == _F.TYPE_BYTES:
            return _strict(name, bytes, keys.encode_bytes)
        return _strict(name, str, keys.encode_str)
    what = "a key" if key else "an index"
    raise InvalidArgumentError(f"{full}.{name} is a message or map and cannot be {what}")


@dataclass(frozen=True, slots=True)
class KeyOrder:
    """One key order: the table's primary key, or a view. ``fields`` in key order; a field
    named with a leading ``-`` sorts descending (Go Rony's sort_key syntax); the first
    ``partition`` fields are the partition key (which a ``list`` of Go Rony required; here any
    prefix of the fields may be given)."""

    name: str
    fields: tuple[str, ...]
    partition: int = 1

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.lstrip("-") for f in self.fields)


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index on ``field`` (a repeated field indexes each element)."""

    field: str


class _Order:
    """A key order made ready: its prefix, one encoder per field, and functions compiled for
    it (``key(*values)`` and ``of(message)``: the bytes after the prefix; ``full_key(*values)``
    with the prefix): a run of int fields is one ``struct.pack`` (see ``_compile``). ``expr``
    and ``env``: the source of the full key (prefix included) and its names, for ``reader``."""

    __slots__ = (
        "args",
        "desc",
        "encoders",
        "env",
        "expr",
        "full_key",
        "key",
        "names",
        "of",
        "prefix",
    )

    def __init__(
        self,
        prefix: bytes,
        names: tuple[str, ...],
        encoders: tuple[Callable[[Any], bytes], ...],
        desc: tuple[bool, ...],
    ) -> None:
        self.prefix = prefix
        self.names = names
        self.encoders = encoders
        self.desc = desc
        self.expr, self.args = "", ""
        self.env: dict[str, Any] = {}
        self.key, self.full_key, self.of = _compile(self)

    def reader(self, get: Callable[[bytes], bytes | None], parse: Callable[[bytes], Any]) -> Any:
        """``read(*values)``: ``parse(get(prefix + key))`` or None, as one compiled function
        (a read by primary key is the repositories' hot path)."""
        env = dict(self.env, _get=get, _parse=parse)
        one = "," if len(self.names) == 1 else ""
        source = (
            f"def read({self.args}):\n"
            "    try:\n"
            f"        k = {self.expr}\n"
            "    except Exception:\n"
            f"        k = _P + _slow(({self.args}{one}))\n"
            "    raw = _get(k)\n"
            "    return None if raw is None else _parse(raw)\n"
        )
        exec(source, env)
        return env["read"]

    def encode(self, values: Sequence[Any], what: str = "key") -> bytes:
        """The bytes (after the prefix) of the leading ``values`` (a key prefix)."""
        if len(values) > len(self.encoders):
            raise InvalidArgumentError(
                f"a {what} has at most {len(self.encoders)} parts ({', '.join(self.names)}), "
                f"not {len(values)}"
            )
        out = []
        for value, enc, desc in zip(values, self.encoders, self.desc, strict=False):
            b = enc(value)
            out.append(b.translate(_FLIP) if desc else b)
        return b"".join(out)

    def full(self, values: Sequence[Any]) -> bytes:
        """The bytes of a full key, checked: the slow path of ``key``."""
        if len(values) != len(self.encoders):
            raise InvalidArgumentError(
                f"the key is {len(self.encoders)} values ({', '.join(self.names)}), "
                f"not {len(values)}"
            )
        return self.encode(values)


_INT_TAG, _INT_TAG_DESC = 0x10, 0xEF
_BIAS = 1 << 63


def _compile(
    order: _Order,
) -> tuple[Callable[..., bytes], Callable[..., bytes], Callable[[Any], bytes]]:
    """Specialised ``key(*v)`` and ``of(m)`` for ``order``, built as source and exec'd once.

    A run of int fields in the signed 64-bit range is one ``struct.pack`` of (tag, value +
    2**63) pairs (the value complemented for a descending field), exactly what
    ``keys.encode_int`` writes; other fields call their checked encoder. Anything unusual (a
    wrong type, an int past 64 bits) raises inside, and the slow checked path
    (``_Order.full``) then encodes it or raises the clear error.
    """
    env: dict[str, Any] = {"_slow": order.full, "_FLIP": _FLIP}
    parts: list[str] = []
    run: list[str] = []

    # ``with_prefix``: the same expression with the order's prefix in front; when the key
    # starts with a run of ints the prefix is the first field of that run's struct (one
    # ``pack``, no concatenation: the read by primary key builds this).
    with_prefix: list[str] = []

    def flush() -> None:
        if run:
            name = f"_S{len(env)}"
            fmt = "BQ" * (len(run) // 2)
            env[name] = struct.Struct(">" + fmt)
            parts.append(f"{name}.pack({', '.join(run)})")
            if len(parts) == 1:
                # The first field's tag is a constant too: it joins the prefix bytes.
                env["_PT"] = order.prefix + bytes((int(run[0]),))
                env["_SP"] = struct.Struct(f">{len(order.prefix) + 1}sQ{fmt[2:]}")
                env["_SPpack"] = env["_SP"].pack  # (bound once: one global, no attribute)
                with_prefix.append(f"_SPpack(_PT, {', '.join(run[1:])})")
            else:
                with_prefix.append(parts[-1])
            run.clear()

    params = [
        f"v{i}" if n.startswith("_") or keyword.iskeyword(n) or not n.isidentifier() else n
        for i, n in enumerate(order.names)
    ]
    for i, (enc, desc) in enumerate(zip(order.encoders, order.desc, strict=True)):
        if getattr(enc, "kind", None) == "int":
            v = params[i]
            # The bias as a literal: a constant, not a name looked up on every call.
            if desc:
                run += [str(_INT_TAG_DESC), f"{_BIAS - 1} - {v}"]
            else:
                run += [str(_INT_TAG), f"{v} + {_BIAS}"]
            continue
        flush()
        env[f"_E{i}"] = enc
        v = params[i]
        parts.append(f"_E{i}({v}).translate(_FLIP)" if desc else f"_E{i}({v})")
        with_prefix.append(parts[-1])
    flush()
    n = len(order.encoders)
    expr = " + ".join(parts) or 'b""'
    if not with_prefix or not with_prefix[0].startswith("_SPpack("):
        with_prefix.insert(0, "_P")
    pexpr = " + ".join(with_prefix)
    args = ", ".join(params)
    values = f"({args}{',' if n == 1 else ''})"
    getters = ", ".join(
        f"m.{name}" if name.isidentifier() and not keyword.iskeyword(name) else
        f"getattr(m, {name!r})"
        for name in order.names
    )  # fmt: skip
    env["_P"] = order.prefix
    # Fixed arity, parameters named as the fields: a call with a value missing is Python's
    # TypeError naming it (the callers turn it into the checked path's error).
    order.expr, order.args, order.env = pexpr, args, env
    source = (
        f"def key({args}):\n"
        "    try:\n"
        f"        return {expr}\n"
        "    except Exception:\n"
        f"        return _slow({values})\n"
        f"def full_key({args}):\n"
        "    try:\n"
        f"        return {pexpr}\n"
        "    except Exception:\n"
        f"        return _P + _slow({values})\n"
        "def of(m):\n"
        f"    {args}{',' if n == 1 else ''} = {getters}\n"
        "    try:\n"
        f"        return {expr}\n"
        "    except Exception:\n"
        f"        return _slow({values})\n"
    )
    exec(source, env)
    return env["key"], env["full_key"], env["of"]


@dataclass(slots=True)
class _IndexReady:
    prefix: bytes
    name: str
    encode: Callable[[Any], bytes]  # checked: for values a caller gives
    repeated: bool
    of_message: Callable[[Any], bytes] = field(init=False)  # unchecked: a message's values

    def __post_init__(self) -> None:
        kind = getattr(self.encode, "kind", "")
        self.of_message = _RAW.get(kind, self.encode)


_RAW: dict[str, Callable[[Any], bytes]] = {
    "int": keys.encode_int,
    "str": keys.encode_str,
    "bytes": keys.encode_bytes,
    "bool": keys.encode_bool,
    "float": keys.encode_float,
}


@dataclass
class ModelSpec(Generic[M]):
    """A model: its message class, a name (its keys' namespace: the proto full name by
    default), the primary key, views and indexes. Checked when built (unknown field, repeated
    or message-typed key field, a view missing a table key field: ``InvalidArgumentError``)."""

    message: type[M]
    table: KeyOrder
    views: tuple[KeyOrder, ...] = ()
    indexes: tuple[Index, ...] = ()
    name: str = ""
    _table: _Order = field(init=False, repr=False)
    _views: dict[str, _Order] = field(init=False, repr=False)
    _indexes: dict[str, _IndexReady] = field(init=False, repr=False)
    _keys: Callable[[M, bytes], tuple[list[bytes], list[bytes]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        desc = self.message.DESCRIPTOR
        if not self.name:
            self.name = desc.full_name
        if not self.table.fields:
            raise InvalidArgumentError(f"{desc.full_name}: the table needs a key field")
        self._table = self._order("t", self.table)
        table_names = set(self.table.names)
        self._views = {}
        for view in self.views:
            missing = sorted(table_names - set(view.names))
            if missing:
                raise InvalidArgumentError(
                    f"{desc.full_name}: view {view.name!r} lacks the table key fields "
                    f"{', '.join(missing)} (a view key holds every table key field)"
                )
            if view.name in self._views or not view.name:
                raise InvalidArgumentError(f"{desc.full_name}: views need distinct names")
            self._views[view.name] = self._order("v", view)
        self._indexes = {}
        for ix in self.indexes:
            fd = desc.fields_by_name.get(ix.field)
            self._indexes[ix.field] = _IndexReady(
                NAMESPACE + keys.pack("i", self.name, ix.field),
                ix.field,
                field_encoder(self.message, ix.field, key=False),
                bool(fd is not None and fd.is_repeated),
            )
        self._keys = _compile_keys(tuple(self._views.values()), tuple(self._indexes.values()))

    def _order(self, kind: str, order: KeyOrder) -> _Order:
        if len(set(order.names)) != len(order.names):
            raise InvalidArgumentError(f"{self.name}: a key names one field twice")
        if not 0 <= order.partition <= len(order.fields):
            raise InvalidArgumentError(f"{self.name}: partition is more than the key fields")
        return _Order(
            NAMESPACE + keys.pack(kind, self.name, order.name),
            order.names,
            tuple(field_encoder(self.message, n, key=True) for n in order.names),
            tuple(f.startswith("-") for f in order.fields),
        )

    def key_of(self, m: M) -> tuple[Any, ...]:
        """The primary key of ``m`` (the values of the table's key fields)."""
        return tuple(getattr(m, n) for n in self._table.names)

    def entries(self, m: M, pk: bytes, data: bytes) -> dict[bytes, bytes]:
        """Every key (besides the table's) that record ``m`` (primary key ``pk``, bytes
        ``data``) has, with its value: ``data`` for a view, empty for an index."""
        view_keys, index_keys = self._keys(m, pk)
        out = dict.fromkeys(view_keys, data)
        out.update(dict.fromkeys(index_keys, b""))
        return out


def _compile_keys(
    views: tuple[_Order, ...], indexes: tuple[_IndexReady, ...]
) -> Callable[[Any, bytes], tuple[list[bytes], list[bytes]]]:
    """``ModelSpec._keys(m, pk)``: ``(view keys, index keys)``, as one function built from
    source (it runs on every write, twice when a record is replaced): a view's key is its
    compiled ``of``, an index key ``prefix + encoded value + pk`` (one per element of a
    repeated field; a str value encoded inline, as ``keys.encode_str`` does). The values are
    the message's own, so the unchecked encoders apply."""
    env: dict[str, Any] = {"_escape": keys._escape}
    for i, view in enumerate(views):
        env[f"_VP{i}"], env[f"_VOF{i}"] = view.prefix, view.of
    view_keys = ", ".join(f"_VP{i} + _VOF{i}(m)" for i in range(len(views)))
    lines = ["def entry_keys(m, pk):", f"    v_keys = [{view_keys}]", "    i_keys = []"]
    for i, ix in enumerate(indexes):
        name = ix.name
        value = (
            f"m.{name}"
            if name.isidentifier() and not keyword.iskeyword(name)
            else (f"getattr(m, {name!r})")
        )
        ind = "        " if ix.repeated else "    "
        if ix.repeated:
            # A slice first: iterating a protobuf repeated field itself is several times
            # slower than iterating the list a slice makes.
            lines.append(f"    for v in {value}[:]:")
            value = "v"
        if ix.of_message is keys.encode_str:
            # keys.encode_str inline: the tag joins the prefix; escaping is needed only when
            # the bytes hold a 0 or a 1.
            env[f"_IP{i}"] = ix.prefix + b"\x31"
            lines += [
                f"{ind}s = {value}.encode('utf-8', 'surrogatepass')",
                f"{ind}i_keys.append(_IP{i} + (s + b'\\x00' if 0 not in s and 1 not in s "
                "else _escape(s)) + pk)",
            ]
        else:
            env[f"_IP{i}"], env[f"_IE{i}"] = ix.prefix, ix.of_message
            lines.append(f"{ind}i_keys.append(_IP{i} + _IE{i}({value}) + pk)")
    lines.append("    return v_keys, i_keys")
    exec("\n".join(lines) + "\n", env)
    fn: Callable[[Any, bytes], tuple[list[bytes], list[bytes]]] = env["entry_keys"]
    return fn
