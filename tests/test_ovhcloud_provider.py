"""The providers, driven through the real ovh.Client against the simulator."""

import logging
from types import SimpleNamespace

import ovh
import ovh.exceptions as E
import pytest
from ovh_fixtures import (
    ALL_MESSAGES,
    BIG,
    HEADER_SECRET,
    LEGACY_BOOT,
    SEED_MESSAGES,
    UEFI,
    USER_DATA,
    Sleeps,
    client_for,
    message,
    providers,
    simulator_fixtures,
    spec,
)

from byoi_bot.config import ConfigError
from byoi_bot.core.ports import GiB, ProviderError
from byoi_bot.core.progress import Phase
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.errors import explain
from byoi_bot.ovhcloud.provider import (
    LegacyProvider,
    ReinstallProvider,
    RetryPolicy,
    RoutingProvider,
    legacy_body,
    reinstall_body,
)
from byoi_bot.simulator import DEMO_CREDENTIALS

DEPLOY = 70.0  # 7 steps of 10 s


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("ENDPOINT", "APPLICATION_KEY", "APPLICATION_SECRET", "CONSUMER_KEY"):
        monkeypatch.delenv(f"OVH_{name}", raising=False)


running, sim, clock = simulator_fixtures(DEPLOY)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def reinstall(sim, sleeps):
    return providers(client_for(sim), sleeps)[0]


@pytest.fixture
def legacy(sim, sleeps):
    return providers(client_for(sim), sleeps)[1]


def starts(sim) -> int:
    return sum(
        1
        for c in sim.calls()
        if c["method"] == "POST" and c["path"].endswith(("/reinstall", "/bringYourOwnImage"))
    )


# -- the client ---------------------------------------------------------------------------


def test_make_client_registers_a_url_endpoint(sim):
    client = make_client(sim.url + "/", **DEMO_CREDENTIALS)
    assert ovh.client.ENDPOINTS[sim.url] == sim.url
    assert client._timeout == (5, 30)
    assert UEFI in client.get("/dedicated/server")


def test_make_client_reads_the_environment(sim, monkeypatch):
    monkeypatch.setenv("OVH_ENDPOINT", sim.url)
    for name, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"OVH_{name.upper()}", value)
    assert UEFI in make_client(timeout=(1, 2)).get("/dedicated/server")


def test_make_client_reads_ovh_conf(sim, tmp_path):
    conf = tmp_path / "ovh.conf"
    keys = "\n".join(f"{k}={v}" for k, v in DEMO_CREDENTIALS.items())
    conf.write_text(f"[default]\nendpoint={sim.url}\n\n[{sim.url}]\n{keys}\n")
    assert UEFI in make_client(config_file=str(conf)).get("/dedicated/server")


def test_make_client_accepts_names_and_oauth2():
    client = make_client("ovh-ca", client_id="id", client_secret="secret")
    assert client._endpoint == "https://ca.api.ovh.com/1.0" and client._oauth2 is not None
    assert make_client("ovh-us", application_key="a", application_secret="b")._endpoint


def test_make_client_refuses_a_url_without_api_version():
    with pytest.raises(ConfigError, match=r"OVH_ENDPOINT: the URL .* must end with /1\.0"):
        make_client("http://127.0.0.1:9/api", **DEMO_CREDENTIALS)


# -- server facts -------------------------------------------------------------------------


def test_server_facts_in_bytes(reinstall):
    facts = reinstall.server_facts(UEFI)
    assert (facts.name, facts.datacenter, facts.state, facts.boot_mode) == (
        UEFI,
        "gra3",
        "ok",
        "uefi",
    )
    assert facts.ram_bytes == 64 * GiB
    assert [(g.id, g.disk_size_bytes, g.number_of_disks) for g in facts.disk_groups] == [
        (1, 480 * 10**9, 2),
        (2, 4000 * 10**9, 2),
    ]
    assert facts.efi_bootloader_path == "\\efi\\debian\\grubx64.efi"
    legacy_boot = reinstall.server_facts(LEGACY_BOOT)
    assert legacy_boot.boot_mode == "legacy" and legacy_boot.efi_bootloader_path is None


def test_unknown_server_is_not_found_without_retries(reinstall, sleeps):
    with pytest.raises(ProviderError) as caught:
        reinstall.server_facts("ns9999.ip-1-2-3.eu")
    assert caught.value.explanation.code == "server_not_found" and sleeps == []


def test_wrong_secret_is_explained(sim, sleeps):
    client = client_for(sim, application_secret="not-the-secret")
    with pytest.raises(ProviderError) as caught:
        providers(client, sleeps)[0].server_facts(UEFI)
    assert caught.value.explanation.code == "invalid_signature" and sleeps == []


# -- whole deployments ----------------------------------------------------------------------


def test_reinstall_from_start_to_done(sim, clock, reinstall):
    handle = reinstall.start(spec())
    assert handle.startswith("reinstall:") and handle[10:].isdigit()
    first = reinstall.progress(UEFI, handle)
    assert first.phase is Phase.PENDING and first.steps == (), "task init: nothing installs yet"
    clock.advance(25)
    running = reinstall.progress(UEFI, handle)
    assert running.phase is Phase.RUNNING and running.elapsed_seconds == 25
    assert len(running.steps) == 7
    assert running.current_step.name == "Check image checksum" and running.fraction_done == 2 / 7
    clock.advance(DEPLOY)
    done = reinstall.progress(UEFI, handle)
    assert done.phase is Phase.DONE and done.steps == (), "install/status is 404 after the end"
    assert reinstall.find_active(UEFI) is None and starts(sim) == 1


def test_a_deployment_started_after_the_mark_is_found_even_once_it_has_ended(sim, clock, reinstall):
    mark = reinstall.mark(UEFI)
    assert reinstall.find_since(UEFI, mark) is None
    handle = reinstall.start(spec())
    assert reinstall.find_since(UEFI, mark) == handle
    clock.advance(DEPLOY + 1)
    assert reinstall.find_active(UEFI) is None
    assert reinstall.find_since(UEFI, mark) == handle, "ended, still found"
    assert reinstall.find_since(UEFI, reinstall.mark(UEFI)) is None, "nothing after a new mark"


def test_legacy_from_start_to_done(sim, clock, legacy):
    handle = legacy.start(spec())
    assert handle == f"legacy:{UEFI}"
    assert legacy.progress(UEFI, handle).phase is Phase.PENDING
    assert legacy.find_active(UEFI) == handle
    clock.advance(15)
    running = legacy.progress(UEFI, handle)
    assert running.phase is Phase.RUNNING and running.message == "Download image"
    clock.advance(DEPLOY)
    assert legacy.progress(UEFI, handle).phase is Phase.DONE
    assert legacy.find_active(UEFI) is None and starts(sim) == 1


@pytest.mark.parametrize(("code", "template"), ALL_MESSAGES, ids=[c for c, _ in ALL_MESSAGES])
def test_reinstall_installer_failures(sim, clock, reinstall, code, template):
    text = message(template, url="https://dl.example.com/img.qcow2?sig=xyz")
    sim.inject(server=UEFI, install_error=text)
    handle = reinstall.start(spec())
    clock.advance(DEPLOY)
    progress = reinstall.progress(UEFI, handle)
    assert progress.phase is Phase.FAILED and progress.message == text, "from the task"
    assert explain(progress.message).code == code


@pytest.mark.parametrize(("code", "template"), SEED_MESSAGES, ids=[c for c, _ in SEED_MESSAGES])
def test_legacy_installer_failures(sim, clock, legacy, code, template):
    sim.inject(server=UEFI, install_error=message(template))
    handle = legacy.start(spec())
    clock.advance(DEPLOY)
    progress = legacy.progress(UEFI, handle)
    assert progress.phase is Phase.FAILED and explain(progress.message).code == code


def test_failure_at_a_chosen_step_and_ovh_error(sim, clock, reinstall):
    sim.inject(server=UEFI, install_error="Disk on fire", at_step=2, task_status="ovhError")
    handle = reinstall.start(spec())
    clock.advance(14)
    running = reinstall.progress(UEFI, handle)
    assert running.current_step.status == "doing"
    assert running.current_step.name == "Download image"
    clock.advance(2)  # half way through step 2
    progress = reinstall.progress(UEFI, handle)
    assert progress.phase is Phase.FAILED and progress.message == "Disk on fire"
    assert explain(progress.message).code == "unknown"


def test_inventory_server_that_always_fails(clock, reinstall):
    handle = reinstall.start(spec(LEGACY_BOOT, image_type="raw"))
    clock.advance(DEPLOY)
    assert explain(reinstall.progress(LEGACY_BOOT, handle).message).code == "gpt_backup_failed"


# -- one call per poll ----------------------------------------------------------------------


def reads(sim, since: int) -> list[str]:
    """The paths of the API reads made since call number `since`, shortened."""
    return [c["path"].rsplit("/", 2)[-2] + "/" + c["path"].rsplit("/", 1)[-1]
            for c in sim.calls()[since:]
            if c["method"] == "GET" and c["path"] != "/1.0/auth/time"]  # fmt: skip


def test_a_running_reinstall_costs_one_call_per_poll(sim, clock, reinstall):
    handle = reinstall.start(spec())
    task = "task/" + handle.split(":")[1]
    before = len(sim.calls())
    assert reinstall.progress(UEFI, handle).phase is Phase.PENDING
    assert reads(sim, before) == ["install/status", task], "init: install/status is 404 yet"
    phases = []
    for _ in range(6):  # under the task check period (10)
        clock.advance(10)
        before = len(sim.calls())
        phases.append(reinstall.progress(UEFI, handle).phase)
        assert reads(sim, before) == ["install/status"]
    assert phases == [Phase.RUNNING] * 6
    clock.advance(DEPLOY)
    before = len(sim.calls())
    assert reinstall.progress(UEFI, handle).phase is Phase.DONE
    assert reads(sim, before) == ["install/status", "task/" + handle.split(":")[1]]


def test_a_failed_step_reads_the_task_for_the_final_status(sim, clock, reinstall):
    sim.inject(server=UEFI, install_error="Can't write qcow2 on disk.")
    handle = reinstall.start(spec())
    clock.advance(DEPLOY)
    before = len(sim.calls())
    progress = reinstall.progress(UEFI, handle)
    assert progress.phase is Phase.FAILED and progress.message == "Can't write qcow2 on disk."
    assert len(reads(sim, before)) == 2


def test_the_task_is_checked_every_nth_poll(sim, clock):
    reinstall = ReinstallProvider(client_for(sim), task_check_every=3)
    handle = reinstall.start(spec())
    clock.advance(15)
    counts = []
    for _ in range(7):
        before = len(sim.calls())
        assert reinstall.progress(UEFI, handle).phase is Phase.RUNNING
        counts.append(len(reads(sim, before)))
    assert counts == [1, 1, 2, 1, 1, 2, 1]
    every_time = ReinstallProvider(client_for(sim), task_check_every=1)
    before = len(sim.calls())
    every_time.progress(UEFI, handle)
    assert len(reads(sim, before)) == 2


class CannedClient:
    """A client answering GETs from a dict of path suffix -> answer (or exception)."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers
        self.paths: list[str] = []

    def get(self, path, **query):
        self.paths.append(path)
        answer = next(a for suffix, a in self.answers.items() if path.endswith(suffix))
        if isinstance(answer, Exception):
            raise answer
        return answer


RUNNING_STEPS = {
    "elapsedTime": 120,
    "progress": [
        {"comment": "Prepare installation", "status": "done", "error": None},
        {"comment": "Download image", "status": "doing", "error": None},
    ],
}


def test_a_task_ended_while_install_status_still_runs_is_noticed():
    client = CannedClient(
        {
            "/install/status": RUNNING_STEPS,
            "/task/42": {"status": "cancelled", "comment": "Cancelled by OVHcloud"},
        }
    )
    reinstall = ReinstallProvider(client, task_check_every=2)
    assert reinstall.progress(UEFI, "reinstall:42").phase is Phase.RUNNING
    progress = reinstall.progress(UEFI, "reinstall:42")
    assert progress.phase is Phase.FAILED and "cancelled" in progress.message
    assert [p.rsplit("/", 1)[-1] for p in client.paths] == ["status", "status", "42"]
    assert reinstall._polls == {}, "no memory kept for a finished task"


def test_no_install_status_falls_back_to_the_task():
    missing = E.ResourceNotFoundError(
        "No installation is in progress on this server",
        response=SimpleNamespace(status_code=404, headers={}, json=lambda: {}),
    )
    client = CannedClient({"/install/status": missing, "/task/42": {"status": "doing"}})
    reinstall = ReinstallProvider(client, retry=RetryPolicy(sleep=Sleeps()))
    progress = reinstall.progress(UEFI, "reinstall:42")
    assert progress.phase is Phase.RUNNING and progress.steps == ()
    client.answers["/task/42"] = {"status": "done", "comment": "Reinstalled"}
    assert reinstall.progress(UEFI, "reinstall:42").phase is Phase.DONE
    assert len(client.paths) == 4


# -- retries and reconciliation -----------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_failed_poll_read_fails_at_once_marked_transient(sim, clock, reinstall, sleeps, status):
    """Polls never wait in place: the poller reschedules them (and honours a 429's wait)."""
    handle = reinstall.start(spec())
    clock.advance(15)
    sim.inject(read_errors={"status": status, "count": 1, "retry_after": 7})
    with pytest.raises(ProviderError) as caught:
        reinstall.progress(UEFI, handle)
    assert caught.value.transient and not caught.value.outcome_unknown
    assert caught.value.retry_after == (7.0 if status == 429 else None)
    assert sleeps == []
    assert reinstall.progress(UEFI, handle).phase is Phase.RUNNING


def test_a_404_of_install_status_reads_the_task_instead(sim, clock, reinstall, sleeps):
    handle = reinstall.start(spec())
    clock.advance(15)
    sim.inject(read_errors={"status": 404, "count": 1})
    assert reinstall.progress(UEFI, handle).phase is Phase.RUNNING
    assert sleeps == []


def test_errors_that_persist_fail_the_read_after_the_back_off(sim, reinstall, sleeps):
    sim.inject(read_errors={"status": 500, "count": 10})
    with pytest.raises(ProviderError) as caught:
        reinstall.server_facts(UEFI)
    assert caught.value.explanation.code == "ovh_internal_error" and caught.value.transient
    assert sleeps == [2.0, 4.0, 8.0, 16.0] and not caught.value.outcome_unknown


def test_a_429_on_a_retried_read_waits_as_long_as_asked(sim, reinstall, sleeps):
    sim.inject(read_errors={"status": 429, "count": 1, "retry_after": 30})
    assert reinstall.server_facts(UEFI).name == UEFI
    assert sleeps == [30.0]


@pytest.mark.parametrize(("kind", "path"), [(0, "/reinstall"), (1, "/bringYourOwnImage")])
def test_start_timeout_is_reconciled_without_a_second_post(sim, kind, path):
    provider = providers(client_for(sim, timeout=(2, 0.4)))[kind]
    sim.inject(delay_seconds=3, method="POST", paths=f"/dedicated/server/*{path}")
    handle = provider.start(spec())
    assert provider.find_active(UEFI) == handle
    assert starts(sim) == 1


def test_start_timeout_with_nothing_running_is_outcome_unknown(sim, reinstall):
    provider = providers(client_for(sim, timeout=(2, 0.4)))[0]
    sim.inject(delay_seconds=3, method="POST", paths="/dedicated/server/*/reinstall")
    with pytest.raises(ProviderError) as caught:
        provider.start(spec(hostname="not_valid!"))
    assert caught.value.outcome_unknown and caught.value.explanation.code == "timeout"
    assert starts(sim) == 1


def test_conflict_means_not_started(sim, reinstall):
    sim.inject(server=UEFI, conflict=True)
    with pytest.raises(ProviderError) as caught:
        reinstall.start(spec())
    assert caught.value.explanation.code == "server_busy" and not caught.value.outcome_unknown
    assert starts(sim) == 1 and reinstall.find_active(UEFI) is None


@pytest.mark.parametrize("kind", [0, 1])
def test_a_busy_server_is_refused_never_adopted(sim, reinstall, legacy, kind):
    provider = (reinstall, legacy)[kind]
    provider.start(spec())  # somebody else's deployment
    with pytest.raises(ProviderError) as caught:
        provider.start(spec())
    assert not caught.value.outcome_unknown
    assert caught.value.explanation.code in ("server_busy", "task_already_exists")
    assert starts(sim) == 2


def test_busy_with_the_other_generation_is_refused(sim, reinstall, legacy):
    legacy.start(spec())
    with pytest.raises(ProviderError) as caught:
        reinstall.start(spec())
    assert caught.value.explanation.code == "server_busy"


def test_unreachable_api_means_not_started(sleeps):
    client = make_client("http://127.0.0.1:9/1.0", timeout=(0.5, 0.5), **DEMO_CREDENTIALS)
    provider = ReinstallProvider(client, retry=RetryPolicy(attempts=3, sleep=sleeps))
    with pytest.raises(ProviderError) as caught:
        provider.start(spec())
    assert caught.value.explanation.code == "connection_failed"
    assert not caught.value.outcome_unknown
    with pytest.raises(ProviderError) as caught:
        provider.progress(UEFI, "reinstall:1")
    assert caught.value.transient and sleeps == [], "a poll read is not retried in place"


def test_api_refusals_are_explained(sim, reinstall):
    cases = [
        (spec(hostname="bad_host!"), "invalid_hostname"),
        (spec(disk_group=7), "disk_group_not_found"),
        (spec(user_data="x" * 40_000), "customization_too_large"),
        (spec(image_type="vmdk"), "invalid_customization"),
    ]
    for bad, code in cases:
        with pytest.raises(ProviderError) as caught:
            reinstall.start(bad)
        assert caught.value.explanation.code == code and not caught.value.outcome_unknown


def test_deploys_on_a_chosen_disk_group(sim, clock, reinstall):
    handle = reinstall.start(spec(BIG, disk_group=2))
    clock.advance(DEPLOY)
    assert reinstall.progress(BIG, handle).phase is Phase.DONE


# -- cancel, handles, routing -------------------------------------------------------------


def test_cancel(sim, reinstall, legacy, sleeps):
    handle = legacy.start(spec())
    legacy.cancel(UEFI, handle)
    assert legacy.find_active(UEFI) is None
    running = reinstall.start(spec())
    reinstall.cancel(UEFI, running)
    assert reinstall.progress(UEFI, running).phase is Phase.FAILED, "the task is cancelled"
    with pytest.raises(ProviderError) as caught:
        reinstall.cancel(UEFI, running)
    refused = caught.value.explanation
    assert refused.code == "cancel_refused" and "already cancelled" in refused.raw
    with pytest.raises(ProviderError) as caught:
        reinstall.cancel(UEFI, "reinstall:1")
    assert caught.value.explanation.code == "not_found" and sleeps == []


def test_bad_handle(reinstall):
    with pytest.raises(ProviderError) as caught:
        reinstall.progress(UEFI, f"legacy:{UEFI}")
    assert caught.value.explanation.code == "bad_handle"


def test_routing_by_server_pattern_and_by_handle(sim, clock, reinstall, legacy):
    router = RoutingProvider(reinstall, [("ns2*", legacy), ("*.net", legacy)])
    assert router.for_server(UEFI) is reinstall
    assert router.for_server(LEGACY_BOOT) is legacy and router.for_server(BIG) is legacy
    handle = router.start(spec(BIG))
    assert handle.startswith("legacy:") and router.find_active(BIG) == handle
    moved = RoutingProvider(reinstall, [("ns9*", legacy)])  # the route changed meanwhile
    assert moved.progress(BIG, handle).phase is Phase.PENDING


# -- secrets ------------------------------------------------------------------------------


def test_secrets_reach_the_api_but_never_logs_or_errors(sim, reinstall, caplog):
    caplog.set_level(logging.DEBUG)
    sim.inject(server=UEFI, conflict=True)
    with pytest.raises(ProviderError) as caught:
        reinstall.start(spec())
    seen = str(caught.value.explanation.to_dict()) + caplog.text + str(sim.calls())
    assert HEADER_SECRET not in seen and "hunter2" not in seen


class EchoingClient:
    """A client whose API error message echoes the request (as a careless API might)."""

    def post(self, path, **body):
        raise E.BadParametersError(f"Invalid customizations: {body}")


def test_an_echoed_secret_is_scrubbed():
    with pytest.raises(ProviderError) as caught:
        ReinstallProvider(EchoingClient()).start(spec())
    text = str(caught.value.explanation.to_dict())
    assert HEADER_SECRET not in text and USER_DATA not in text


def test_request_bodies():
    body = reinstall_body(spec(disk_group=2))
    assert body["operatingSystem"] == "byoi_64" and body["storage"] == [{"diskGroupId": 2}]
    assert body["customizations"] | {} == {
        "imageURL": "https://images.example.net/debian-12.qcow2",
        "imageType": "qcow2",
        "imageCheckSum": "ab" * 32,
        "imageCheckSumType": "sha256",
        "httpHeaders": {"Authorization": HEADER_SECRET},
        "efiBootloaderPath": "\\efi\\debian\\grubx64.efi",
        "hostname": "web-1",
        "sshKey": spec().ssh_key,
        "configDriveUserData": USER_DATA,
    }
    kept = reinstall_body(spec(config_drive=True))["customizations"]
    assert {"hostname", "sshKey", "configDriveUserData"} <= set(kept), "no switch to send"
    linux = reinstall_body(spec(os="byolinux", metadata=(("role", "web"),), raid=1))
    assert linux["operatingSystem"] == "byolinux_64"
    assert not {"imageType", "efiBootloaderPath"} & set(linux["customizations"])
    assert linux["customizations"]["configDriveMetadata"] == {"role": "web"}
    assert linux["storage"] == [{"diskGroupId": 0, "hardwareRaid": [{"raidLevel": 1}]}]
    assert reinstall_body(spec(disk_group=0))["storage"] == [{"diskGroupId": 0}]
    assert "diskGroupId" not in legacy_body(spec(disk_group=0)), "0 means automatic"
    assert legacy_body(spec(metadata=(("a", "1"),)))["configdrive"]["userMetadatas"] == [
        {"key": "a", "value": "1"}
    ]
    old = legacy_body(spec(description="web", disk_group=1))
    assert old["configdrive"] == {
        "enable": True,
        "hostname": "web-1",
        "sshKey": spec().ssh_key,
        "userData": USER_DATA,
    }
    assert old["httpHeader"] == [{"key": "Authorization", "value": HEADER_SECRET}]
    assert (old["checkSumType"], old["diskGroupId"], old["description"]) == ("sha256", 1, "web")
    assert "configdrive" not in legacy_body(spec(config_drive=False))


def test_legacy_provider_is_a_provider(legacy):
    assert isinstance(legacy, LegacyProvider) and legacy.owns("legacy:x")


def test_routing_patterns_ignore_case_like_policies(reinstall, legacy):
    from byoi_bot.ovhcloud.provider import RoutingProvider

    router = RoutingProvider(reinstall, [("*.PROD.example.net", legacy)])
    assert router.for_server("db1.prod.EXAMPLE.net") is legacy
    assert router.for_server("lab1.example.net") is reinstall


def test_a_start_uses_the_api_fixed_in_the_request_even_if_the_route_changed(
    sim, reinstall, legacy
):
    router = RoutingProvider(reinstall, [("ns9*", legacy)])  # the policy moved UEFI off legacy
    handle = router.start(spec(api="legacy", efi_bootloader=None))
    assert handle == f"legacy:{UEFI}"
    assert router.start(spec(BIG, api="reinstall")).startswith("reinstall:")
