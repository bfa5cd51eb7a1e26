"""Models (``rony_model``, ``rony_index``) read from descriptors, and ``<proto>_repo.py`` rendered.

A message with ``option (rony_model) = {local_datasource: "store" table: {...}}`` gets a typed
``<Model>Repo`` and ``Async<Model>Repo`` over ``rony.store.repo``; with ``singleton: true`` a
``<Model>Singleton`` / ``Async<Model>Singleton``. ``local_datasource`` left empty counts as
``"store"`` when a table or ``singleton`` is set: the store is the only datasource here, and a
Go Rony proto that named none still meant one. Go Rony's CQL datasources (``"cql"``, and
``global_datasource``) are refused with an error rather than generating nothing silently.

The repositories live in a module of their own, beside ``_rony.py``: it imports rony.store (and
so lmdb), which a client-only program importing ``_rony.py`` must not need.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from google.protobuf import descriptor_pb2 as d

from rony.core.pb import options_pb2

from ._names import snake_case

if TYPE_CHECKING:
    from ._model import FileModel, MessageRef

__all__ = ["KeyField", "RepoModel", "build_repos", "render_repo", "repo_output"]

_FD = d.FieldDescriptorProto
_PY_TYPES = {
    _FD.TYPE_INT32: "int",
    _FD.TYPE_INT64: "int",
    _FD.TYPE_SINT32: "int",
    _FD.TYPE_SINT64: "int",
    _FD.TYPE_SFIXED32: "int",
    _FD.TYPE_SFIXED64: "int",
    _FD.TYPE_UINT32: "int",
    _FD.TYPE_UINT64: "int",
    _FD.TYPE_FIXED32: "int",
    _FD.TYPE_FIXED64: "int",
    _FD.TYPE_ENUM: "int",
    _FD.TYPE_BOOL: "bool",
    _FD.TYPE_FLOAT: "float",
    _FD.TYPE_DOUBLE: "float",
    _FD.TYPE_STRING: "str",
    _FD.TYPE_BYTES: "bytes",
}
_MESSAGE_TYPE, _FIELD, _OPTIONS = 4, 2, 7
_MODEL_EXT = options_pb2.RONY_MODEL_FIELD_NUMBER
_INDEX_EXT = options_pb2.RONY_INDEX_FIELD_NUMBER
# Parameter names of the generated methods; a key field so named gets a trailing "_".
_PARAMS = frozenset(
    {"self", "m", "ttl", "txn", "skip", "limit", "reverse", "after", "value", "prefix"}
)


class _Where(Protocol):
    def where(self, *paths: tuple[int, ...]) -> str: ...


@dataclass(frozen=True, slots=True)
class KeyField:
    name: str  # the proto field name
    param: str  # the Python parameter naming it
    py_type: str  # "int", "str", ...
    desc: bool

    @property
    def spec(self) -> str:
        return ("-" if self.desc else "") + self.name


@dataclass(frozen=True, slots=True)
class ViewModel:
    name: str  # "by_topic"
    fields: tuple[KeyField, ...]
    partition: int


@dataclass(frozen=True, slots=True)
class RepoModel:
    ref: MessageRef
    full_name: str
    singleton: bool
    table: tuple[KeyField, ...]
    partition: int
    views: tuple[ViewModel, ...]
    indexes: tuple[KeyField, ...]  # desc is False; py_type of one element


def _ext(options: object, number: int) -> object:
    for fd, value in options.ListFields():  # type: ignore[attr-defined]
        if fd.is_extension and fd.number == number:
            return value
    return None


def _key_field(
    ref: MessageRef, spec: str, what: str, where: str, problems: list[str], sort: bool
) -> KeyField | None:
    desc = spec.startswith("-")
    name = spec[1:] if desc else spec
    if desc and not sort:
        problems.append(f"{where}: {what}: only a sort_key may be descending ('-{name}')")
    fd = ref.fields.get(name)
    model = ref.full_name
    if fd is None:
        known = ", ".join(sorted(ref.fields)) or "none"
        problems.append(
            f"{where}: {what} names field {name!r}, which {model} does not have (its fields: "
            f"{known})"
        )
        return None
    if fd.label == _FD.LABEL_REPEATED:
        problems.append(f"{where}: {what}: field {model}.{name} is repeated; a key is singular")
        return None
    py = _PY_TYPES.get(fd.type)
    if py is None:
        problems.append(
            f"{where}: {what}: field {model}.{name} is a message; a key field is a number, "
            "bool, string, bytes or enum"
        )
        return None
    param = name + "_" if keyword.iskeyword(name) or name in _PARAMS else name
    return KeyField(name, param, py, desc)


def _keys(
    ref: MessageRef,
    opt: options_pb2.PrimaryKeyOpt,
    what: str,
    where: str,
    problems: list[str],
) -> tuple[tuple[KeyField, ...], int] | None:
    if not opt.part_key:
        problems.append(f"{where}: {what} needs a part_key")
        return None
    out: list[KeyField] = []
    ok = True
    for i, spec in enumerate([*opt.part_key, *opt.sort_key]):
        kf = _key_field(ref, spec.strip(), what, where, problems, sort=i >= len(opt.part_key))
        if kf is None:
            ok = False
        elif any(k.name == kf.name for k in out):
            problems.append(f"{where}: {what} names field {kf.name!r} twice")
            ok = False
        else:
            out.append(kf)
    return (tuple(out), len(opt.part_key)) if ok else None


def _model(
    i: int, m: d.DescriptorProto, ref: MessageRef, locs: _Where, problems: list[str]
) -> RepoModel | None:
    path = (_MESSAGE_TYPE, i)
    where = locs.where((*path, _OPTIONS, _MODEL_EXT), (*path, _OPTIONS), path)
    opt = _ext(m.options, _MODEL_EXT)
    indexed = [(j, fd) for j, fd in enumerate(m.field) if _ext(fd.options, _INDEX_EXT) is True]
    if not isinstance(opt, options_pb2.ModelOpt):
        for j, fd in indexed:
            problems.append(
                f"{locs.where((*path, _FIELD, j))}: rony_index on {ref.full_name}.{fd.name}, "
                "but the message is no store model (give it a rony_model option)"
            )
        return None
    name = ref.full_name
    source = opt.local_datasource.strip().lower()
    if opt.global_datasource.strip() or source not in ("", "store"):
        problems.append(
            f'{where}: rony_model of {name}: Rony for Python has only the "store" datasource '
            f"(local_datasource {opt.local_datasource!r}, global_datasource "
            f"{opt.global_datasource!r}); Go Rony's CQL repositories are not generated"
        )
        return None
    if opt.singleton:
        if opt.HasField("table") or opt.view:
            problems.append(f"{where}: rony_model of {name}: a singleton has no table or view")
            return None
        return RepoModel(ref, name, True, (), 0, (), ())
    if not opt.HasField("table"):
        problems.append(f"{where}: rony_model of {name} needs a table (or singleton: true)")
        return None
    table = _keys(ref, opt.table, f"rony_model table of {name}", where, problems)
    views: list[ViewModel] = []
    for view in opt.view:
        what = f"rony_model view of {name}"
        keys = _keys(ref, view, what, where, problems)
        if keys is None or table is None:
            continue
        fields, partition = keys
        # The table's key fields the view lacks are appended: one entry per record.
        have = {k.name for k in fields}
        fields = fields + tuple(k for k in table[0] if k.name not in have)
        alias = view.alias.strip()
        base = snake_case(alias) if alias else "_".join(k.name for k in keys[0])
        vname = base if base.startswith("by_") else f"by_{base}"
        views.append(ViewModel(vname, fields, partition))
    indexes: list[KeyField] = []
    for j, fd in indexed:
        at = locs.where((*path, _FIELD, j))
        py = _PY_TYPES.get(fd.type)
        if py is None:
            problems.append(
                f"{at}: rony_index on {name}.{fd.name}, a message or map field; index a "
                "number, bool, string, bytes or enum field (or a repeated one)"
            )
            continue
        indexes.append(KeyField(fd.name, "value", py, False))
    if table is None:
        return None
    model = RepoModel(ref, name, False, table[0], table[1], tuple(views), tuple(indexes))
    _check_methods(model, where, problems)
    return model


def _check_methods(model: RepoModel, where: str, problems: list[str]) -> None:
    seen: dict[str, str] = {}
    for view in model.views:
        for method in (f"read_{view.name}", f"list_{view.name}"):
            if method in seen:
                problems.append(f"{where}: {model.full_name}: two views generate {method!r}")
            seen[method] = "view"
    for ix in model.indexes:
        method = f"list_by_{ix.name}"
        if method in seen:
            problems.append(
                f"{where}: {model.full_name}: the index on {ix.name!r} and a view both "
                f"generate {method!r}; give the view another alias"
            )
        seen[method] = "index"


def build_repos(
    f: d.FileDescriptorProto,
    refs: dict[str, MessageRef],
    locs: _Where,
    problems: list[str],
) -> tuple[RepoModel, ...]:
    """The models of ``f``'s top-level messages (problems appended to ``problems``)."""
    out: list[RepoModel] = []
    prefix = f"{f.package}." if f.package else ""
    for i, m in enumerate(f.message_type):
        model = _model(i, m, refs[prefix + m.name], locs, problems)
        if model is not None:
            out.append(model)
    return tuple(out)


def repo_output(rony_output: str) -> str:
    """``pkg/svc_rony.py`` -> ``pkg/svc_repo.py``."""
    return rony_output.removesuffix("_rony.py") + "_repo.py"


# -- rendering ----------------------------------------------------------------------------


def _spec_name(model: RepoModel) -> str:
    return snake_case(model.ref.attr).upper().rstrip("_") + "_SPEC"


def render_repo(model: FileModel) -> str | None:
    """The source of ``<proto>_repo.py``, or None when the file has no models."""
    from ._repo_render import render

    return render(model) if model.repos else None


def params(fields: Sequence[KeyField], optional: bool) -> list[str]:
    if optional:
        return [f"{k.param}: {k.py_type} | None = None" for k in fields]
    return [f"{k.param}: {k.py_type}" for k in fields]
