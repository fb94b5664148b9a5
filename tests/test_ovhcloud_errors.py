"""Every installer message, API error class, credential and transport failure, explained."""

import json

import ovh.exceptions as E
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from ovh_fixtures import ALL_MESSAGES, GUIDE_MESSAGES, SEED_MESSAGES, message

from byoi_bot.ovhcloud.errors import explain, explain_exception

GiB = 1024**3
URLS = (
    "http://path/of/your/image",
    "https://images.example.net/debian-12.qcow2",
    "https://bob:pw@cdn.example.org:8443/os/ubuntu.raw?token=abc123",
    "http://10.0.0.5/img.qcow2.",
)


class FakeResponse:
    """What ovh.APIError keeps of an HTTP answer: status, headers and JSON body."""

    def __init__(self, status: int, body: dict | None, query_id: str = "EU.ext-1.abc") -> None:
        self.status_code = status
        self.headers = {"X-OVH-QUERYID": query_id}
        self._body = body

    def json(self):
        if self._body is None:
            raise ValueError("not JSON")
        return self._body


def api_error(kind, status: int, message: str, api_class: str | None = None):
    body = {"message": message} | ({"class": api_class} if api_class else {})
    return kind(message, response=FakeResponse(status, body))


@pytest.mark.parametrize(("code", "template"), SEED_MESSAGES, ids=[c for c, _ in SEED_MESSAGES])
@pytest.mark.parametrize("url", URLS)
def test_seed_table_messages(code, template, url):
    text = message(template, url=url, got="1234", want="5678")
    e = explain(text)
    assert e.code == code
    assert e.summary and e.cause and e.action
    assert "token=abc123" not in e.summary + e.cause + e.raw and "pw@" not in e.raw


@pytest.mark.parametrize(("code", "template"), GUIDE_MESSAGES, ids=[c for c, _ in GUIDE_MESSAGES])
@pytest.mark.parametrize(
    "values",
    [
        {"got": "X", "want": "Y", "actual": "vmdk", "image": "1", "device": "0"},
        {"actual": "vhdx", "image": str(12 * GiB + 322122547), "device": str(10 * GiB)},
        {"got": "a" * 128, "want": "b" * 128, "actual": "iso", "image": "999999999999"},
    ],
)
def test_current_guide_messages(code, template, values):
    assert explain(message(template, **values)).code == code


def test_all_codes_are_distinct_per_meaning():
    codes = {code for code, _ in ALL_MESSAGES}
    assert len(codes) == 12  # 13 templates, the checksum mismatch in both tables


def test_sizes_are_given_in_human_units():
    e = explain(message(GUIDE_MESSAGES[3][1], image=str(13207024435), device=str(10 * GiB)))
    assert e.summary == "The image is 12.3 GiB but the disk is 10.0 GiB."


def test_checksums_and_formats_are_named():
    e = explain("Bad checkSumType for downloaded file, got: abc123 while expecting def456")
    assert "abc123" in e.cause and "def456" in e.cause
    seed = explain('bad checkSumType for downloaded file, got: 1234 "While Expecting 5678"')
    assert "1234" in seed.cause and "5678" in seed.cause
    assert "vmdk" in explain(message(GUIDE_MESSAGES[2][1], actual="vmdk")).summary


def test_download_url_is_masked():
    e = explain("Could not download image located: https://u:pw@x.example/a.qcow2?sig=SECRET")
    assert "https://***@x.example/a.qcow2?***" in e.summary
    assert "SECRET" not in str(e.to_dict()) and "pw" not in e.raw


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}\.(net|com|eu)", fullmatch=True),
    path=st.from_regex(r"(/[A-Za-z0-9._-]{1,12}){1,4}", fullmatch=True),
    token=st.from_regex(r"[A-Za-z0-9]{8,30}", fullmatch=True),
    scheme=st.sampled_from(["http", "https"]),
)
def test_download_failure_with_any_url(host, path, token, scheme):
    e = explain(f"Could not download image located: {scheme}://{host}{path}?token={token}")
    assert e.code == "download_failed"
    assert f"{scheme}://{host}" in e.summary
    assert f"token={token}" not in str(e.to_dict())


@given(image=st.integers(1, 10**14), device=st.integers(1, 10**14))
def test_too_big_for_disk_with_any_sizes(image, device):
    text = (
        f"image provided has a size of {image} bytes which is larger than device of {device} bytes"
    )
    e = explain(text)
    assert e.code == "image_too_big_for_disk"
    assert f"{image / GiB:.1f} GiB" in e.summary and f"{device / GiB:.1f} GiB" in e.summary


@given(
    got=st.from_regex(r"[0-9a-f]{1,128}", fullmatch=True),
    want=st.from_regex(r"[0-9a-f]{1,128}", fullmatch=True),
    seed_style=st.booleans(),
)
def test_checksum_mismatch_with_any_values(got, want, seed_style):
    template = SEED_MESSAGES[5][1] if seed_style else GUIDE_MESSAGES[1][1]
    e = explain(template.format(got=got, want=want))
    assert e.code == "checksum_mismatch" and got in e.cause and want in e.cause


@given(actual=st.from_regex(r"[a-z0-9]{2,10}", fullmatch=True))
def test_format_mismatch_with_any_format(actual):
    e = explain(f"image provided format is {actual} which does not match expected qcow2 format")
    assert e.code == "format_mismatch" and actual in e.summary


@pytest.mark.parametrize(
    "text",
    ["Disk is on fire", "", "Something went wrong at https://x.example/p?key=SECRET"],
)
def test_unknown_messages_are_generic_and_carry_the_raw_text(text):
    e = explain(text)
    assert e.code == "unknown"
    assert e.summary == "OVHcloud reported an error byoi-bot does not recognise."
    assert "SECRET" not in str(e.to_dict())
    if text:
        assert text.split(" at ")[0] in e.raw and text.split(" at ")[0] in e.cause


BAD, NOT_FOUND, CONFLICT = E.BadParametersError, E.ResourceNotFoundError, E.ResourceConflictError


@pytest.mark.parametrize(
    ("kind", "status", "api_class", "code"),
    [
        (BAD, 400, "Client::BadRequest::CustomizationInvalidFormat", "invalid_customization"),
        (BAD, 400, "Client::BadRequest::CustomizationSizeExceeded", "customization_too_large"),
        (BAD, 400, "Client::BadRequest::DiskGroup", "bad_disk_group"),
        (BAD, 400, "Client::BadRequest::HostnameInvalidFormat", "invalid_hostname"),
        (BAD, 400, "Client::BadRequest::IncompatibleParams", "incompatible_params"),
        (BAD, 400, "Client::BadRequest::TaskAlreadyExists", "task_already_exists"),
        (E.APIError, 403, "Client::Forbidden::ServiceRestricted", "forbidden"),
        (NOT_FOUND, 404, "Client::NotFound::OperatingSystem", "os_not_found"),
        (NOT_FOUND, 404, "Client::NotFound::DiskGroup", "disk_group_not_found"),
        (CONFLICT, 409, "Client::Conflict::DisturbAlreadyExists", "server_busy"),
        (E.APIError, 500, "Server::InternalServerError::Internal", "ovh_internal_error"),
        (E.APIError, 500, "Server::InternalServerError", "ovh_internal_error"),
        (NOT_FOUND, 404, "Client::NotFound", "not_found"),
        (BAD, 400, "Client::BadRequest", "bad_request"),
        (CONFLICT, 409, None, "conflict"),
        (E.APIError, 503, None, "ovh_internal_error"),
        (E.ResourceExpiredError, 460, None, "service_expired"),
    ],
)
def test_api_error_classes(kind, status, api_class, code):
    e = explain_exception(api_error(kind, status, "Details from the API", api_class))
    assert e.code == code
    assert "Details from the API" in e.raw and "EU.ext-1.abc" in e.raw


def test_installer_message_in_a_bad_request_is_recognised():
    exc = api_error(E.BadParametersError, 400, "Bad format image, expected: qcow2, raw.")
    assert explain_exception(exc).code == "bad_image_type"


def test_unknown_api_error_keeps_its_message():
    exc = api_error(E.APIError, 418, "I'm a teapot", "Client::Teapot")
    e = explain_exception(exc)
    assert e.code == "unknown" and "I'm a teapot" in e.raw


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (E.InvalidKey("This application key is invalid"), "invalid_application_key"),
        (E.InvalidKey("Invalid ApplicationSecret 'hush'"), "invalid_application_key"),
        (E.InvalidCredential("This credential is not valid"), "invalid_consumer_key"),
        (E.NotCredential("This credential does not exist"), "unknown_consumer_key"),
        (E.NotGrantedCall("This call has not been granted"), "not_granted"),
        (E.Forbidden("Forbidden"), "forbidden"),
        (
            E.InvalidConfiguration("Missing authentication information"),
            "bad_configuration",
        ),
        (E.InvalidRegion("Unknown endpoint"), "bad_configuration"),
        (E.OAuth2FailureError("invalid_client"), "oauth2_failed"),
        (E.BadParametersError("Invalid signature"), "invalid_signature"),
    ],
)
def test_credential_errors(exc, code):
    e = explain_exception(exc)
    assert e.code == code and e.cause and e.action
    assert "hush" not in str(e.to_dict())


LOW = "Low HTTP request failed error"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (E.HTTPError(LOW, requests.ReadTimeout("read timed out")), "timeout"),
        (E.HTTPError(LOW, requests.ConnectTimeout("connect")), "timeout"),
        (E.HTTPError(LOW, requests.ConnectionError("Connection refused")), "connection_failed"),
        (requests.ReadTimeout("read timed out"), "timeout"),
        (requests.ConnectionError("Connection refused"), "connection_failed"),
        (TimeoutError("timed out"), "timeout"),
        (ConnectionRefusedError(111, "Connection refused"), "connection_failed"),
        (E.InvalidResponse("Failed to decode API response", ValueError("x")), "invalid_response"),
    ],
)
def test_transport_failures(exc, code):
    assert explain_exception(exc).code == code


def test_transport_error_masks_urls():
    inner = requests.ConnectionError("failed for https://api.example/1.0/x?secret=abc")
    e = explain_exception(E.HTTPError("Low HTTP request failed error", inner))
    assert "secret=abc" not in str(e.to_dict())


def test_anything_else_is_unknown_not_a_guess():
    e = explain_exception(RuntimeError("boom"))
    assert e.code == "unknown" and "boom" in e.raw


def test_explanations_are_json_ready():
    assert json.loads(json.dumps(explain("Could not create configdrive on disk.").to_dict()))


# Installer messages are templates (guide 2026-02): old and new wordings, both image types.
TEMPLATES = (
    ("write_failed", "Can't write {type} on disk.", [{"type": "qcow2"}, {"type": "raw"}]),
    (
        "image_too_big_for_ram",
        "Could not download, {type} image is too big to download in memory.",
        [{"type": "qcow2"}, {"type": "raw"}],
    ),
    (
        "download_failed",
        "Could not download image: {error}",
        [
            {"error": "404 Not Found"},
            {"error": "dial tcp 203.0.113.9:443: i/o timeout"},
            {"error": "GET https://u:pw@x.example/a.raw?sig=SECRET: 403 Forbidden"},
        ],
    ),
    (
        "download_failed",
        "Could not download image located: {error}",
        [{"error": "https://x.example/a.raw"}, {"error": "http://10.0.0.1/b.qcow2?t=SECRET"}],
    ),
    (
        "checksum_mismatch",
        "Bad {kind} for downloaded file, got: {got} while expecting {want}",
        [
            {"kind": "sha256", "got": "ab" * 32, "want": "cd" * 32},
            {"kind": "md5", "got": "1" * 32, "want": "2" * 32},
            {"kind": "checkSumType", "got": "9f86", "want": "e3b0"},
        ],
    ),
    (
        "format_mismatch",
        "image provided format is {actual} which does not match expected {type} format",
        [{"actual": "qcow2", "type": "raw"}, {"actual": "vmdk", "type": "qcow2"}],
    ),
)


@pytest.mark.parametrize(
    ("code", "template", "values"),
    [(code, template, v) for code, template, fillings in TEMPLATES for v in fillings],
)
def test_installer_templates_are_matched_by_shape(code, template, values):
    text = template.format(**values)
    e = explain(text)
    assert e.code == code, text
    assert "SECRET" not in str(e.to_dict()) and "pw@" not in str(e.to_dict())
    for name in ("type", "got", "want", "actual"):
        if name in values:
            assert values[name] in e.summary + e.cause, name


def test_every_template_has_two_fillings():
    assert all(len(fillings) >= 2 for _, _, fillings in TEMPLATES)


def test_a_download_error_message_is_quoted_not_taken_for_a_url():
    e = explain("Could not download image: 404 Not Found")
    assert e.summary == "The server could not download the image: 404 Not Found"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("task cancelled: Task cancelled by the customer", "task_cancelled"),
        ("task cancelled", "task_cancelled"),
        ("task ovhError: Start bare metal OS installation", "task_ovh_error"),
        ("task customerError", "task_failed"),
    ],
)
def test_a_task_ending_without_an_installer_message_is_explained(text, code):
    e = explain(text)
    assert e.code == code and e.raw == text
