"""rony.server.tunnel: node-to-node RPC over QUIC with mutual TLS (aioquic).

A ``Tunnel`` serves a handler to the other nodes of the cluster and calls theirs. Each side
proves itself with its node certificate, checked against the cluster CA; calls to one peer
share one long-lived QUIC connection, multiplexed by call id. See ``_quic`` for how.

    tunnel = Tunnel(tls_files, handler)          # handler(TunnelMessage, Peer) -> TunnelMessage
    host, port = await tunnel.start("0.0.0.0", 7080)
    reply = await tunnel.call("10.0.0.2:7080", request, timeout=2.0)
    await tunnel.stop()
"""

from rony.server.tunnel._frames import FrameTooLargeError
from rony.server.tunnel._quic import ALPN, Handler, Peer, TunnelSettings
from rony.server.tunnel._tunnel import Tunnel, TunnelLink

__all__ = [
    "ALPN",
    "FrameTooLargeError",
    "Handler",
    "Peer",
    "Tunnel",
    "TunnelLink",
    "TunnelSettings",
]
