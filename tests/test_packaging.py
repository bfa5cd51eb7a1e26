"""Packaging guards for the whole monorepo.

- ``rony`` is one PEP 420 namespace: no distribution may ship ``src/rony/__init__.py`` (one stray
  file hides every other distribution's ``rony.*`` packages).
- ``rony.core`` does no I/O: importing it imports no event loop, socket or network stack.
- ``__all__`` of each public package lists exactly its public names.
"""

from __future__ import annotations
import __future__

import importlib
import json
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())

#: The public packages whose ``__all__`` is checked. A package whose ``__init__`` is still a
#: placeholder (no ``__all__``) is skipped until it gets one.
PUBLIC_PACKAGES = ["rony.core", "rony.store", "rony.client", "rony.server"]
#: Public submodules of rony.core with their own ``__all__``.
PUBLIC_MODULES = ["rony.core.errors", "rony.core.testing"]

IO_MODULES = ["asyncio", "socket", "grpc", "aioquic", "aiohttp", "lmdb"]


def test_workspace_has_the_four_distributions() -> None:
    names = {p.name for p in PACKAGES}
    assert {"rony-core", "rony-server", "rony-client", "rony-store"} <= names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_rony_init_file(package: Path) -> None:
    assert (package / "src" / "rony").is_dir()
    assert not (package / "src" / "rony" / "__init__.py").exists()


def test_rony_is_a_namespace_spanning_every_distribution() -> None:
    import rony

    assert getattr(rony, "__file__", None) is None
    paths = {Path(p).resolve() for p in rony.__path__}
    for package in PACKAGES:
        assert (package / "src" / "rony").resolve() in paths, package.name


# Site start-up may already have loaded some of these (coverage's .pth imports socket), so the
# child forgets them and refuses any fresh import: an import by rony.core fails loudly.
_NO_IO_PROBE = """
import json, sys
BLOCKED = set(json.loads(sys.argv[1]))
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"rony.core must not import {name}")
        return None

sys.meta_path.insert(0, Refuse())
import rony.core, rony.core.errors, rony.core.testing
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
"""


def test_importing_rony_core_does_no_io() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _NO_IO_PROBE, json.dumps(IO_MODULES)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_the_no_io_probe_catches_an_import() -> None:
    # The probe itself works: a module that imports socket is caught.
    probe = _NO_IO_PROBE.replace("import rony.core,", "import http.client, rony.core,")
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(IO_MODULES)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "must not import socket" in out.stderr


def _is_typing_helper(obj: object) -> bool:
    return isinstance(obj, typing.TypeVar | typing.ParamSpec | typing.TypeVarTuple) or (
        type(obj).__module__ == "typing"
    )


def _defined_in(obj: object, name: str, module: str) -> bool:
    """Whether public attribute ``name`` belongs to ``module``'s API (versus a helper it imported).

    It belongs when it was made in ``module`` or in one of its submodules (``rony.core``
    re-exports ``rony.core._codec.envelope`` and ``rony.core._messages.C_Ping``), and not when
    imported from elsewhere (``typing.Any``, ``google.protobuf.message.Message``, or a sibling's
    ``C_Error`` imported into ``rony.core.testing``). Classes and functions name their origin in
    ``__module__``; a plain value (a constant, the registry) is traced to the other loaded rony
    modules that bind the very same object under the same name.
    """
    prefix = module + "."
    if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__")):
        origin = getattr(obj, "__module__", None) or ""
        return origin == module or origin.startswith(prefix)
    sources = [
        m
        for m, mod in list(sys.modules.items())
        if m.startswith("rony.") and m != module and vars(mod).get(name, _MISSING) is obj
    ]
    return not sources or any(m.startswith(prefix) for m in sources)


_MISSING = object()


def public_names(mod: types.ModuleType) -> set[str]:
    """Names a module offers: not ``_``-prefixed, not modules (``rony.core.pb``, ``enum``),
    not ``from __future__`` features or typing helpers, and defined by the module itself."""
    return {
        name
        for name, obj in vars(mod).items()
        if not name.startswith("_")
        and not isinstance(obj, types.ModuleType)
        and not isinstance(obj, __future__._Feature)
        and not _is_typing_helper(obj)
        and _defined_in(obj, name, mod.__name__)
    }


@pytest.mark.parametrize("name", PUBLIC_PACKAGES + PUBLIC_MODULES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    mod = importlib.import_module(name)
    if not hasattr(mod, "__all__"):
        pytest.skip(f"{name} is still a placeholder without __all__")
    exported = list(mod.__all__)
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    missing = sorted(n for n in exported if not hasattr(mod, n))
    assert missing == [], f"{name}.__all__ names what does not exist: {missing}"
    unlisted = sorted(public_names(mod) - set(exported))
    assert unlisted == [], f"{name} has public names not in __all__: {unlisted}"
    private = sorted(n for n in exported if n.startswith("_"))
    assert private == [], f"{name}.__all__ lists private names: {private}"


def test_rony_core_star_import_matches_all() -> None:
    namespace: dict[str, object] = {}
    exec("from rony.core import *", namespace)
    import rony.core

    assert set(namespace) - {"__builtins__"} == set(rony.core.__all__)


def test_public_names_rule() -> None:
    # The rule itself: what it counts and what it leaves out, on a made-up module.
    mod = types.ModuleType("rony.fake_for_test")
    exec(
        "from __future__ import annotations\n"
        "import enum\n"
        "from typing import Any, TypeVar\n"
        "from rony.core import C_Ping, envelope\n"
        "T = TypeVar('T')\n"
        "LIMIT = 5\n"
        "_hidden = 1\n"
        "def helper() -> Any: ...\n"
        "class Thing: ...\n",
        vars(mod),
    )
    assert public_names(mod) == {"LIMIT", "helper", "Thing"}
