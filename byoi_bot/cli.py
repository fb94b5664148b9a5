"""The `byoi-bot` command line: one sub-command per way of running the bot."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .config import ConfigError, Settings, reference_markdown
from .wiring import CannotStart


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `byoi-bot` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"byoi-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    except CannotStart as exc:
        print(f"byoi-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="byoi-bot",
        description="Slack chat-ops for OVHcloud Bring Your Own Image deployments.",
    )
    parser.add_argument("--version", action="version", version=f"byoi-bot {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", help="run the Slack bot (Socket Mode, or --http)")
    run.add_argument("--http", action="store_true", help="serve Slack's requests over HTTP")
    run.add_argument("--host", default="0.0.0.0", help="HTTP mode: address to bind")
    run.add_argument("--port", type=int, default=3000, help="HTTP mode: port (default 3000)")
    run.set_defaults(func=_run)

    shell = sub.add_parser("shell", help="the whole workflow in a terminal, against the simulator")
    _shell_arguments(shell)
    shell.add_argument("--script", help="run lines from FILE (or - for stdin), then exit")
    shell.set_defaults(func=_shell)

    demo = sub.add_parser("demo", help="a scripted story on the shell, in under a minute")
    _shell_arguments(demo)
    demo.set_defaults(func=_demo)

    sim = sub.add_parser("simulator", help="the OVHcloud API simulator, standalone")
    sim.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    sim.add_argument("--deploy-seconds", type=float, default=60.0, help="length of a deployment")
    sim.add_argument("--inventory", help="JSON file of servers (default: built-in inventory)")
    sim.set_defaults(func=_simulator)

    check = sub.add_parser("check", help="validate the configuration and reach Slack and OVHcloud")
    check.add_argument("--offline", action="store_true", help="do not call Slack or OVHcloud")
    check.set_defaults(func=_check)

    inspect = sub.add_parser("inspect", help="preflight an image URL (and a server) now")
    inspect.add_argument("url", help="the image URL")
    inspect.add_argument("--type", choices=("qcow2", "raw"), help="declared image type")
    inspect.add_argument(
        "--header", action="append", default=[], help='HTTP header "Name: value" (repeatable)'
    )
    inspect.add_argument("--server", help="also check against this server's facts")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument("--checksum", help="the image's checksum, [md5|sha1|sha256|sha512:]<hex>")
    inspect.add_argument(
        "--verify", action="store_true", help="stream the whole image and compare its checksum"
    )
    inspect.set_defaults(func=_inspect)

    audit = sub.add_parser("audit", help="print the audit trail of a request, or of all")
    audit.add_argument("request_id", nargs="?", help="request id (default: all requests)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(func=_audit)

    iam = sub.add_parser(
        "iam-policy", help="print the IAM policy a service account needs (OVHcloud's JSON)"
    )
    iam.add_argument(
        "--server",
        action="append",
        default=[],
        help="a server the policy covers (repeat it); default: a placeholder to replace",
    )
    iam.add_argument("--name", default="byoi-bot", help="the policy's name (default byoi-bot)")
    iam.set_defaults(func=_iam_policy)

    ref = sub.add_parser("config-reference", help="print the settings reference (Markdown)")
    ref.set_defaults(func=lambda _args: print(reference_markdown()))
    return parser


def _shell_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deploy-seconds", type=float, default=20.0, help="simulated deploy time")
    parser.add_argument("--no-color", action="store_true", help="plain text output")
    parser.add_argument(
        "--approvers",
        default="bob,carol",
        help="comma-separated approvers when BYOI_CONFIG is not set (default: bob,carol)",
    )
    parser.add_argument("--inventory", help="simulator inventory JSON (default: built-in)")


def _run(args: argparse.Namespace) -> int:
    from .slack.modes import run

    return run(Settings.load(), http=args.http, host=args.host, port=args.port)


def _shell(args: argparse.Namespace) -> int:
    from .console.shell import run_shell

    return run_shell(args)


def _demo(args: argparse.Namespace) -> int:
    from .console.demo import run_demo

    return run_demo(args)


def _simulator(args: argparse.Namespace) -> int:
    from .simulator import serve

    try:
        serve(args.host, args.port, args.deploy_seconds, args.inventory)
    except OSError as exc:
        raise CannotStart(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0


def _check(args: argparse.Namespace) -> int:
    from .checkup import run_check

    return run_check(Settings.load(), offline=args.offline)


def _iam_policy(args: argparse.Namespace) -> int:
    import os

    from .commands import is_hostname
    from .ovhcloud import iam

    if bad := [s for s in args.server if not is_hostname(s)]:
        raise ConfigError(
            f"--server {bad[0][:80]!r} is not a server name; give one as OVHcloud lists it, "
            "e.g. --server ns1001.ip-51-75-1.eu"
        )
    settings = Settings.load()
    endpoint = settings.ovh_endpoint or os.environ.get("OVH_ENDPOINT", "")
    client_id = os.environ.get("OVH_CLIENT_ID") or None
    policy = iam.policy(sorted(set(args.server)), endpoint, client_id, args.name)
    print(json.dumps(policy, indent=2))
    if any(p.api == "legacy" for p in settings.policies.policies):
        print(
            "byoi-bot: a policy uses the legacy /bringYourOwnImage API, which OVHcloud's "
            "schema lists without IAM actions; grant them by hand or move to the reinstall API",
            file=sys.stderr,
        )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from .preflight.cli import run_inspect

    settings = Settings.load()
    provider = None
    if args.server:
        from .wiring import make_provider

        provider = make_provider(settings)
    return run_inspect(
        args.url,
        image_type=args.type,
        headers=tuple(args.header),
        server=args.server,
        as_json=args.json,
        provider=provider,
        allowlist=tuple(settings.url_allowlist),
        checksum=args.checksum,
        verify=args.verify,
    )


def _audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .store import is_postgres, shown
    from .wiring import open_store

    db = Settings.load().db
    if not is_postgres(db) and db != ":memory:" and not Path(db).exists():
        print(f"byoi-bot: no store at {db} (BYOI_DB): nothing recorded yet", file=sys.stderr)
        return 1
    store = open_store(db)
    try:
        rows = store.audit(args.request_id)
    finally:
        store.close()
    if args.request_id and not rows:
        print(f"byoi-bot: no request {args.request_id} in {shown(db)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        change = f"{row['from_state'] or '-'} -> {row['to_state']}" if row["to_state"] else ""
        print(
            f"{row['at']}  {row['request_id']}  {row['actor']:<12} {row['action']:<16} "
            f"{change:<32} {row['reason'] or ''}".rstrip()
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
