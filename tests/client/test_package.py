"""rony.client stands alone: it never imports rony.server, and its public names are exact."""

from __future__ import annotations

import subprocess
import sys

import rony.client


def test_client_imports_without_the_server() -> None:
    code = (
        "import sys, rony.client, rony.client.errors\n"
        "from rony.client import AsyncClient, Client\n"
        "bad = sorted(m for m in sys.modules if m.startswith('rony.server'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_public_names() -> None:
    assert sorted(rony.client.__all__) == sorted(
        [
            "AsyncClient",
            "AsyncConnection",
            "AsyncPushStream",
            "AsyncTransport",
            "Client",
            "ClientSettings",
            "ConnectOptions",
            "MockReply",
            "MockRequest",
            "MockTransport",
            "PushStream",
            "SyncConnection",
            "SyncTransport",
            "errors",
            "reply_message",
        ]
    )
    for name in rony.client.__all__:
        assert getattr(rony.client, name) is not None
    errs = rony.client.errors
    for name in errs.__all__:
        assert issubclass(getattr(errs, name), errs.ClientError)
    assert issubclass(errs.RequestTimeout, TimeoutError)
