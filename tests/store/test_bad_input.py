"""Bad input and bad paths: a clear typed error, never a crash, never a corrupted store."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest

from rony.store import Store
from rony.store.errors import (
    AlreadyOpenError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidTTLError,
    InvalidValueError,
    NotAStoreError,
    ReadOnlyError,
    StoreAccessError,
    StoreError,
    WrongTypeError,
)

BAD_KEYS: list[tuple[object, type[StoreError]]] = [
    (b"", InvalidKeyError),
    (b"k" * 512, InvalidKeyError),
    ("text", WrongTypeError),
    (12, WrongTypeError),
    (None, WrongTypeError),
    ([b"k"], WrongTypeError),
]


def key_calls(s: Store, key: object) -> list[Callable[[], object]]:
    k: bytes = key  # type: ignore[assignment]
    return [
        lambda: s.get(k),
        lambda: s.exists(k),
        lambda: s.ttl(k),
        lambda: s.set(k, b"v"),
        lambda: s.delete(k),
        lambda: s.expire(k, 1),
        lambda: s.persist(k),
        lambda: s.incr(k),
        lambda: s.get_many([k]),
        lambda: s.delete_many([k]),
        lambda: s.set_many([(k, b"v")]),
    ]


@pytest.mark.parametrize(("key", "error"), BAD_KEYS)
def test_bad_keys_raise_typed_errors_everywhere(
    store: Store, key: object, error: type[StoreError]
) -> None:
    store.set(b"good", b"v")
    for call in key_calls(store, key):
        with pytest.raises(error):
            call()
    with store.update() as txn:
        with pytest.raises(error):
            txn.set(key, b"v")  # type: ignore[arg-type]
        with pytest.raises(error):
            txn.get(key)  # type: ignore[arg-type]
    with store.view() as view, pytest.raises(error):
        view.get(key)  # type: ignore[arg-type]
    assert list(store.scan()) == [(b"good", b"v")]  # nothing was damaged


def test_max_key_size_setting_is_enforced(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", max_key_size=8, max_value_size=4) as s:
        s.set(b"12345678", b"1234")
        with pytest.raises(InvalidKeyError):
            s.set(b"123456789", b"v")
        with pytest.raises(InvalidKeyError):
            s.get(b"123456789")
        with pytest.raises(InvalidValueError):
            s.set(b"k", b"12345")
        with pytest.raises(ValueError, match="max_value_size"):
            s.set(b"k", b"12345")


@pytest.mark.parametrize("value", ["text", 1, None, 1.5])
def test_bad_values(store: Store, value: object) -> None:
    with pytest.raises(WrongTypeError):
        store.set(b"k", value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.set_many({b"k": value})  # type: ignore[dict-item]
    assert store.get(b"k") is None


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        (math.nan, InvalidTTLError),
        (math.inf, InvalidTTLError),
        (-math.inf, InvalidTTLError),
        (-1, InvalidTTLError),
        (0, InvalidTTLError),
        (1e12, InvalidTTLError),
        ("5", WrongTypeError),
        (True, WrongTypeError),
        (b"5", WrongTypeError),
    ],
)
def test_bad_ttls(store: Store, ttl: object, error: type[StoreError]) -> None:
    store.set(b"k", b"v")
    with pytest.raises(error):
        store.set(b"k", b"v2", ttl=ttl)  # type: ignore[arg-type]
    if ttl not in (-1, 0):
        with pytest.raises(error):
            store.expire(b"k", ttl)  # type: ignore[arg-type]
    assert store.get(b"k") == b"v"


@pytest.mark.parametrize("by", [1.5, "1", None, True, 2**63])
def test_bad_incr_amounts(store: Store, by: object) -> None:
    with pytest.raises((WrongTypeError, InvalidArgumentError)):
        store.incr(b"n", by)  # type: ignore[arg-type]
    assert store.get(b"n") is None


def test_bad_scan_arguments(store: Store) -> None:
    with pytest.raises(WrongTypeError):
        store.scan("prefix")  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        store.scan(start=b"")
    with pytest.raises(InvalidArgumentError):
        store.scan(limit=-1)
    with pytest.raises(WrongTypeError):
        store.scan(limit=1.0)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        store.get_many(b"abc")


@pytest.mark.parametrize(
    "settings",
    [
        {"map_size": 10},
        {"map_size": "big"},
        {"max_key_size": 600},
        {"max_key_size": 0},
        {"durability": "maybe"},
        {"sweep_interval": 0},
        {"sweep_interval": math.nan},
        {"sync_interval": -1},
        {"sweep_batch": 0},
        {"resize_wait": None},
        {"readonly": 1},
        {"clock": 5},
    ],
)
def test_bad_settings(tmp_path: Path, settings: dict[str, object]) -> None:
    with pytest.raises((InvalidArgumentError, WrongTypeError)):
        Store.open(tmp_path / "s", **settings)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()  # refused before touching the disk


def test_path_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("hello")
    with pytest.raises(NotAStoreError):
        Store.open(f)
    with pytest.raises(NotAStoreError):
        Store.open(f / "below")
    assert f.read_text() == "hello"


def test_folder_with_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotAStoreError):
        Store.open(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_garbage_data_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    garbage = os.urandom(3 * 4096)
    (d / "data.mdb").write_bytes(garbage)
    with pytest.raises(NotAStoreError):
        Store.open(d)
    with pytest.raises(NotAStoreError):
        Store.open(d, readonly=True)
    assert (d / "data.mdb").read_bytes() == garbage


def test_foreign_lmdb_environment_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "other"
    env = lmdb.open(str(d), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"someone", b"else")
    env.close()
    with pytest.raises(NotAStoreError):
        Store.open(d)
    env = lmdb.open(str(d), max_dbs=2)
    with env.begin() as txn:
        assert txn.get(b"someone") == b"else"
    env.close()


def test_missing_path_with_create_false_or_readonly(tmp_path: Path) -> None:
    with pytest.raises(NotAStoreError):
        Store.open(tmp_path / "nope", create=False)
    with pytest.raises(NotAStoreError):
        Store.open(tmp_path / "nope", readonly=True)
    assert not (tmp_path / "nope").exists()


def test_wrong_path_type() -> None:
    with pytest.raises(WrongTypeError):
        Store.open(42)  # type: ignore[arg-type]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_folder(tmp_path: Path) -> None:
    d = tmp_path / "s"
    with Store.open(d) as s:
        s.set(b"k", b"v")
    d.chmod(0o555)
    try:
        with pytest.raises(StoreAccessError):
            Store.open(d)
    finally:
        d.chmod(0o755)


def test_open_twice_in_one_process(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as s:
        with pytest.raises(AlreadyOpenError):
            Store.open(tmp_path / "s")
        with pytest.raises(AlreadyOpenError):
            Store.open(tmp_path / "s", readonly=True)
        s.set(b"k", b"v")
    with Store.open(tmp_path / "s", readonly=True) as r:
        assert r.get(b"k") == b"v"
        with pytest.raises(ReadOnlyError):
            r.set(b"k", b"x")
        with pytest.raises(ReadOnlyError):
            r.update().__enter__()
        with pytest.raises(ReadOnlyError):
            r.sweep()


def _chattr(flag: str, *paths: Path) -> bool:
    import subprocess

    try:
        done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def test_read_only_store_files_even_for_root(tmp_path: Path) -> None:
    """Immutable files (chattr +i) refuse writes even to root: opening gives a typed error and
    the store is intact afterwards."""
    d = tmp_path / "s"
    with Store.open(d) as s:
        s.set(b"k", b"v")
    files = sorted(d.iterdir())
    if not _chattr("+i", *files):
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(StoreAccessError):
            Store.open(d)
    finally:
        assert _chattr("-i", *files)
    with Store.open(d) as s:
        assert s.get(b"k") == b"v"


def test_unwritable_parent_folder() -> None:
    if not os.path.isdir("/sys") or (os.access("/sys", os.W_OK) and os.geteuid() != 0):
        pytest.skip("needs /sys")
    target = Path("/sys/rony-store-test-never-created")
    if target.exists():
        pytest.skip("unexpected")
    try:
        os.mkdir(target)
    except PermissionError:
        pass
    else:
        os.rmdir(target)
        pytest.skip("/sys is writable here")
    with pytest.raises(StoreAccessError):
        Store.open(target)
