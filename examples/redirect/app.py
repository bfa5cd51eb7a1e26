"""Two ways to answer a request that belongs to another replica set (Go Rony's
example/redirect).

``Sample.InfoWithClientRedirect`` answers a request for this node's replica set and sends
any other back to the client as a ``Redirect`` naming the wanted replica set's nodes (over
REST a 307 whose ``Location`` is one of their gateways); Rony's clients follow it.
``Sample.InfoWithServerRedirect`` forwards such a request itself, through the tunnel, to a node
of the wanted replica set and relays its answer: the client never learns it moved.

Run a cluster of three (replica sets 1, 2, 2) with certificates from ``rony ca``
(``rony ca init --dir pki``, then ``rony ca issue --dir pki a`` and so for b and c)::

    rony serve examples.redirect.app:app --server-id a --replica-set 1 \
        --gateway 127.0.0.1:8081 --gossip 127.0.0.1:7001 --tunnel 127.0.0.1:7101 \
        --tls-ca pki/ca.pem --tls-cert pki/a.pem --tls-key pki/a.key --data-dir ./_a

(b and c the same with ``--replica-set 2 --join 127.0.0.1:7001``), then
``curl -L http://127.0.0.1:8081/info/client-redirect/2/hello`` or ``.../server-redirect/2/hello``.
"""

from __future__ import annotations

from rony.core import Kind, RequestCtx
from rony.core.errors import UnavailableError
from rony.server import App

from .sample_pb2 import InfoRequest, InfoResponse
from .sample_rony import SampleBase, register_sample, tunnel_sample_info_with_server_redirect


def _here(ctx: RequestCtx, req: InfoRequest) -> bool:
    return req.ReplicaSet == ctx.services.replica_set


class Sample(SampleBase):
    async def info_with_client_redirect(self, ctx: RequestCtx, req: InfoRequest) -> InfoResponse:
        if _here(ctx, req):
            return InfoResponse(ServerID=ctx.server_id, RandomText=req.RandomText)
        ctx.push_redirect_request(req.ReplicaSet)
        # The redirect is the reply and stops the chain; what is returned here is not sent.
        return InfoResponse()

    async def info_with_server_redirect(self, ctx: RequestCtx, req: InfoRequest) -> InfoResponse:
        if _here(ctx, req):
            return InfoResponse(ServerID=ctx.server_id, RandomText=req.RandomText)
        if ctx.kind is Kind.TUNNEL:
            # Forwarded here, yet not ours: the membership moved under the caller. One hop
            # only, so two nodes with stale views cannot bounce a request between them.
            raise UnavailableError(
                "REPLICA_SET", f"node {ctx.server_id} is not in replica set {req.ReplicaSet}"
            )
        return await tunnel_sample_info_with_server_redirect(ctx, req.ReplicaSet, req)


app = App("redirect")
register_sample(app, Sample())
