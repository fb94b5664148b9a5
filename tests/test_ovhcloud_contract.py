"""OVHcloud's own schema as the contract: provider bodies, simulator answers and error classes."""

import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import ovh.exceptions as E
import pytest
from ovh_fixtures import (
    BIG,
    UEFI,
    Sleeps,
    client_for,
    providers,
    simulator_fixtures,
    spec,
)

from byoi_bot.core.progress import Phase
from byoi_bot.core.sent import sent_fields
from byoi_bot.ovhcloud import schema
from byoi_bot.ovhcloud.error_classes import FAMILIES, family_of
from byoi_bot.ovhcloud.errors import explain_exception
from byoi_bot.ovhcloud.provider import (
    ReinstallProvider,
    RetryPolicy,
    legacy_body,
    reinstall_body,
)

DEPLOY = 70.0
REINSTALL = ("POST", "/dedicated/server/{serviceName}/reinstall")
GENERIC_CODES = {"bad_request", "forbidden", "not_found", "conflict", "unknown"}
# Every route the provider calls: the test below must walk each one.
PROVIDER_ROUTES = {
    ("GET", "/dedicated/server/{serviceName}"),
    ("GET", "/dedicated/server/{serviceName}/specifications/hardware"),
    ("POST", "/dedicated/server/{serviceName}/reinstall"),
    ("GET", "/dedicated/server/{serviceName}/task"),
    ("GET", "/dedicated/server/{serviceName}/task/{taskId}"),
    ("POST", "/dedicated/server/{serviceName}/task/{taskId}/cancel"),
    ("GET", "/dedicated/server/{serviceName}/install/status"),
    ("GET", "/dedicated/server/{serviceName}/bringYourOwnImage"),
    ("POST", "/dedicated/server/{serviceName}/bringYourOwnImage"),
    ("DELETE", "/dedicated/server/{serviceName}/bringYourOwnImage"),
}
CLIENT_ERRORS = {
    400: E.BadParametersError,
    404: E.ResourceNotFoundError,
    409: E.ResourceConflictError,
}


running, sim, clock = simulator_fixtures(DEPLOY)


def template_of(path: str) -> str:
    """The schema's path for a concrete API path."""
    for _, route in schema.routes():
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", route)
        if re.fullmatch(pattern, path):
            return route
    raise AssertionError(f"{path} is not a route of the vendored schema")


class RecordingClient:
    """The real ovh client, recording (METHOD, schema route, body, answer) of each call."""

    def __init__(self, client) -> None:
        self.client = client
        self.calls: list[tuple[str, str, dict, object]] = []

    def _call(self, method: str, path: str, **params):
        answer = getattr(self.client, method.lower())(path, **params)
        self.calls.append((method, template_of(path), params, answer))
        return answer

    def get(self, path, **query):
        return self._call("GET", path, **query)

    def post(self, path, **body):
        return self._call("POST", path, **body)

    def delete(self, path, **query):
        return self._call("DELETE", path, **query)


def problems(instance, schema_part) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in schema.errors(instance, schema_part)]


def test_every_route_the_provider_calls_sends_and_gets_what_the_schema_says(sim, clock):
    recorder = RecordingClient(client_for(sim))
    _, legacy = providers(recorder)
    reinstall = ReinstallProvider(recorder, retry=RetryPolicy(sleep=Sleeps()), task_check_every=1)
    reinstall.server_facts(UEFI)
    mark = reinstall.mark(UEFI)
    handle = reinstall.start(spec())
    for seconds in (0, 1.2, 1.2, *[DEPLOY / 7] * 7):  # init, todo, doing…, done
        clock.advance(seconds)
        reinstall.progress(UEFI, handle)
    assert reinstall.progress(UEFI, handle).phase is Phase.DONE
    assert reinstall.find_since(UEFI, mark) == handle and reinstall.find_active(UEFI) is None
    linux = reinstall.start(spec(BIG, os="byolinux", metadata=(("role", "db"),), raid=1))
    reinstall.progress(BIG, linux)
    reinstall.cancel(BIG, linux)
    old = legacy.start(spec())
    legacy.progress(UEFI, old)
    legacy.cancel(UEFI, old)

    assert {(m, route) for m, route, _, _ in recorder.calls} == PROVIDER_ROUTES
    for method, route, body, answer in recorder.calls:
        if method in ("POST", "DELETE") and schema.request_schema(method, route):
            assert problems(body, schema.request_schema(method, route)) == [], (method, route)
        expected = schema.response_schema(method, route)
        if expected is None:
            assert answer is None, (method, route)
        else:
            assert problems(answer, expected) == [], (method, route)
    tasks = [a for m, r, _, a in recorder.calls if r.endswith("/task/{taskId}")]
    assert {t["status"] for t in tasks} >= {"init", "todo", "doing", "done"}
    every_field = set(schema.model("dedicated.server.Task")["properties"])
    assert all(set(t) == every_field for t in tasks), "every task field of the schema"


@pytest.mark.parametrize(
    "body",
    [
        reinstall_body(spec()),
        reinstall_body(spec(os="byolinux", disk_group=0, raid=5, metadata=(("a", "b"),))),
        reinstall_body(spec(disk_group=1, keep_disks=(2,))),
        legacy_body(spec(description="x", disk_group=2, metadata=(("a", "b"),))),
    ],
    ids=["byoi_64", "byolinux_64", "keep_disks", "legacy"],
)
def test_provider_bodies_fit_the_schema(body):
    route = "/dedicated/server/{serviceName}/" + ("reinstall" if "customizations" in body else
                                                  "bringYourOwnImage")  # fmt: skip
    assert problems(body, schema.request_schema("POST", route)) == []


def flatten(body: dict, prefix: str = "") -> set[str]:
    """Dotted paths of a body's leaves (dicts of strings, and lists of strings, are leaves)."""
    paths = set()
    for key, value in body.items():
        here = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("httpHeaders", "configDriveMetadata"):
            paths |= flatten(value, here + ".")
        elif isinstance(value, list) and value and isinstance(value[0], dict) and key in (
            "storage", "hardwareRaid"
        ):  # fmt: skip
            for n, item in enumerate(value):
                paths |= flatten(item, f"{here}[{n}].")
        else:
            paths.add(here)
    return paths


SPECS = [
    spec(),
    spec(checksum=None, headers=(), user_data=None, hostname=None, ssh_key=None),
    spec(os="byolinux", efi_bootloader=None, metadata=(("role", "web"),), raid=1, disk_group=2),
    spec(disk_group=0),
    spec(config_drive=True),
    spec(disk_group=1, keep_disks=(2, 3)),
]


@pytest.mark.parametrize("api", ["reinstall", "legacy"])
@pytest.mark.parametrize("case", range(len(SPECS)))
def test_what_the_card_shows_is_exactly_what_is_sent(api, case):
    s = replace(SPECS[case], api=api)
    if api == "legacy":
        s = replace(s, os="byoi", efi_bootloader=None, raid=None, keep_disks=None)
    body = reinstall_body(s) if api == "reinstall" else legacy_body(s)
    assert {name for name, _ in sent_fields(s)} == flatten(body)
    shown = " ".join(v for _, v in sent_fields(s.with_secrets(None)))
    for secret in ("s3cr3t", "hunter2"):
        assert secret not in shown, "secret values are masked"


# -- error classes --------------------------------------------------------------------------


def fake_api_error(status: int, api_class: str, message: str):
    """What the ovh client raises for an error answer of the API."""
    body = {"class": api_class, "message": message}
    response = SimpleNamespace(status_code=status, headers={}, json=lambda: body)
    return CLIENT_ERRORS.get(status, E.APIError)(message, response=response)


ROUTE_CLASSES = sorted(
    {
        (c.name, c.status, c.template)
        for method, route in PROVIDER_ROUTES
        if route in schema.document()["paths"]
        for c in schema.error_classes(method, route).values()
    }
)


def test_the_schema_lists_the_reinstall_routes_error_classes():
    assert len(ROUTE_CLASSES) == 60 == len(schema.error_classes(*REINSTALL))


@pytest.mark.parametrize(("name", "status", "template"), ROUTE_CLASSES, ids=lambda v: str(v))
def test_every_error_class_of_the_called_routes_has_its_own_explanation(name, status, template):
    family = family_of(name)
    assert family is not None, f"{name} falls to a generic explanation"
    e = explain_exception(fake_api_error(status, name, template))
    assert e.code == family.code and e.code not in GENERIC_CODES
    assert e.summary and e.cause and e.action and template in e.raw


def test_families_are_distinct_and_all_used():
    codes = [f.code for f in FAMILIES]
    assert len(codes) == len(set(codes))
    used = {family_of(name).code for name, _, _ in ROUTE_CLASSES}
    assert used == set(codes), "no family without a class of the schema"


def test_the_old_wrong_advice_for_an_incompatible_os_is_gone():
    e = explain_exception(
        fake_api_error(409, "Client::Conflict::OperatingSystemIncompatible", "Operating system")
    )
    assert e.code == "os_incompatible" and "wait" not in e.action.lower()


def test_every_inventory_server_is_answered_as_the_schema_says(sim):
    client = client_for(sim)
    server_model = schema.response_schema("GET", "/dedicated/server/{serviceName}")
    hardware = schema.response_schema(
        "GET", "/dedicated/server/{serviceName}/specifications/hardware"
    )
    names = client.get("/dedicated/server")
    assert problems(names, schema.response_schema("GET", "/dedicated/server")) == []
    for name in names:
        assert problems(client.get(f"/dedicated/server/{name}"), server_model) == []
        path = f"/dedicated/server/{name}/specifications/hardware"
        assert problems(client.get(path), hardware) == []


def test_the_docs_list_every_explained_family_and_class():
    readme = (Path(__file__).resolve().parents[1] / "docs" / "ovhcloud-api.md").read_text()
    for family in FAMILIES:
        row = f"| `{family.code}` | " + ", ".join(f"`{c}`" for c in family.classes) + " |"
        assert row in readme, family.code


def test_the_vendored_schema_keeps_its_license_and_says_what_was_changed():
    folder = Path(schema.__file__).parent / "apischema"
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "configDriveMetadata" in (folder / "README.md").read_text()
    custom = schema.model("dedicated.server.reinstall.Customizations")["properties"]
    assert custom["configDriveMetadata"]["additionalProperties"] == {"type": "string"}
    assert "ovhcloud-docs PR #531" in (folder / "README.md").read_text()
    storage = schema.model("dedicated.server.reinstall.Storage")["properties"]
    assert storage["erase"]["type"] == "boolean"
