"""examples/redirect end to end: three real ``rony serve`` processes (replica sets 1, 2, 2) with
gossip and tunnel over mutual TLS; both redirect kinds over WebSocket, HTTP and REST."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from examples.redirect.sample_pb2 import InfoRequest
from examples.redirect.sample_rony import SampleSyncClient
from rony.client import Client
from tests.cluster._procs import ProcCluster, wait_for

pytestmark = pytest.mark.slow

APP = "examples.redirect.app:app"


class _NoFollow(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_both_redirects_over_ws_http_and_rest(tmp_path: Path) -> None:
    procs = ProcCluster(tmp_path, ["a", "b", "c"])
    try:
        a = procs.start("a", app=APP, tunnel=True, replica_set=1).wait_ready()
        procs.start("b", seed=a, app=APP, tunnel=True, replica_set=2).wait_ready()
        procs.start("c", seed=a, app=APP, tunnel=True, replica_set=2).wait_ready()
        wait_for(lambda: procs.all_see({"a", "b", "c"}), 30, "the cluster to form")
        for transport in ("ws", "http"):
            with Client(a.url, transport=transport) as client:  # type: ignore[arg-type]
                sample = SampleSyncClient(client)
                req = InfoRequest(ReplicaSet=2, RandomText=transport)
                for call in (sample.info_with_client_redirect, sample.info_with_server_redirect):
                    reply = call(req)
                    assert reply.ServerID in ("b", "c"), (transport, call)
                    assert reply.RandomText == transport
                mine = sample.info_with_server_redirect(InfoRequest(ReplicaSet=1))
                assert mine.ServerID == "a"
        # REST: the client redirect is a 307 to a gateway of replica set 2
        opener = urllib.request.build_opener(_NoFollow)
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(f"{a.url}/info/client-redirect/2/rest", timeout=10)
        assert info.value.code == 307
        location = info.value.headers["Location"]
        info.value.close()  # the error holds the response and its socket
        gateways = {procs.nodes[n].url for n in ("b", "c")}
        assert any(location == f"{g}/info/client-redirect/2/rest" for g in gateways), location
        with urllib.request.urlopen(location, timeout=10) as r:
            body = json.loads(r.read())
        assert body["ServerID"] in ("b", "c")
        # REST: the server redirect answers from replica set 2 without the client moving
        with urllib.request.urlopen(f"{a.url}/info/server-redirect/2/rest", timeout=10) as r:
            body = json.loads(r.read())
        assert body["ServerID"] in ("b", "c")
        assert body["RandomText"] == "rest"
    finally:
        procs.close()
