"""``rony gen`` for ``rony_model`` messages: bad model options are GenerationErrors naming the
field; end to end, a proto in tmp_path generated, imported and used against a real store."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from rony.server.codegen import GenerationError, generate
from rony.server.codegen.plugin import generate as plugin_generate
from rony.store import AsyncStore, Store
from rony.store.errors import InvalidArgumentError, RecordExistsError
from tests.codegen._util import request_for

HEADER = """syntax = "proto3";
package cgbad;
import "rony/core/pb/options.proto";
"""


def _problems(tmp_path: Path, body: str) -> str:
    (tmp_path / "bad.proto").write_text(HEADER + body)
    response = plugin_generate(request_for(["bad.proto"], tmp_path, [tmp_path]))
    assert response.error, "expected a generation error"
    assert not response.file
    return response.error


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'message M { option (rony_model) = { table: { part_key: "nope" } }; int32 a = 1; }',
            "bad.proto:4:13: rony_model table of cgbad.M names field 'nope', which cgbad.M "
            "does not have (its fields: a)",
        ),
        (
            'message M { option (rony_model) = { table: { part_key: "a" } }; '
            "repeated int32 a = 1; }",
            "field cgbad.M.a is repeated; a key is singular",
        ),
        (
            'message N {} message M { option (rony_model) = { table: { part_key: "n" } }; '
            "N n = 1; }",
            "field cgbad.M.n is a message; a key field is a number, bool, string, bytes or enum",
        ),
        (
            'message M { option (rony_model) = { table: { part_key: "-a" } }; int32 a = 1; }',
            "only a sort_key may be descending ('-a')",
        ),
        (
            'message M { option (rony_model) = { table: { part_key: "a" sort_key: "a" } }; '
            "int32 a = 1; }",
            "names field 'a' twice",
        ),
        (
            'message M { option (rony_model) = { local_datasource: "cql" '
            'table: { part_key: "a" } }; int32 a = 1; }',
            'Rony for Python has only the "store" datasource',
        ),
        (
            "message M { option (rony_model) = { local_datasource: \"store\" }; int32 a = 1; }",
            "rony_model of cgbad.M needs a table (or singleton: true)",
        ),
        (
            "message M { int32 a = 1 [(rony_index) = true]; }",
            "bad.proto:4:13: rony_index on cgbad.M.a, but the message is no store model",
        ),
        (
            'message N {} message M { option (rony_model) = { table: { part_key: "a" } }; '
            "int32 a = 1; N n = 2 [(rony_index) = true]; }",
            "rony_index on cgbad.M.n, a message or map field",
        ),
        (
            'message M { option (rony_model) = { table: { part_key: "a" } view: { part_key: "b" '
            'alias: "tags" } }; int32 a = 1; repeated string tags = 2 [(rony_index) = true]; '
            "int32 b = 3; }",
            "the index on 'tags' and a view both generate 'list_by_tags'",
        ),
        (
            'message M { option (rony_model) = { singleton: true table: { part_key: "a" } }; '
            "int32 a = 1; }",
            "a singleton has no table or view",
        ),
    ],
)  # fmt: skip
def test_bad_model_options_name_the_field(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in _problems(tmp_path, body)


def test_bad_model_options_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.proto").write_text(
        HEADER + 'message M { option (rony_model) = { table: { part_key: "x" } }; int32 a = 1; }'
    )
    out = tmp_path / "out"
    with pytest.raises(GenerationError, match="names field 'x'"):
        generate([tmp_path / "bad.proto"], out, [tmp_path])
    assert not out.exists()


E2E_PROTO = """syntax = "proto3";
package cgrepo_e2e;
import "rony/core/pb/options.proto";

message RepoE2ENote {
  option (rony_model) = {
    local_datasource: "store"
    table: { part_key: "owner" sort_key: "-at" }
    view: { part_key: "folder" alias: "InFolder" }
  };
  string owner = 1;
  int64 at = 2;
  string folder = 3;
  repeated string labels = 4 [(rony_index) = true];
  string text = 5;
}

message RepoE2EPrefs {
  option (rony_model) = { singleton: true };
  int32 size = 1;
}
"""


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    src = tmp_path_factory.mktemp("src")
    (src / "cgrepo_e2e").mkdir()
    (src / "cgrepo_e2e" / "notes.proto").write_text(E2E_PROTO)
    out = tmp_path_factory.mktemp("gen")
    result = generate([src / "cgrepo_e2e" / "notes.proto"], out, [src])
    assert {p.name for p in result.written} == {
        "notes_pb2.py",
        "notes_pb2.pyi",
        "notes_rony.py",
        "notes_repo.py",
    }
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("cgrepo_e2e.notes_repo")
    finally:
        sys.path.remove(str(out))


def test_generated_repository_against_a_real_store(notes: ModuleType, tmp_path: Path) -> None:
    pb = importlib.import_module("cgrepo_e2e.notes_pb2")
    with Store.open(tmp_path / "store", sweep_interval=None) as store:
        repo = notes.RepoE2ENoteRepo(store)
        for at, folder, labels in [(1, "inbox", ["a"]), (3, "work", ["a", "b"]), (2, "inbox", [])]:
            repo.create(pb.RepoE2ENote(owner="ann", at=at, folder=folder, labels=labels))
        repo.create(pb.RepoE2ENote(owner="bob", at=5, folder="inbox"))
        with pytest.raises(RecordExistsError):
            repo.create(pb.RepoE2ENote(owner="ann", at=1))
        assert [n.at for n in repo.list("ann")] == [3, 2, 1]  # -at: newest first
        assert [n.at for n in repo.list("ann", after=("ann", 3))] == [2, 1]
        assert [n.owner for n in repo.list_by_in_folder("inbox")] == ["ann", "ann", "bob"]
        assert [n.at for n in repo.list_by_labels("a")] == [3, 1]
        note = repo.read_by_in_folder("work", "ann", 3)
        assert note is not None
        assert note.labels == ["a", "b"]
        note.labels[:] = ["c"]
        repo.update(note)
        assert repo.list_by_labels("b") == []
        assert repo.count("ann") == 3
        assert repo.delete("ann", 3)
        with pytest.raises(InvalidArgumentError, match="'at' is given but 'owner'"):
            repo.list(at=3)
        prefs = notes.RepoE2EPrefsSingleton(store)
        prefs.save(pb.RepoE2EPrefs(size=7))
        current = prefs.read()
        assert current is not None
        assert current.size == 7


async def test_generated_async_repository(notes: ModuleType, tmp_path: Path) -> None:
    pb = importlib.import_module("cgrepo_e2e.notes_pb2")
    async with await AsyncStore.open(tmp_path / "a", sweep_interval=None) as astore:
        repo = notes.AsyncRepoE2ENoteRepo(astore)
        await repo.save(pb.RepoE2ENote(owner="ann", at=1, labels=["x"]))
        await astore.transact(
            lambda txn: repo.create_in(txn, pb.RepoE2ENote(owner="ann", at=2, labels=["x"]))
        )
        assert [n.at for n in await repo.list_by_labels("x", reverse=True)] == [1, 2]
        assert [n.at async for n in repo.iter("ann")] == [2, 1]
        assert await repo.read("ann", 2) is not None
        prefs = notes.AsyncRepoE2EPrefsSingleton(astore)
        assert await prefs.read() is None
