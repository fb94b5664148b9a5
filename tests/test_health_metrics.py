"""/healthz, /readyz and /metrics of a bot (issue 22), through its real HTTP server."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from bot_harness import APPROVER, CHANNEL, BotHarness
from prometheus_client.parser import text_string_to_metric_families
from tools import require_tool

from byoi_bot.core.posts import Post
from byoi_bot.metrics import ovhcloud_route

SERVER = "ns1001.ip-51-75-1.eu"
SERVER_ROUTE = "/dedicated/server/{serviceName}"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def harness(tmp_path, db_location):
    h = BotHarness(tmp_path, db=db_location)
    h.bot.start()
    yield h
    h.close()


def get(h: BotHarness, path: str, method: str = "GET") -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{h.server.server_port}{path}"
    try:
        with _NO_PROXY.open(urllib.request.Request(url, method=method), timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def samples(h: BotHarness) -> dict[tuple[str, tuple], float]:
    status, body = get(h, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def deploy_to_done(h: BotHarness) -> None:
    efi = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
    assert h.slash(f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {efi}") == 200
    card = h.wait_card()
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    h.poll(advance=15)
    h.poll(advance=60)
    h.wait_thread(card["ts"], "is done in")


def test_liveness_and_readiness_name_each_check(harness):
    status, body = get(harness, "/healthz")
    assert status == 200
    assert json.loads(body)["checks"].keys() == {"scheduler", "sender"}
    status, body = get(harness, "/readyz")
    report = json.loads(body)
    assert status == 200 and report["ok"] is True, report
    assert report["checks"].keys() == {"serving", "store", "slack", "ovhcloud", "leader"}
    assert report["checks"]["leader"]["detail"] == "this process leads"
    assert report["checks"]["ovhcloud"]["detail"] == "no poll yet"


def test_a_revoked_slack_token_makes_the_bot_unready_and_is_counted(harness):
    h = harness
    h.slack.fail_next("chat.postMessage", error="token_revoked", status=200, count=5)
    efi = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
    h.slash(f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {efi}")
    h.slack.wait_for(lambda: not harness.slack_token().ok)
    status, body = get(h, "/readyz")
    slack = json.loads(body)["checks"]["slack"]
    assert status == 503 and slack["ok"] is False
    assert slack["detail"].startswith("Slack refused SLACK_BOT_TOKEN (token_revoked)")
    assert get(h, "/readyz?exclude=slack")[0] == 200
    figures = samples(h)
    errors = (("error", "token_revoked"), ("method", "chat.postMessage"))
    assert figures[("byoi_slack_api_errors_total", errors)] >= 1
    assert figures[("byoi_slack_token_ok", ())] == 0


def test_stopped_threads_fail_liveness(harness):
    harness.bot.jobs.stop()
    status, body = get(harness, "/healthz")
    checks = json.loads(body)["checks"]
    assert status == 503 and checks["scheduler"] == {
        "ok": False,
        "detail": "stopped",
        "seconds": checks["scheduler"]["seconds"],
    }


def test_an_ovhcloud_that_does_not_answer_polls_makes_the_bot_unready(harness):
    h = harness
    efi = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
    assert h.slash(f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {efi}") == 200
    card = h.wait_card()
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    h.simulator.inject(read_errors={"status": 503, "count": 50}, server=SERVER)
    h.poll(advance=15)
    status, body = get(h, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["ovhcloud"]["detail"].startswith("did not answer")
    failed = {k for k, v in samples(h).items() if ("status", "503") in k[1] and v >= 1}
    assert {dict(labels)["route"] for _, labels in failed} == {
        "/dedicated/server/{serviceName}/install/status"
    }


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/readyz?exclude=nope", 400, "no check named 'nope'; the checks are serving, store"),
        ("/readyz?verbose=1", 400, "unknown parameter 'verbose'; only exclude"),
        ("/readyz?exclude", 400, "not name=value pairs"),
        ("/healthz?exclude=" + "x" * 5000, 400, "no check named 'xxxxxxxx"),
        ("/readyz?exclude=%00%ff", 400, "no check named"),
    ],
)
def test_hostile_queries_get_a_clear_400(harness, path, status, says):
    answer_status, body = get(harness, path)
    assert answer_status == status and says in json.loads(body)["error"]


def test_the_routes_answer_get_only(harness):
    status, body = get(harness, "/metrics", method="POST")
    assert status == 405 and json.loads(body) == {"error": "/metrics answers GET only"}
    assert get(harness, "/slack/events")[0] == 401, "Slack's route is untouched"


def test_metrics_after_a_deployment_count_it_without_naming_server_or_request(harness):
    h = harness
    deploy_to_done(h)
    h.slack.wait_for(lambda: h.bot.store.backlog() == 0)  # the last card edit is sent
    figures = samples(h)
    assert figures[("byoi_requests", (("state", "done"),))] == 1
    assert figures[("byoi_requests", (("state", "deploying"),))] == 0
    assert figures[("byoi_deploy_duration_seconds_count", (("outcome", "done"),))] == 1
    assert figures[("byoi_deploy_duration_seconds_sum", (("outcome", "done"),))] == 75
    # the request's preflight, and its checks again at submission
    assert figures[("byoi_preflight_read_bytes_count", ())] == 2
    assert sum(v for (n, _), v in figures.items() if n == "byoi_preflights_total") == 2
    start = (("method", "POST"), ("route", "/dedicated/server/{serviceName}/reinstall"),
             ("status", "200"))  # fmt: skip
    assert figures[("byoi_ovhcloud_calls_total", start)] == 1
    assert figures[("byoi_poll_cycle_duration_seconds_count", ())] >= 2
    assert figures[("byoi_outbox_posts", ())] == 0
    assert figures[("byoi_outbox_oldest_age_seconds", ())] == 0
    assert figures[("byoi_leader", ())] == 1 and figures[("byoi_store_up", ())] == 1
    text = get(h, "/metrics")[1].decode()
    request_id = h.bot.store.recent(1)[0].id
    assert SERVER not in text and request_id not in text and CHANNEL not in text


def test_waiting_posts_show_in_the_outbox_figures(harness):
    h = harness
    efi = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
    assert h.slash(f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {efi}") == 200
    h.wait_card()
    h.bot.sender.stop()
    h.bot.store.on_enqueue = lambda: None  # nothing is sent: the post waits
    h.bot.store.enqueue([Post.reply(h.bot.store.recent(1)[0], "waiting")])
    h.clock.advance(90)
    figures = samples(h)
    assert figures[("byoi_outbox_posts", ())] == 1
    assert figures[("byoi_outbox_oldest_age_seconds", ())] == 90


def test_metric_names_follow_prometheus_conventions(harness):
    require_tool("promtool")
    deploy_to_done(harness)
    text = get(harness, "/metrics")[1]
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/1.0/dedicated/server/ns1.eu/task/5001", f"{SERVER_ROUTE}/task/{{taskId}}"),
        ("/1.0/dedicated/server/x/install/status?a", f"{SERVER_ROUTE}/install/status"),
        ("/1.0/dedicated/server", "/dedicated/server"),
        ("/1.0/auth/time", "/auth/time"),
        ("/1.0/dedicated/server/a/b/c/d/e", "other"),
        ("/1.0/../../etc/passwd", "other"),
    ],
)  # fmt: skip
def test_ovhcloud_paths_become_their_schema_route(path, route):
    assert ovhcloud_route(path) == route


def test_a_store_that_fails_makes_the_bot_unready_without_saying_why_in_public(
    harness, monkeypatch
):
    def broken(*_args):
        raise RuntimeError("postgresql://byoi:s3cret@db/byoi is down")

    monkeypatch.setattr(harness.bot.store, "backlog", broken)
    monkeypatch.setattr(harness.bot.store, "request_counts", broken)
    status, body = get(harness, "/readyz")
    assert status == 503 and b"s3cret" not in body
    assert json.loads(body)["checks"]["store"]["detail"] == "check failed: RuntimeError"
    figures = samples(harness)
    assert (
        figures[("byoi_store_up", ())] == 0
        and ("byoi_requests", (("state", "done"),)) not in figures
    )
