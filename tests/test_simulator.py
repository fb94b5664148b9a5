"""The OVHcloud API simulator: signatures, both API generations, inventory, control API."""

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import ovh.exceptions as E
import pytest
from ovh_fixtures import (
    ARM64,
    BIG,
    BROKEN,
    LEGACY_BOOT,
    SMALL,
    UEFI,
    client_for,
    simulator_fixtures,
)

from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.simulator.world import STEPS, InventoryError, load_inventory

BYOI = {"URL": "https://images.example.net/a.qcow2", "type": "qcow2"}
REINSTALL = {
    "operatingSystem": "byoi_64",
    "customizations": {
        "imageURL": "https://images.example.net/a.qcow2",
        "imageType": "qcow2",
        "efiBootloaderPath": "\\efi\\debian\\grubx64.efi",
        "httpHeaders": {"Authorization": "Bearer top-secret-header"},
        "configDriveUserData": "#cloud-config\npassword: hunter2\n",
    },
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("APPLICATION_KEY", "APPLICATION_SECRET", "CONSUMER_KEY"):
        monkeypatch.delenv(f"OVH_{name}", raising=False)


running, sim, clock = simulator_fixtures(70.0)


@pytest.fixture
def api(sim):
    return client_for(sim)


def control(sim, method: str, path: str, body=None) -> tuple[int, object]:
    """Call the control API (or any raw URL path) without a signature."""
    base = sim.url.removesuffix("/1.0")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def sn(name: str) -> str:
    return f"/dedicated/server/{name}"


# -- signatures and credentials -----------------------------------------------------------


def test_time_is_unauthenticated(sim):
    status, now = control(sim, "GET", "/1.0/auth/time")
    assert status == 200 and abs(now - time.time()) < 5


def test_signed_requests_are_accepted(api):
    assert api.get("/dedicated/server") == sorted([UEFI, LEGACY_BOOT, SMALL, BROKEN, BIG, ARM64])
    assert api.get(sn(UEFI))["datacenter"] == "gra3"
    assert {r["method"] for r in api.get("/auth/currentCredential")["rules"]} >= {"GET", "POST"}


@pytest.mark.parametrize(
    ("override", "error", "code"),
    [
        ({"application_secret": "wrong"}, E.BadParametersError, "INVALID_SIGNATURE"),
        ({"application_key": "wrong"}, E.InvalidKey, "INVALID_KEY"),
        ({"consumer_key": "wrong"}, E.NotCredential, "NOT_CREDENTIAL"),
    ],
)
def test_bad_credentials_are_refused_like_the_api(sim, override, error, code):
    with pytest.raises(error) as caught:
        client_for(sim, **override).get("/dedicated/server")
    assert caught.value.response.json()["errorCode"] == code
    assert type(caught.value) is error


def test_unsigned_requests_are_refused(sim):
    status, body = control(sim, "GET", "/1.0/dedicated/server")
    assert status == 403 and body == {
        "errorCode": "INVALID_KEY",
        "httpCode": "403 Forbidden",
        "message": "This application key is invalid",
    }


def test_expired_credential_and_access_rules():
    expired = DEMO_CREDENTIALS | {"status": "expired"}
    with Simulator(credentials=expired) as simulator, pytest.raises(E.InvalidCredential):
        client_for(simulator).get("/dedicated/server")
    read_only = DEMO_CREDENTIALS | {"rules": [{"method": "GET", "path": "/dedicated/server*"}]}
    with Simulator(credentials=read_only) as simulator:
        api = client_for(simulator)
        assert api.get(sn(UEFI))
        with pytest.raises(E.NotGrantedCall):
            api.post(f"{sn(UEFI)}/bringYourOwnImage", **BYOI)


def test_credentials_from_the_environment(monkeypatch):
    env = {"application_key": "k-env", "application_secret": "s-env", "consumer_key": "c-env"}
    for name, value in env.items():
        monkeypatch.setenv(f"OVH_{name.upper()}", value)
    with Simulator() as simulator:
        assert client_for(simulator, **env).get("/dedicated/server")
        with pytest.raises(E.InvalidKey):
            client_for(simulator).get("/dedicated/server")


# -- inventory ----------------------------------------------------------------------------


def test_default_inventory_is_realistic(api):
    names = api.get("/dedicated/server")
    hardware = {name: api.get(f"{sn(name)}/specifications/hardware") for name in names}
    assert hardware[UEFI]["memorySize"] == {"unit": "MB", "value": 65536}
    assert [g["diskSize"]["value"] for g in hardware[UEFI]["diskGroups"]] == [480, 4000]
    assert hardware[LEGACY_BOOT]["bootMode"] == "legacy"
    assert hardware[SMALL]["memorySize"]["value"] == 8 * 1024
    assert hardware[ARM64]["processorArchitecture"] == "arm64"
    assert api.get(sn(BROKEN))["state"] == "error"
    assert all(api.get(sn(n))["reverse"] == n for n in hardware)


def test_custom_inventory(tmp_path):
    data = load_inventory(None)
    data["servers"] = data["servers"][:1]
    data["servers"][0]["server"]["name"] = "ns42.ip-10-0-0.eu"
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(data))
    with Simulator(inventory=str(path)) as simulator:
        assert client_for(simulator).get("/dedicated/server") == ["ns42.ip-10-0-0.eu"]
    (tmp_path / "bad.json").write_text('{"servers": [{"hardware": {}}]}')
    with pytest.raises(InventoryError, match=r"each server needs `server\.name`"):
        Simulator(inventory=str(tmp_path / "bad.json"))


def test_unknown_server_path_and_method(api, sim):
    with pytest.raises(E.ResourceNotFoundError) as caught:
        api.get(sn("ns9.ip-9-9-9.eu"))
    assert caught.value.response.json()["class"] == "Client::NotFound"
    with pytest.raises(E.ResourceNotFoundError):
        api.get("/dedicated/nothing")
    with pytest.raises(E.APIError) as caught:
        api.put(sn(UEFI), state="ok")
    assert caught.value.response.status_code == 405


# -- the reinstall generation -------------------------------------------------------------


NOT_INSTALLING = "Server is not being installed or reinstalled at the moment"


def not_installing(api, server: str) -> bool:
    with pytest.raises(E.ResourceNotFoundError) as caught:
        api.get(f"{sn(server)}/install/status")
    return caught.value.response.json() == {"class": "Client::NotFound", "message": NOT_INSTALLING}


def test_reinstall_moves_through_the_steps(api, clock):
    assert not_installing(api, UEFI)
    task = api.post(f"{sn(UEFI)}/reinstall", **REINSTALL)
    assert (task["function"], task["status"], task["doneDate"]) == ("reinstallServer", "init", None)
    tasks = f"{sn(UEFI)}/task"
    assert api.get(tasks, function="reinstallServer", status="init") == [task["taskId"]]
    assert api.get(tasks, status="doing") == [] and not_installing(api, UEFI)
    clock.advance(1)
    assert api.get(f"{tasks}/{task['taskId']}")["status"] == "todo" and not_installing(api, UEFI)
    clock.advance(1)
    assert api.get(f"{tasks}/{task['taskId']}")["status"] == "doing"
    seen = []
    for _ in STEPS[:-1]:
        clock.advance(10)
        status = api.get(f"{sn(UEFI)}/install/status")
        seen.append([s["status"] for s in status["progress"]])
    assert seen[0] == ["done", "doing", "todo", "todo", "todo", "todo", "todo"]
    assert seen[-1] == ["done"] * 6 + ["doing"] and status["elapsedTime"] == 62
    clock.advance(10)
    assert not_installing(api, UEFI), "404 right after the end too"
    done = api.get(f"{tasks}/{task['taskId']}")
    assert done["status"] == "done" and done["doneDate"] and done["needSchedule"] is False
    assert api.get(tasks, status="done") == [task["taskId"]]
    assert api.get(sn(UEFI))["os"] == "byoi_64"


def custom(**fields) -> dict:
    efi = {"efiBootloaderPath": "\\efi\\boot\\bootx64.efi"}
    return {"customizations": {"imageURL": "u", "imageType": "raw"} | efi | fields}


@pytest.mark.parametrize(
    ("change", "status", "api_class"),
    [
        ({"operatingSystem": "debian12_64"}, 404, "NotFound::OperatingSystem"),
        ({"customizations": {"imageType": "qcow2"}}, 400, "BadRequest::CustomizationInvalidFormat"),
        (custom(hostname="a_b"), 400, "BadRequest::HostnameInvalidFormat"),
        (custom(imageCheckSum="ab"), 400, "BadRequest::IncompatibleParams"),
        (custom(configDriveUserData="x" * 40000), 400, "BadRequest::CustomizationSizeExceeded"),
        ({"storage": [{"diskGroupId": 9}]}, 404, "NotFound::DiskGroup"),
    ],
)
def test_reinstall_validation(api, change, status, api_class):
    with pytest.raises(E.APIError) as caught:
        api.post(f"{sn(UEFI)}/reinstall", **(REINSTALL | change))
    assert caught.value.response.status_code == status
    assert caught.value.response.json()["class"] == f"Client::{api_class}"


def test_busy_server(api):
    api.post(f"{sn(UEFI)}/reinstall", **REINSTALL)
    with pytest.raises(E.BadParametersError) as caught:
        api.post(f"{sn(UEFI)}/reinstall", **REINSTALL)
    assert caught.value.response.json()["class"] == "Client::BadRequest::TaskAlreadyExists"
    with pytest.raises(E.ResourceConflictError) as caught:
        api.post(f"{sn(UEFI)}/bringYourOwnImage", **BYOI)
    assert caught.value.response.json()["class"] == "Client::Conflict::DisturbAlreadyExists"


# -- the legacy generation ----------------------------------------------------------------


def test_legacy_byoi(api, clock):
    path = f"{sn(SMALL)}/bringYourOwnImage"
    with pytest.raises(E.ResourceNotFoundError):
        api.get(path)
    assert api.post(path, **BYOI, checkSum="ab" * 32, checkSumType="sha256") is None
    assert api.get(path) == {
        "checksum": "ab" * 32,
        "message": "starting",
        "servername": SMALL,
        "status": "doing",
    }
    clock.advance(35)
    assert api.get(path)["message"] == "Write image to disk"
    clock.advance(35)
    assert api.get(path)["status"] == "done"
    assert api.delete(path) is None
    with pytest.raises(E.ResourceNotFoundError):
        api.delete(path)


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"type": "ova"}, "Bad format image, expected: qcow2, raw."),
        ({"checkSum": "ab"}, "Please provide checkSum AND checkSumType or none of them"),
        (
            {"checkSum": "a", "checkSumType": "crc"},
            "Bad checkSumType, expected: sha1, sha256, md5.",
        ),
    ],
)
def test_legacy_validation_uses_the_installer_messages(api, change, text):
    with pytest.raises(E.BadParametersError) as caught:
        api.post(f"{sn(UEFI)}/bringYourOwnImage", **(BYOI | change))
    assert str(caught.value.args[0]) == text


# -- control API --------------------------------------------------------------------------


def test_faults_through_the_control_api(sim, api, clock):
    status, pending = control(
        sim,
        "POST",
        "/_simulator/faults",
        [
            {"server": UEFI, "install_error": "Could not create configdrive on disk."},
            {"read_errors": {"status": 503, "count": 1}, "server": SMALL},
            {"conflict": True, "server": BIG},
        ],
    )
    assert status == 200 and len(pending["installs"]) == 1 and pending["conflicts"]
    assert api.get(sn(UEFI))  # another server's read is not affected
    with pytest.raises(E.APIError) as caught:
        api.get(sn(SMALL))
    assert caught.value.response.status_code == 503
    with pytest.raises(E.ResourceConflictError):
        api.post(f"{sn(BIG)}/bringYourOwnImage", **BYOI)
    task = api.post(f"{sn(UEFI)}/reinstall", **REINSTALL)
    assert control(sim, "POST", "/_simulator/clock", {"advance": 70})[0] == 200
    failed = api.get(f"{sn(UEFI)}/task/{task['taskId']}")
    assert failed["status"] == "customerError"
    assert failed["comment"] == "Could not create configdrive on disk."
    assert control(sim, "GET", "/_simulator/faults")[1]["installs"] == []
    control(sim, "POST", "/_simulator/faults", {"delay_seconds": 5})
    assert control(sim, "DELETE", "/_simulator/faults")[1]["delays"] == []


def test_bad_control_requests(sim):
    assert control(sim, "POST", "/_simulator/faults", {"explode": True})[0] == 400
    bad_status = {"install_error": "x", "task_status": "x"}
    assert control(sim, "POST", "/_simulator/faults", bad_status)[0] == 400
    assert control(sim, "POST", "/_simulator/clock", {"advance": "soon"})[0] == 400
    assert control(sim, "GET", "/_simulator/nothing")[0] == 404


def test_delay_fault_holds_the_answer(sim, api):
    sim.inject(delay_seconds=0.3, paths="/dedicated/server")
    started = time.monotonic()
    api.get("/dedicated/server")
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.get("/dedicated/server")
    assert time.monotonic() - started < 0.3, "a delay fault fires once by default"


def test_call_log_and_reset_without_secrets(sim, api, caplog):
    caplog.set_level(logging.INFO, logger="byoi_bot.simulator")
    api.post(f"{sn(UEFI)}/reinstall", **REINSTALL)
    api.get(f"{sn(UEFI)}/task", function="reinstallServer")
    calls = control(sim, "GET", "/_simulator/calls")[1]
    assert [(c["method"], c["path"], c["status"]) for c in calls] == [
        ("GET", "/1.0/auth/time", 200),
        ("POST", f"/1.0{sn(UEFI)}/reinstall", 200),
        ("GET", f"/1.0{sn(UEFI)}/task", 200),
    ]
    assert calls[2]["query"] == "function=reinstallServer" and calls == sim.calls()
    text = json.dumps(calls) + caplog.text
    for secret in ("top-secret-header", "hunter2", DEMO_CREDENTIALS["application_secret"], "$1$"):
        assert secret not in text
    assert f"POST /1.0{sn(UEFI)}/reinstall -> 200" in caplog.text
    assert control(sim, "POST", "/_simulator/reset")[0] == 200
    assert sim.calls() == [] and api.get(f"{sn(UEFI)}/task") == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_standalone():
    port = free_port()
    code = f"from byoi_bot.simulator import serve; serve('127.0.0.1', {port}, 5.0, None)"
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/1.0/auth/time", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("the simulator did not start")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=5)
    assert f"http://127.0.0.1:{port}/1.0" in stderr
    assert DEMO_CREDENTIALS["consumer_key"] in stderr and "GET /1.0/auth/time -> 200" in stderr


def test_an_api_error_class_through_the_control_api(sim, api):
    fault = {"server": UEFI, "api_error": "Client::Conflict::OperatingSystemIncompatible"}
    status, pending = control(sim, "POST", "/_simulator/faults", fault)
    assert status == 200 and pending["api_errors"] == [
        {"api_error": fault["api_error"], "server": UEFI}
    ]
    with pytest.raises(E.ResourceConflictError) as caught:
        api.post(f"{sn(UEFI)}/reinstall", **REINSTALL)
    assert caught.value.response.json() == {
        "class": fault["api_error"],
        "message": f"Operating system byoi_64 is not compatible for server {UEFI}",
    }
    bad = {"api_error": "Client::Teapot"}
    assert control(sim, "POST", "/_simulator/faults", bad)[0] == 400
