"""protoc-gen-rony: the protoc plugin that writes ``<proto>_rony.py`` beside ``<proto>_pb2.py``
(and ``<proto>_repo.py`` for ``rony_model`` messages, ``<proto>_cli.py`` for ``rony_cli``).

    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \\
        --plugin=protoc-gen-rony=$(which protoc-gen-rony) --rony_out=. my/service.proto

(``rony gen`` does all of this, with Rony's own .proto files on the include path.) protoc sends a
``CodeGeneratorRequest`` on stdin and reads a ``CodeGeneratorResponse`` from stdout; problems
with the input go into the response's ``error``, which protoc prints and turns into a failure.
"""

from __future__ import annotations

import sys

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

# Imported before the request is parsed so the rony_* option extensions are known to the parser.
from rony.core.pb import options_pb2

from ._cli import cli_output, render_cli
from ._model import GenerationError, build_model
from ._render import render
from ._repo import render_repo, repo_output

__all__ = ["generate", "main"]

_FEATURES = (
    plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    | plugin_pb2.CodeGeneratorResponse.FEATURE_SUPPORTS_EDITIONS
)
assert options_pb2.rony_rest.number == options_pb2.RONY_REST_FIELD_NUMBER


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """One ``_rony.py`` per file to generate, or a response carrying the error text."""
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=_FEATURES,
        # We read names, types and options only, so any edition protoc can parse is fine.
        minimum_edition=descriptor_pb2.EDITION_PROTO2,
        maximum_edition=descriptor_pb2.EDITION_2024,
    )
    if request.parameter.strip():
        response.error = (
            f"protoc-gen-rony takes no options (got {request.parameter!r}); "
            "pass nothing after --rony_out=DIR"
        )
        return response
    try:
        models = build_model(request)
    except GenerationError as exc:
        response.error = str(exc)
        return response
    for model in models:
        response.file.add(name=model.output, content=render(model))
        repo = render_repo(model)  # <proto>_repo.py, for files with rony_model messages
        if repo is not None:
            response.file.add(name=repo_output(model.output), content=repo)
        cli = render_cli(model)  # <proto>_cli.py, for files with rony_cli services
        if cli is not None:
            response.file.add(name=cli_output(model.output), content=cli)
    return response


def main() -> int:
    """Entry point of the ``protoc-gen-rony`` executable."""
    data = sys.stdin.buffer.read()
    request = plugin_pb2.CodeGeneratorRequest.FromString(data)
    sys.stdout.buffer.write(generate(request).SerializeToString())
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
