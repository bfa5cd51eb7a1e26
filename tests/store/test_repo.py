"""rony.store.repo: records by primary key, views, indexes, pages, TTL, singletons, both faces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rony.store import AsyncStore, Store
from rony.store.errors import (
    InvalidArgumentError,
    RecordExistsError,
    RecordNotFoundError,
    WrongTypeError,
)
from rony.store.repo import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    NAMESPACE,
    AsyncRepository,
    AsyncSingleton,
    Index,
    KeyOrder,
    ModelSpec,
    Repository,
    Singleton,
    prefix_of,
)
from tests.store._repo_models import Post, Post2, spec
from tests.store.conftest import ManualClock


@pytest.fixture
def repo(store: Store) -> Repository[Any]:
    return Repository(spec(), store)


def _ids(rows: list[Any]) -> list[tuple[int, int, int]]:
    return [(p.user_id, p.created, p.id) for p in rows]


def test_create_read_update_save_delete(repo: Repository[Any]) -> None:
    p = Post(user_id=1, created=10, id=1, topic="go", title="hello", tags=["a", "b"])
    repo.create(p)
    assert repo.read(1, 10, 1) == p
    with pytest.raises(RecordExistsError, match=r"trepo.Post \(1, 10, 1\) exists"):
        repo.create(p)
    with pytest.raises(RecordNotFoundError):
        repo.update(Post(user_id=2, created=10, id=1))
    p.title = "changed"
    repo.update(p)
    assert repo.list_by_index("title", "hello") == []
    assert repo.list_by_index("title", "changed") == [p]
    repo.save(Post(user_id=2, created=1, id=1))  # upsert of a new one
    assert repo.count() == 2
    assert repo.delete(1, 10, 1)
    assert not repo.delete(1, 10, 1)
    assert repo.read(1, 10, 1) is None
    assert repo.list_by_index("tags", "a") == []
    assert repo.read_by("by_topic", "go", 1, 10, 1) is None


def test_bad_arguments_are_typed_errors(repo: Repository[Any]) -> None:
    with pytest.raises(WrongTypeError, match="stores Post, not Post2"):
        repo.save(Post2(user_id=1))
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'id'"):
        repo.read(1, 2)
    with pytest.raises(InvalidArgumentError, match=r"3 values \(user_id, created, id\), not 2"):
        repo.delete(1, 2)
    with pytest.raises(WrongTypeError, match="key field 'user_id' is int, not str"):
        repo.read("1", 2, 3)
    with pytest.raises(WrongTypeError, match="key field 'created' is int, not float"):
        repo.read(1, 2.0, 3)
    with pytest.raises(InvalidArgumentError, match="MAX_INT_BYTES"):
        repo.read(1 << 2000, 2, 3)
    repo.save(Post(user_id=1, created=1, id=1))
    assert repo.read(True, True, 1) == repo.read(1, 1, 1)  # a bool is its int, as in Python
    with pytest.raises(InvalidArgumentError, match="at most 3 parts"):
        repo.list(1, 2, 3, 4)
    with pytest.raises(InvalidArgumentError, match="no view 'nope'"):
        repo.list(view="nope")
    with pytest.raises(InvalidArgumentError, match="no index on 'topic'"):
        repo.list_by_index("topic", "x")
    for limit in (0, MAX_LIST_LIMIT + 1):
        with pytest.raises(InvalidArgumentError, match="MAX_LIST_LIMIT=999"):
            repo.list(limit=limit)
    with pytest.raises(InvalidArgumentError, match="skip"):
        repo.list(skip=-1)
    with pytest.raises(WrongTypeError):
        Repository(spec(), object())  # type: ignore[arg-type]


def test_negative_ints_sort_before_positive_ones(repo: Repository[Any]) -> None:
    users = [5, -1, 0, -(1 << 63), 1 << 63 - 1, -300, 300, 1]
    for u in users:
        repo.save(Post(user_id=u, created=0, id=0))
    assert [p.user_id for p in repo.list()] == sorted(users)
    assert [p.user_id for p in repo.list(reverse=True)] == sorted(users, reverse=True)
    # -created: newest first inside one user.
    for c in (-2, 7, 0, 3):
        repo.save(Post(user_id=9, created=c, id=0))
    assert [p.created for p in repo.list(9)] == [7, 3, 0, -2]


def test_prefix_strings_sort_and_never_match_each_other(store: Store) -> None:
    repo = Repository(ModelSpec(Post, KeyOrder("", ("topic", "id")), name="t.ByTopic"), store)
    topics = ["ab", "a", "a\x00", "", "b", "a\x01", "a\x00b"]
    for t in topics:
        repo.save(Post(topic=t, id=1))
    assert [p.topic for p in repo.list()] == sorted(topics)
    # A prefix of parts matches that whole part only: "a" does not list "ab" or "a\0".
    assert [p.topic for p in repo.list("a")] == ["a"]
    assert [p.topic for p in repo.list("a\x00")] == ["a\x00"]


def test_pages_skip_limit_and_after(repo: Repository[Any]) -> None:
    for i in range(DEFAULT_LIST_LIMIT + 20):
        repo.save(Post(user_id=1, created=0, id=i))
    assert len(repo.list()) == DEFAULT_LIST_LIMIT
    first = repo.list(1, limit=50)
    second = repo.list(1, limit=50, after=repo.key_of(first[-1]))
    third = repo.list(1, limit=50, after=repo.key_of(second[-1]))
    assert [p.id for p in first + second + third] == list(range(120))
    assert [p.id for p in repo.list(skip=115)] == list(range(115, 120))
    back = repo.list(1, limit=3, reverse=True, after=(1, 0, 10))
    assert [p.id for p in back] == [9, 8, 7]
    assert sum(1 for _ in repo.iter(1)) == 120
    assert [p.id for p in repo.iter(1, 0, 3)] == [3]


def test_views_and_indexes(repo: Repository[Any]) -> None:
    a = Post(user_id=1, created=1, id=1, topic="go", title="t", tags=["x", "y", "x"])
    b = Post(user_id=2, created=1, id=1, topic="go", title="t", tags=["y"])
    c = Post(user_id=1, created=2, id=1, topic="py", title="u")
    for p in (a, b, c):
        repo.save(p)
    assert repo.list("go", view="by_topic") == [a, b]
    assert repo.list(view="by_topic", reverse=True) == [c, b, a]
    assert repo.read_by("by_topic", "py", 1, 2, 1) == c
    assert repo.list_by_index("tags", "x") == [a]  # one entry per distinct value
    assert repo.list_by_index("tags", "y") == [a, b]
    assert repo.list_by_index("tags", "y", after=(1, 1, 1)) == [b]
    assert repo.list_by_index("title", "t", reverse=True) == [b, a]
    assert repo.key_of(a, "by_topic") == ("go", 1, 1, 1)
    assert repo.list(view="by_topic", after=repo.key_of(a, "by_topic")) == [b, c]


def test_one_transaction_for_several_records(store: Store, repo: Repository[Any]) -> None:
    repo.save(Post(user_id=1, created=0, id=0))

    def both(txn: Any) -> None:
        repo.create_in(txn, Post(user_id=2, created=0, id=0, tags=["z"]))
        repo.create_in(txn, Post(user_id=1, created=0, id=0))  # exists: all of it rolls back

    with pytest.raises(RecordExistsError):
        store.transact(both)
    assert repo.read(2, 0, 0) is None
    assert repo.list_by_index("tags", "z") == []
    store.transact(lambda txn: repo.save_in(txn, Post(user_id=3, created=0, id=0)))
    assert store.transact(lambda txn: repo.delete_in(txn, 3, 0, 0))


def test_ttl_expires_a_record_with_its_entries(
    tmp_path: Path, repo: Repository[Any], clock: ManualClock
) -> None:
    repo.save(Post(user_id=1, created=0, id=0, topic="go", tags=["x"]), ttl=10)
    repo.save(Post(user_id=2, created=0, id=0, topic="go", tags=["x"]))
    clock.advance(5)
    assert repo.count() == 2
    clock.advance(6)
    assert _ids(repo.list()) == [(2, 0, 0)]
    assert _ids(repo.list_by_index("tags", "x")) == [(2, 0, 0)]
    assert _ids(repo.list("go", view="by_topic")) == [(2, 0, 0)]
    assert repo.read(1, 0, 0) is None
    repo.create(Post(user_id=1, created=0, id=0))  # the expired record no longer blocks it


def test_a_field_added_later_reads_old_records(store: Store) -> None:
    old = Repository(spec(Post), store)
    new = Repository(spec(Post2), store)
    old.save(Post(user_id=1, created=0, id=0, title="v1"))
    [read] = new.list(1)
    assert (read.title, read.likes) == ("v1", 0)
    new.save(Post2(user_id=1, created=0, id=1, likes=3, tags=["t"]))
    assert old.read(1, 0, 1) is not None
    old.save(Post(user_id=1, created=0, id=1))  # the old schema still updates its indexes
    assert old.list_by_index("tags", "t") == []


def test_spec_refuses_bad_keys() -> None:
    with pytest.raises(InvalidArgumentError, match="no field 'nope'"):
        ModelSpec(Post, KeyOrder("", ("nope",)))
    with pytest.raises(InvalidArgumentError, match="tags is repeated"):
        ModelSpec(Post, KeyOrder("", ("tags",)))
    with pytest.raises(InvalidArgumentError, match="lacks the table key fields id"):
        ModelSpec(Post, KeyOrder("", ("user_id", "id")), views=(KeyOrder("v", ("user_id",)),))
    with pytest.raises(InvalidArgumentError, match="no field 'x'"):
        ModelSpec(Post, KeyOrder("", ("id",)), indexes=(Index("x"),))


def test_prefix_of_refuses_a_gap() -> None:
    assert prefix_of(("a", "b", "c"), 1, None, None) == (1,)
    with pytest.raises(InvalidArgumentError, match="'c' is given but 'b' before it is not"):
        prefix_of(("a", "b", "c"), 1, None, 3)


def test_singleton(store: Store) -> None:
    one = Singleton(Post, store, name="trepo.Settings")
    assert one.read() is None
    one.save(Post(title="x"))
    assert one.read() == Post(title="x")
    assert Singleton(Post, store, name="trepo.Other").read() is None
    assert one.delete()
    assert one.read() is None


async def test_async_faces(tmp_path: Path) -> None:
    async with await AsyncStore.open(tmp_path / "a", sweep_interval=None) as astore:
        repo: AsyncRepository[Any] = AsyncRepository(spec(), astore)
        a = Post(user_id=-1, created=0, id=0, topic="go", tags=["x"])
        await repo.create(a)
        with pytest.raises(RecordExistsError):
            await repo.create(a)
        await repo.save(Post(user_id=1, created=0, id=0, topic="go"))
        await repo.update(Post(user_id=1, created=0, id=0, topic="py"))
        assert await repo.read(-1, 0, 0) == a
        assert _ids(await repo.list()) == [(-1, 0, 0), (1, 0, 0)]
        assert await repo.list("go", view="by_topic") == [a]
        assert await repo.read_by("by_topic", "go", -1, 0, 0) == a
        assert await repo.list_by_index("tags", "x") == [a]
        assert [p.user_id async for p in repo.iter(reverse=True)] == [1, -1]
        assert await repo.count() == 2
        assert await repo.delete(1, 0, 0)
        one = AsyncSingleton(Post, astore, name="trepo.Settings")
        await one.save(Post(title="s"), ttl=60)
        assert await one.read() == Post(title="s")
        assert await one.delete()
        with pytest.raises(WrongTypeError):
            AsyncRepository(spec(), astore.store)


# -- the write path: one B-tree pass for the table entry, new entries added blind ------------


def _entries(store: Store) -> dict[bytes, bytes]:
    """Every repository key with its value (live ones: a scan hides expired keys)."""
    return dict(store.scan(NAMESPACE))


def test_a_refused_write_inside_a_transaction_leaves_it_as_it_was(
    store: Store, repo: Repository[Any]
) -> None:
    p = Post(user_id=1, created=5, id=1, topic="go", title="t", tags=["a"])
    repo.save(p)
    before = _entries(store)

    def fn(txn: Any) -> None:
        with pytest.raises(RecordExistsError):  # caught: the transaction goes on
            repo.create_in(txn, Post(user_id=1, created=5, id=1, title="other", tags=["b"]))
        with pytest.raises(RecordNotFoundError):
            repo.update_in(txn, Post(user_id=9, created=0, id=0, title="x"))

    store.transact(fn)
    assert _entries(store) == before
    assert repo.read(1, 5, 1) == p
    assert repo.read(9, 0, 0) is None


def test_an_expired_record_is_replaced_with_its_old_entries_gone(
    store: Store, repo: Repository[Any], clock: ManualClock
) -> None:
    repo.save(Post(user_id=1, created=0, id=0, topic="old", title="old", tags=["o"]), ttl=1)
    clock.advance(2)  # expired, not swept: its entries are still in the file
    with pytest.raises(RecordNotFoundError):
        repo.update(Post(user_id=1, created=0, id=0))
    new = Post(user_id=1, created=0, id=0, topic="new", title="new", tags=["n"])
    repo.create(new)
    assert repo.list_by_index("title", "old") == []
    assert repo.list_by_index("tags", "n") == [new]
    # Nothing of the old record is left, live or expired, and nothing keeps a TTL.
    stats = store.stats()
    assert stats.with_ttl == 0
    assert stats.entries == len(_entries(store)) == 1 + 1 + 1 + 1  # table, view, two indexes


def test_an_entry_left_by_a_half_swept_record_gets_the_new_records_ttl(
    store: Store, repo: Repository[Any], clock: ManualClock
) -> None:
    repo.save(Post(user_id=1, created=0, id=0, topic="go", title="t", tags=["x"]), ttl=1)
    clock.advance(2)
    # Expired entries are swept in key order: index ("i") entries, the table ("t"), then the
    # view ("v"); stop after the table entry, so the view's copy is left behind.
    assert store.sweep(limit=3) == 3
    assert store.stats().with_ttl == 1
    p = Post(user_id=1, created=0, id=0, topic="go", title="t", tags=["x", "x"])
    repo.save(p)  # no TTL: the left-behind view entry must lose its TTL with it
    assert store.stats().with_ttl == 0
    clock.advance(1000)
    assert store.sweep() == 0
    assert repo.read_by("by_topic", "go", 1, 0, 0) == p
    assert repo.list_by_index("tags", "x") == [p]  # one entry for the value given twice


def test_a_record_with_a_ttl_gives_every_entry_one_ttl_entry(
    store: Store, repo: Repository[Any], clock: ManualClock
) -> None:
    repo.save(Post(user_id=1, created=0, id=0, topic="go", title="t", tags=["x", "x", "y"]), ttl=5)
    assert store.stats().with_ttl == len(_entries(store)) == 1 + 1 + 1 + 2
    clock.advance(6)
    assert store.sweep() == 5
    assert store.stats().entries == 0
