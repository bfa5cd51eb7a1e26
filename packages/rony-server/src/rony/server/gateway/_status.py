"""The status page: ``GET status_path`` (HTML) and ``GET status_path + ".json"`` on the gateway.

Theory of operation
-------------------
Nothing here runs per request of the service. A GET of the page reads what the node already
keeps: its settings, the gateway's connection counts, the dispatcher's request totals
(``rony.server._metrics``), the gossip table (``Cluster.state()``: dead and left entries too)
and the tunnel's open links (``Tunnel.links()``). Request *rates* come from a small ring of
(time, requests, errors) samples taken when the page is read, at most one per
``SAMPLE_EVERY`` seconds: a rate is the change since the newest sample at least
``RATE_WINDOW`` old (or the oldest one kept), and the JSON says over how many seconds.

Who may read it: the page names every member's gossip, gateway and tunnel addresses, so it is
served only to clients whose address (``X-Forwarded-For`` when the peer is one of
``trusted_proxies``) is in ``status_networks`` (default: loopback and private networks);
others get 403. It sends no CORS headers, so a web page from elsewhere that an operator
happens to open cannot read it through their browser. Every value in the HTML is escaped
(server ids come from operators, member metadata from other nodes), and the page's
Content-Security-Policy allows no script at all and only its own inline style, so an escape
missed would still run nothing.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import html
import ipaddress
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rony.server._addrs import hostport
from rony.server._settings import status_json_path
from rony.server.pb.imsg_pb2 import EdgeNode

if TYPE_CHECKING:
    from rony.server.cluster._cluster import Cluster
    from rony.server.gateway._gateway import Gateway

__all__ = ["RATE_WINDOW", "REFRESH_SECONDS", "SAMPLE_EVERY", "StatusPage", "render_html"]

RATE_WINDOW = 60.0
"""Seconds the request rates are measured over (once the node has run that long)."""
SAMPLE_EVERY = 1.0
"""At most one rate sample is kept per this many seconds, so the ring stays small however
often the page is read (RATE_WINDOW / SAMPLE_EVERY + 2 samples at most)."""
REFRESH_SECONDS = 5
"""The HTML page reloads itself this often (a meta refresh: no script)."""

_STATES = ("alive", "suspect", "dead", "left")

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#f6f7f9}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.sub{color:#5b6472;margin-bottom:1em}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002;min-width:24em}
th,td{padding:.3em .8em;text-align:left;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef0f3;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.st{display:inline-block;padding:0 .5em;border-radius:.7em;font-size:.9em;font-weight:600}
.st-alive{background:#d5f5dd;color:#11652b}.st-suspect{background:#fff0c2;color:#7a5800}
.st-dead{background:#fbd9d9;color:#8c1c1c}.st-left{background:#e3e6ea;color:#4a5260}
.st-other{background:#e3e6ea}.me{font-weight:600}.none{color:#5b6472}
.row{display:flex;flex-wrap:wrap;gap:0 2.5em}
"""
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
# No script, no fetch, no frame; only the style block above (by its hash).
_CSP = f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; frame-ancestors 'none'"
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def allowed(ip_text: str, networks: Networks) -> bool:
    """Whether a client's IP (text) is in ``networks`` (also read by /metrics)."""
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        return False  # (a Unix socket peer or garbage: not a network we were told to trust)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


class _Rates:
    """Requests and errors per second, from samples taken when the page is read."""

    def __init__(self, now: float) -> None:
        size = int(RATE_WINDOW / SAMPLE_EVERY) + 2
        self._ring: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=size)
        self._ring.append((now, 0, 0))  # the counts start at 0 with the node

    def read(self, now: float, requests: int, errors: int) -> tuple[float, float, float]:
        """(requests/s, errors/s, seconds measured over) up to ``now``; keeps a sample."""
        ring = self._ring
        while len(ring) > 1 and now - ring[1][0] >= RATE_WINDOW:
            ring.popleft()  # the next one covers the whole window already
        t0, r0, e0 = ring[0]
        span = now - t0
        if now - ring[-1][0] >= SAMPLE_EVERY:
            ring.append((now, requests, errors))
        if span <= 0:
            return 0.0, 0.0, 0.0
        return (requests - r0) / span, (errors - e0) / span, span


class StatusPage:
    """The status page of one gateway (and the Edge behind it, when there is one)."""

    def __init__(self, gateway: Gateway, status_path: str) -> None:
        self._gateway = gateway
        self.paths = frozenset((status_path, status_json_path(status_path)))
        self._json_path = status_json_path(status_path)
        # Relative to the page, so it holds behind a proxy that mounts the node elsewhere.
        self._json_href = self._json_path.rsplit("/", 1)[-1]
        self._networks: Networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in gateway.settings.status_networks
        )
        self._started = time.monotonic()
        self._rates = _Rates(self._started)

    def respond(self, request: web.BaseRequest) -> web.Response:
        client = self._gateway.request_ip(request)
        if not allowed(client, self._networks):
            return web.Response(
                status=403,
                text=f"the status page is served to status_networks only, not to {client}\n",
                headers=_HEADERS,
            )
        snap = self.snapshot()
        if request.path == self._json_path:
            body = json.dumps(snap, indent=1, sort_keys=True)  # ASCII: escapes all else
            return web.Response(text=body, content_type="application/json", headers=_HEADERS)
        return web.Response(
            text=render_html(snap, self._json_href),
            content_type="text/html",
            headers={**_HEADERS, "Content-Security-Policy": _CSP},
        )

    # --- reading the node ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as plain JSON values."""
        from rony.server import __version__
        from rony.server._edge import Edge  # (imports the gateway: not at module level)

        gateway = self._gateway
        s = gateway.settings
        services = gateway.dispatcher.services
        edge = services if isinstance(services, Edge) else None
        now = time.monotonic()
        snap: dict[str, Any] = {
            "server_id": s.server_id,
            "replica_set": s.replica_set,
            "version": __version__,
            "state": "stopping" if gateway.stopping else "running",
            "uptime_seconds": round(now - self._started, 3),
            "time": round(time.time(), 3),
            "gateway": {
                "bound": hostport(*gateway.address),
                "advertised": edge.advertised_addrs if edge is not None else [],
            },
            "connections": self._connections(),
            "requests": self._requests(now),
            "cluster": None,
            "tunnel": None,
        }
        if edge is not None and edge.cluster is not None:
            snap["cluster"] = _cluster(edge.cluster, s.server_id)
        if edge is not None and edge.tunnel is not None:
            snap["tunnel"] = {
                "addrs": edge.tunnel_addrs,
                "links": [
                    {"peer": link.peer, "address": link.address, "outgoing": link.outgoing}
                    for link in sorted(
                        edge.tunnel.links(), key=lambda k: (k.peer, not k.outgoing, k.address)
                    )
                ],
            }
        return snap

    def _connections(self) -> dict[str, int]:
        gateway = self._gateway
        open_now = gateway.open_connections
        ws = len(gateway.ws_conns)
        return {
            "open": open_now,
            "websocket": ws,
            "http": max(0, open_now - ws),
            "accepted_total": gateway.counters.conns_total,
        }

    def _requests(self, now: float) -> dict[str, Any] | None:
        metrics = self._gateway.dispatcher.metrics
        if metrics is None:
            return None  # counting is off (EdgeSettings.metrics)
        requests, errors = metrics.totals()
        per_s, errors_per_s, span = self._rates.read(now, requests, errors)
        return {
            "total": requests,
            "errors": errors,
            "per_second": round(per_s, 3),
            "errors_per_second": round(errors_per_s, 3),
            "rate_seconds": round(span, 3),
        }


def _cluster(cluster: Cluster, me: str) -> dict[str, Any]:
    members = []
    for info in cluster.state():
        member: dict[str, Any] = {
            "server_id": info.name,
            "state": info.state_name,
            "gossip_addr": info.addr,
            "incarnation": info.incarnation,
            "self": info.name == me,
            "replica_set": None,
            "gateway_addrs": [],
            "tunnel_addrs": [],
        }
        try:  # another node's meta: hostile or foreign bytes are shown as no addresses
            node = EdgeNode.FromString(info.meta)
            if node.ServerID.decode() == info.name:
                member["replica_set"] = node.ReplicaSet
                member["gateway_addrs"] = [str(a) for a in node.GatewayAddr]
                member["tunnel_addrs"] = [str(a) for a in node.TunnelAddr]
        except Exception:
            pass
        members.append(member)
    order = {state: i for i, state in enumerate(_STATES)}
    members.sort(key=lambda m: (not m["self"], order.get(m["state"], 9), m["server_id"]))
    counts = dict.fromkeys(_STATES, 0)
    for m in members:
        counts[m["state"]] = counts.get(m["state"], 0) + 1
    return {"gossip_addr": cluster.advertised, "counts": counts, "members": members}


# --- HTML ---------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _addrs(addrs: list[str]) -> str:
    return "<br>".join(_e(a) for a in addrs) if addrs else '<span class="none">none</span>'


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {s}s"
    return f"{minutes}m {s}s" if minutes else f"{s}s"


def _table(head: tuple[str, ...], rows: list[str]) -> str:
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _kv(pairs: list[tuple[str, str]]) -> str:
    """A two-column table; the values are HTML already (escaped by the caller)."""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f"<table><tbody>{rows}</tbody></table>"


_STATE_CSS = {s: s for s in _STATES} | {"running": "alive", "stopping": "suspect"}


def _state(state: str) -> str:
    css = _STATE_CSS.get(state, "other")  # (a class name from this list only, never a value)
    return f'<span class="st st-{css}">{_e(state)}</span>'


def render_html(snap: dict[str, Any], json_href: str = "status.json") -> str:
    """The page of a ``StatusPage.snapshot()``; every value escaped. ``json_href``: the link
    to the JSON twin, relative to the page."""
    sid = _e(snap["server_id"])
    conns = snap["connections"]
    node = _kv(
        [
            ("server id", sid),
            ("replica set", _e(snap["replica_set"])),
            ("state", _state(snap["state"])),
            ("version", _e(snap["version"])),
            ("uptime", _e(_duration(snap["uptime_seconds"]))),
            ("gateway (bound)", _e(snap["gateway"]["bound"])),
            ("gateway (advertised)", _addrs(snap["gateway"]["advertised"])),
            (
                "connections open",
                f"{_e(conns['open'])} ({_e(conns['websocket'])} WebSocket, "
                f"{_e(conns['http'])} HTTP)",
            ),
            ("connections accepted", _e(conns["accepted_total"])),
        ]
    )
    req = snap["requests"]
    if req is None:
        requests = '<p class="none">not counted (metrics are off)</p>'
    else:
        requests = _kv(
            [
                ("requests", _e(req["total"])),
                ("errors", _e(req["errors"])),
                ("requests / s", f"{req['per_second']:.1f}"),
                ("errors / s", f"{req['errors_per_second']:.1f}"),
                ("measured over", _e(_duration(req["rate_seconds"]))),
            ]
        )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>rony {sid}: status</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>rony node {sid}</h1>",
        f'<div class="sub">replica set {_e(snap["replica_set"])} · rony-server '
        f"{_e(snap['version'])} · reloads every {REFRESH_SECONDS} s · "
        f'<a href="{_e(json_href)}">JSON</a></div>',
        f'<div class="row"><div><h2>Node</h2>{node}</div>',
        f"<div><h2>Requests</h2>{requests}</div></div>",
        _cluster_html(snap["cluster"]),
        _tunnel_html(snap["tunnel"]),
        "</body></html>",
    ]
    return "\n".join(parts)


def _cluster_html(cluster: dict[str, Any] | None) -> str:
    if cluster is None:
        return '<h2>Cluster</h2><p class="none">no cluster (this node runs alone)</p>'
    counts = ", ".join(f"{_e(n)} {_e(state)}" for state, n in cluster["counts"].items() if n)
    rows = []
    for m in cluster["members"]:
        me = ' class="me"' if m["self"] else ""
        rs = m["replica_set"]
        rows.append(
            f'<tr{me} data-member="{_e(m["server_id"])}" data-state="{_e(m["state"])}">'
            f"<td>{_e(m['server_id'])}{' (this node)' if m['self'] else ''}</td>"
            f"<td>{_state(m['state'])}</td>"
            f'<td class="n">{_e(rs) if rs is not None else "?"}</td>'
            f"<td>{_addrs(m['gateway_addrs'])}</td><td>{_addrs(m['tunnel_addrs'])}</td>"
            f'<td>{_e(m["gossip_addr"])}</td><td class="n">{_e(m["incarnation"])}</td></tr>'
        )
    head = ("server id", "state", "replica set", "gateway", "tunnel", "gossip", "incarnation")
    return (
        f"<h2>Cluster members ({counts})</h2>"
        f'<p class="sub">gossip at {_e(cluster["gossip_addr"])}</p>' + _table(head, rows)
    )


def _tunnel_html(tunnel: dict[str, Any] | None) -> str:
    if tunnel is None:
        return '<h2>Tunnel</h2><p class="none">no tunnel</p>'
    rows = [
        f"<tr><td>{_e(k['peer'])}</td><td>{'out' if k['outgoing'] else 'in'}</td>"
        f"<td>{_e(k['address'])}</td></tr>"
        for k in tunnel["links"]
    ]
    body = (
        _table(("peer", "direction", "address"), rows)
        if rows
        else '<p class="none">no links open (links are made on the first call)</p>'
    )
    return f'<h2>Tunnel peers</h2><p class="sub">tunnel at {_addrs(tunnel["addrs"])}</p>' + body
