"""`byoi-bot shell`: the real workflow with a console chat and the in-process simulator.

Lines the shell understands (interactively, or from `--script FILE`):

    alice: /byoi deploy ns1001.ip-51-75-1.eu {images}/debian-12.qcow2
    bob reacts :white_check_mark:            (on the latest card)
    bob unreacts :white_check_mark: on r-abc234
    wait 5                                    (seconds)
    wait until done                           (the latest request; or: wait until done on r-…)
    wait until done within 30                 (fail after 30 s instead of 120 s)
    # a comment

`{images}` expands to the URL of the built-in demo images, `{latest}` to the newest request id.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from .. import commands
from ..config import Settings
from ..core.policy import Policy, PolicySet
from ..core.states import State
from ..dispatch import run_command
from ..wiring import Bot, build_bot, make_provider
from .chat import ConsoleChat
from .image_server import ImageServer
from .images import demo_images

log = logging.getLogger(__name__)
REQUESTER, APPROVERS, OUTSIDER = "alice", ("bob", "carol"), "dave"
WAIT_LIMIT = 120.0
INTERNAL_ERROR = "Something went wrong on the bot's side (logged); nothing was changed."
LINE = re.compile(
    r"^(?P<user>[\w.-]+)\s+(?P<verb>reacts|unreacts)\s+:(?P<emoji>[\w+-]+):"
    r"(?:\s+on\s+(?P<id>\S+))?$"
)
WAIT_UNTIL = re.compile(
    r"^wait\s+until\s+(?P<state>[a-z_]+)(?:\s+on\s+(?P<id>\S+))?"
    r"(?:\s+within\s+(?P<seconds>\d+(?:\.\d+)?))?$"
)


class ScriptError(Exception):
    """A script line that cannot be run, or a `wait until` that timed out."""


@dataclass
class Session:
    """A running shell: the bot, its console chat, and the demo services it started."""

    bot: Bot
    chat: ConsoleChat
    images_url: str
    servers: list[str]
    approvers: tuple[str, ...]
    channel: str = "C-ops"

    def run_line(self, line: str) -> None:
        """Run one line of the shell language; raise `ScriptError` on a bad or failed line.

        An unexpected error is logged once with its traceback and becomes a `ScriptError`
        in plain words: the shell never dies on a line.
        """
        try:
            self._run_line(line)
        except ScriptError:
            raise
        except Exception:
            log.exception("shell line failed: %s", line.strip())
            raise ScriptError(INTERNAL_ERROR) from None

    def _run_line(self, line: str) -> None:
        line = line.strip().replace("{images}", self.images_url)
        if "{latest}" in line:
            line = line.replace("{latest}", self._latest_id())
        if not line or line.startswith("#"):
            return
        if match := WAIT_UNTIL.match(line):
            limit = float(match["seconds"]) if match["seconds"] else WAIT_LIMIT
            self._wait_until(match["state"], match["id"], limit)
        elif line.startswith("wait "):
            self._wait(line[5:])
        elif match := LINE.match(line):
            self._react(match["user"], match["emoji"], match["verb"] == "reacts", match["id"])
        elif ":" in line:
            user, text = (part.strip() for part in line.split(":", 1))
            self._say(user, text)
        else:
            raise ScriptError(
                f"cannot read `{line}`; expected `<user>: <text>`, `<user> reacts :emoji:`, "
                "`wait <seconds>` or `wait until <state>`"
            )

    def _say(self, user: str, text: str) -> None:
        self.chat.say(f"*{user}*: {text}")
        if not text.startswith("/byoi"):
            return
        try:
            command = commands.parse(
                text.removeprefix("/byoi"), now=self.bot.deployments.clock.now()
            )
        except commands.CommandError as exc:
            self.chat.tell(user, self.channel, str(exc))
            return
        if isinstance(command, commands.Deploy) and command.spec is command.catalog is None:
            self.chat.tell(user, self.channel, "The deploy form is Slack-only; type the options.")
            return
        self.chat.tell(
            user, self.channel, run_command(self.bot.deployments, command, user, self.channel)
        )

    def _react(self, user: str, emoji: str, added: bool, request_id: str | None) -> None:
        request_id = request_id or self._latest_id()
        ts = self.chat.cards.get(request_id)
        if ts is None:
            raise ScriptError(f"no card for request `{request_id}`")
        self.chat.say(f"*{user}* {'reacts' if added else 'removes'} :{emoji}: on {request_id}")
        self.bot.deployments.react(self.channel, ts, user, emoji, added)

    def _wait(self, seconds: str) -> None:
        try:
            time.sleep(float(seconds))
        except (ValueError, OverflowError):
            raise ScriptError(f"`wait {seconds}`: expected a number of seconds") from None

    def _wait_until(self, state: str, request_id: str | None, limit: float) -> None:
        try:
            wanted = State(state)
        except ValueError:
            names = ", ".join(s.value for s in State)
            raise ScriptError(f"`{state}` is not a state; expected one of {names}") from None
        request_id = request_id or self._latest_id()

        def reached() -> bool:
            request = self.bot.store.get(request_id)
            return request is not None and (request.state is wanted or request.state.is_final)

        if not self.chat.wait_for(reached, limit):
            raise ScriptError(f"timed out after {limit:g}s waiting for {request_id} to be {wanted}")
        request = self.bot.store.get(request_id)
        if request.state is not wanted:
            raise ScriptError(f"{request_id} ended {request.state}, not {wanted}")
        self.settle()

    def settle(self, limit: float = 10.0) -> None:
        """Wait (at most `limit` seconds) until the bot has said everything it queued: the
        outbox's sender posts in the background, and a script's transcript (or its end)
        must not overtake it."""
        deadline = time.monotonic() + limit
        try:
            while self.bot.store.backlog() and time.monotonic() < deadline:
                self.chat.wait_for(lambda: False, 0.05)  # wakes at each message printed
        except Exception as exc:  # best effort: a shell that cannot tell still ends cleanly
            log.warning("could not wait for the bot's last posts: %s", type(exc).__name__)

    def _latest_id(self) -> str:
        latest = self.bot.store.recent(1)
        if not latest:
            raise ScriptError("no request yet")
        return latest[0].id


def open_session(
    out: TextIO,
    *,
    deploy_seconds: float,
    color: bool,
    approvers: tuple[str, ...] = APPROVERS,
    inventory: str | None = None,
    db: str | None = None,
) -> tuple[Session, ExitStack]:
    """Start the simulator, the demo image server and the bot; close the stack to stop."""
    from ..ovhcloud.client import make_client
    from ..preflight.inspector import HttpImageInspector
    from ..simulator import DEMO_CREDENTIALS, Simulator

    stack = ExitStack()
    simulator = Simulator(
        inventory=inventory, deploy_seconds=deploy_seconds, credentials=DEMO_CREDENTIALS
    )
    endpoint = simulator.start(host="127.0.0.1", port=0)
    stack.callback(simulator.stop)
    images = ImageServer(demo_images()).start()
    stack.callback(images.stop)
    if db is None:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="byoi-shell-"))
        db = str(Path(folder) / "byoi.db")
    settings = Settings.load({**os.environ, "BYOI_DB": db})
    if not os.environ.get("BYOI_CONFIG"):
        policy = Policy(approvers=frozenset(approvers), ttl=settings.approval_ttl)
        settings.policies = PolicySet((policy,))
    chat = ConsoleChat(out, color=color)
    client = make_client(endpoint, timeout=(2, 10), **DEMO_CREDENTIALS)
    bot = build_bot(
        settings,
        chat,
        provider=make_provider(settings, client),
        inspector=HttpImageInspector(allowlist=("127.0.0.1/32",)),
        poll=timedelta(seconds=1),
        post_interval=0.0,  # a terminal needs no pacing
        boot_ports=simulator.boots.port_of,  # the simulated servers' SSH, for the boot gate
    )
    bot.start()
    stack.callback(bot.stop)
    servers = sorted(client.get("/dedicated/server"))
    return Session(bot, chat, images.base_url, servers, tuple(sorted(approvers))), stack


def banner(session: Session) -> str:
    """What the shell shows first: who is who, and which servers exist."""
    policy = session.bot.deployments.policies.for_server("*")
    return "\n".join(
        [
            "*byoi-bot shell* — Slack replaced by this terminal, OVHcloud by the simulator.",
            f"Users: anyone; e.g. {REQUESTER} asks, {', '.join(sorted(policy.approvers))} "
            f"approve ({policy.required} needed), {OUTSIDER} may not approve.",
            "Servers: " + ", ".join(session.servers),
            f"Demo images: {session.images_url}/debian-12.qcow2 (also {{images}}/…: "
            "debian-12.raw, no-esp.raw, huge.raw, rescue.iso)",
            "Type `alice: /byoi help`, `bob reacts :white_check_mark:`, `wait until done`.",
        ]
    )


def run_shell(args: argparse.Namespace) -> int:
    """Entry point of `byoi-bot shell`."""
    out = sys.stdout
    color = out.isatty() and not args.no_color
    session, stack = open_session(
        out,
        deploy_seconds=args.deploy_seconds,
        color=color,
        approvers=tuple(a.strip() for a in args.approvers.split(",") if a.strip()),
        inventory=args.inventory,
    )
    with stack:
        session.chat.say(banner(session))
        if args.script:
            source = sys.stdin if args.script == "-" else open(args.script)  # noqa: SIM115
            with source:
                return run_script(session, source)
        return _interactive(session)


def run_script(session: Session, lines: TextIO) -> int:
    """Run lines non-interactively; 1 on the first failed line (e.g. a `wait until` timeout)."""
    for number, line in enumerate(lines, 1):
        try:
            session.run_line(line)
        except ScriptError as exc:
            session.chat.say(f"script line {number}: {exc}")
            return 1
    session.settle()
    return 0


def _interactive(session: Session) -> int:
    with suppress(ImportError):
        import readline  # noqa: F401  (history and line editing for input())
    while True:
        try:
            line = input("byoi> ")
        except EOFError:
            session.settle()
            return 0
        try:
            session.run_line(line)
        except ScriptError as exc:
            session.chat.say(str(exc))
