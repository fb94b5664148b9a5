"""The simulator refuses what the API refuses, with the schema's class and filled template."""

import re

import ovh.exceptions as E
import pytest
from ovh_fixtures import BIG, SMALL, UEFI, client_for, simulator_fixtures

from byoi_bot.ovhcloud import schema

EFI = "\\efi\\debian\\grubx64.efi"
URL = "https://images.example.net/a.qcow2"
BYOI = {"imageURL": URL, "imageType": "qcow2", "efiBootloaderPath": EFI}
PLACEHOLDER = re.compile(r"\{\{|<\w+>")


running, sim, clock = simulator_fixtures(70.0)


@pytest.fixture
def api(sim):
    return client_for(sim)


def reinstall(api, server=UEFI, os="byoi_64", **body):
    return api.post(f"/dedicated/server/{server}/reinstall", operatingSystem=os, **body)


def refusal(api, server=UEFI, **body) -> tuple[int, str, str]:
    with pytest.raises(E.APIError) as caught:
        reinstall(api, server, **body)
    answer = caught.value.response.json()
    return caught.value.response.status_code, answer["class"], answer["message"]


def documented(api_class: str) -> tuple[int, re.Pattern]:
    """The schema's status for a class, and its template as a pattern of filled messages."""
    known = schema.all_error_classes()[api_class]
    pattern = re.escape(known.template)
    pattern = re.sub(r"\\\{\\\{\\\.\w+\\\}\\\}", ".+", pattern)
    return known.status, re.compile(pattern)


@pytest.mark.parametrize(
    ("body", "api_class", "words"),
    [
        ({"customizations": BYOI | {"language": "fr-fr"}}, "CustomizationName", "language"),
        ({"customizations": BYOI | {"imageType": "vhd"}}, "CustomizationInvalidFormat", "vhd"),
        (
            {"customizations": {"imageURL": URL, "imageType": "raw"}},
            "CustomizationInvalidFormat",
            "efiBootloaderPath",
        ),
        ({"customizations": BYOI | {"hostname": "1web"}}, "HostnameInvalidFormat", "1web"),
        ({"customizations": BYOI | {"hostname": "web-"}}, "HostnameInvalidFormat", "web-"),
        ({"customizations": BYOI | {"hostname": "a" * 64}}, "HostnameInvalidFormat", "a" * 64),
        (
            {"customizations": BYOI | {"hostname": ("a" * 60 + ".") * 5}},
            "HostnameSizeExceeded",
            "305",
        ),
        (
            {"customizations": BYOI | {"imageCheckSum": "ab"}},
            "IncompatibleParams",
            "imageCheckSum",
        ),
        (
            {"customizations": BYOI | {"configDriveUserData": "x" * 40_000}},
            "CustomizationSizeExceeded",
            "40000",
        ),
        ({"customizations": BYOI, "storage": [{"diskGroupId": 9}]}, "NotFound::DiskGroup", "9"),
        (
            {"customizations": BYOI, "storage": [{"diskGroupId": 1}, {"diskGroupId": 2}]},
            "DiskGroupMultipleConfigs",
            "2",
        ),
        (
            {"customizations": BYOI, "storage": [{"hardwareRaid": [{"raidLevel": 1}]}]},
            "HardwareRaidIncompatibleOnDiskGroup",
            UEFI,
        ),
        (
            {
                "customizations": BYOI,
                "storage": [
                    {"partitioning": {"layout": [{"fileSystem": "ext4", "mountPoint": "/"}]}}
                ],
            },
            "PartitionIncompatibleCustomPartitioning",
            "byoi_64",
        ),
        ({"os": "windows_64", "customizations": BYOI}, "OperatingSystem", "windows_64"),
        ({"os": "byolinux_64", "customizations": BYOI}, "CustomizationName", "byolinux_64"),
    ],
)
def test_refusals_use_the_schemas_class_and_filled_template(api, body, api_class, words):
    status, answered, message = refusal(api, **body)
    (full,) = [c for c in schema.all_error_classes() if c.endswith("::" + api_class)]
    expected_status, pattern = documented(full)
    assert (status, answered) == (expected_status, full)
    assert pattern.fullmatch(message) and not PLACEHOLDER.search(message), message
    assert words in message


def test_a_badly_typed_body_names_the_field(api):
    status, api_class, message = refusal(api, customizations=BYOI | {"hostname": 3})
    assert (status, api_class) == (400, "Client::BadRequest::CustomizationInvalidFormat")
    assert message.startswith("Invalid customization format for hostname of type string")
    assert refusal(api, customizations=BYOI, unknown=1)[:2] == (400, "Client::BadRequest")


def test_what_the_api_accepts(api, sim):
    assert reinstall(api, customizations=BYOI, storage=[{"diskGroupId": 0}])["status"] == "init"
    linux = {"imageURL": URL, "configDriveMetadata": {"role": "db"}, "hostname": "db-1"}
    raid = [{"diskGroupId": 1, "hardwareRaid": [{"raidLevel": 1, "disks": 2}]}]
    assert reinstall(api, BIG, "byolinux_64", customizations=linux, storage=raid)["taskId"]
    task = reinstall(api, SMALL, customizations=BYOI)
    assert set(task) == set(schema.model("dedicated.server.task.Response")["properties"])
    assert api.get(f"/dedicated/server/{BIG}")["os"] != "byolinux_64", "not before it is done"


def test_hardware_raid_is_checked_against_the_disk_group(api):
    too_many = [{"diskGroupId": 1, "hardwareRaid": [{"raidLevel": 1, "disks": 3}]}]
    assert refusal(api, BIG, customizations=BYOI, storage=too_many)[1].endswith("TooManyDisks")
    uneven = [{"diskGroupId": 1, "hardwareRaid": [{"raidLevel": 1, "disks": 2, "arrays": 3}]}]
    assert refusal(api, BIG, customizations=BYOI, storage=uneven)[1].endswith("DisksArrays")


@pytest.mark.parametrize("api_class", sorted(schema.all_error_classes()))
def test_any_error_class_of_the_schema_can_be_injected_on_the_next_start(sim, api, api_class):
    sim.inject(server=UEFI, api_error=api_class)
    status, answered, message = refusal(api, customizations=BYOI)
    expected_status, pattern = documented(api_class)
    assert (status, answered) == (expected_status, api_class)
    assert pattern.fullmatch(message)
    assert (
        UEFI in message or "{{.serverName}}" not in schema.all_error_classes()[api_class].template
    )
    assert reinstall(api, customizations=BYOI)["status"] == "init", "the next start is normal"


def test_an_unknown_error_class_cannot_be_injected(sim):
    with pytest.raises(ValueError, match="not an error class"):
        sim.inject(api_error="Client::Teapot")


def test_cancel_works_until_the_image_is_written(api, clock):
    task = reinstall(api, customizations=BYOI)["taskId"]
    tasks = f"/dedicated/server/{UEFI}/task"
    clock.advance(15)  # downloading
    assert api.post(f"{tasks}/{task}/cancel") is None
    cancelled = api.get(f"{tasks}/{task}")
    assert cancelled["status"] == "cancelled" and cancelled["doneDate"]
    with pytest.raises(E.ResourceNotFoundError):
        api.get(f"/dedicated/server/{UEFI}/install/status")
    second = reinstall(api, customizations=BYOI)["taskId"]
    clock.advance(32)  # "Write image to disk" runs from 30 s to 40 s
    with pytest.raises(E.BadParametersError, match="being written"):
        api.post(f"{tasks}/{second}/cancel")
    assert api.get(f"{tasks}/{second}")["status"] == "doing"
    with pytest.raises(E.ResourceNotFoundError):
        api.post(f"{tasks}/999/cancel")


def test_legacy_bodies_are_checked_against_the_legacy_model(api):
    path = f"/dedicated/server/{UEFI}/bringYourOwnImage"
    with pytest.raises(E.BadParametersError, match=r"Invalid parameter httpHeader\.0"):
        api.post(path, URL=URL, type="qcow2", httpHeader=[{"name": "A", "value": "b"}])
    with pytest.raises(E.BadParametersError, match="efiBootloaderPath"):
        api.post(path, URL=URL, type="qcow2", efiBootloaderPath=EFI)
    assert api.post(path, URL=URL, type="qcow2", diskGroupId=1) is None
