"""Secrets never leave the path to OVHcloud (SPEC section 4, last paragraph; DeploySpec).

Known values are planted in a download header (``header="Authorization: Bearer …"``), in
cloud-init user data (the deploy form), and in the image URL's credentials and query string
(``https://user:<pw>@…/debian-12.qcow2?token=<tok>``). Whole stories then run, successes
and failures alike, with every logger at DEBUG, and the values are looked for in:

- every call the bot made to Slack (Web API arguments and response_url bodies);
- every log record (message, arguments and formatted exception);
- the SQLite store once the request is submitted (rows via ``iterdump``, and raw file bytes).

The simulator, on the other hand, must receive the header value and the user data on the
start call: that is where they are needed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
from bot_harness import APPROVER, CHANNEL, REQUESTER, SECRET, BotHarness
from fakes.signing import post_signed, view_submission_body

from byoi_bot.core.request import DeploySpec
from byoi_bot.core.service import Refused
from byoi_bot.core.states import State
from byoi_bot.slack.form import CALLBACK_ID

SERVER = "ns1001.ip-51-75-1.eu"
FAILING_SERVER = "ns2002.ip-51-75-2.eu"  # the simulator fails every install there (GPT)
EFI = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
HEADER_SECRET = "hdrS3CRET-7f1c9a"
USER_DATA_SECRET = "udS3CRET-52be0d"
URL_PASSWORD = "pwS3CRET-c0ffee"
URL_TOKEN = "tokS3CRET-9d8e7f"
ALL_SECRETS = (HEADER_SECRET, USER_DATA_SECRET, URL_PASSWORD, URL_TOKEN)
LOGGERS = ("", "byoi_bot", "slack_bolt", "slack_sdk", "urllib3", "ovh", "apscheduler")


@pytest.fixture
def logs(caplog):
    """Every logger at DEBUG, captured (records and formatted text with tracebacks)."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.fixture
def h(tmp_path, logs):
    harness = BotHarness(tmp_path)
    harness.start_bodies = spy_on_start_calls(harness)
    yield harness
    harness.close()


def spy_on_start_calls(h: BotHarness) -> list[dict]:
    """The bodies the simulator receives on start calls.

    `Simulator.calls()` keeps no bodies, so the world's handlers are wrapped here.
    """
    bodies: list[dict] = []
    world = h.simulator.world
    for name in ("reinstall", "start_byoi"):
        original = getattr(world, name)

        def spy(server, body, original=original):
            bodies.append(body)
            return original(server, body)

        setattr(world, name, spy)
    return bodies


# ----------------------------------------------------------------------------- looking


def slack_text(h: BotHarness) -> str:
    """Everything the bot sent to Slack: Web API arguments and response_url bodies."""
    with h.slack._cond:
        calls = list(h.slack.calls)
    return json.dumps([(c.method, c.args) for c in calls], ensure_ascii=False)


def log_text(logs: pytest.LogCaptureFixture) -> str:
    parts = [logs.text]
    for record in logs.records:
        parts += [record.getMessage(), str(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


def store_rows(h: BotHarness) -> str:
    return "\n".join(h.bot.store.db.iterdump())


def store_bytes(h: BotHarness) -> bytes:
    return b"".join(
        Path(h.db + suffix).read_bytes()
        for suffix in ("", "-wal", "-journal")
        if Path(h.db + suffix).exists()
    )


def assert_not_in_slack_or_logs(h, logs, secrets=ALL_SECRETS) -> None:
    sent, logged = slack_text(h), log_text(logs)
    assert logs.records, "the logs were captured"
    for secret in secrets:
        assert secret not in sent, f"{secret} reached Slack"
        assert secret not in logged, f"{secret} was logged"


def assert_not_stored(h, secrets=(HEADER_SECRET, USER_DATA_SECRET)) -> None:
    rows = store_rows(h)
    for secret in secrets:
        assert secret not in rows, f"{secret} is still in a stored row"


def image_url(h: BotHarness, path: str = "/debian-12.qcow2") -> str:
    port = h.images.base_url.rsplit(":", 1)[1]
    return f"http://deploy:{URL_PASSWORD}@127.0.0.1:{port}{path}?token={URL_TOKEN}"


def approve_and_start(h: BotHarness, card: dict) -> None:
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")


def submit_form(h: BotHarness, server: str, url: str) -> dict:
    values = {
        "server": {"value": server},
        "url": {"value": url},
        "efi-bootloader": {"value": "\\efi\\debian\\grubx64.efi"},
        "header": {"value": f"Authorization: Bearer {HEADER_SECRET}\nX-Extra: {HEADER_SECRET}"},
        "user-data": {"value": f"#cloud-config\nchpasswd:\n  list: root:{USER_DATA_SECRET}\n"},
    }
    body = view_submission_body(
        CALLBACK_ID, values, user_id=REQUESTER, private_metadata=json.dumps({"channel": CHANNEL})
    )
    status, text = post_signed(h.url, body, SECRET)
    assert status == 200 and "errors" not in text, text
    return h.wait_card()


# ----------------------------------------------------------------------------- stories


def test_an_approved_deploy_to_completion_keeps_every_secret(h, logs):
    header = f'header="Authorization: Bearer {HEADER_SECRET}"'
    assert h.slash(f"deploy {SERVER} {image_url(h)} {EFI} {header}") == 200
    card = h.wait_card()
    image = next(f["text"] for f in card["blocks"][2]["fields"] if f["text"].startswith("*Image*"))
    assert "found qcow2" in image, "the image server still served the image with URL credentials"
    assert "***@" in image and "?***" in image, "the card shows the URL masked"
    request = h.bot.store.recent(1)[0]
    assert h.bot.store.secrets(request.id)["headers"] == [
        ["Authorization", f"Bearer {HEADER_SECRET}"]
    ]

    approve_and_start(h, card)
    assert h.bot.store.secrets(request.id) is None, "secrets are handed out once and deleted"
    h.poll(advance=120)
    h.wait_thread(card["ts"], "is done in")
    for command in (f"status {request.id}", "list all", f"history {SERVER}"):
        h.slash(command)
    h.slack.wait_for(lambda: len(h.answers()) >= 4)

    (sent,) = h.start_bodies
    assert sent["customizations"]["httpHeaders"] == {"Authorization": f"Bearer {HEADER_SECRET}"}
    assert URL_PASSWORD in sent["customizations"]["imageURL"]
    assert URL_TOKEN in sent["customizations"]["imageURL"]
    assert h.bot.store.get(request.id).state is State.DONE
    assert_not_in_slack_or_logs(h, logs)
    assert_not_stored(h)


def test_a_deploy_from_the_form_that_fails_keeps_header_and_user_data(h, logs):
    card = submit_form(h, FAILING_SERVER, f"{h.images.base_url}/debian-12.qcow2")
    request = h.bot.store.recent(1)[0]
    assert USER_DATA_SECRET in h.bot.store.secrets(request.id)["user_data"]
    approve_and_start(h, card)
    h.poll(advance=120)
    failure = h.wait_thread(card["ts"], "failed")[-1]
    assert "GPT" in failure and "What to do" in failure
    h.slash(f"status {request.id}")
    h.wait_answer("failed")

    (sent,) = h.start_bodies
    custom = sent["customizations"]
    assert custom["httpHeaders"]["Authorization"] == f"Bearer {HEADER_SECRET}"
    assert USER_DATA_SECRET in custom["configDriveUserData"]
    assert h.bot.store.get(request.id).state is State.FAILED
    assert_not_in_slack_or_logs(h, logs)
    assert_not_stored(h)


def test_a_preflight_refusal_stores_nothing_and_shows_no_secret(h, logs):
    header = f'header="Authorization: Bearer {HEADER_SECRET}"'
    h.slash(f"deploy {SERVER} {image_url(h, '/rescue.iso')} type=raw {header}")
    refusal = h.wait_answer("Not posted")
    assert "format" in refusal
    h.slash(f"deploy {SERVER} {image_url(h, '/missing.qcow2')} {header}")
    unreachable = h.wait_answer("404")
    assert "***@127.0.0.1" in unreachable and "?***" in unreachable
    assert h.cards() == [] and h.bot.store.recent(10) == []
    assert h.start_bodies == []
    assert_not_in_slack_or_logs(h, logs)
    blob = store_bytes(h)
    for secret in ALL_SECRETS:
        assert secret.encode() not in blob, "nothing of a refused request is written"


INVALID_OPTIONS = (
    "checksum=sha256:abc",  # wrong length
    "type=vmdk",
    "bogus=1",
    'description="unclosed',
    f"header=Authorization:{HEADER_SECRET}x\x07",  # a control code in a header value
    "disk-group=many",
)


def test_an_invalid_command_echoes_no_secret(h, logs):
    header = f'header="Authorization: Bearer {HEADER_SECRET}"'
    for count, extra in enumerate(INVALID_OPTIONS, 1):
        h.slash(f"deploy {SERVER} {image_url(h)} {header} {extra}")
        h.slack.wait_for(lambda count=count: len(h.answers()) == count)
        assert "Example" in h.answers()[-1], extra
    assert h.bot.store.recent(1) == []
    assert_not_in_slack_or_logs(h, logs)


def test_an_invalid_url_is_shown_masked(h, logs):
    url = f"ftp://deploy:{URL_PASSWORD}@images.example.net/a.qcow2?token={URL_TOKEN}"
    h.slash(f"deploy {SERVER} {url}")
    h.slack.wait_for(lambda: h.answers())
    assert "ftp" in h.answers()[0]
    assert_not_in_slack_or_logs(h, logs)


def secret_spec(h: BotHarness) -> DeploySpec:
    return DeploySpec(
        server=SERVER,
        image_url=image_url(h),
        image_type="qcow2",
        efi_bootloader="x.efi",
        headers=(("Authorization", f"Bearer {HEADER_SECRET}"),),
        user_data=f"#cloud-config\npassword: {USER_DATA_SECRET}\n",
    )


def test_failing_slack_calls_log_their_exceptions_without_a_secret(h, logs):
    """Slack refuses the card, then the thread replies: exceptions are logged, secrets not."""
    h.slack.fail_next("chat.postMessage", error="invalid_blocks", status=200)  # for good
    with pytest.raises(Refused):
        h.bot.deployments.request(secret_spec(h), REQUESTER, CHANNEL)
    assert h.bot.store.recent(1)[0].state is State.CANCELLED
    assert_not_stored(h, ALL_SECRETS[:2])

    request = h.bot.deployments.request(secret_spec(h), REQUESTER, CHANNEL)
    h.slack.fail_next("chat.postMessage", error="internal_error", status=200, count=5)
    h.bot.deployments.approve(request.id, APPROVER)
    assert h.bot.store.get(request.id).state is State.DEPLOYING
    failures = [r for r in logs.records if r.exc_info]
    assert len(failures) >= 2, "both failures were logged with their exception"
    (sent,) = h.start_bodies
    assert USER_DATA_SECRET in sent["customizations"]["configDriveUserData"]
    assert_not_in_slack_or_logs(h, logs)
    assert_not_stored(h)


def test_secrets_are_kept_apart_until_submission_then_deleted(h, logs):
    spec = DeploySpec(
        server=SERVER,
        image_url=f"{h.images.base_url}/debian-12.qcow2",
        image_type="qcow2",
        efi_bootloader="x.efi",
        headers=(("X-Token", HEADER_SECRET),),
        user_data=USER_DATA_SECRET,
    )
    request = h.bot.deployments.request(spec, REQUESTER, CHANNEL)
    rows = store_rows(h)
    secrets_rows = [line for line in rows.splitlines() if 'INTO "secrets"' in line]
    assert len(secrets_rows) == 1 and HEADER_SECRET in secrets_rows[0]
    assert all(
        HEADER_SECRET not in line and USER_DATA_SECRET not in line
        for line in rows.splitlines()
        if line not in secrets_rows
    ), "only the secrets table holds them"
    resolved = dataclasses.replace(spec, api="reinstall", efi_source="given")  # fixed on creation
    assert request.fingerprint == resolved.fingerprint(), "the fingerprint binds the secrets too"
    assert HEADER_SECRET not in request.fingerprint
    h.bot.deployments.approve(request.id, APPROVER)
    assert h.bot.store.get(request.id).state is State.DEPLOYING
    assert_not_stored(h)
    assert_not_in_slack_or_logs(h, logs)


def test_url_credentials_are_not_kept_in_the_store_after_submission(h, logs):
    assert h.slash(f"deploy {SERVER} {image_url(h)} {EFI}") == 200
    card = h.wait_card()
    approve_and_start(h, card)
    (sent,) = h.start_bodies
    assert URL_PASSWORD in sent["customizations"]["imageURL"]
    rows = store_rows(h)
    assert URL_PASSWORD not in rows and URL_TOKEN not in rows


def test_deleted_secrets_leave_no_bytes_in_the_database_files(h, logs):
    card = submit_form(h, SERVER, f"{h.images.base_url}/debian-12.qcow2")
    approve_and_start(h, card)
    assert_not_stored(h)  # no row holds them any more...
    blob = store_bytes(h)
    assert HEADER_SECRET.encode() not in blob  # ...nor any byte of the files
    assert USER_DATA_SECRET.encode() not in blob
