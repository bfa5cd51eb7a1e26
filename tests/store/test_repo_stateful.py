"""A repository behaves like a dict + sorted indexes under random operations (hypothesis).

The model: a dict primary key -> record. Every list is the model's records sorted the way the
key order says (user_id ascending, created descending, id ascending; the view by topic first),
sliced by prefix, ``after``, skip and limit; an index lists the records holding the value, in
primary key order. After every step the store holds exactly one table entry, one view entry and
one entry per distinct indexed value per record: no stale index or view entry is left behind.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rony.store import Store
from rony.store.errors import RecordExistsError, RecordNotFoundError
from rony.store.repo import NAMESPACE, Repository
from tests.store._repo_models import Post, spec

USERS = st.integers(-2, 2) | st.sampled_from([-(1 << 62), 1 << 62])
CREATED = st.integers(-2, 2)
IDS = st.integers(0, 3)
TEXT = st.sampled_from(["", "a", "a\x00", "a\x01", "ab", "b"])
TAGS = st.lists(st.sampled_from(["x", "x\x00", "xy", "y"]), max_size=3)


def _pk(p: Any) -> tuple[int, int, int]:
    return (p.user_id, p.created, p.id)


def _table_order(p: Any) -> tuple[Any, ...]:
    return (p.user_id, -p.created, p.id)


def _view_order(p: Any) -> tuple[Any, ...]:
    return (p.topic, p.user_id, -p.created, p.id)


def _page(rows: list[Any], skip: int, limit: int) -> list[Any]:
    return rows[skip : skip + limit]


@st.composite
def posts(draw: st.DrawFn) -> Any:
    return Post(
        user_id=draw(USERS),
        created=draw(CREATED),
        id=draw(IDS),
        topic=draw(TEXT),
        title=draw(TEXT),
        tags=draw(TAGS),
        body=draw(st.binary(max_size=4)),
    )


class RepositoryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory(prefix="rony-repo-")
        self.store = Store.open(self._dir.name, durability="fast", sweep_interval=None)
        self.repo: Repository[Any] = Repository(spec(), self.store)
        self.model: dict[tuple[int, int, int], Any] = {}

    def teardown(self) -> None:
        self.store.close()
        self._dir.cleanup()

    @rule(p=posts())
    def create(self, p: Any) -> None:
        if _pk(p) in self.model:
            with pytest.raises(RecordExistsError):
                self.repo.create(p)
        else:
            self.repo.create(p)
            self.model[_pk(p)] = p

    @rule(p=posts())
    def update(self, p: Any) -> None:
        if _pk(p) not in self.model:
            with pytest.raises(RecordNotFoundError):
                self.repo.update(p)
        else:
            self.repo.update(p)
            self.model[_pk(p)] = p

    @rule(p=posts())
    def save(self, p: Any) -> None:
        self.repo.save(p)
        self.model[_pk(p)] = p

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def update_existing(self, data: st.DataObject) -> None:
        # An update that changes the view key and the indexed values of a stored record.
        pk = data.draw(st.sampled_from(sorted(self.model)))
        p = data.draw(posts())
        p.user_id, p.created, p.id = pk
        self.repo.update(p)
        self.model[pk] = p

    @rule(user=USERS, created=CREATED, ident=IDS)
    def delete(self, user: int, created: int, ident: int) -> None:
        pk = (user, created, ident)
        assert self.repo.delete(*pk) == (pk in self.model)
        self.model.pop(pk, None)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def delete_existing(self, data: st.DataObject) -> None:
        pk = data.draw(st.sampled_from(sorted(self.model)))
        assert self.repo.delete(*pk)
        del self.model[pk]

    @rule(user=USERS, created=CREATED, ident=IDS)
    def read(self, user: int, created: int, ident: int) -> None:
        assert self.repo.read(user, created, ident) == self.model.get((user, created, ident))

    @rule(
        depth=st.integers(0, 3),
        probe=posts(),
        skip=st.integers(0, 3),
        limit=st.integers(1, 5),
        reverse=st.booleans(),
        use_after=st.booleans(),
    )
    def list_table(
        self, depth: int, probe: Any, skip: int, limit: int, reverse: bool, use_after: bool
    ) -> None:
        prefix = _pk(probe)[:depth]
        rows = sorted(
            (p for p in self.model.values() if _pk(p)[:depth] == prefix),
            key=_table_order,
            reverse=reverse,
        )
        after = None
        if use_after and rows:
            anchor = rows[len(rows) // 2]
            after = _pk(anchor)
            rows = rows[rows.index(anchor) + 1 :]
        got = self.repo.list(*prefix, skip=skip, limit=limit, reverse=reverse, after=after)
        assert got == _page(rows, skip, limit)
        assert self.repo.count(*prefix) == sum(
            1 for p in self.model.values() if _pk(p)[:depth] == prefix
        )

    @rule(topic=TEXT, whole=st.booleans(), reverse=st.booleans(), limit=st.integers(1, 5))
    def list_view(self, topic: str, whole: bool, reverse: bool, limit: int) -> None:
        prefix = () if whole else (topic,)
        rows = sorted(
            (p for p in self.model.values() if whole or p.topic == topic),
            key=_view_order,
            reverse=reverse,
        )
        got = self.repo.list(*prefix, limit=limit, reverse=reverse, view="by_topic")
        assert got == rows[:limit]

    @rule(tag=st.sampled_from(["x", "x\x00", "xy", "y"]), reverse=st.booleans())
    def list_by_tag(self, tag: str, reverse: bool) -> None:
        rows = sorted(
            (p for p in self.model.values() if tag in p.tags), key=_table_order, reverse=reverse
        )
        assert self.repo.list_by_index("tags", tag, reverse=reverse, limit=999) == rows

    @rule(title=TEXT, skip=st.integers(0, 2))
    def list_by_title(self, title: str, skip: int) -> None:
        rows = sorted((p for p in self.model.values() if p.title == title), key=_table_order)
        assert self.repo.list_by_index("title", title, skip=skip) == rows[skip:]

    @rule(p=posts())
    def read_by_view(self, p: Any) -> None:
        stored = self.model.get(_pk(p))
        key = (stored or p).topic, p.user_id, p.created, p.id
        assert self.repo.read_by("by_topic", *key) == stored

    @invariant()
    def no_stale_entries(self) -> None:
        expected = sum(2 + 1 + len(set(p.tags)) for p in self.model.values())
        assert self.store.count(NAMESPACE) == expected


RepositoryMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_repository_is_a_dict_with_sorted_indexes = RepositoryMachine.TestCase
