"""The addresses a node hands out (GetNodes, redirects, gossip meta), never a wildcard.

A node bound to ``0.0.0.0`` or ``::`` listens on every interface, but ``0.0.0.0:8080`` is no
address a client can dial: Go Rony's own client dials the first address GetNodes gives and then
times out on every request. So a wildcard bind advertises the host's non-loopback interface
addresses (as Go Rony's gateway and tunnel do), or loopback when there is no other.
"""

from __future__ import annotations

import ipaddress
import socket

import psutil

__all__ = ["advertised_hosts", "hostport", "is_wildcard"]

_WILDCARDS = ("", "0.0.0.0", "::")


def is_wildcard(host: str) -> bool:
    return host in _WILDCARDS


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def interface_addresses(*, ipv6: bool) -> list[str]:
    """Non-loopback IPv4 addresses of this host (and global IPv6 ones when ``ipv6``)."""
    v4: list[str] = []
    v6: list[str] = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET:
                ip = ipaddress.ip_address(a.address)
                if not ip.is_loopback and not ip.is_unspecified:
                    v4.append(str(ip))
            elif ipv6 and a.family == socket.AF_INET6:
                ip6 = ipaddress.ip_address(a.address.split("%", 1)[0])
                if not (ip6.is_loopback or ip6.is_link_local or ip6.is_unspecified):
                    v6.append(str(ip6))
    return list(dict.fromkeys(v4 + v6))


def advertised_hosts(bind_host: str, advertise: str | None = None) -> list[str]:
    """The hosts to advertise for a socket bound to ``bind_host``: ``advertise`` when given,
    the bind host itself when it is one address, the interface addresses for a wildcard."""
    if advertise:
        return [advertise]
    if not is_wildcard(bind_host):
        return [bind_host]
    found = interface_addresses(ipv6=bind_host == "::")
    if found:
        return found
    return ["::1"] if bind_host == "::" else ["127.0.0.1"]
