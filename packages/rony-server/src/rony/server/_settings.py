"""EdgeSettings: every knob of a node, each named, documented and with a default.

Settings come from (highest first) keyword overrides / CLI flags, ``RONY_*`` environment
variables, a TOML file, and the defaults below (see ``load_settings``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import os
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rony.core import Limits
from rony.server._tracing import TRACE_SAMPLERS
from rony.server.cluster._swim import GossipConfig

__all__ = ["EdgeSettings", "load_settings", "parse_hostport", "status_json_path"]

log = logging.getLogger("rony.server")


def _server_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(slots=True)
class EdgeSettings:
    """Settings of one Edge node.

    ======================  ============  ===================================================
    setting                 default       meaning
    ======================  ============  ===================================================
    server_id               random hex    this node's id (GetNodes, redirects, logs)
    replica_set             0             the replica set this node belongs to
    data_dir                ``./_data``   folder of the embedded store
    gateway_host            127.0.0.1     address the gateway binds (0.0.0.0 / :: = all)
    gateway_port            0             port the gateway binds (0 = any free port)
    advertised_addrs        ()            ``host:port`` list given to clients (GetNodes,
                                          redirects); () = the bound address. Set it when
                                          binding 0.0.0.0
    json_enabled            True          accept Go Rony's JSON envelopes (WS text frames,
                                          HTTP ``Content-Type: application/json``)
    max_message_size        4 MiB         one WS message / HTTP body; over it: WS close
                                          1009, HTTP 413 (Go Rony had no WS limit)
    max_container_length    1024          envelopes in one MessageContainer (E01 over it)
    max_header_count        64            Header entries in one envelope (E01 over it)
    max_connections         10000         open TCP connections; over it: 503 + E09 BUSY
    idle_timeout            300 s         close a WS after this long with no read *and* no
                                          write (Go counted reads only); HTTP keep-alive
    header_timeout          10 s          time from the first byte of an HTTP request's head
                                          to its end; over it: 408 and the connection is
                                          closed (slowloris). Go Rony had none
    body_timeout            30 s          time to receive an HTTP request's body once its
                                          head is in; over it: 408 + E06 and the connection
                                          is closed (a slow POST). Go Rony had none
    max_inflight_per_conn   32            requests of one WS handled at once; when full the
                                          server stops reading that socket (back-pressure)
    handler_timeout         30 s          one request's handler chain; over it: E06 TIMEOUT
                                          (None = no limit)
    write_queue_size        1024          frames queued for one WS; a client that does not
                                          read is closed with 1008
    write_queue_bytes       64 MiB        bytes queued for one WS (text frames: characters);
                                          over it, the same close
    shutdown_grace          10 s          default grace of ``Edge.stop()``
    trusted_proxies         ()            peers (IPs or CIDRs) whose X-Forwarded-For is read
    cors_origins            ("*",)        ``*`` reflects any Origin (as Go Rony); a list
                                          allows only those; () sends no CORS headers
    health_path             ``/healthz``  GET answers 200 JSON (503 while stopping);
                                          None disables
    status_path             ``/status``   GET: the node and cluster status page (HTML);
                                          ``<path>.json`` the same as JSON. None disables
    status_networks         loopback and  client addresses (IPs or CIDRs) the status page is
                            private nets  served to; others get 403. The page names every
                                          member's internal addresses: keep it off the
                                          internet. ``0.0.0.0/0, ::/0`` = anyone
    ws_compress             False         permessage-deflate (Go Rony had none)
    ws_inline_dispatch      True          dispatch each WS frame straight from the socket
                                          read (saves ~3 µs a frame); False = through
                                          aiohttp's ``receive()``. Same behaviour either way
    gossip_host             None          address the gossip (cluster) server binds; None =
                                          no cluster (``--gossip HOST:PORT``)
    gossip_port             0             its port (0 = any free port)
    join                    ()            seeds' gossip addresses, HOST:PORT; a name with
                                          several addresses counts as several seeds
    advertise_host          None          the host other nodes and clients are given for the
                                          gateway, gossip and tunnel (containers, NAT);
                                          None = the bound host, or for a wildcard bind the
                                          host's non-loopback interface addresses
    tls_ca                  None          the cluster CA certificate (PEM) peers must chain to
    tls_cert                None          this node's certificate, signed by that CA
    tls_key                 None          this node's private key
    insecure_cluster        False         run the cluster without TLS (logged as a warning);
                                          without it a cluster needs the three tls_ files
    tunnel_host             None          address the tunnel (node-to-node QUIC, mutual TLS)
                                          binds; None = no tunnel (``--tunnel HOST:PORT``).
                                          Needs the tls_ files, even with insecure_cluster
    tunnel_port             0             its UDP port (0 = any free port)
    remote_timeout          5 s           default timeout of a call to another node
                                          (``execute_remote``); Go Rony's was a fixed 3 s
    gossip_config           LAN defaults  the protocol's knobs (``GossipConfig``: probe
                                          interval, suspicion, gossip fan-out, ...); TOML
                                          table ``[rony.gossip_config]``
    tracing                 True          OpenTelemetry spans, when an SDK TracerProvider is
                                          installed (else nothing is traced, at no cost);
                                          False = never
    trace_sampler           parentbased_  which requests get spans (OpenTelemetry's names):
                            traceidratio  ``parentbased_*`` follow the caller's sampled flag,
                                          roots by trace_ratio; ``traceidratio`` by the
                                          trace id; ``always_on``, ``always_off``
    trace_ratio             1.0           share of root requests sampled (0..1); an
                                          unsampled one costs < 2 µs, a sampled ~40 µs
    log_format              ``text``      ``rony serve``'s log lines: ``text`` or ``json``
                                          (one object per line; ``--log-format``)
    log_level               ``INFO``      ``rony serve``'s logging level (``--log-level``)
    access_log              False         one INFO line per request on
                                          ``rony.server.access`` (kind, method, outcome,
                                          duration, client address; ``--access-log``)
    metrics                 True          count requests per constructor (Prometheus, the
                                          status page's rates); False = no counting and no
                                          ``/metrics``
    metrics_path            ``/metrics``  GET: Prometheus text exposition on the gateway
                                          port; None = not on the gateway
    metrics_listen          None          ``HOST:PORT`` of a listener of its own serving
                                          ``metrics_path`` only (``--metrics HOST:PORT``)
    metrics_networks        loopback and  client addresses (IPs or CIDRs) metrics are
                            private nets  served to; others get 403
    ======================  ============  ===================================================
    """

    server_id: str = field(default_factory=_server_id)
    replica_set: int = 0
    data_dir: Path | str = "./_data"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 0
    advertised_addrs: tuple[str, ...] = ()
    json_enabled: bool = True
    max_message_size: int = 4 * 1024 * 1024
    max_container_length: int = 1024
    max_header_count: int = 64
    max_connections: int = 10_000
    idle_timeout: float = 300.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_inflight_per_conn: int = 32
    handler_timeout: float | None = 30.0
    write_queue_size: int = 1024
    write_queue_bytes: int = 64 * 1024 * 1024
    shutdown_grace: float = 10.0
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ("*",)
    health_path: str | None = "/healthz"
    status_path: str | None = "/status"
    status_networks: tuple[str, ...] = (
        "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
    )  # fmt: skip
    ws_compress: bool = False
    ws_inline_dispatch: bool = True
    gossip_host: str | None = None
    gossip_port: int = 0
    join: tuple[str, ...] = ()
    advertise_host: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_cluster: bool = False
    tunnel_host: str | None = None
    tunnel_port: int = 0
    remote_timeout: float = 5.0
    gossip_config: GossipConfig = field(default_factory=GossipConfig)
    tracing: bool = True
    trace_sampler: str = "parentbased_traceidratio"
    trace_ratio: float = 1.0
    log_format: str = "text"
    log_level: str = "INFO"
    access_log: bool = False
    metrics: bool = True
    metrics_path: str | None = "/metrics"
    metrics_listen: str | None = None
    metrics_networks: tuple[str, ...] = (
        "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
    )  # fmt: skip

    def __post_init__(self) -> None:
        self.advertised_addrs = tuple(self.advertised_addrs)
        self.trusted_proxies = tuple(self.trusted_proxies)
        self.status_networks = tuple(self.status_networks)
        self.metrics_networks = tuple(self.metrics_networks)
        self.cors_origins = tuple(self.cors_origins)
        self.join = tuple(self.join)
        positive = (
            "max_message_size",
            "max_container_length",
            "max_header_count",
            "max_connections",
            "max_inflight_per_conn",
            "write_queue_size",
            "write_queue_bytes",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"EdgeSettings.{name} must be >= 1")
        # ``not x > 0`` (rather than ``x <= 0``) also refuses NaN, which compares false to all.
        for name in ("idle_timeout", "shutdown_grace", "header_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"EdgeSettings.{name} must be > 0")
        if self.handler_timeout is not None and not self.handler_timeout > 0:
            raise ValueError("EdgeSettings.handler_timeout must be > 0 or None")
        if not 0 <= self.gateway_port <= 65535:
            raise ValueError("EdgeSettings.gateway_port must be in 0..65535")
        if self.replica_set < 0:
            raise ValueError("EdgeSettings.replica_set must be >= 0")
        if not self.server_id:
            raise ValueError("EdgeSettings.server_id must not be empty")
        if self.health_path is not None and not self.health_path.startswith("/"):
            # A request path always starts with "/": "healthz" would silently never answer.
            raise ValueError(
                f"EdgeSettings.health_path must start with '/' (or be None), "
                f"got {self.health_path!r}"
            )
        for p in self.trusted_proxies:
            ipaddress.ip_network(p, strict=False)  # raises ValueError naming the bad entry
        self._check_status_path()
        self._check_metrics()
        self._check_cluster()
        if self.trace_sampler not in TRACE_SAMPLERS:
            names = ", ".join(TRACE_SAMPLERS)
            raise ValueError(f"EdgeSettings.trace_sampler must be one of {names}")
        if not 0.0 <= self.trace_ratio <= 1.0:
            raise ValueError("EdgeSettings.trace_ratio must be within 0..1")
        if self.log_format not in ("text", "json"):
            raise ValueError("EdgeSettings.log_format must be text or json")
        self.log_level = str(self.log_level).upper()
        if not isinstance(logging.getLevelName(self.log_level), int):
            raise ValueError(f"EdgeSettings.log_level {self.log_level!r} is not a logging level")

    def _check_networks(self, name: str) -> None:
        """Each entry of the setting ``name`` is an IP network (or address); else ValueError."""
        for net in getattr(self, name):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"EdgeSettings.{name}: {exc}") from None

    def _check_status_path(self) -> None:
        self._check_networks("status_networks")
        path = self.status_path
        if path is None:
            return
        if not path.startswith("/") or path.endswith("/"):
            # "/status/" would make the JSON path "/status/.json"; "status" never matches.
            raise ValueError(
                f"EdgeSettings.status_path must start with '/' and not end with one (or be "
                f"None), got {path!r}"
            )
        if self.health_path in (path, status_json_path(path)):
            raise ValueError(f"EdgeSettings.status_path {path!r} collides with health_path")

    def _check_metrics(self) -> None:
        self._check_networks("metrics_networks")
        if self.metrics_listen is not None:
            try:
                parse_hostport(self.metrics_listen)
            except ValueError as exc:
                raise ValueError(f"EdgeSettings.metrics_listen: {exc}") from None
        path = self.metrics_path
        if path is None:
            if self.metrics_listen is not None:
                raise ValueError("EdgeSettings.metrics_listen needs a metrics_path to serve")
            return
        if not path.startswith("/"):
            raise ValueError(
                f"EdgeSettings.metrics_path must start with '/' (or be None), got {path!r}"
            )
        taken = {self.health_path}
        if self.status_path is not None:
            taken |= {self.status_path, status_json_path(self.status_path)}
        if self.metrics_listen is None and path in taken:
            raise ValueError(f"EdgeSettings.metrics_path {path!r} collides with another path")

    def _check_cluster(self) -> None:
        for name in ("gossip_port", "tunnel_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"EdgeSettings.{name} must be in 0..65535")
        if not self.remote_timeout > 0:
            raise ValueError("EdgeSettings.remote_timeout must be > 0")
        if self.tunnel_host is not None:
            if self.gossip_host is None:
                raise ValueError("a tunnel needs the cluster (--gossip HOST:PORT) to find peers")
            if self.tls_files is None:
                # Go Rony's tunnel was plain UDP anyone could send requests to: ours is
                # QUIC with mutual TLS only, whatever insecure_cluster says.
                raise ValueError("a tunnel needs --tls-ca, --tls-cert and --tls-key")
        for seed in self.join:
            parse_hostport(seed)  # raises ValueError naming the bad seed
        if self.gossip_host is None:
            if self.join:
                raise ValueError("join needs a gossip address (--gossip HOST:PORT)")
            return
        tls = (self.tls_ca, self.tls_cert, self.tls_key)
        if any(tls) and not all(tls):
            raise ValueError("a cluster with TLS needs all of tls_ca, tls_cert and tls_key")
        if not any(tls) and not self.insecure_cluster:
            raise ValueError(
                "a cluster needs --tls-ca, --tls-cert and --tls-key (make them with "
                "`rony ca init` and `rony ca issue`), or --insecure-cluster to run without TLS"
            )

    @property
    def tls_files(self) -> tuple[str, str, str] | None:
        """(tls_ca, tls_cert, tls_key) when all three are given, else None."""
        if self.tls_ca and self.tls_cert and self.tls_key:
            return self.tls_ca, self.tls_cert, self.tls_key
        return None

    @property
    def cluster_enabled(self) -> bool:
        return self.gossip_host is not None

    @property
    def limits(self) -> Limits:
        return Limits(
            max_message_size=self.max_message_size,
            max_container_length=self.max_container_length,
            max_header_count=self.max_header_count,
        )

    def replace(self, **overrides: Any) -> EdgeSettings:
        return dataclasses.replace(self, **overrides)


_FIELDS = {f.name: f for f in dataclasses.fields(EdgeSettings)}
# ``X = "HOST:PORT"`` sets X_host and X_port, for each such pair of fields (gateway, gossip,
# tunnel): derived, so a pair added later is settable at once.
_ADDRESSES = tuple(
    sorted(
        {n.removesuffix("_host") for n in _FIELDS if n.endswith("_host")}
        & {n.removesuffix("_port") for n in _FIELDS if n.endswith("_port")}
    )
)


def status_json_path(status_path: str) -> str:
    """The JSON twin of the status page's path: ``/status`` -> ``/status.json``."""
    return status_path + ".json"


def parse_hostport(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"[::1]:0"``, ``":8080"`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{value!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _coerce(name: str, value: Any) -> Any:
    """A value from env or TOML -> the field's type."""
    f = _FIELDS[name]
    kind = str(f.type)
    empty = value is None or (isinstance(value, str) and value.lower() in ("none", ""))
    if empty and "None" in kind:
        return None
    if "tuple" in kind:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if not isinstance(value, list | tuple):
            raise ValueError(f"{name}: {value!r} is not a list")
        return tuple(str(v) for v in value)
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: {value!r} is not a boolean")
    if kind.startswith(("int", "float")):
        # A TOML bool, list or table is no number (int(True) would quietly give 1).
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{name}: {value!r} is not a number")
        if kind.startswith("int") and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{name}: {value!r} is not an integer")
        try:
            return int(value) if kind.startswith("int") else float(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a number") from None
    if isinstance(value, Path):
        return value
    if not isinstance(value, str | int | float):
        raise ValueError(f"{name}: {value!r} is not a string")
    return str(value)


def _from_mapping(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_").lower()
        if name in _ADDRESSES:
            out[f"{name}_host"], out[f"{name}_port"] = parse_hostport(str(value))
            continue
        if name == "gossip_config":
            out[name] = _gossip_config(value, where)
            continue
        if name not in _FIELDS:
            raise ValueError(f"{where}: unknown setting {key!r}")
        try:
            out[name] = _coerce(name, value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return out


def _gossip_config(value: Any, where: str) -> GossipConfig:
    if isinstance(value, GossipConfig):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"{where}: gossip_config must be a table of GossipConfig settings")
    known = {f.name: f for f in dataclasses.fields(GossipConfig)}
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        name = key.replace("-", "_").lower()
        if name not in known:
            raise ValueError(f"{where}: unknown gossip_config setting {key!r}")
        kind = str(known[name].type)
        if kind in ("int", "float") and (isinstance(raw, bool) or not isinstance(raw, int | float)):
            raise ValueError(f"{where}: gossip_config.{key}: {raw!r} is not a number")
        kwargs[name] = float(raw) if kind == "float" else raw
    try:
        return GossipConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_env_names(env: Mapping[str, str]) -> None:
    """A ``RONY_*`` variable that is one letter or two off a setting is a typo: an error, as a
    TOML file's unknown key is. Others (a tool's own ``RONY_*``) are only logged.

    The known names are the EdgeSettings fields, plus ``X`` for each ``X_host`` / ``X_port``
    pair (``RONY_GATEWAY=HOST:PORT``), so a setting added later is known at once.
    """
    known = {*_FIELDS, *_ADDRESSES}
    for var in sorted(env):
        name = var[len("RONY_") :].lower()
        if not var.startswith("RONY_") or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            raise ValueError(
                f"environment: {var} is not a setting; did you mean RONY_{close[0].upper()}?"
            )
        log.warning("environment: %s is not a rony setting; ignored", var)


def load_settings(
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: EdgeSettings | None = None,
) -> EdgeSettings:
    """Merge settings: overrides > ``RONY_*`` environment > TOML file > ``base`` (or defaults).

    The TOML file holds the setting names at top level or under ``[rony]``; ``gateway =
    "HOST:PORT"`` sets host and port. Environment variables are ``RONY_`` + the upper-case
    name (``RONY_DATA_DIR``, ``RONY_GATEWAY=HOST:PORT``); tuples are comma-separated. A
    variable one typo away from a setting's name (``RONY_MAX_MESAGE_SIZE``) is a ValueError.
    """
    merged: dict[str, Any] = {}
    if config_file is not None:
        with open(config_file, "rb") as fh:
            doc = tomllib.load(fh)
        section = doc.get("rony", doc)
        if not isinstance(section, dict):
            raise ValueError(f"{config_file}: [rony] must be a table")
        merged.update(_from_mapping(section, str(config_file)))
    env = os.environ if environ is None else environ
    _check_env_names(env)
    from_env = {
        k[len("RONY_") :]: v
        for k, v in env.items()
        if k.startswith("RONY_") and k[len("RONY_") :].lower() in (*_FIELDS, *_ADDRESSES)
    }
    merged.update(_from_mapping(from_env, "environment"))
    merged.update(overrides or {})
    if base is None:
        return EdgeSettings(**merged)
    return base.replace(**merged)
