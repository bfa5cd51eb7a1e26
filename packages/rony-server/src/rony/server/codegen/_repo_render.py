"""Render the ``<proto>_repo.py`` of a file's models (see ``_repo``): thin typed classes over
``rony.store.repo``, formatted as ``ruff format`` writes them (the same rules as ``_render``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._names import _literal, snake_case
from ._render import WIDTH, _all_key, _call, _docstring, _member_key
from ._repo import KeyField, RepoModel, params
from ._version import GENERATOR_VERSION

if TYPE_CHECKING:
    from ._model import FileModel

__all__ = ["render"]

# Names the module binds itself; a model class so named is imported under an alias.
_RESERVED = frozenset(
    {
        "annotations",
        "builtins",
        "AsyncIterator",
        "Iterator",
        "Final",
        "AsyncStore",
        "Store",
        "WriteTxn",
        "DEFAULT_LIST_LIMIT",
        "AsyncRepository",
        "AsyncSingleton",
        "Index",
        "KeyOrder",
        "ModelSpec",
        "Repository",
        "Singleton",
        "prefix_of",
    }
)
_PAGE = [
    "skip: int = 0",
    "limit: int = DEFAULT_LIST_LIMIT",
    "reverse: bool = False",
]
_PAGE_ARGS = ["skip=skip", "limit=limit", "reverse=reverse", "after=after"]


def _def(indent: str, head: str, args: list[str], ret: str, *, is_async: bool = False) -> list[str]:
    kw = "async def" if is_async else "def"
    one = f"{indent}{kw} {head}({', '.join(args)}) -> {ret}:"
    if len(one) <= WIDTH:
        return [one]
    inner = indent + "    "
    return [f"{indent}{kw} {head}(", *(f"{inner}{a}," for a in args), f"{indent}) -> {ret}:"]


def _tuple_type(fields: tuple[KeyField, ...]) -> str:
    return f"tuple[{', '.join(k.py_type for k in fields)}]"


def _key_doc(fields: tuple[KeyField, ...]) -> str:
    return ", ".join(k.name + (" (descending)" if k.desc else "") for k in fields)


def _names_tuple(fields: tuple[KeyField, ...]) -> str:
    names = ", ".join(_literal(k.name) for k in fields)
    return f"({names},)" if len(fields) == 1 else f"({names})"


class _Names:
    def __init__(self, model: FileModel) -> None:
        taken = set(_RESERVED)
        for r in model.repos:
            n = r.ref.name
            taken.update({_spec(r), f"{n}Repo", f"Async{n}Repo"})
            taken.update({f"{n}Singleton", f"Async{n}Singleton"})
        self.local: dict[str, str] = {}
        for r in model.repos:
            local = r.ref.name
            while local in taken:
                local += "_"
            taken.add(local)
            self.local[r.ref.name] = local


def _spec(r: RepoModel) -> str:
    return snake_case(r.ref.name).upper().rstrip("_") + "_SPEC"


def _key_order(name: str, fields: tuple[KeyField, ...], partition: int) -> str:
    specs = ", ".join(_literal(k.spec) for k in fields)
    specs = f"({specs},)" if len(fields) == 1 else f"({specs})"
    return f"KeyOrder({_literal(name)}, {specs}, partition={partition})"


def _spec_lines(r: RepoModel, cls: str) -> list[str]:
    args = [cls, _key_order("", r.table, r.partition)]
    if r.views:
        views = [_key_order(v.name, v.fields, v.partition) for v in r.views]
        args.append(f"views={_tuple(views)}")
    if r.indexes:
        ixs = [f"Index({_literal(ix.name)})" for ix in r.indexes]
        args.append(f"indexes={_tuple(ixs)}")
    args.append(f"name={_literal(r.full_name)}")
    lines = _call("", f"{_spec(r)}: Final = ModelSpec", args)
    # An argument line too long for one line is split by ruff format; split it the same way.
    out: list[str] = []
    for line in lines:
        if len(line) <= WIDTH:
            out.append(line)
            continue
        key, _, rest = line.strip().partition("=(")
        items = _split_top(rest.removesuffix("),").removesuffix(",)"))
        out += [f"    {key}=(", *(f"        {i}," for i in items), "    ),"]
    return out


def _tuple(items: list[str]) -> str:
    # No trailing comma after several items: ruff format would read it as magic and explode
    # the tuple; one item needs its comma.
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _split_top(s: str) -> list[str]:
    """Split ``a(b, c), d`` at the top-level commas."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(s):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i].strip())
            start = i + 1
    tail = s[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _writes(cls: str, face: str, *, is_async: bool) -> list[str]:
    how = "await " if is_async else ""
    out: list[str] = []
    docs = {
        "create": "Store a new record; RecordExistsError if its key is taken.",
        "update": "Replace a record; RecordNotFoundError if there is none.",
        "save": "Create or replace the record (upsert).",
    }
    for op, doc in docs.items():
        out += ["", *_def("    ", op, ["self", f"m: {cls}", "*", "ttl: float | None = None"],
                          "None", is_async=is_async)]  # fmt: skip
        out += _docstring("        ", doc)
        out.append(f"        {how}self.repo.{op}(m, ttl=ttl)")
    del face
    return out


def _in_txn(r: RepoModel, cls: str) -> list[str]:
    out: list[str] = []
    for op in ("create", "update", "save"):
        args = ["self", "txn: WriteTxn", f"m: {cls}", "*", "ttl: float | None = None"]
        out += ["", *_def("    ", f"{op}_in", args, "None")]
        out += _docstring("        ", f"``{op}`` inside ``txn`` (``store.transact(fn)``).")
        out.append(f"        self.repo.{op}_in(txn, m, ttl=ttl)")
    out += ["", *_def("    ", "delete_in", ["self", "txn: WriteTxn", *params(r.table, False)],
                      "bool")]  # fmt: skip
    out += _call("        ", "return self.repo.delete_in", ["txn", *(k.param for k in r.table)])
    return out


def _lister(
    head: str,
    fields: tuple[KeyField, ...],
    cls: str,
    view: str | None,
    doc: str,
    *,
    is_async: bool,
) -> list[str]:
    how = "await " if is_async else ""
    after = f"after: {_tuple_type(fields)} | None = None"
    args = ["self", *params(fields, True), "*", *_PAGE, after]
    out = ["", *_def("    ", head, args, f"builtins.list[{cls}]", is_async=is_async)]
    out += _docstring("        ", doc)
    names = [_names_tuple(fields), *(k.param for k in fields)]
    out += _call("        ", "prefix = prefix_of", names)
    extra = [f"view={_literal(view)}"] if view else []
    out += _call("        ", f"return {how}self.repo.list", ["*prefix", *_PAGE_ARGS, *extra])
    return out


def _repo_class(r: RepoModel, cls: str, *, is_async: bool) -> list[str]:
    n = r.ref.name
    name = f"Async{n}Repo" if is_async else f"{n}Repo"
    store = "AsyncStore" if is_async else "Store"
    how = "await " if is_async else ""
    doc = f"{n} records in a rony.store.{store} (rony_model).\n\nPrimary key: {_key_doc(r.table)}."
    for v in r.views:
        doc += f" View {v.name}: {_key_doc(v.fields)}."
    if r.indexes:
        doc += f" Indexes: {', '.join(ix.name for ix in r.indexes)}."
    out = [f"class {name}:", *_docstring("    ", doc), ""]
    out += [f"    def __init__(self, store: {store}) -> None:"]
    base = "AsyncRepository" if is_async else "Repository"
    out.append(f"        self.repo = {base}({_spec(r)}, store)")
    if not is_async and all(k.param == k.name and not k.name.startswith("_") for k in r.table):
        # The repository's read is a function compiled for this key with these parameter
        # names (rony.store._repo_spec): bound here, a read by primary key (the hot path)
        # makes no call in between. The method below stays for its signature and docs.
        out += [
            "        # The read by primary key (the hot path) without a call in between.",
            '        self.__dict__["read"] = self.repo.read',
        ]
    out += _writes(cls, store, is_async=is_async)
    key_params = params(r.table, False)
    key_args = [k.param for k in r.table]
    out += ["", *_def("    ", "read", ["self", *key_params], f"{cls} | None", is_async=is_async)]
    out += _docstring("        ", "The record with this primary key, or None.")
    out += _call("        ", f"return {how}self.repo.read", key_args)
    out += ["", *_def("    ", "delete", ["self", *key_params], "bool", is_async=is_async)]
    out += _docstring("        ", "Delete the record with this primary key; True if it was there.")
    out += _call("        ", f"return {how}self.repo.delete", key_args)
    out += _lister(
        "list",
        r.table,
        cls,
        None,
        "Records whose primary key starts with the values given (leading fields), in key "
        "order; ``after``: the key of the last record of the previous page.",
        is_async=is_async,
    )
    it = "AsyncIterator" if is_async else "Iterator"
    it_args = ["self", *params(r.table, True), "*", "reverse: bool = False"]
    out += ["", *_def("    ", "iter", it_args, f"{it}[{cls}]")]
    out += _docstring("        ", "Every record under the key prefix given, read in chunks.")
    out += _call("        ", "prefix = prefix_of", [_names_tuple(r.table), *key_args])
    out += _call("        ", "return self.repo.iter", ["*prefix", "reverse=reverse"])
    out += ["", *_def("    ", "count", ["self", *params(r.table, True)], "int", is_async=is_async)]
    out += _docstring("        ", "The number of records under the key prefix given.")
    out += _call("        ", "prefix = prefix_of", [_names_tuple(r.table), *key_args])
    out.append(f"        return {how}self.repo.count(*prefix)")
    for v in r.views:
        vargs = [k.param for k in v.fields]
        out += ["", *_def("    ", f"read_{v.name}", ["self", *params(v.fields, False)],
                          f"{cls} | None", is_async=is_async)]  # fmt: skip
        out += _docstring("        ", f"The record whose {v.name} key is this, or None.")
        out += _call("        ", f"return {how}self.repo.read_by", [_literal(v.name), *vargs])
        out += _lister(
            f"list_{v.name}",
            v.fields,
            cls,
            v.name,
            f"Records in {v.name} order whose key starts with the values given.",
            is_async=is_async,
        )
    for ix in r.indexes:
        args = ["self", f"value: {ix.py_type}", "*", *_PAGE,
                f"after: {_tuple_type(r.table)} | None = None"]  # fmt: skip
        out += ["", *_def("    ", f"list_by_{ix.name}", args, f"builtins.list[{cls}]",
                          is_async=is_async)]  # fmt: skip
        out += _docstring(
            "        ",
            f"Records whose {ix.name} is (or holds) ``value``, in primary key order.",
        )
        out += _call("        ", f"return {how}self.repo.list_by_index",
                     [_literal(ix.name), "value", *_PAGE_ARGS])  # fmt: skip
    out += ["", *_def("    ", "key_of", ["self", f"m: {cls}"], _tuple_type(r.table))]
    out += _docstring("        ", "The primary key of ``m`` (the ``after`` of a next page).")
    items = ", ".join(f"m.{k.name}" for k in r.table)
    out.append(f"        return ({items},)" if len(r.table) == 1 else f"        return ({items})")
    out += _in_txn(r, cls)
    return out


def _singleton(r: RepoModel, cls: str, *, is_async: bool) -> list[str]:
    n = r.ref.name
    name = f"Async{n}Singleton" if is_async else f"{n}Singleton"
    store = "AsyncStore" if is_async else "Store"
    base = "AsyncSingleton" if is_async else "Singleton"
    out = [f"class {name}({base}[{cls}]):"]
    out += _docstring("    ", f"The one {n} of a rony.store.{store}: save, read, delete.")
    out += ["", f"    def __init__(self, store: {store}) -> None:"]
    out += _call("        ", "super().__init__", [cls, "store", f"name={_literal(r.full_name)}"])
    return out


def render(model: FileModel) -> str:
    names = _Names(model)
    repos = model.repos
    tables = [r for r in repos if not r.singleton]
    singles = [r for r in repos if r.singleton]
    exports: list[str] = []
    body: list[str] = []
    for r in tables:
        cls = names.local[r.ref.name]
        exports += [_spec(r), f"{r.ref.name}Repo", f"Async{r.ref.name}Repo"]
        body += ["", "", *_spec_lines(r, cls)]
    for r in tables:
        cls = names.local[r.ref.name]
        for is_async in (False, True):
            body += ["", "", *_repo_class(r, cls, is_async=is_async)]
    for r in singles:
        cls = names.local[r.ref.name]
        exports += [f"{r.ref.name}Singleton", f"Async{r.ref.name}Singleton"]
        for is_async in (False, True):
            body += ["", "", *_singleton(r, cls, is_async=is_async)]

    head = [
        f"# Generated by protoc-gen-rony {GENERATOR_VERSION}. DO NOT EDIT.",
        f"# source: {model.proto}",
        "# Edit the .proto file and run `rony gen` again instead.",
        '"""Store repositories of the rony_model messages of the .proto file named above."""',
        "",
        "from __future__ import annotations",
        "",
    ]
    if tables:
        head += ["import builtins", "from collections.abc import AsyncIterator, Iterator",
                 "from typing import Final", ""]  # fmt: skip
    store_names = ["AsyncStore", "Store"] + (["WriteTxn"] if tables else [])
    head.append(f"from rony.store import {', '.join(store_names)}")
    repo_names = ["AsyncSingleton", "Singleton"] if singles else []
    if tables:
        repo_names += ["DEFAULT_LIST_LIMIT", "AsyncRepository", "Index", "KeyOrder"]
        repo_names += ["ModelSpec", "Repository", "prefix_of"]
    repo_names.sort(key=_member_key)
    one = f"from rony.store.repo import {', '.join(repo_names)}"
    if len(one) <= WIDTH:
        head.append(one)
    else:
        head += ["from rony.store.repo import (", *(f"    {n}," for n in repo_names), ")"]
    imports = sorted(
        (n if n == local else f"{n} as {local}" for n, local in names.local.items()),
        key=_member_key,
    )
    plain = [i for i in imports if " as " not in i]
    statements = [[i] for i in imports if " as " in i] + ([plain] if plain else [])
    statements.sort(key=lambda group: _member_key(group[0]))
    head += ["", "# isort: split"]
    for group in statements:
        one = f"from {model.pb2_module} import {', '.join(group)}"
        if len(one) <= WIDTH:
            head.append(one)
        else:
            head += [f"from {model.pb2_module} import (", *(f"    {n}," for n in group), ")"]
    head += ["", "__all__ = ["]
    head += [f"    {_literal(n)}," for n in sorted(exports, key=_all_key)]
    head.append("]")
    return "\n".join(head + body) + "\n"
