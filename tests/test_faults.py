"""Faults (issue 7): crashes, a flaky OVHcloud API, a rate-limiting Slack, a locked database.

- The bot as a real process, SIGKILLed at each step of a deployment and restarted on the
  same SQLite file (tests/process_harness.py): one OVHcloud start call, a correct end.
- OVHcloud answering 500/404/timeouts for minutes (fake clock), then recovering.
- Slack answering 429 (Retry-After) and 5xx, briefly and beyond slack_sdk's retries.
- The SQLite file write-locked by another connection for a moment.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from bot_harness import APPROVER, CHANNEL, BotHarness
from process_harness import SERVER, ProcessBot, wait_until

from byoi_bot.core.states import State

pytestmark = pytest.mark.timeout(60)

DONE_CARD = "✅ *done*"  # the card's status line at the end
STEP = 10.0  # seconds per install step in the process tests (7 steps, deploy_seconds=70)


# ----------------------------------------------------------------------------------------
# 1. SIGKILL at each step of a deployment, then a restart on the same database
# ----------------------------------------------------------------------------------------


@pytest.fixture
def proc(tmp_path):
    # The installs' clock stands still but for `simulator.advance()`: the step the bot reads
    # depends on what the test did, not on how long the machine took to restart the bot.
    bot = ProcessBot(tmp_path, deploy_seconds=7 * STEP, simulator_clock=lambda: 0.0)
    yield bot
    bot.close()
    print(bot.log())  # shown by pytest when the test failed


def finish_deployment(p: ProcessBot, ts: str) -> dict:
    """Move the simulated deployment on (a progress post), then to its end; wait for `done`."""
    p.wait_state("deploying")
    p.simulator.advance(2.5 * STEP)
    p.wait_thread(ts, "🚧")
    p.simulator.advance(5 * STEP)
    row = p.wait_state("done", "failed")
    p.wait_thread(ts, "is done in")
    return row


def assert_one_clean_story(p: ProcessBot, ts: str) -> None:
    """Each post of the story once, in order; at most one status line repeated once."""
    thread = p.thread(ts)
    story = [
        f"<@{APPROVER}> approved (1/1)",
        "is approved.",
        "started at OVHcloud",
        "is done in",
    ]
    positions = []
    for needle in story:
        found = [i for i, text in enumerate(thread) if needle in text]
        assert len(found) == 1, f"{needle!r} posted {len(found)} times:\n{thread}"
        positions += found
    assert positions == sorted(positions), f"posts out of order:\n{thread}"
    assert not [t for t in thread if "🔥" in t or "⚠️" in t or "failed" in t], thread
    repeated = {text: n for text, n in Counter(thread).items() if n > 1}
    assert len(repeated) <= 1 and all(
        n == 2 and text.startswith("🚧") for text, n in repeated.items()
    ), f"duplicated posts: {repeated}"
    progress = [i for i, text in enumerate(thread) if text.startswith("🚧")]
    assert progress and positions[2] < min(progress) and max(progress) < positions[3], thread
    # the card is redrawn right after the state is stored: wait for that edit to arrive
    assert p.slack.wait_for(
        lambda: DONE_CARD in str(p.slack.message(CHANNEL, ts)["blocks"]), timeout=10
    ), "the card shows the end"


def test_sigkill_right_after_approval_then_restart_submits_once(proc):
    """Killed in `approved` (submission's preflight under way): the restart submits it once."""
    p = proc
    p.start()
    card = p.deploy()
    server_path = f"/dedicated/server/{SERVER}"
    reads_before = len(p.api_calls("GET", server_path))
    p.simulator.inject(delay_seconds=30, method="GET", paths=server_path, count=1)
    assert p.react(APPROVER, card["ts"]) == 200
    p.wait_thread(card["ts"], "is approved.")
    wait_until(lambda: len(p.api_calls("GET", server_path)) > reads_before, what="preflight")
    assert p.state() == "approved" and p.starts() == 0
    p.kill()

    p.restart()
    p.wait_thread(card["ts"], "started at OVHcloud")
    row = finish_deployment(p, card["ts"])
    assert row["state"] == "done" and p.starts() == 1
    assert_one_clean_story(p, card["ts"])


def test_sigkill_while_submitting_then_restart_adopts_the_task(proc):
    """Killed while the POST /reinstall answer is held: the restart adopts the task, no 2nd POST.

    The simulator registers a held POST's task before it holds the answer, so the task list
    shows it and the restarted bot must follow it (not fail it, not post again).
    """
    p = proc
    p.start()
    card = p.deploy()
    p.simulator.inject(delay_seconds=30, method="POST", paths="/dedicated/server/*/reinstall")
    assert p.react(APPROVER, card["ts"]) == 200
    wait_until(lambda: p.starts() == 1, what="the POST /reinstall")
    assert p.state() == "submitting"
    p.kill()

    p.restart()
    row = p.wait_state("deploying", "failed")
    assert row["state"] == "deploying", p.thread(card["ts"])
    assert row["provider_handle"] == "reinstall:5000001"
    row = finish_deployment(p, card["ts"])
    assert row["state"] == "done" and p.starts() == 1
    assert_one_clean_story(p, card["ts"])


def test_sigkill_while_deploying_then_restart_follows_to_done(proc):
    """Killed while following the deployment (which goes on meanwhile): followed to `done`."""
    p = proc
    p.start()
    card = p.deploy()
    assert p.react(APPROVER, card["ts"]) == 200
    p.wait_thread(card["ts"], "started at OVHcloud")
    p.wait_state("deploying")
    p.simulator.advance(1.5 * STEP)
    p.wait_thread(card["ts"], "Download image")
    p.kill()
    p.simulator.advance(2 * STEP)  # the installer does not wait for the bot
    posted = len(p.thread(card["ts"]))

    p.restart()
    # the step reached meanwhile ("Write image to disk", or the next one: the simulator's
    # clock runs in real time too, and the card's first post is paced with the replies)
    p.slack.wait_for(lambda: len(p.thread(card["ts"])) > posted, timeout=15)
    assert "Download image" not in p.thread(card["ts"])[-1]
    row = finish_deployment(p, card["ts"])
    assert row["state"] == "done" and p.starts() == 1
    assert_one_clean_story(p, card["ts"])


def test_sigkill_while_submitting_and_down_past_the_end_of_the_install(proc):
    p = proc
    p.start()
    card = p.deploy()
    p.simulator.inject(delay_seconds=30, method="POST", paths="/dedicated/server/*/reinstall")
    assert p.react(APPROVER, card["ts"]) == 200
    wait_until(lambda: p.starts() == 1, what="the POST /reinstall")
    p.kill()
    p.simulator.advance(8 * STEP)  # the bot stays down longer than the installation

    p.restart()
    row = p.wait_state("done", "failed")
    assert p.starts() == 1
    assert not any("nothing on the server changed" in t for t in p.thread(card["ts"]))
    assert row["state"] == "done"


# ----------------------------------------------------------------------------------------
# In-process bots (tests/bot_harness.py): fake clock shared by the bot and the simulator
# ----------------------------------------------------------------------------------------


@pytest.fixture
def harness(tmp_path):
    h = BotHarness(tmp_path, approvers=(APPROVER,))
    yield h
    h.close()


def deploy_command(h: BotHarness) -> str:
    efi = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
    return f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {efi}"


def deploying(h: BotHarness, deploy_seconds: float = 700.0) -> dict:
    """A deployment of SERVER started at OVHcloud (100 s per install step); returns its card."""
    h.simulator.world.deploy_seconds = deploy_seconds
    assert h.slash(deploy_command(h)) == 200
    card = h.wait_card()
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    return card


def advance(h: BotHarness, seconds: float) -> None:
    """Time passes for the bot and for OVHcloud."""
    h.clock.advance(seconds)
    sim_clock = getattr(h, "sim_clock", h.clock)
    if sim_clock is not h.clock:
        sim_clock.advance(seconds)


def request_row(h: BotHarness):
    return h.bot.store.recent(1)[0]


# ----------------------------------------------------------------------------------------
# 2. OVHcloud answering 500/404/timeouts for minutes, then recovering
# ----------------------------------------------------------------------------------------


class _FlakyReads:
    """The bot's ovh client, with the simulator failing the status reads while `fault` is set.

    Before each GET of a task or of install/status (`paths`), a one-shot simulator fault is
    injected: an HTTP status (500, 404, …) or "timeout" (the answer is held past the client's
    read timeout). So the errors come from the simulator over HTTP whatever the order and the
    number of the provider's reads; `times` limits how many reads fail (None: all).
    """

    def __init__(self, client, simulator, paths=("/task/", "/install/status")) -> None:
        self.client, self.simulator, self.paths = client, simulator, paths
        self.fault: int | str | None = None
        self.times: int | None = None
        self.failed = 0

    def get(self, path: str, **query):
        if self.fault is not None and self.times != 0 and any(p in path for p in self.paths):
            if self.fault == "timeout":
                self.simulator.inject(delay_seconds=1.5, method="GET", paths=path)
            else:
                self.simulator.inject(read_errors={"status": self.fault, "count": 1})
            self.failed += 1
            self.times = None if self.times is None else self.times - 1
        return self.client.get(path, **query)

    def __getattr__(self, name: str):
        return getattr(self.client, name)


def test_ovhcloud_read_errors_for_minutes_then_recovery(harness):
    """500s, 404s, timeouts and 503s on every status read for ~6 minutes of fake time.

    The deployment stays `deploying` and its thread silent; no poll sleeps in place (the
    poller plans the next try, 2 s then doubling); then the API recovers and the deployment
    is followed to `done`.
    """
    from byoi_bot.ovhcloud.client import make_client
    from byoi_bot.ovhcloud.provider import RetryPolicy
    from byoi_bot.simulator import DEMO_CREDENTIALS

    h = harness
    slept: list[float] = []
    provider = h.bot.deployments.provider.default  # the reinstall provider behind the router
    provider.retry = RetryPolicy(sleep=slept.append)
    # a short read timeout, so that a held answer is a timeout in a fraction of a second
    client = make_client(h.endpoint, timeout=(2, 0.4), **DEMO_CREDENTIALS)
    provider.client = flaky = _FlakyReads(client, h.simulator)
    card = deploying(h)
    h.poll(advance=150)
    h.wait_thread(card["ts"], "Download image")
    posts, started = len(h.thread(card["ts"])), h.clock.now()
    request = request_row(h)

    cycles = [500, 500, 500, 404, 404, "timeout", 503]
    retries = []
    for fault in cycles:
        flaky.fault = fault
        h.poll(advance=60)
        retries.append(h.bot.poller.plan.next_try(request.id) - h.clock.now())
        assert request_row(h).state is State.DEPLOYING, f"no false failure on {fault}"
        assert len(h.thread(card["ts"])) == posts, f"no post while OVHcloud answers {fault}"
    flaky.fault = None
    outage = h.clock.now() - started
    assert outage.total_seconds() >= 5.5 * 60, outage
    assert slept == [], "no poll waits in place"
    assert [r.total_seconds() for r in retries] == [2, 4, 8, 16, 20, 20, 20]
    assert request_row(h).progress == request.progress

    h.poll(advance=20)
    thread = h.thread(card["ts"])
    assert len(thread) == posts + 1 and thread[-1].startswith("🚧"), thread[posts:]
    assert "Configure boot loader" in thread[-1], "the installation went on meanwhile"
    h.poll(advance=600)
    thread = h.wait_thread(card["ts"], "is done in")
    assert request_row(h).state is State.DONE and h.starts() == 1
    assert not [t for t in thread if "🔥" in t or "failed" in t], thread


def test_a_spurious_404_of_install_status_posts_nothing(harness):
    h = harness
    card = deploying(h)
    h.poll(advance=150)
    h.wait_thread(card["ts"], "Download image")
    before = h.thread(card["ts"])
    provider = h.bot.deployments.provider.default  # the reinstall provider behind the router
    flaky = _FlakyReads(provider.client, h.simulator, ("/install/status",))
    provider.client = flaky
    flaky.fault, flaky.times = 404, 1  # one spurious 404; the task is still `doing`
    h.poll(advance=1)
    assert flaky.failed == 1
    h.poll(advance=1)
    assert request_row(h).state is State.DEPLOYING
    assert h.thread(card["ts"]) == before, "nothing changed, so nothing is posted"


# ----------------------------------------------------------------------------------------
# 3. Slack answering 429 (Retry-After) and 5xx
# ----------------------------------------------------------------------------------------


@pytest.fixture
def slack_sleeps(monkeypatch) -> list[float]:
    """slack_sdk's retry waits, recorded instead of slept (Retry-After is honoured in them)."""
    import time

    from slack_sdk.http_retry import builtin_handlers, handler

    slept: list[float] = []

    class _Time:
        def sleep(self, seconds: float) -> None:
            slept.append(seconds)

        def __getattr__(self, name: str):
            return getattr(time, name)

    monkeypatch.setattr(builtin_handlers, "time", _Time())
    monkeypatch.setattr(handler, "time", _Time())
    return slept


def failed_calls(h: BotHarness, method: str) -> list[int]:
    return [c.status for c in h.slack.calls_to(method) if not c.ok]


def test_slack_429_and_5xx_are_retried_and_every_post_arrives(harness, slack_sleeps):
    h = harness
    h.slack.fail_next("chat.postMessage", status=429, retry_after=7)  # the card
    h.slack.fail_next("reactions.add", error="internal_error", status=503)
    h.bot.deployments.card_wait = 0.2  # the command answers while the card waits
    assert h.slash(deploy_command(h)) == 200
    h.wait_answer("its card appears")
    (head,) = h.bot.store.heads()
    h.slack.fail_next("chat.postMessage", status=429, retry_after=7)
    assert h.bot.courier.deliver(head) == 7, "the outbox waits as long as Slack asks"
    h.bot.courier.drain()  # the sender, 7 s later
    card = h.wait_card()

    h.slack.fail_next("chat.postMessage", error="internal_error", status=500, count=2)
    h.slack.fail_next("chat.update", status=429, retry_after=2)
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    h.poll(advance=15)
    h.wait_thread(card["ts"], "🚧")
    h.poll(advance=60)
    thread = h.wait_thread(card["ts"], "is done in")

    assert failed_calls(h, "chat.postMessage") == [429, 429, 500, 500]
    assert failed_calls(h, "chat.update") == [429] and failed_calls(h, "reactions.add") == [503]
    for needle in (f"<@{APPROVER}> approved", "is approved.", "started at OVHcloud"):
        assert sum(needle in t for t in thread) == 1, (needle, thread)
    assert len(thread) == len(set(thread)), "no post twice"
    assert len(h.cards()) == 1 and DONE_CARD in str(h.slack.message(CHANNEL, card["ts"])["blocks"])
    assert request_row(h).state is State.DONE and h.starts() == 1


def test_slack_failing_for_a_while_loses_no_post_and_posts_none_twice(harness, slack_sleeps):
    """The outbox keeps what Slack refused (429, 5xx) and sends it, once, when Slack is back."""
    h = harness
    card = deploying(h, deploy_seconds=70.0)
    h.poll(advance=15)
    h.wait_thread(card["ts"], "Download image")
    posts = h.thread(card["ts"])

    h.slack.fail_next("chat.postMessage", error="service_unavailable", status=503, count=3)
    h.slack.fail_next("chat.update", status=429, retry_after=30, count=4)
    h.poll(advance=20)  # the outbox tries once per lane, then waits
    request = request_row(h)
    assert request.state is State.DEPLOYING and "Write image to disk" in request.last_status
    assert h.thread(card["ts"]) == posts and h.bot.store.backlog() == 2
    assert slack_sleeps == [], "no retry sleeps in the caller: the outbox waits instead"
    for _ in range(4):
        h.bot.courier.drain()  # the sender's later attempts
    assert failed_calls(h, "chat.postMessage") == [503] * 3
    assert failed_calls(h, "chat.update") == [429] * 4
    thread = h.thread(card["ts"])
    assert thread[:-1] == posts and "Write image to disk" in thread[-1]
    assert h.bot.store.backlog() == 0
    assert "Write image to disk" in str(h.slack.message(CHANNEL, card["ts"])["blocks"])

    h.poll(advance=60)
    thread = h.wait_thread(card["ts"], "is done in")
    assert len(thread) == len(posts) + 2
    assert DONE_CARD in str(h.slack.message(CHANNEL, card["ts"])["blocks"])
    assert request_row(h).state is State.DONE and h.starts() == 1


def test_slack_failing_during_the_approval_does_not_stop_the_deployment(harness, slack_sleeps):
    h = harness
    assert h.slash(deploy_command(h)) == 200
    card = h.wait_card()
    h.slack.fail_next("chat.postMessage", error="internal_error", status=500, count=3)
    h.slack.fail_next("chat.update", error="internal_error", status=500, count=3)
    h.react(APPROVER, ts=card["ts"])
    h.slack.wait_for(lambda: request_row(h).state is State.DEPLOYING)
    for _ in range(3):
        h.bot.courier.drain()  # the sender's later attempts
    thread = h.thread(card["ts"])
    for needle in (f"<@{APPROVER}> approved", "is approved.", "started at OVHcloud"):
        assert sum(needle in t for t in thread) == 1, (needle, thread)
    assert h.starts() == 1
    assert [a["action"] for a in h.bot.store.audit(request_row(h).id)][:2] == [
        "created",
        "approval",
    ]


def test_a_card_slack_answers_5xx_to_is_posted_once_when_slack_is_back(harness, slack_sleeps):
    """An unknown outcome is not a refusal: the card stays queued, the channel is read for
    it before each new try, and it is posted once (issue 18; it was cancelled before)."""
    h = harness
    h.bot.deployments.card_wait = 0.2  # the command answers while the card waits
    h.slack.fail_next("chat.postMessage", error="internal_error", status=500, count=3)
    assert h.slash(deploy_command(h)) == 200
    h.wait_answer("its card appears")
    assert h.cards() == [] and request_row(h).state is State.PENDING_APPROVAL
    for _ in range(3):
        h.bot.courier.drain()  # the sender's later attempts
    card = h.wait_card()
    assert len(h.cards()) == 1 and failed_calls(h, "chat.postMessage") == [500] * 3
    assert len(h.slack.calls_to("conversations.history")) == 3
    assert request_row(h).message_ts == card["ts"]


# ----------------------------------------------------------------------------------------
# 4. The SQLite file write-locked by another connection for a moment
# ----------------------------------------------------------------------------------------


class _WriteLock:
    """Another connection holding SQLite's write lock (BEGIN IMMEDIATE) for `seconds`."""

    def __init__(self, path: str, seconds: float) -> None:
        self.path, self.seconds = path, seconds
        self.locked, self.stop = threading.Event(), threading.Event()
        self.released_at: datetime | None = None
        self.audit_rows_at_release = -1
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def __enter__(self) -> _WriteLock:
        self.thread.start()
        assert self.locked.wait(5), "the write lock was taken"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def wait_released(self) -> None:
        self.thread.join(self.seconds + 5)
        assert self.released_at is not None

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.locked.set()
            self.stop.wait(self.seconds)  # the bot's writers meet a locked database meanwhile
            self.audit_rows_at_release = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
            self.released_at = datetime.now(UTC)
            conn.execute("ROLLBACK")
        finally:
            conn.close()


def _read_state(path: str) -> str:
    conn = sqlite3.connect(path, timeout=1)
    try:
        return conn.execute("SELECT state FROM requests").fetchone()[0]
    finally:
        conn.close()


def test_a_locked_database_makes_the_bot_wait_not_fail(harness):
    h = harness
    h.simulator.world.deploy_seconds = 70.0
    assert h.slash(deploy_command(h)) == 200
    card = h.wait_card()

    with _WriteLock(h.db, seconds=1.0) as lock:  # approval and submission wait
        assert h.react(APPROVER, ts=card["ts"]) == 200
        assert _read_state(h.db) == "pending_approval", "readers are not blocked (WAL)"
        lock.wait_released()
    h.wait_thread(card["ts"], "started at OVHcloud")
    request = request_row(h)
    audit = h.bot.store.audit(request.id)
    assert lock.audit_rows_at_release == 1, "only `created` was written while the lock was held"
    assert any(a["action"] == "approval" for a in audit), "the approval waited for the lock"
    assert [a["to_state"] for a in audit if a["action"] == "transition"] == [
        "approved",
        "submitting",
        "deploying",
    ]
    assert request.state is State.DEPLOYING and h.starts() == 1

    with _WriteLock(h.db, seconds=1.0) as lock:  # a poll cycle waits
        h.poll(advance=25)
        assert lock.released_at is not None, "the poll could only write after the release"
    assert "Check image checksum" in request_row(h).last_status
    h.wait_thread(card["ts"], "Check image checksum")
    h.poll(advance=60)
    h.wait_thread(card["ts"], "is done in")
    assert request_row(h).state is State.DONE and h.starts() == 1


# A deploy to many servers, SIGKILLed mid-rollout


def test_sigkill_mid_rollout_then_restart_starts_each_server_once(tmp_path):
    """Killed while a server's start call is held: the restart adopts that task, and the
    rollout goes on with the others, one start call per server in all."""
    import sqlite3

    step = STEP
    servers = ["ns1001.ip-51-75-1.eu", "ns3003.ip-51-75-3.eu", "ns5005.ip-149-56-5.net"]
    p = ProcessBot(tmp_path, deploy_seconds=7 * step)
    try:
        p.start()
        url = f"{p.images.base_url}/debian-12.qcow2"
        p.slash(f"deploy {','.join(servers)} {url} efi-bootloader=x.efi parallel=1")
        card = p.wait_card()
        p.simulator.inject(delay_seconds=30, method="POST", paths="/dedicated/server/*/reinstall")
        p.react(APPROVER, card["ts"])
        wait_until(lambda: p.starts() == 1, timeout=20, what="the first start call")
        p.kill()

        p.restart()
        for count in (1, 2, 3):
            wait_until(lambda n=count: p.starts() == n, timeout=20, what=f"start {count}")
            p.simulator.advance(8 * step)  # this server's installation ends
            wait_until(lambda n=count: sum(r["state"] == "done" for r in p.rows()) == n, 20)

        def fleet_state() -> str:
            with sqlite3.connect(p.db) as conn:
                return conn.execute("SELECT state FROM fleets").fetchone()[0]

        wait_until(lambda: fleet_state() == "done", 20, "the fleet done")
        assert p.starts() == 3
        posted = sorted(c["path"].split("/")[4] for c in p.api_calls("POST", "/reinstall"))
        assert posted == sorted(servers), "one start call per server"
        p.wait_thread(card["ts"], "Rollout finished")
    finally:
        p.close()
        print(p.log())  # shown by pytest when the test failed
