"""``/byoi deploy``: one server, a fleet, or a catalog image, from tokens to a `Deploy`."""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn
from urllib.parse import urlsplit

from ..core.request import Checksum, DeploySpec
from .converters import convert, option_value
from .errors import did_you_mean, fail, option_error, show
from .grammar import BY_KEY, DEPLOY, EXAMPLE_SERVER, EXAMPLE_URL, Option
from .markup import as_name, looks_like_url
from .model import CatalogChoice, CommandError, Deploy, Fleet
from .tokenizer import Token


def parse_deploy(tokens: list[Token], now: datetime) -> Deploy:
    if not tokens:
        return Deploy(None)
    values: dict[str, object] = {}
    given_by: dict[str, str] = {}
    repeated: dict[str, list] = {"headers": [], "metadata": []}
    positionals: list[str] = []
    fleet: dict[str, object] = {}
    for token in tokens:
        listed = token.key is None and "," in token.value and not looks_like_url(token.value)
        if listed and "servers" not in fleet:
            fleet["servers"] = _server_list(token.value, now)
            positionals.append(str(fleet["servers"][0]))  # the template's server
            continue
        if token.key is None:
            positionals.append(token.value)
            continue
        option = BY_KEY.get(token.key) or _unknown_key(token.key)
        if option.field.startswith("fleet_"):
            _refuse_duplicate(option, given_by)
            given_by[option.field] = option.name
            fleet[option.field] = convert(option, token.value, now)
            if option.field == "fleet_pattern":
                values["server"] = "fleet.invalid"  # each server replaces it
                given_by["server"] = option.name
            continue
        if option.repeatable:
            repeated[option.field].append(convert(option, token.value, now))
            continue
        _refuse_duplicate(option, given_by)
        given_by[option.field] = option.name
        values[option.field] = convert(option, token.value, now)
    secret = bool(repeated["headers"])
    for field, raw in _assign_positionals(positionals, given_by, secret):
        values[field] = _convert_positional(field, raw, now, secret=secret)
    if fleet:
        return _fleet_deploy(fleet, values, repeated, given_by, secret)
    if "image" in values:
        if secret and given_by.get("image") == _POSITIONAL:
            fail(
                "image",
                "the image name is not shown, as this command has header values (a header "
                "value with spaces spills into the positional arguments).",
                "`image=<name>`, and quotes around a header whose value holds spaces",
                BY_KEY["image"].example_command(),
            )
        return _catalog_deploy(values, repeated)
    _require(values)
    if "image_type" not in values:
        linux = values.get("os") == "byolinux"  # qcow2 only: no need to say it
        url = str(values["image_url"])
        values["image_type"] = _inferred_type(url, "qcow2" if linux else None)
    _refuse_what_the_os_cannot_carry(values)
    return Deploy(DeploySpec(**values, **{k: tuple(v) for k, v in repeated.items()}))


def _fleet_deploy(
    fleet: dict[str, object],
    values: dict[str, object],
    repeated: dict[str, list],
    given_by: dict[str, str],
    secret: bool,
) -> Deploy:
    servers = tuple(fleet.get("servers", ()))
    pattern = fleet.get("fleet_pattern")
    if servers and pattern:
        option_error(BY_KEY["servers"], "give either a list of servers or `servers=`, not both.")
    if not servers and not pattern:
        option_error(
            BY_KEY["parallel"],
            "`parallel=`, `canary=` and `stop-on-failure=` go with several servers.",
            'a list `ns1,ns2,ns3` in place of the server, or `servers="web-*"`',
        )
    plan = Fleet(
        servers=servers,
        pattern=str(pattern) if pattern else None,
        parallel=int(fleet.get("fleet_parallel", 1)),
        canary=int(fleet.get("fleet_canary", 0)),
        stop_on_failure=bool(fleet.get("fleet_stop", True)),
    )
    if len(servers) != len(set(servers)):
        option_error(BY_KEY["servers"], "a server is listed twice.")
    if servers and plan.canary >= len(servers):
        option_error(BY_KEY["canary"], f"{plan.canary} canaries for {len(servers)} servers.")
    if "image" in values:
        template = _catalog_deploy(values, repeated)
        return Deploy(None, template.catalog, plan)
    _require(values)
    if "image_type" not in values:
        linux = values.get("os") == "byolinux"
        values["image_type"] = _inferred_type(str(values["image_url"]), "qcow2" if linux else None)
    _refuse_what_the_os_cannot_carry(values)
    spec = DeploySpec(**values, **{k: tuple(v) for k, v in repeated.items()})
    return Deploy(spec, None, plan)


def _server_list(raw: str, now: datetime) -> tuple[str, ...]:
    """``ns1,ns2,ns3``: every name checked; an empty one (``ns1,,ns2``, ``ns1,``, or
    ``ns1, ns2`` split by its space) is refused rather than guessed at."""
    names = [name.strip() for name in as_name(raw).split(",")]
    if "" in names:
        fail(
            "server",
            f"the server list `{show(as_name(raw), 60)}` has an empty name: a comma at either "
            "end, two commas in a row, or a space after a comma.",
            "server names separated by commas, without spaces: `ns1,ns2,ns3`",
            f"/byoi deploy ns1.example.net,ns2.example.net {EXAMPLE_URL}",
        )
    return tuple(convert(BY_KEY["server"], name, now) for name in names)


def _catalog_deploy(values: dict[str, object], repeated: dict[str, list]) -> Deploy:
    image = str(values.pop("image"))
    if "image_url" in values:
        option_error(
            BY_KEY["image"],
            f"both a catalog image (`{image}`) and an image URL are given; give one.",
        )
    if "server" not in values:
        option_error(BY_KEY["server"], "the server name is missing.")
    server = str(values.pop("server"))
    options = [*values.items(), *((k, tuple(v)) for k, v in repeated.items() if v)]
    return Deploy(None, CatalogChoice(server, image, tuple(options)))


def catalog_spec(choice: CatalogChoice, image, checksum: Checksum | None) -> DeploySpec:
    """The spec of a catalog deploy: the image's values, then the typed options over them
    (a value neither gives, such as kept disk groups, is the policy's default).

    `image` is a `core.catalog.CatalogImage`; `checksum` is its resolved checksum (given,
    or read from its checksum file). Raises `CommandError` when the result is invalid
    (e.g. `os=byolinux` over a raw image).
    """
    values: dict[str, object] = {
        "server": choice.server,
        "image_url": image.url,
        "os": image.os,
        "checksum": checksum,
        "efi_bootloader": image.efi_bootloader,
        "hostname": _catalog_hostname(image, choice.server),
        "user_data": image.user_data,
        "metadata": image.metadata,
        "description": image.description,
        "health_url": image.health_url,
        "keep_disks": image.keep_disks,  # None: the policy's default
    }
    if image.type:
        values["image_type"] = image.type
    values.update(dict(choice.options))
    if "image_type" not in values:
        linux = values.get("os") == "byolinux"
        values["image_type"] = _inferred_type(image.url, "qcow2" if linux else None)
    _refuse_what_the_os_cannot_carry(values)
    return DeploySpec(**{k: v for k, v in values.items() if v is not None or k == "checksum"})


def _catalog_hostname(image, server: str) -> str | None:
    try:
        name = image.hostname_for(server)
    except (KeyError, IndexError, ValueError):
        name = image.hostname
    return None if name is None else str(option_value("hostname", name))


def _refuse_what_the_os_cannot_carry(values: dict[str, object]) -> None:
    """byolinux_64 installs qcow2 images only and takes no EFI bootloader path."""
    if values.get("os") != "byolinux":
        return
    option = BY_KEY["os"]
    if values["image_type"] != "qcow2":
        option_error(
            option,
            "Bring Your Own Linux (`os=byolinux`) installs qcow2 images only; this one is raw.",
            "a qcow2 image, or `os=byoi` for a raw image",
        )
    if values.get("efi_bootloader"):
        option_error(
            option,
            "Bring Your Own Linux (`os=byolinux`) takes no `efi-bootloader=`: its installer "
            "makes the image bootable itself.",
            "`os=byolinux` without `efi-bootloader=`, or `os=byoi`",
        )


_FIELD_KEY = {"server": "server", "image_url": "url", "image": "image"}
_POSITIONAL = "(positional)"


def _convert_positional(field: str, raw: str, now: datetime, *, secret: bool):
    """Convert a positional value; with headers present, errors do not echo it.

    An unquoted header value with spaces spills into positional values, so they may hold
    a secret.
    """
    try:
        return convert(BY_KEY[_FIELD_KEY[field]], raw, now)
    except CommandError as exc:
        if not secret:
            raise
        problem = (
            f"the {_FIELD_NAMES[field]} is not valid (not shown, as this command has header "
            "values; quote a header whose value holds spaces)."
        )
        raise CommandError(exc.argument, problem, exc.expected, exc.example) from None


def _refuse_duplicate(option: Option, given_by: dict[str, str]) -> None:
    earlier = given_by.get(option.field)
    if earlier is None:
        return
    what = f"`{earlier}=`" if earlier != option.name else "an earlier one"
    option_error(option, f"`{option.name}` is given twice (see {what}); give it once.")


def _assign_positionals(
    positionals: list[str], given_by: dict[str, str], has_headers: bool
) -> list[tuple[str, str]]:
    """Place positional values: URL-looking ones as the image URL, the others as server,
    then (without a URL) as catalog image name.

    Order is forgiving (``deploy <url> <server>`` works); a value that fits nowhere is an
    error. Values are not echoed when headers are present (an unquoted header value
    would otherwise leak into the message).
    """
    urls = [p for p in positionals if looks_like_url(p)]
    names = [p for p in positionals if not looks_like_url(p)]
    assigned: list[tuple[str, str]] = []
    free = [f for f in ("image_url", "server") if f not in given_by]
    if not urls and "image_url" in free and "image" not in given_by:
        free[free.index("image_url")] = "image"  # no URL: a second name is a catalog image
    for raw in urls + names:
        wanted = "image_url" if raw in urls else "server"
        field = wanted if wanted in free else (free[0] if free and raw in names else None)
        if field is None:
            _extra_positional(raw, wanted, given_by, has_headers)
        free.remove(field)
        given_by[field] = _POSITIONAL
        assigned.append((field, raw))
    return assigned


def _extra_positional(raw: str, wanted: str, given_by: dict[str, str], secret: bool) -> NoReturn:
    shown = "a value" if secret else f"`{show(as_name(raw), 40)}`"
    option = BY_KEY[_FIELD_KEY[wanted]]
    if wanted == "image_url" or given_by.get(wanted) == option.name:
        option_error(option, f"the {_FIELD_NAMES[wanted]} is given twice (again as {shown}).")
    fail(
        "arguments",
        f"unexpected {shown}: `deploy` takes one server and one image URL, "
        "everything else is `key=value`.",
        f"`{DEPLOY.usage}`; put values with spaces in quotes",
        DEPLOY.example,
    )


def _require(values: dict[str, object]) -> None:
    for field in ("server", "image_url"):
        if field not in values:
            option = BY_KEY[_FIELD_KEY[field]]
            option_error(option, f"the {_FIELD_NAMES[field]} is missing.")


_FIELD_NAMES = {"server": "server name", "image_url": "image URL", "image": "image name"}


def _inferred_type(url: str, default: str | None = None) -> str:
    path = urlsplit(url).path.lower()
    if path.endswith(".qcow2"):
        return "qcow2"
    if path.endswith((".img", ".raw")):
        return "raw"
    if default:
        return default
    name = path.rsplit("/", 1)[-1]
    ending = f"it ends in `{show(name[name.rfind('.') :], 12)}`; " if "." in name else ""
    option_error(
        BY_KEY["type"],
        f"cannot tell the image type from the URL ({ending}"
        "only .qcow2, .img and .raw are recognised).",
        "`type=qcow2` or `type=raw`",
    )


def _unknown_key(key: str) -> NoReturn:
    hint = did_you_mean(key, list(BY_KEY))
    fail(
        key,
        f"`{show(key, 40)}=` is not a deploy option.{hint}",
        "one of " + ", ".join(f"`{k}=`" for k in BY_KEY),
        f"/byoi deploy {EXAMPLE_SERVER} {EXAMPLE_URL} {BY_KEY['checksum'].example}",
    )
