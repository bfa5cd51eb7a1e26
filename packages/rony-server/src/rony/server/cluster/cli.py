"""``rony ca``: the cluster CA from the command line (a subcommand ``rony.server.cli`` picks up).

    rony ca init  --dir DIR [--name NAME] [--days N] [--key-type ec|ed25519]
    rony ca issue --dir DIR NAME [--host H ...] [--days N] [--key-type ec|ed25519]

Each prints the paths it wrote, one per line (certificate first). A refused input (an existing
file, a bad name, no CA in DIR...) prints ``rony ca: <why>`` on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import sys

from rony.server.cli import Subcommand

from ._ca import DEFAULT_CA_DAYS, DEFAULT_NODE_DAYS, KEY_TYPES, CAError, init_ca, issue

__all__ = ["SUBCOMMANDS"]

_USAGE_ERROR = 2  # argparse's code for a bad command line; a refused input is one too


def _configure(p: argparse.ArgumentParser) -> None:
    p.set_defaults(_ca_parser=p, _ca_action=None)
    actions = p.add_subparsers(metavar="ACTION")

    init = actions.add_parser(
        "init", help="create a CA: DIR/ca.pem and DIR/ca.key", description="create a CA"
    )
    init.add_argument("--dir", required=True, help="folder of the CA (created if missing)")
    init.add_argument("--name", default="rony cluster CA", help="the CA's common name")
    init.add_argument(
        "--days", type=int, default=DEFAULT_CA_DAYS, help=f"validity (default {DEFAULT_CA_DAYS})"
    )
    _key_type(init)
    init.set_defaults(_ca_action=_run_init)

    node = actions.add_parser(
        "issue",
        help="create DIR/NAME.pem and DIR/NAME.key, signed by the CA in DIR",
        description="issue a node certificate signed by the CA in DIR",
    )
    node.add_argument("--dir", required=True, help="folder holding ca.pem and ca.key")
    node.add_argument("name", metavar="NAME", help="the node name (server id): CN and file name")
    node.add_argument(
        "--host",
        dest="hosts",
        action="append",
        default=[],
        metavar="H",
        help="an IP address or DNS name the node is reached at (repeatable; "
        "default: 127.0.0.1, ::1, localhost)",
    )
    node.add_argument(
        "--days",
        type=int,
        default=DEFAULT_NODE_DAYS,
        help=f"validity, capped at the CA's (default {DEFAULT_NODE_DAYS})",
    )
    _key_type(node)
    node.set_defaults(_ca_action=_run_issue)


def _key_type(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key-type",
        choices=KEY_TYPES,
        default="ec",
        help="ec (P-256, default; what gRPC needs) or ed25519 (gRPC's TLS refuses it)",
    )


def _run_init(args: argparse.Namespace) -> tuple[object, ...]:
    return init_ca(args.dir, name=args.name, days=args.days, key_type=args.key_type)


def _run_issue(args: argparse.Namespace) -> tuple[object, ...]:
    return issue(args.dir, args.name, hosts=args.hosts, days=args.days, key_type=args.key_type)


def _run(args: argparse.Namespace) -> int:
    if args._ca_action is None:
        args._ca_parser.print_usage(sys.stderr)
        print("rony ca: choose an action: init or issue", file=sys.stderr)
        return _USAGE_ERROR
    try:
        written = args._ca_action(args)
    except CAError as exc:
        print(f"rony ca: {exc}", file=sys.stderr)
        return _USAGE_ERROR
    for path in written:
        print(path)
    return 0


SUBCOMMANDS = (
    Subcommand("ca", "the cluster CA: create it, issue node certificates", _configure, _run),
)
