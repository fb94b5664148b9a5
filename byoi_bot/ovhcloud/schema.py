"""OVHcloud's own OpenAPI description of the routes byoi-bot uses, vendored in `apischema/`.

The contract both sides keep: the provider's bodies and the simulator's answers validate
against it (tests), the simulator validates incoming bodies with it, and the API's error
classes with their message templates come from it. OpenAPI 3.0's `nullable` is turned into
JSON Schema's `null` type; everything else is read as JSON Schema as is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jsonschema

REF_PREFIX = "#/components/schemas/"
_PLACEHOLDER = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


@dataclass(frozen=True)
class ErrorClass:
    """One error the API documents for a route: HTTP status, class and message template."""

    status: int
    name: str
    template: str

    def message(self, **values: object) -> str:
        """The template filled in; a placeholder without a value is left as `<name>`."""
        return _PLACEHOLDER.sub(
            lambda m: str(values.get(m.group(1), f"<{m.group(1)}>")), self.template
        )

    def placeholders(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.template))


@cache
def document() -> dict:
    """The vendored OpenAPI document (paths and the models they use)."""
    text = resources.files(__package__).joinpath("apischema/baremetal.openapi.json").read_text()
    return json.loads(text)


def operation(method: str, path: str) -> dict:
    """The OpenAPI operation of `METHOD path` (path as the schema writes it, with `{…}`)."""
    try:
        return document()["paths"][path][method.lower()]
    except KeyError:
        raise KeyError(f"{method.upper()} {path} is not in the vendored schema") from None


def routes() -> list[tuple[str, str]]:
    """Every (METHOD, path) of the vendored schema."""
    return [
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete")
    ]


def error_classes(method: str, path: str) -> dict[str, ErrorClass]:
    """The error classes the schema documents for `METHOD path`, by class name."""
    found: dict[str, ErrorClass] = {}
    for status, response in operation(method, path).get("responses", {}).items():
        if not status.isdigit() or int(status) < 400:
            continue
        examples = response.get("content", {}).get("application/json", {}).get("examples", {})
        for example in examples.values():
            body = example.get("value") or {}
            if body.get("class"):
                found[body["class"]] = ErrorClass(int(status), body["class"], body["message"])
    return found


def all_error_classes() -> dict[str, ErrorClass]:
    """Every error class of every route of the vendored schema."""
    found: dict[str, ErrorClass] = {}
    for method, path in routes():
        found.update(error_classes(method, path))
    return found


def model(name: str) -> dict:
    """A model of `components.schemas` (e.g. `dedicated.server.Task`)."""
    return document()["components"]["schemas"][name]


def request_schema(method: str, path: str) -> dict | None:
    """The JSON schema of the body of `METHOD path`, or None when it takes none."""
    body = operation(method, path).get("requestBody")
    return body["content"]["application/json"]["schema"] if body else None


def response_schema(method: str, path: str, status: int = 200) -> dict | None:
    """The JSON schema of the answer of `METHOD path` with `status`, or None (no body)."""
    response = operation(method, path).get("responses", {}).get(str(status)) or {}
    content = response.get("content", {}).get("application/json")
    return content["schema"] if content else None


def errors(instance: object, schema: dict) -> list[jsonschema.ValidationError]:
    """Where `instance` breaks `schema` (a schema of the vendored document, `$ref`s allowed)."""
    return sorted(_validator(json.dumps(schema, sort_keys=True)).iter_errors(instance), key=str)


def validate(instance: object, schema: dict) -> None:
    """Raise `jsonschema.ValidationError` (the first problem) unless `instance` fits."""
    problems = errors(instance, schema)
    if problems:
        raise problems[0]


@cache
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    root = dict(json.loads(schema_json))
    root["components"] = _json_schema(document()["components"])
    return jsonschema.Draft4Validator(root)


def _json_schema(node: object) -> object:
    """OpenAPI 3.0 to JSON Schema: `nullable: true` becomes a `null` alternative."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [{"type": "null"}, converted]}
    return converted
