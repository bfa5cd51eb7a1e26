"""mypy --strict on generated repositories (``<proto>_repo.py``) and on code that uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rony.server.codegen import generate
from tests.codegen._util import FIXTURES, mypy_strict

USER_CODE = """\
from __future__ import annotations

from cgstore.blog_pb2 import BlogPost, BlogSettings
from cgstore.blog_repo import (
    AsyncBlogPostRepo,
    AsyncBlogSettingsSingleton,
    BlogPostRepo,
    BlogSettingsSingleton,
)
from rony.store import AsyncStore, Store


def use(store: Store) -> int:
    posts = BlogPostRepo(store)
    posts.create(BlogPost(user_id=1, id=2, created=3, title="t"), ttl=5.0)
    post = posts.read(1, 3, 2)
    page = posts.list(1, limit=10, after=(1, 3, 2))
    page += posts.list_by_topic("go", reverse=True)
    page += posts.list_by_tags("x", skip=1)
    store.transact(lambda txn: posts.save_in(txn, BlogPost(user_id=1)))
    settings = BlogSettingsSingleton(store)
    settings.save(BlogSettings(title="x"))
    current = settings.read()
    found = [p.id for p in posts.iter(1)]
    return len(page) + (post.id if post else 0) + len(found) + (current.page_size if current else 0)


async def use_async(store: AsyncStore) -> int:
    posts = AsyncBlogPostRepo(store)
    await posts.save(BlogPost(user_id=1))
    post = await posts.read_by_topic("go", 3, 1, 2)
    n = await posts.count(1)
    ids = [p.id async for p in posts.iter()]
    s = await AsyncBlogSettingsSingleton(store).read()
    return n + len(ids) + (post.id if post else 0) + (s.page_size if s else 0)
"""

WRONG_CODE = """\
from __future__ import annotations

from cgstore.blog_pb2 import BlogPost, BlogQuery
from cgstore.blog_repo import BlogPostRepo
from rony.store import Store


def use(store: Store) -> str:
    posts = BlogPostRepo(store)
    posts.save(BlogQuery())
    post = posts.read(1, "3", 2)
    return post.title if post else ""
"""


@pytest.mark.slow
def test_generated_repositories_pass_mypy_strict(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    generate([FIXTURES / "cgstore" / "blog.proto"], out, [FIXTURES])
    (out / "user_code.py").write_text(USER_CODE)
    (out / "wrong_code.py").write_text(WRONG_CODE)
    files = [*sorted(out.rglob("*_repo.py")), out / "user_code.py", out / "wrong_code.py"]
    res = mypy_strict(files, [out], tmp_path)
    lines = [ln for ln in res.stdout.splitlines() if ": error:" in ln]
    # Exactly the planted errors: a repository takes its own message only, and typed keys.
    assert len(lines) == 2, res.stdout + res.stderr
    assert 'wrong_code.py:10: error: Argument 1 to "save" of "BlogPostRepo"' in lines[0]
    assert 'wrong_code.py:11: error: Argument 2 to "read" of "BlogPostRepo"' in lines[1]
