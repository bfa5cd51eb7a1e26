"""Rony's code generator: ``protoc-gen-rony``, ``rony gen`` and ``rony new``.

For every message of a .proto file the generated ``<proto>_rony.py`` holds its constructor id
(CRC-64/ISO of the bare name, as Go Rony) registered in ``rony.core.registry``; for every
service, the method ids, an abstract base class with one typed ``async`` method per RPC,
``register_<service>(app, impl)`` (handlers, ``rony_rest`` routes, ``rony_internal``), async
and blocking client stubs, and per method a typed node-to-node call
``tunnel_<service>_<method>(caller, replica_set, req)`` (Go Rony's ``TunnelRequest...``).
See ``plugin`` (the protoc plugin), ``generate`` (``rony gen``) and ``new_project``
(``rony new``).

This package imports only protobuf, grpc_tools and rony.core (relative imports inside), so the
plugin process can load it without the rest of rony.server.
"""

from ._driver import PROTOC_TIMEOUT, RONY_PROTO_DIR, GenResult, check, discover, generate
from ._model import GenerationError
from ._skeleton import ProjectExistsError, new_project
from ._version import GENERATOR_VERSION

__all__ = [
    "GENERATOR_VERSION",
    "PROTOC_TIMEOUT",
    "RONY_PROTO_DIR",
    "GenResult",
    "GenerationError",
    "ProjectExistsError",
    "check",
    "discover",
    "generate",
    "new_project",
]
