"""A whole bot on 127.0.0.1 for story tests: fake Slack, the OVHcloud simulator, demo images.

The bot under test is the production one (`slack.modes.build_slack_bot` and its WSGI server);
only its clock is fake, and its jobs are run by the test (`poll()`, `sweep()`) instead of
by APScheduler, so stories are deterministic and need no sleeps.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fakes.signing import event_body, post_signed, reaction_event, slash_command_body
from fakes.slack_api import FakeSlack

from byoi_bot.config import Settings
from byoi_bot.console.image_server import ImageServer
from byoi_bot.console.images import demo_images
from byoi_bot.health import SlackToken
from byoi_bot.ops_http import bot_routes
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.phone_home_http import phone_home_route
from byoi_bot.preflight.inspector import HttpImageInspector
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot, http_server, serve_in_thread
from byoi_bot.wiring import make_provider

SECRET = "8f742231b10e8888abcd99aaabbb85a5"
REQUESTER, APPROVER, APPROVER_2, OUTSIDER = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"
CHANNEL = "C0OPS"


@dataclass
class FakeClock:
    """A clock the test moves by hand; shared by the bot and the simulator."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> datetime:
        with self.lock:
            return self.current

    def monotonic(self) -> float:
        return self.now().timestamp()

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.current += timedelta(seconds=seconds)


def ack_answer(body: str) -> str:
    """The answer an ack carries (help, a command error), or "" (none, or "Checking …")."""
    text = body  # Bolt sends a text-only ack as plain text
    if body.startswith("{"):
        try:
            text = json.loads(body).get("text", "")
        except ValueError:
            text = ""
    return "" if text.startswith("Checking `") else text


class ChannelView:
    """What a test sees of the channel in the fake Slack `self.slack`: cards and threads."""

    slack: FakeSlack
    wait_seconds = 5.0

    def wait_card(self, count: int = 1) -> dict:
        """The newest card once `count` cards have been posted and offer ✅ and ❌."""
        self.slack.wait_for(lambda: len(self.cards()) >= count, timeout=self.wait_seconds)
        card = self.cards()[-1]
        self.slack.wait_for(lambda: len(self.slack.reactions(CHANNEL, card["ts"])) == 2)
        return card

    def cards(self) -> list[dict]:
        return [
            m
            for m in self.slack.messages(channel=CHANNEL)
            if m.get("blocks") and not m.get("thread_ts")
        ]

    def thread(self, ts: str) -> list[str]:
        return [m["text"] for m in self.slack.messages(channel=CHANNEL, thread_ts=ts)]

    def wait_thread(self, ts: str, needle: str) -> list[str]:
        self.slack.wait_for(
            lambda: any(needle in t for t in self.thread(ts)), timeout=self.wait_seconds
        )
        return self.thread(ts)


class BotHarness(ChannelView):
    """Starts everything; `close()` stops it all. One per test."""

    def __init__(self, tmp_path, *, approvers=(APPROVER, APPROVER_2), required=1, extra_env=None,
                 db: str | None = None):  # fmt: skip
        self.acks: dict[str, list[str]] = {}  # user -> answers carried by the acks
        self.clock = FakeClock()  # the bot's
        self.sim_clock = FakeClock()  # the simulator's: deployments advance with it
        self.slack = FakeSlack().start()
        self.simulator = Simulator(
            deploy_seconds=60.0, clock=self.sim_clock.monotonic, credentials=DEMO_CREDENTIALS
        )
        self.endpoint = self.simulator.start(host="127.0.0.1", port=0)
        self.images = ImageServer(demo_images()).start()
        self.db = db or str(tmp_path / "byoi.db")  # BYOI_DB: a SQLite file or a PostgreSQL URL
        self.env = {
            "BYOI_DB": self.db,
            "BYOI_APPROVERS": ",".join(approvers),
            "BYOI_REQUIRED_APPROVALS": str(required),
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.slack.base_url,
            **(extra_env or {}),
        }
        self._start_bot()

    def _start_bot(self) -> None:
        settings = Settings.load(self.env)
        client = make_client(self.endpoint, timeout=(2, 5), **DEMO_CREDENTIALS)
        self.slack_token = SlackToken()
        self.bot, self.app = build_slack_bot(
            settings,
            self.slack_token,
            provider=make_provider(settings, client),  # `api` per policy, as in production
            inspector=HttpImageInspector(allowlist=("127.0.0.1/32",)),
            clock=self.clock,
            boot_ports=self.simulator.boots.port_of,  # each simulated server's SSH port
        )
        self.bot.metrics.watch_ovhcloud(client._session)  # as `make_provider` does
        self.bot.store.on_enqueue = self._drain  # posts go out at once, in order
        self.bot.deployments.reconcile()
        routes = bot_routes(self.bot, self.slack_token, serving=lambda: True)
        phone_home = phone_home_route(self.bot.deployments)
        self.server = http_server(self.app, "127.0.0.1", 0, routes.answer, SECRET, phone_home)
        serve_in_thread(self.server)
        self.url = f"http://127.0.0.1:{self.server.server_port}/slack/events"

    def _drain(self) -> None:
        # a background thread (checksum) may outlive the test and its store
        with contextlib.suppress(sqlite3.ProgrammingError):
            self.bot.courier.drain()

    def restart(self) -> None:
        """Stop the bot process's parts and start fresh ones on the same store and services."""
        self._stop_bot()
        self._start_bot()

    def _stop_bot(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.finish_background()
        self.bot.jobs.stop()
        self.bot.sender.stop()  # running when a test started the bot's threads
        self.bot.store.close()

    def close(self) -> None:
        self._stop_bot()
        self.images.stop()
        self.simulator.stop()
        self.slack.stop()

    # -- what users do --------------------------------------------------------------

    def slash(self, text: str, user: str = REQUESTER) -> int:
        body = slash_command_body(
            text, user_id=user, channel_id=CHANNEL, response_url=self.slack.response_url(user)
        )
        status, text = post_signed(self.url, body, SECRET)
        if answer := ack_answer(text):
            self.acks.setdefault(user, []).append(answer)
        return status

    def react(self, user: str, reaction: str = "white_check_mark", *, ts: str, added=True,
              event_id: str | None = None) -> int:  # fmt: skip
        kind = "reaction_added" if added else "reaction_removed"
        event = reaction_event(kind, user=user, reaction=reaction, channel=CHANNEL, ts=ts)
        status, _ = post_signed(self.url, event_body(event, event_id=event_id), SECRET)
        return status

    # -- what the bot does on its schedule ------------------------------------------

    def poll(self, advance: float = 0) -> None:
        """Move time on (bot and simulator), then run one poll cycle as the scheduler would."""
        self.clock.advance(advance)
        self.sim_clock.advance(advance)
        self.bot.poller.poll_all()

    # -- what tests look at ---------------------------------------------------------

    def answers(self, user: str = REQUESTER) -> list[str]:
        """What `user` was told: answers in the acks, then those sent to the response_url."""
        later = [r.get("text", "") for r in self.slack.responses(user)]
        return self.acks.get(user, []) + later

    def wait_answer(self, needle: str, user: str = REQUESTER) -> str:
        self.slack.wait_for(lambda: any(needle in a for a in self.answers(user)))
        return next(a for a in self.answers(user) if needle in a)

    def starts(self) -> int:
        """How many deployment start calls reached the simulator."""
        return sum(
            1 for c in self.simulator.calls()
            if c["method"] == "POST" and c["path"].endswith(("/reinstall", "/bringYourOwnImage"))
        )  # fmt: skip
