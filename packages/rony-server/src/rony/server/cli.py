"""The ``rony`` command: ``rony serve MODULE:ATTR`` (and the codegen's ``gen`` / ``new``).

Subcommands live in ``SUBCOMMANDS``. Other parts of rony.server add theirs without touching
this file: a module listed in ``_PLUGIN_MODULES`` that exists is imported and its
``SUBCOMMANDS`` (a sequence of ``Subcommand``) are added.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rony.server._addrs import hostport
from rony.server._app import App
from rony.server._edge import Edge
from rony.server._settings import load_settings, parse_hostport
from rony.server._tracing import TRACE_SAMPLERS
from rony.server.logs import LOG_FORMATS, LogSetup, configure

__all__ = ["SUBCOMMANDS", "Subcommand", "main", "resolve_target"]

log = logging.getLogger("rony.server")


@dataclass(frozen=True)
class Subcommand:
    """One ``rony NAME``: ``configure`` adds its arguments, ``run`` executes (exit code)."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS: dict[str, Subcommand] = {}

_PLUGIN_MODULES = ("rony.server.codegen.cli", "rony.server.cluster.cli", "rony.server.bench_cli")


def register(cmd: Subcommand) -> None:
    SUBCOMMANDS[cmd.name] = cmd


# --- rony serve -------------------------------------------------------------------------------


def resolve_target(spec: str) -> App | Edge:
    """``module:attr`` (the current folder importable, as uvicorn) -> an App or Edge.

    ``attr`` may name an App, an Edge, or a zero-argument callable returning either; it may be
    dotted (``module:obj.app``). ``module`` alone means ``module:app``.
    """
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise ValueError(f"{spec!r}: expected MODULE:ATTR")
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        # ``rony serve pkg/file.py``: a path, which import_module would report as a missing
        # module named "pkg/file" with no word of the form it wants.
        dotted = module_name.removesuffix(".py").replace(os.sep, "/").strip("/").replace("/", ".")
        raise ValueError(
            f"{spec!r} is a file path; rony serve takes MODULE:ATTR, the module's import name "
            f"and the App in it, e.g. `rony serve {dotted}:{attr}` from the folder above it"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
            raise  # a module that the user's module imports is missing: its own message
        raise ValueError(
            f"{spec!r}: no module named {exc.name!r} importable from {cwd} (MODULE:ATTR "
            "names a module by its import name, e.g. `rony serve myservice.app:app`)"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{spec!r}: module {module_name!r} has no {attr!r}") from None
    if not isinstance(obj, App | Edge) and callable(obj):
        if isinstance(obj, type):  # App itself would serve an empty app; others fail later
            raise ValueError(f"{spec!r} is the class {obj.__name__}, not an App, Edge or factory")
        try:
            inspect.signature(obj).bind()
        except TypeError:  # calling it would raise a TypeError traceback
            raise ValueError(f"{spec!r} needs arguments; a factory takes none") from None
        except ValueError:  # no signature to read (a builtin): just call it
            pass
        obj = obj()
    if not isinstance(obj, App | Edge):
        raise ValueError(f"{spec!r} is a {type(obj).__name__}, not a rony App or Edge")
    return obj


def _configure_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="MODULE:ATTR naming an App, an Edge or a factory of one")
    p.add_argument(
        "--gateway", metavar="HOST:PORT", type=_hostport, help="gateway address (port 0 = any free)"
    )
    p.add_argument("--data-dir", help="folder of the embedded store")
    p.add_argument("--server-id", help="this node's id (default: random)")
    p.add_argument("--replica-set", type=int, help="this node's replica set")
    p.add_argument("--config", metavar="FILE.toml", help="settings file (see EdgeSettings)")
    p.add_argument(
        "--grace", type=_grace, help="seconds to finish requests on SIGTERM/SIGINT (>= 0)"
    )
    p.add_argument(
        "--log-level", type=_log_level, help="logging level (default INFO, or log_level)"
    )
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="log lines as text or one JSON object per line (default text, or log_format)",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="one log line per request on rony.server.access (default off, or access_log)",
    )
    c = p.add_argument_group("cluster (optional; see `rony ca` for the certificates)")
    c.add_argument("--gossip", metavar="HOST:PORT", help="gossip address: runs the cluster")
    c.add_argument(
        "--join",
        metavar="HOST:PORT",
        action="append",
        help="a seed's gossip address (repeatable; retried with back-off until one answers)",
    )
    c.add_argument(
        "--advertise", metavar="HOST", help="host other nodes and clients are given (containers)"
    )
    c.add_argument(
        "--tunnel", metavar="HOST:PORT", help="tunnel (node-to-node QUIC) address; needs TLS"
    )
    c.add_argument("--tls-ca", metavar="FILE", help="the cluster CA certificate (PEM)")
    c.add_argument("--tls-cert", metavar="FILE", help="this node's certificate (PEM)")
    c.add_argument("--tls-key", metavar="FILE", help="this node's private key (PEM)")
    c.add_argument(
        "--insecure-cluster",
        action="store_true",
        default=None,
        help="run the cluster without TLS (never in production)",
    )

    t = p.add_argument_group(
        "tracing (OpenTelemetry: spans are made only when an SDK TracerProvider is installed, "
        "e.g. by the app module or `opentelemetry-instrument rony serve ...`)"
    )
    t.add_argument(
        "--no-tracing", dest="tracing", action="store_false", default=None, help="make no spans"
    )
    t.add_argument(
        "--trace-sampler",
        choices=TRACE_SAMPLERS,
        help="which requests get spans (default parentbased_traceidratio)",
    )
    t.add_argument(
        "--trace-ratio",
        type=_ratio,
        metavar="R",
        help="share of root requests sampled, 0..1 (default 1.0)",
    )
    m = p.add_argument_group("metrics (Prometheus; default: GET /metrics on the gateway port)")
    m.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        type=_hostport,
        help="serve /metrics on a listener of its own instead of the gateway port",
    )
    m.add_argument(
        "--no-metrics",
        dest="metrics_off",
        action="store_true",
        help="count no request metrics and serve no /metrics",
    )


def _ratio(text: str) -> float:
    """A number within 0..1; argparse reports anything else as a usage error."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a ratio within 0..1")
    return value


def _cluster_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.gossip:
        out["gossip_host"], out["gossip_port"] = parse_hostport(args.gossip)
    if args.tunnel:
        out["tunnel_host"], out["tunnel_port"] = parse_hostport(args.tunnel)
    if args.join:
        out["join"] = tuple(args.join)
    for flag in ("advertise", "tls_ca", "tls_cert", "tls_key", "insecure_cluster"):
        value = getattr(args, flag)
        if value is not None:
            out["advertise_host" if flag == "advertise" else flag] = value
    return out


def _hostport(text: str) -> tuple[str, int]:
    """HOST:PORT; argparse reports anything else (``localhost``) as a usage error."""
    try:
        return parse_hostport(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080, :8080 for every interface, "
            "[::1]:0 for any free port)"
        ) from None


def _grace(text: str) -> float:
    """Seconds >= 0; argparse reports anything else (``-1``, ``nan``) as a usage error."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _log_level(text: str) -> str:
    """A logging level name (any case); argparse reports anything else as a usage error."""
    if not isinstance(logging.getLevelName(text.upper()), int):
        raise argparse.ArgumentTypeError(f"{text!r} is not a logging level (DEBUG, INFO, ...)")
    return text.upper()


def _run_serve(args: argparse.Namespace) -> int:
    # Logging first (the app module may log as it is imported), from the flags; the settings
    # (file, environment) may change format and level once they are read.
    setup = configure(args.log_format or "text", args.log_level or "INFO")
    try:
        return _serve_with(args, setup)
    finally:
        setup.remove()


def _serve_with(args: argparse.Namespace, setup: LogSetup) -> int:
    overrides: dict[str, Any] = {}
    if args.gateway:
        overrides["gateway_host"], overrides["gateway_port"] = args.gateway
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.server_id:
        overrides["server_id"] = args.server_id
    if args.replica_set is not None:
        overrides["replica_set"] = args.replica_set
    try:
        overrides.update(_cluster_overrides(args))
        for flag in ("tracing", "trace_sampler", "trace_ratio", "log_format", "log_level",
                     "access_log"):  # fmt: skip
            if getattr(args, flag) is not None:
                overrides[flag] = getattr(args, flag)
        if args.metrics is not None:
            overrides["metrics_listen"] = hostport(*args.metrics)
        if args.metrics_off:
            overrides["metrics"] = False
        target = resolve_target(args.target)
        if isinstance(target, Edge):
            settings = load_settings(
                config_file=args.config, overrides=overrides, base=target.settings
            )
            edge = Edge(target.app, settings, tracer_provider=target._tracer_provider)
        else:
            edge = Edge(target, load_settings(config_file=args.config, overrides=overrides))
    except (ValueError, OSError, ImportError) as exc:
        print(f"rony serve: {exc}", file=sys.stderr)
        return 2
    s = edge.settings
    setup.apply(fmt=s.log_format, level=s.log_level, server_id=s.server_id)
    data_dir = Path(edge.settings.data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        print(
            f"rony serve: data dir {str(data_dir)!r} is a file; the store needs a folder "
            "(--data-dir or RONY_DATA_DIR; it is created if missing)",
            file=sys.stderr,
        )
        return 2
    from rony.server.cluster._swim import MembershipError
    from rony.store.errors import StoreError

    try:
        asyncio.run(_serve(edge, args.grace))
    except (OSError, StoreError) as exc:  # the port is taken; data_dir is no store / locked
        print(f"rony serve: {_describe(exc, data_dir)}", file=sys.stderr)
        return 1
    except MembershipError as exc:  # the gossip meta or name the node would announce
        print(f"rony serve: {exc}", file=sys.stderr)
        return 2
    return 0


def _describe(exc: Exception, data_dir: Path) -> str:
    """An OSError met on the data folder says so (a bare errno names no setting)."""
    name = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and name is not None and exc.strerror:
        path = Path(os.fsdecode(name))
        if path == data_dir or data_dir in path.parents or path in data_dir.parents:
            return f"data dir {str(data_dir)!r}: {exc.strerror}: {str(path)!r}"
    return str(exc)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _force_exit(signum: int, frame: object) -> None:
    """A second SIGINT/SIGTERM while stopping: exit now, as uvicorn does on a second Ctrl-C.

    A plain Python signal handler, not the loop's: it runs even when a handler blocks the event
    loop. Nothing more is awaited (the drain or a shutdown hook may be what hangs); the store is
    left unclosed, which LMDB survives as it survives a crash.
    """
    name = signal.Signals(signum).name
    os.write(2, f"rony serve: {name} again while stopping: exiting at once\n".encode())
    os._exit(128 + signum)  # the shell's code for "ended by this signal"


def _not_listening_record(record: logging.LogRecord) -> bool:
    """Edge.start's "rony node ... listening on URL" record, less the address that ``rony
    serve`` prints itself: "rony node ... started"."""
    if isinstance(record.msg, str) and " listening on " in record.msg:
        record.msg = record.getMessage().partition(" listening on ")[0] + " started"
        record.args = None
    return True


async def _serve(edge: Edge, grace: float | None) -> None:
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    originals = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}

    def on_signal(sig: signal.Signals) -> None:
        if stopping:  # a second signal that came before the swap below
            _force_exit(sig, None)
        # From now on a signal exits at once. The loop keeps its handlers (only their Python
        # half is replaced), so a signal that reached the loop before this swap still comes
        # back here, and is not lost.
        for other in _STOP_SIGNALS:
            signal.signal(other, _force_exit)
        log.info("%s: stopping gracefully (%s again to exit at once)", sig.name, sig.name)
        stopping.append(loop.create_task(edge.stop(grace)))

    for sig in _STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig)
    # The node's address goes to stdout once ("listening on URL", the line scripts wait for);
    # the Edge's own log record saying the same loses its address in this command's log.
    rony_log = logging.getLogger("rony.server")
    rony_log.addFilter(_not_listening_record)
    try:
        await edge.start()
        print(f"listening on {edge.url}", flush=True)
        await edge.wait_for_termination()
    finally:
        rony_log.removeFilter(_not_listening_record)
        try:
            await edge.stop(grace)
        finally:
            for sig, handler in originals.items():
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(sig)
                if handler is not None:
                    signal.signal(sig, handler)


register(Subcommand("serve", "run a Rony node serving MODULE:ATTR", _configure_serve, _run_serve))


# --- entry point ------------------------------------------------------------------------------


def _load_plugins() -> None:
    for name in _PLUGIN_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that part is not installed / not written yet
            raise
        for cmd in getattr(module, "SUBCOMMANDS", ()):
            register(cmd)


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(prog="rony", description="Rony for Python")
    from rony.server import __version__

    parser.add_argument("--version", action="version", version=f"rony {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in SUBCOMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args._run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
