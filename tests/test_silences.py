"""Alert silences from approval to the end of the boot gate, against a real Alertmanager.

The Alertmanager is Debian's `prometheus-alertmanager`, started here on 127.0.0.1 with a
free port, a temporary storage folder and clustering off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from bot_harness import APPROVER, CHANNEL, REQUESTER, BotHarness
from core_fixtures import request
from process_harness import free_port, wait_until
from tools import require_tool

from byoi_bot.alertmanager import Alertmanager, AlertmanagerError
from byoi_bot.core.request import DeploySpec
from byoi_bot.core.silences import SilenceError, Silences, matchers
from byoi_bot.core.states import State
from byoi_bot.simulator.boots import Behaviour
from byoi_bot.store import Store

SERVER = "ns1001.ip-51-75-1.eu"
CONFIG = "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n"


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    require_tool("prometheus-alertmanager")
    folder = tmp_path_factory.mktemp("alertmanager")
    (folder / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("prometheus-alertmanager"), f"--config.file={folder / 'alertmanager.yml'}",
         f"--storage.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), timeout=20, what="Alertmanager ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def silences_of(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v2/silences", timeout=5) as answer:
        return json.loads(answer.read())


def active(url: str, request_id: str) -> list[dict]:
    return [
        s
        for s in silences_of(url)
        if s["comment"].startswith(f"byoi-bot {request_id}:") and s["status"]["state"] == "active"
    ]


class Later:
    """The wall clock, `ahead` later (Alertmanager's silences run on real time)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "byoi.db"))
    yield s
    s.close()


def approved(store: Store, request_id: str) -> None:
    store.create(request(request_id), None)
    store.transition(request_id, State.PENDING_APPROVAL, State.APPROVED, APPROVER)


def test_a_running_request_is_silenced_renewed_and_expired_at_its_end(alertmanager, store):
    clock = Later()
    sync = Silences(store, Alertmanager(alertmanager), clock, 'instance=~"{server}.*"',
                    timedelta(minutes=10)).sync  # fmt: skip
    approved(store, "r-silenc")
    sync()
    [silence] = active(alertmanager, "r-silenc")
    assert silence["matchers"] == [
        {"name": "instance", "value": "ns1001\\.ip\\-51\\-75\\-1\\.eu.*", "isRegex": True,
         "isEqual": True}
    ]  # fmt: skip
    assert silence["createdBy"] == "byoi-bot"
    sync()
    assert active(alertmanager, "r-silenc") == [silence], "nothing to renew yet"
    clock.ahead = timedelta(minutes=6)  # less than half its life left
    sync()
    [renewed] = active(alertmanager, "r-silenc")
    assert renewed["endsAt"] > silence["endsAt"]
    store.transition("r-silenc", State.APPROVED, State.CANCELLED, APPROVER)
    sync()
    assert active(alertmanager, "r-silenc") == []


def test_another_bots_silences_are_left_alone(alertmanager, store):
    other = Alertmanager(alertmanager)
    ends = datetime.now(UTC) + timedelta(minutes=5)
    comment = "byoi-bot r-other2: reinstalling x (requested by U1)"
    other.put(None, matchers('instance="x"', "x"), ends, comment)
    Silences(store, other, Later(), 'instance="{server}"', timedelta(minutes=5)).sync()
    assert active(alertmanager, "r-other2")


def test_an_unreachable_alertmanager_is_an_error_the_job_retries(store):
    down = Alertmanager(f"http://127.0.0.1:{free_port()}", timeout=1)
    approved(store, "r-downnn")
    with pytest.raises(AlertmanagerError, match="GET /silences: no answer"):
        Silences(store, down, Later(), 'instance="{server}"', timedelta(minutes=5)).sync()


def test_the_bot_silences_from_approval_to_the_end_of_the_boot_gate(alertmanager, tmp_path):
    env = {
        "BYOI_ALERTMANAGER_URL": alertmanager,
        "BYOI_SILENCE_MATCHERS": 'host="{short}",job="node"',
    }
    h = BotHarness(tmp_path, extra_env=env)
    try:
        sync = h.bot.jobs.silences.sync
        spec = DeploySpec(server=SERVER, image_url=f"{h.images.base_url}/debian-12.qcow2",
                          image_type="qcow2", efi_bootloader="x.efi")  # fmt: skip
        r = h.bot.deployments.request(spec, REQUESTER, CHANNEL)
        sync()
        assert active(alertmanager, r.id) == [], "not before approval"
        h.bot.deployments.approve(r.id, APPROVER)
        sync()
        [silence] = active(alertmanager, r.id)
        assert {(m["name"], m["value"]) for m in silence["matchers"]} == {
            ("host", "ns1001"), ("job", "node")
        }  # fmt: skip
        h.simulator.boots.set(SERVER, Behaviour("never"))
        h.poll(advance=61)
        assert h.bot.store.get(r.id).state is State.BOOTING
        sync()
        assert active(alertmanager, r.id), "still silenced while the gate waits"
        h.simulator.boots.reset()
        h.poll(advance=20)
        assert h.bot.store.get(r.id).state is State.DONE
        sync()
        assert active(alertmanager, r.id) == []
    finally:
        h.close()


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ('instance=~".*"', "would silence every alert"),
        ('instance!="{server}"', "would silence every alert"),
        ("instance={server}", "cannot be read at character 1;"),
        ('job="node",instance={server}', "cannot be read at character 12"),
        ('instance="a" job="b"', "expected `,`"),
        ('9x="a"', "cannot be read at character 1"),
        ("", "would silence every alert"),
    ],
)
def test_matcher_templates_that_cannot_be(template, problem):
    with pytest.raises(SilenceError, match=problem):
        matchers(template, SERVER)


def test_values_are_regex_escaped_only_in_regex_matchers():
    found = matchers('instance=~"{server}:9100", host="{short}", x!~"{short}.+"', "a.b-1.eu")
    assert [m["value"] for m in found] == ["a\\.b\\-1\\.eu:9100", "a", "a.+"]
    assert [(m["isRegex"], m["isEqual"]) for m in found] == [(True, True), (False, True),
                                                            (True, False)]  # fmt: skip


def test_a_bad_template_is_a_configuration_error():
    from byoi_bot.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="BYOI_SILENCE_MATCHERS: the silence matchers"):
        Settings.load({"BYOI_SILENCE_MATCHERS": "instance=~'x'"})


def test_check_reaches_alertmanager_or_says_why_not(alertmanager):
    from byoi_bot.checkup import check_alertmanager
    from byoi_bot.config import Settings

    [good] = check_alertmanager(Settings.load({"BYOI_ALERTMANAGER_URL": alertmanager}))
    assert good.verdict == "PASS" and "silence(s) of the bot" in good.detail
    down = Settings.load({"BYOI_ALERTMANAGER_URL": f"http://127.0.0.1:{free_port()}"})
    [bad] = check_alertmanager(down)
    assert bad.verdict == "FAIL" and "GET /silences: no answer" in bad.detail
    assert check_alertmanager(Settings.load({})) == []
