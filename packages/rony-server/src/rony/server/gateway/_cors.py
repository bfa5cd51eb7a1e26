"""CORS headers and the client IP behind trusted proxies. Pure functions over header mappings.

CORS (Go Rony's ``cors.go`` with its defects fixed): ``origins == ("*",)`` reflects the request's
``Origin`` (Go Rony's behaviour, the default); a list allows only its members; ``()`` sends no
CORS headers. Preflight (``OPTIONS``) is answered 204 with ``Access-Control-Allow-Methods``
(Go Rony wrote the list under ``Access-Control-Request-Method`` and left out PUT).

Client IP: ``X-Forwarded-For`` is believed only when the TCP peer is a trusted proxy; it is read
right to left, skipping trusted proxies, and the first other address is the client (Go Rony
used the whole raw header from anyone, and turned IPv6 peers into ``"<nil>"``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

__all__ = [
    "ALLOW_HEADERS",
    "ALLOW_METHODS",
    "Networks",
    "client_ip",
    "cors_headers",
    "parse_networks",
    "preflight_headers",
]

ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Origin, Accept, Content-Type, X-Requested-With, X-Auth-Tokens, Authorization"

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def parse_networks(items: Sequence[str]) -> Networks:
    return tuple(ipaddress.ip_network(i, strict=False) for i in items)


def _allowed_origin(origin: str | None, origins: Sequence[str]) -> str | None:
    if not origin or not origins:
        return None
    if "*" in origins or origin in origins:
        return origin
    return None


def cors_headers(origin: str | None, origins: Sequence[str]) -> dict[str, str]:
    """Headers for any response to a request with ``Origin``."""
    if not origins:
        return {}
    allowed = _allowed_origin(origin, origins)
    out = {"Vary": "Origin"}
    if allowed is not None:
        out["Access-Control-Allow-Origin"] = allowed
    return out


def preflight_headers(headers: Mapping[str, str], origins: Sequence[str]) -> dict[str, str]:
    """Headers of the 204 answer to ``OPTIONS``."""
    out = cors_headers(headers.get("Origin"), origins)
    if "Access-Control-Allow-Origin" in out:
        out["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        out["Access-Control-Allow-Methods"] = ALLOW_METHODS
        out["Access-Control-Allow-Headers"] = (
            headers.get("Access-Control-Request-Headers") or ALLOW_HEADERS
        )
        out["Access-Control-Max-Age"] = "600"
    return out


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("["):  # "[::1]:443"
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # "1.2.3.4:80"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Networks) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in trusted)


def client_ip(peer: str, headers: Mapping[str, str], trusted: Networks) -> str:
    """The client's address: the peer, or from ``X-Forwarded-For`` if the peer is trusted."""
    if not trusted:
        return peer
    peer_ip = _ip(peer)
    if peer_ip is None or not _trusted(peer_ip, trusted):
        return peer
    xff = headers.get("X-Forwarded-For")
    if not xff:
        real = _ip(headers.get("X-Real-Ip", ""))
        return str(real) if real is not None else peer
    candidate = peer
    for hop in reversed(xff.split(",")):
        ip = _ip(hop)
        if ip is None:
            break  # garbage: trust nothing further left than the last good hop
        candidate = str(ip)
        if not _trusted(ip, trusted):
            return candidate
    return candidate
