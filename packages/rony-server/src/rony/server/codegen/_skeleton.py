"""``rony new NAME``: a project that ``rony gen``, ``rony serve`` and pytest run green at once.

    NAME/
      pyproject.toml           depends on rony-server and rony-client; pytest settings
      README.md                the three commands
      .gitignore
      PKG/__init__.py
      PKG/service.proto        one service, one RPC (with a REST route)
      PKG/service.py           its implementation and ``app``
      tests/test_service.py    in-process, over a socket with the generated stub, and REST

(Go Rony's ``rony new`` rendered a project that did not compile; inventory §14 weakness 18. A
test here generates, serves and tests a fresh project end to end.)
"""

from __future__ import annotations

import keyword
import os
import re
import sys
from pathlib import Path

from ._names import snake_case

__all__ = ["ProjectExistsError", "new_project", "project_names"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# Package names the project cannot take: its own import of them would find a module that the
# interpreter, pytest or rony has already loaded (``http``, ``json``, ``abc``...), so the
# skeleton would not import.
_TAKEN = frozenset(
    {"rony", "test", "tests", "google", "grpc", "grpc_tools", "aiohttp", "pytest"}
    | {"pytest_asyncio", "lmdb", "websockets", "yarl", "multidict"}
    | sys.stdlib_module_names
)
# Names the skeleton's .proto defines itself, which its service must not be called.
_SKELETON_MESSAGES = frozenset({"EchoRequest", "EchoResponse"})


class ProjectExistsError(FileExistsError):
    """The target folder exists and is not empty."""


def project_names(name: str) -> tuple[str, str]:
    """``my-app`` -> (package ``my_app``, service ``MyApp``); ValueError for unusable names."""
    if not _NAME.match(name):
        raise ValueError(
            f"project name {name!r}: use letters, digits, '-' and '_', starting with a letter"
        )
    package = snake_case(name.replace("-", "_")).rstrip("_")
    package = re.sub(r"_+", "_", package)
    if keyword.iskeyword(package) or package in _TAKEN or not package.isidentifier():
        raise ValueError(f"project name {name!r}: package name {package!r} is not usable")
    service = "".join(part[:1].upper() + part[1:] for part in package.split("_") if part)
    if service in _SKELETON_MESSAGES:
        raise ValueError(
            f"project name {name!r}: its service {service!r} would clash with the message of "
            "that name in the skeleton's .proto"
        )
    return package, service


def _files(name: str, package: str, service: str) -> dict[str, str]:
    snake = snake_case(service)
    return {
        "pyproject.toml": f"""\
[build-system]
requires = ["hatchling>=1.27"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "0.1.0"
description = "A Rony service."
requires-python = ">=3.11"
dependencies = [
  "rony-server>=0.1.0",
  "rony-client>=0.1.0",
]

[project.optional-dependencies]
# mypy --strict needs types-protobuf for the generated *_pb2.pyi.
test = ["pytest>=8", "pytest-asyncio>=1.2", "mypy>=1.15", "types-protobuf>=6.30"]

[tool.hatch.build.targets.wheel]
packages = ["{package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"

[tool.mypy]
strict = true
exclude = ['_pb2\\.py$']
""",
        "README.md": f"""\
# {name}

A [Rony](https://github.com/ronaksoft/rony) service in Python.

In a virtual environment that has Rony (Rony for Python is installed from its repository, see
its README: `pip install ./packages/rony-core ./packages/rony-store ./packages/rony-server
./packages/rony-client` in a clone), from this folder:

```sh
python -m pip install -e ".[test]"  # this project, pytest and mypy
rony gen               # {package}/service.proto -> service_pb2.py(i), service_rony.py
python -m pytest       # in-process, over a socket, and through REST
mypy .                 # --strict (pyproject.toml)
rony serve {package}.service:app --gateway 127.0.0.1:8080
curl 'http://127.0.0.1:8080/echo/7?text=hello'
```

`python -m pytest` rather than `pytest`: it is the environment's pytest, the one that sees Rony.

Edit `{package}/service.proto` (messages, RPCs, `rony_rest` routes), run `rony gen` again, and
implement the new methods in `{package}/service.py`: `{service}Base` lists them, typed.
""",
        ".gitignore": "__pycache__/\n*.egg-info/\n_data/\n.pytest_cache/\n",
        f"{package}/__init__.py": f'"""The {name} service."""\n',
        f"{package}/service.proto": f"""\
// The {name} service. After editing, run `rony gen` to regenerate service_pb2.py,
// service_pb2.pyi and service_rony.py.
syntax = "proto3";

package {package};

import "rony/core/pb/options.proto";

// {service} answers echo requests.
service {service} {{
  // Echo returns the request's text and id; an empty text is an error.
  rpc Echo (EchoRequest) returns (EchoResponse) {{
    option (rony_rest) = {{
      method: "get"
      path: "/echo/:id"
      bind_query_param: "text=text"
      json_encode: true
    }};
  }}
}}

// EchoRequest is what a client sends.
message EchoRequest {{
  int64 id = 1;
  string text = 2;
}}

// EchoResponse is the reply.
message EchoResponse {{
  int64 id = 1;
  string text = 2;
}}
""",
        f"{package}/service.py": f'''\
"""The {service} service of {package}/service.proto, and the App serving it.

    rony serve {package}.service:app --gateway 127.0.0.1:8080
"""

from __future__ import annotations

from rony.core import RequestCtx
from rony.core.errors import InvalidError
from rony.server import App

from {package}.service_pb2 import EchoRequest, EchoResponse
from {package}.service_rony import {service}Base, register_{snake}


class {service}({service}Base):
    async def echo(self, ctx: RequestCtx, req: EchoRequest) -> EchoResponse:
        if not req.text:
            raise InvalidError("TEXT", "text must not be empty")
        return EchoResponse(id=req.id, text=req.text)


app = App("{name}")
register_{snake}(app, {service}())
''',
        "tests/__init__.py": "",
        "tests/test_service.py": f'''\
"""Tests of the {service} service: in-process, over a real socket with the generated stub,
and through its REST route."""

from __future__ import annotations

import json

import pytest
from rony.client import AsyncClient
from rony.core.errors import InvalidError
from rony.server.testing import TestClient, serve

from {package}.service import app
from {package}.service_pb2 import EchoRequest, EchoResponse
from {package}.service_rony import C_{service}Echo, {service}Client


async def test_echo_in_process() -> None:
    async with TestClient(app) as client:
        res = await client.call(C_{service}Echo, EchoRequest(id=1, text="hi"), EchoResponse)
    assert (res.id, res.text) == (1, "hi")


async def test_echo_over_websocket() -> None:
    async with serve(app) as edge, AsyncClient(edge.url) as client:
        stub = {service}Client(client)
        res = await stub.echo(EchoRequest(id=7, text="hello"))
        assert (res.id, res.text) == (7, "hello")
        with pytest.raises(InvalidError):
            await stub.echo(EchoRequest(id=8))


async def test_echo_over_rest() -> None:
    async with TestClient(app) as client:
        res = await client.rest("GET", "/echo/5?text=hey")
    assert res.status == 200
    assert json.loads(res.body) == {{"id": "5", "text": "hey"}}
''',
    }


def new_project(name: str, parent: str | os.PathLike[str] = ".") -> Path:
    """Write the skeleton of project ``name`` into ``parent/name``; return that folder."""
    package, service = project_names(name)
    root = Path(parent) / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ProjectExistsError(f"{root} already exists and is not empty")
    for rel, text in _files(name, package, service).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
