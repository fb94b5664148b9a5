"""The `byoi-bot` command line: one sub-command per way of running the bot."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import __version__, arguments
from .config import ConfigError, Settings, reference_markdown
from .errors import CannotStart

# The exit status of a command whose reader went away (`byoi-bot config-reference | head`), as
# a shell reports a process killed by SIGPIPE.
CLOSED_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `byoi-bot` console script; returns the exit code.

    Only the configuration and argparse are imported here: each sub-command imports what it
    needs (Bolt, the store, the scheduler) when it runs, so `--help` stays quick.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except ConfigError as exc:
        print(f"byoi-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    except CannotStart as exc:
        print(f"byoi-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="byoi-bot",
        description="Slack chat-ops for OVHcloud Bring Your Own Image deployments.",
        epilog="First time? `byoi-bot demo`, then `byoi-bot init` and the README's quick start.",
    )
    parser.add_argument("--version", action="version", version=f"byoi-bot {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (
        _run_command,
        _check_command,
        _init_command,
        _manifest_command,
        _demo_command,
        _shell_command,
        _simulator_command,
        _inspect_command,
        _audit_command,
        _iam_policy_command,
        _backup_command,
        _restore_command,
        _config_reference_command,
    ):
        add(sub)
    return parser


def _command(sub, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A sub-command with its one-line summary (in `byoi-bot --help`) and its description
    (in `byoi-bot NAME --help`)."""
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _run_command(sub) -> None:
    run = _command(
        sub,
        "run",
        "run the Slack bot (Socket Mode, or --http)",
        "Run the bot: answer /byoi, count approvals, start and follow deployments.\n"
        "Socket Mode (the default) needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN and no public\n"
        "URL; --http serves /slack/events and /healthz and needs SLACK_SIGNING_SECRET.\n"
        "Slack is asked first: nothing is created on disk for a token it refuses.",
    )
    run.add_argument("--http", action="store_true", help="serve Slack's requests over HTTP")
    run.add_argument("--host", default="0.0.0.0", help="HTTP mode: address to bind")
    run.add_argument(
        "--port",
        type=arguments.port,
        default=3000,
        help="HTTP mode: port (default 3000; 0: any free port)",
    )
    run.set_defaults(func=_run)


def _check_command(sub) -> None:
    check = _command(
        sub,
        "check",
        "validate the configuration and reach Slack and OVHcloud",
        "Check everything `run` needs and list every problem at once, each with the setting\n"
        "to change: the environment and the TOML file (BYOI_CONFIG), the store, the image\n"
        "catalog, Slack (auth.test, approver groups), OVHcloud (credentials, access rules).\n"
        "Exit status: 0 nothing failed (warnings allowed), 1 a check failed (a service\n"
        "refused or could not be reached), 2 the configuration is invalid.",
    )
    check.add_argument("--offline", action="store_true", help="do not call Slack or OVHcloud")
    check.set_defaults(func=_check)


def _init_command(sub) -> None:
    init = _command(
        sub,
        "init",
        "write a commented byoi.env and byoi.toml here to start from",
        "Write byoi.env (tokens, credentials, approvers) and byoi.toml (policies, image\n"
        "catalog) in the current directory, commented, then print the next steps. Values\n"
        "already in the environment are filled in; the rest are REPLACE-ME placeholders that\n"
        "`byoi-bot check` points at. An existing file is never overwritten without --force.",
    )
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.add_argument("--dir", default=".", help="where to write them (default: here)")
    init.set_defaults(func=_init)


def _manifest_command(sub) -> None:
    manifest = _command(
        sub,
        "manifest",
        "print the Slack app manifest (Socket Mode, or --http URL)",
        "Print the manifest to paste in https://api.slack.com/apps → Create New App → From\n"
        "an app manifest. Its command, events and scopes are the ones the bot registers.\n"
        "Without --http: Socket Mode. With --http https://bot.example.net: HTTP mode, the\n"
        "request URLs set to https://bot.example.net/slack/events.",
    )
    manifest.add_argument(
        "--http", metavar="URL", help="HTTP mode: the bot's public https:// base URL"
    )
    manifest.set_defaults(func=_manifest)


def _demo_command(sub) -> None:
    demo = _command(
        sub,
        "demo",
        "a scripted story on the shell, in under a minute",
        "Play a scripted story in the terminal: requests, approvals, a deployment and a\n"
        "failure, against the built-in OVHcloud simulator. No Slack, no OVHcloud account.",
    )
    _shell_arguments(demo)
    demo.set_defaults(func=_demo)


def _shell_command(sub) -> None:
    shell = _command(
        sub,
        "shell",
        "the whole workflow in a terminal, against the simulator",
        "Type /byoi commands and reactions as any user; the real workflow runs with a\n"
        "console in place of Slack and the simulator in place of OVHcloud.",
    )
    _shell_arguments(shell)
    shell.add_argument("--script", help="run lines from FILE (or - for stdin), then exit")
    shell.set_defaults(func=_shell)


def _simulator_command(sub) -> None:
    sim = _command(
        sub,
        "simulator",
        "the OVHcloud API simulator, standalone",
        "Serve the OVHcloud API simulator (both BYOI API generations, signed requests,\n"
        "injectable faults) and print the endpoint and credentials to use with it.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sim.add_argument(
        "--port", type=arguments.port, default=8080, help="port (default 8080; 0: any)"
    )
    sim.add_argument(
        "--deploy-seconds", type=arguments.seconds, default=60.0, help="length of a deployment"
    )
    sim.add_argument("--inventory", help="JSON file of servers (default: built-in inventory)")
    sim.set_defaults(func=_simulator)


def _inspect_command(sub) -> None:
    inspect = _command(
        sub,
        "inspect",
        "preflight an image URL (and a server) now",
        "Run the preflight checks on an image URL (a few KiB of range requests), and against\n"
        "a server's facts with --server. Exit status 1 when a check blocks the deploy.",
    )
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


def _audit_command(sub) -> None:
    audit = _command(
        sub,
        "audit",
        "the audit trail: print it, export it, verify its hash chain",
        "byoi-bot audit [REQUEST_ID] [--json]\n"
        "    who did what, when, from which state to which, and why (all requests by default)\n"
        "byoi-bot audit export [--since T] [--until T] [--format jsonl|csv] [--output FILE]\n"
        "    every row with its prev_hash and hash, for an archive or a SIEM\n"
        "byoi-bot audit verify [FILE]\n"
        "    recompute the hash chain over the store, or over an export, and name the first\n"
        "    row that does not fit (exit status 1)\n\n"
        "T is an ISO 8601 date or time (2026-12-01, 2026-12-01T18:00+01:00; UTC when no zone).\n"
        "The store (BYOI_DB) is only read.",
    )
    audit.add_argument(
        "what", nargs="?", metavar="REQUEST_ID|export|verify", help="a request id, or a verb"
    )
    audit.add_argument("file", nargs="?", help="verify: an export to check (default: the store)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.add_argument("--since", type=_instant, help="export: rows at or after this time")
    audit.add_argument("--until", type=_instant, help="export: rows before this time")
    audit.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="export format")
    audit.add_argument("--output", help="export: write to this file (default: standard output)")
    audit.set_defaults(func=_audit)


def _instant(text: str):
    from .commands.converters import iso_utc

    try:
        return iso_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-12-01 or 2026-12-01T18:00Z)"
        ) from None


def _iam_policy_command(sub) -> None:
    iam = _command(
        sub,
        "iam-policy",
        "print the IAM policy a service account needs (OVHcloud's JSON)",
        "Print the IAM policy (the JSON of OVHcloud's POST /iam/policy) that lets the service\n"
        "account of OVH_CLIENT_ID make every call byoi-bot makes: the x-iam-actions of each\n"
        "route it calls, on the servers given with --server (else a placeholder to replace).",
    )
    iam.add_argument(
        "--server",
        action="append",
        default=[],
        help="a server the policy covers (repeat it); default: a placeholder to replace",
    )
    iam.add_argument("--name", default="byoi-bot", help="the policy's name (default byoi-bot)")
    iam.set_defaults(func=_iam_policy)


def _backup_command(sub) -> None:
    backup = _command(
        sub,
        "backup",
        "copy the SQLite store to PATH, also while the bot runs",
        "Copy the SQLite store (BYOI_DB) to PATH with SQLite's online backup API: a\n"
        "consistent copy while the bot runs and writes. PATH must not exist. PostgreSQL:\n"
        "use pg_dump (docs/operations.md).",
    )
    backup.add_argument("path", help="the backup file to write (must not exist)")
    backup.set_defaults(func=_backup)


def _restore_command(sub) -> None:
    restore = _command(
        sub,
        "restore",
        "replace the SQLite store with a backup (the bot stopped)",
        "Replace the SQLite store (BYOI_DB) with the backup PATH, once it is checked. Refused\n"
        "while a bot or another byoi-bot command has the store open; the store replaced is\n"
        "kept beside it as <store>.before-restore-<time>.",
    )
    restore.add_argument("path", help="the backup file to restore")
    restore.set_defaults(func=_restore)


def _config_reference_command(sub) -> None:
    ref = _command(
        sub,
        "config-reference",
        "print the settings reference (Markdown)",
        "Print every setting (environment variable, default, meaning) as a Markdown table:\n"
        "the one in docs/configuration.md.",
    )
    ref.set_defaults(func=lambda _args: print(reference_markdown()))


def _shell_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--deploy-seconds", type=arguments.seconds, default=20.0, help="simulated deploy time"
    )
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


def _init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .starter import NEXT_STEPS, Exists, write_starter_files

    folder = Path(args.dir)
    if not folder.is_dir():
        print(f"byoi-bot: init: {folder} is not a directory", file=sys.stderr)
        return 1
    try:
        paths = write_starter_files(folder, os.environ, force=args.force)
    except Exists as exc:
        print(f"byoi-bot: init: {exc}", file=sys.stderr)
        return 1
    print(f"Wrote {' and '.join(str(p) for p in paths)}.\n\n{NEXT_STEPS}")
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from .slack.manifest import ManifestError, manifest_yaml

    try:
        print(manifest_yaml(args.http), end="")
    except ManifestError as exc:
        print(f"byoi-bot: manifest: {exc}", file=sys.stderr)
        return 2
    return 0


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
    from .config import survey

    settings, problems = survey()
    return run_check(settings, offline=args.offline, problems=problems)


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

    from .store import audit_chain, is_postgres, shown
    from .wiring import open_store

    if args.what == "verify" and args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"byoi-bot: cannot read {args.file}: {exc}", file=sys.stderr)
            return 2
        try:
            verdict = audit_chain.verify(audit_chain.read_export(text), anchor=None)
        except (ValueError, KeyError, TypeError) as exc:
            print(f"byoi-bot: {args.file} is not an audit export: {exc}", file=sys.stderr)
            return 2
        print(verdict.describe())
        return 0 if verdict.ok else 1
    db = Settings.load().db
    if not is_postgres(db) and not Path(db).exists():
        print(f"byoi-bot: no store at {db} (BYOI_DB): nothing recorded yet", file=sys.stderr)
        return 1
    store = open_store(db)
    try:
        if args.what == "verify":
            verdict = audit_chain.verify(store.audit_chain())
            print(verdict.describe())
            return 0 if verdict.ok else 1
        if args.what == "export":
            rows = store.audit_chain(args.since, args.until)
            if not args.output:
                audit_chain.export(rows, sys.stdout, args.format)
                return 0
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = audit_chain.export(rows, out, args.format)
            print(f"{count} audit row(s) written to {args.output}", file=sys.stderr)
            return 0
        rows = store.audit(args.what)
    finally:
        store.close()
    if args.what and not rows:
        print(f"byoi-bot: no request {args.what} in {shown(db)}", file=sys.stderr)
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


def _iam_policy(args: argparse.Namespace) -> int:
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


def _backup(args: argparse.Namespace) -> int:
    from .backup import BackupError, backup

    try:
        copied = backup(Settings.load().db, args.path)
    except BackupError as exc:
        print(f"byoi-bot: backup: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {copied.requests} requests to {copied.path} ({copied.size} bytes)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from .backup import BackupError, restore

    try:
        copied, kept = restore(Settings.load().db, args.path)
    except BackupError as exc:
        print(f"byoi-bot: restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {copied.requests} requests into {copied.path}")
    if kept:
        print(f"the store it replaced is kept as {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
