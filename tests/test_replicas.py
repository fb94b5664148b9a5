"""Two `byoi-bot run --http` replicas on one PostgreSQL database, SIGKILLed mid-work (issue 15).

Slack sends any event to any replica and retries unacknowledged ones on any other: the slash
command goes to one replica, the approval to the other, retried deliveries to both. The
replica making the start call is killed while it waits for OVHcloud's answer, and the leader
(which polls) is killed while the installer runs; each comes back. Every request ends
`done` with one start call per server, one done post per thread and a whole audit trail.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from bot_harness import APPROVER
from process_harness import SERVER, ProcessBot, wait_until

pytestmark = pytest.mark.timeout(120)

STEP = 10.0  # seconds per install step (7 steps)
SERVER_2 = "ns3003.ip-51-75-3.eu"
STORY = [
    ("created", None, "pending_approval"),
    ("approval", None, None),
    ("transition", "pending_approval", "approved"),
    ("transition", "approved", "submitting"),
    ("transition", "submitting", "deploying"),
    ("transition", "deploying", "booting"),  # OVHcloud's done: the server must answer
    ("transition", "booting", "done"),
]


@pytest.fixture
def replicas(tmp_path, postgres_dsn):
    a = ProcessBot(tmp_path, deploy_seconds=7 * STEP, db=postgres_dsn)
    a.name = "a"
    b = a.replica("b")
    yield a, b
    b.close()
    a.close()
    print(a.log(), b.log())  # shown by pytest when the test failed


def row_of(p: ProcessBot, server: str) -> dict:
    return next(r for r in p.rows() if r["server"] == server)


def wait_row(p: ProcessBot, server: str, *states: str, timeout: float = 30) -> dict:
    wait_until(lambda: row_of(p, server)["state"] in states, timeout, f"{server} in {states}")
    return row_of(p, server)


def starts_on(p: ProcessBot, server: str) -> int:
    return sum(
        len(p.api_calls("POST", f"/dedicated/server/{server}/{action}"))
        for action in ("reinstall", "bringYourOwnImage")
    )


def test_two_replicas_killed_mid_work_deploy_each_server_once(replicas):
    a, b = replicas
    a.start()  # the first replica up leads: it polls, expires and reconciles
    b.start()

    # 1. Slash command to A, approval to B, its retry to A; B submits and is killed while
    #    OVHcloud holds the answer (the task exists already: the survivor must adopt it).
    card = a.deploy()
    a.simulator.inject(delay_seconds=30, method="POST", paths=f"/dedicated/server/{SERVER}/*")
    assert b.react(APPROVER, card["ts"], event_id="EvApproval1") == 200
    wait_until(lambda: starts_on(a, SERVER) == 1, what="the POST /reinstall")
    assert a.react(APPROVER, card["ts"], event_id="EvApproval1") == 200  # Slack's retry
    assert row_of(a, SERVER)["state"] == "submitting"
    b.kill()
    row = wait_row(a, SERVER, "deploying", "failed")  # A reconciles: the task is adopted
    assert row["state"] == "deploying" and row["provider_handle"] == "reinstall:5000001"
    b.restart()

    # 2. A second server, slash command to B, approval to A and retried to B; the leader
    #    (A, polling both deployments) is killed mid-install; B takes the lead and finishes.
    card_2 = b.deploy(server=SERVER_2, count=2)
    assert a.react(APPROVER, card_2["ts"], event_id="EvApproval2") == 200
    assert b.react(APPROVER, card_2["ts"], event_id="EvApproval2") == 200
    wait_row(a, SERVER_2, "deploying")
    a.simulator.advance(1.5 * STEP)
    a.wait_thread(card_2["ts"], "🚧")
    a.kill()
    a.simulator.advance(6 * STEP)  # the installers go on while a replica is down
    for server in (SERVER, SERVER_2):
        assert wait_row(b, server, "done", "failed")["state"] == "done", "\n".join(
            f"{x['request_id']} {x['action']} {x['to_state']} {x['reason']}" for x in b.audit()
        )
    a.restart()

    # 3. Exactly one start call per server, one done post per thread, no audit row lost.
    assert starts_on(a, SERVER) == 1 and starts_on(a, SERVER_2) == 1
    for ts in (card["ts"], card_2["ts"]):
        done = [t for t in b.wait_thread(ts, "is done in") if "is done in" in t]
        assert len(done) == 1, b.thread(ts)
        assert sum("is approved." in t for t in b.thread(ts)) == 1, b.thread(ts)
    for r in b.rows():
        trail = [(x["action"], x["from_state"], x["to_state"]) for x in b.audit()
                 if x["request_id"] == r["id"]]  # fmt: skip
        assert trail == STORY, trail
    password = urlsplit(a.db).password
    assert password and password not in a.log() + b.log(), "the DSN's password is never logged"
