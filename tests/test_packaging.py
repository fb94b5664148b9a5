"""What can be checked of the Dockerfile, the manifest, the package's metadata, the README
and the docs without an engine or a network."""

import ast
import json
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPOSITORY = "https://github.com/byoi-bot/byoi-bot"


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_docker_image_runs_the_bot_as_a_non_root_user_with_the_store_on_a_volume():
    assert instructions("FROM") == ["python:3.11-slim"]
    assert instructions("USER") == ["10001:10001"], "numeric: runAsNonRoot can verify it"
    assert "useradd --system --uid 10001" in DOCKERFILE
    assert instructions("VOLUME") == ['["/data"]']
    assert "BYOI_DB=/data/byoi.db" in DOCKERFILE
    assert instructions("ENTRYPOINT") == ['["byoi-bot"]'] and instructions("CMD") == ['["run"]']
    assert instructions("HEALTHCHECK"), "the image declares a health check"


def test_docker_image_installs_the_package_the_way_the_readme_does():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["byoi-bot"] == "byoi_bot.cli:main"
    runs = instructions("RUN")
    assert runs[0] == "pip install --require-hashes --no-deps -r requirements.lock"
    assert runs[1].startswith("pip install --no-deps '.[postgres]'")
    assert "python3 -m pip install . && byoi-bot demo" in README


def test_the_image_gets_every_file_the_package_build_needs():
    copied = [path for copy in instructions("COPY") for path in copy.split()[:-1]]
    needed = [
        "pyproject.toml",
        PYPROJECT["project"]["readme"],
        *PYPROJECT["project"]["license-files"],
    ]
    for path in needed:
        assert any(path == c or path.startswith(c.rstrip("/") + "/") for c in copied), path


def test_no_secret_is_baked_into_the_image():
    env = " ".join(instructions("ENV") + instructions("ARG"))
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "OVH_APPLICATION"):
        assert name not in env
    assert not re.search(r"xox[abp]-|xapp-", DOCKERFILE)


def test_app_manifest_is_valid_against_slacks_schema():
    manifest = yaml.safe_load((ROOT / "app_manifest.yml").read_text())
    schema = json.loads((DATA / "slack" / "manifest.schema.1.0.0.json").read_text())
    jsonschema.validate(manifest, schema)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "reaction_added",
        "reaction_removed",
        "app_home_opened",
        "tokens_revoked",
        "app_uninstalled",
    }
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "reactions:read",
        "reactions:write",
        "usergroups:read",
        "channels:history",
        "groups:history",
        "im:write",
    }


def test_the_repositorys_manifest_is_byoi_bot_manifests_output():
    from byoi_bot.slack.manifest import manifest_yaml

    assert (ROOT / "app_manifest.yml").read_text() == manifest_yaml(), (
        "run `byoi-bot manifest > app_manifest.yml`"
    )


@pytest.mark.parametrize(
    "base",
    ["https://bot.example.net", "https://bot.example.net/", "https://bot.example.net/slack/events"],
)
def test_the_http_mode_manifest_sends_everything_to_slack_events(base):
    from byoi_bot.slack.manifest import manifest_yaml

    manifest = yaml.safe_load(manifest_yaml(base))
    schema = json.loads((DATA / "slack" / "manifest.schema.1.0.0.json").read_text())
    jsonschema.validate(manifest, schema)
    url = "https://bot.example.net/slack/events"
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == url
    assert settings["interactivity"]["request_url"] == url
    assert manifest["features"]["slash_commands"][0]["url"] == url


@pytest.mark.parametrize(
    "base",
    ["http://bot.example.net", "bot.example.net", "https://", "https://bot.example.net/?a=1",
     "ftp://bot.example.net", "https://bot.example.net/#x", ""],
)  # fmt: skip
def test_a_manifest_url_slack_cannot_call_is_refused(base):
    from byoi_bot.slack.manifest import ManifestError, events_url

    with pytest.raises(ManifestError, match="https://"):
        events_url(base)


def test_the_manifest_lists_exactly_what_the_bolt_app_listens_to(monkeypatch):
    """The manifest and the listeners share their names: every command and event the app
    registers is in the manifest, and the manifest asks for no event nobody listens to."""
    from slack_bolt import App
    from slack_sdk import WebClient

    from byoi_bot.slack import app as slack_app
    from byoi_bot.slack.manifest import manifest

    registered = {"command": [], "event": []}
    for kind in registered:
        original = getattr(App, kind)

        def record(self, name, *args, _original=original, _kind=kind, **kwargs):
            registered[_kind].append(name)
            return _original(self, name, *args, **kwargs)

        monkeypatch.setattr(App, kind, record)
    client = WebClient(token="xoxb-never-called", base_url="http://127.0.0.1:9/api/")
    slack_app.build_app(client, "0" * 32, deployments=None, store=None)
    named = lambda names: {n for n in names if isinstance(n, str)}  # noqa: E731 (not ANY)
    declared = manifest()
    assert named(registered["command"]) == {
        c["command"] for c in declared["features"]["slash_commands"]
    }
    assert named(registered["event"]) == set(
        declared["settings"]["event_subscriptions"]["bot_events"]
    )


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 -m pytest -q"
    assert command in README and command in ci


def test_manifest_usage_hint_is_the_grammars():
    from byoi_bot import commands

    manifest = yaml.safe_load((ROOT / "app_manifest.yml").read_text())
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/byoi"
    assert command["usage_hint"] == commands.usage_hint()


def test_the_command_reference_is_generated_from_the_grammar():
    from byoi_bot import commands

    reference = commands.reference_markdown()
    page = (DOCS / "commands-reference.md").read_text()
    assert reference in page, "regenerate it: see CONTRIBUTING.md"
    for option in commands.OPTIONS:
        for key in option.keys:
            assert f"<code>{key}=" in reference, key
    for command in commands.SUBCOMMANDS:
        assert f"<code>/byoi {command.name}" in reference, command.name
    rows = [line for line in reference.splitlines() if line.startswith("| <code>")]
    assert all(line.count(" | ") == 2 for line in rows), "a `|` in a cell splits it"


def test_the_two_replica_compose_file_shares_one_postgres_database():
    compose = yaml.safe_load((ROOT / "docs" / "compose.replicas.yml").read_text())
    bots = {name: s for name, s in compose["services"].items() if s.get("image") == "byoi-bot"}
    assert len(bots) == 2
    urls = {s["environment"]["BYOI_DB"] for s in bots.values()}
    assert len(urls) == 1 and urls.pop().startswith("postgresql://byoi:${POSTGRES_PASSWORD")
    assert all(s["depends_on"]["postgres"]["condition"] == "service_healthy" for s in bots.values())
    assert "docs/compose.replicas.yml" in (DOCS / "install.md").read_text()


def test_ci_starts_postgresql_for_the_tests_without_running_it_as_root():
    ci = (ROOT / ".ci" / "run").read_text()
    script = (ROOT / ".ci" / "postgres").read_text()
    assert "BYOI_TEST_POSTGRES_DSN=$(bash .ci/postgres)" in ci
    assert "export BYOI_TEST_POSTGRES_DSN" in ci
    assert "apt-get install" in script and "postgresql" in script
    assert "pg_ctlcluster" in script and "runuser -u postgres" in script  # never as root
    assert "127.0.0.1" in script


def test_the_readme_is_short_with_a_table_of_contents_and_a_linear_quick_start():
    lines = README.splitlines()
    assert len(lines) <= 250
    headings = [line[3:] for line in lines if line.startswith("## ")]
    assert headings[0] == "Contents"
    for heading in headings[1:]:
        anchor = re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        assert f"(#{anchor})" in README, f"the contents list {heading}"
    assert "Python 3.11 or newer" in README and "python3 -m venv" in README
    start = README.index("## Quick start")
    steps = [README.index(f"**{n}. ", start) for n in range(1, 7)]
    assert steps == sorted(steps)
    quick = README[start : README.index("\n## ", start + 1)]
    order = ["byoi-bot manifest", "createToken", "set -a; . ./byoi.env", "byoi-bot check"]
    positions = [quick.index(step) for step in [*order, "byoi-bot run"]]
    assert positions == sorted(positions), "Slack app → OVHcloud → byoi.env → check → run"


def test_the_readmes_links_work_on_a_package_index_too():
    """Relative links break on a package index's page: every link is absolute or an anchor
    of the README itself, and each one into this repository names a file that exists."""
    links = re.findall(r"\]\(([^)\s]+)\)", README) + re.findall(r"<(https?://[^>]+)>", README)
    assert links
    for link in links:
        assert link.startswith(("https://", "#")), link
        for prefix in (f"{REPOSITORY}/blob/main/", f"{REPOSITORY}/tree/main/",
                       "https://raw.githubusercontent.com/byoi-bot/byoi-bot/main/"):  # fmt: skip
            if link.startswith(prefix):
                assert (ROOT / link.removeprefix(prefix).split("#")[0]).exists(), link
    assert PYPROJECT["project"]["urls"]["Source"] == REPOSITORY


def test_the_readme_shows_the_demos_card_as_a_picture():
    assert "docs/images/card.png)" in README
    png = (DOCS / "images" / "card.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert (DOCS / "images" / "render_card.py").exists(), "the script that draws it"


def _pages(nav) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    items = nav.values() if isinstance(nav, dict) else nav
    return set().union(*map(_pages, items))


def test_every_docs_page_is_in_the_sites_nav():
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert site["validation"]["omitted_files"] == "warn"  # --strict: a failure
    assert site["validation"]["anchors"] == "warn"
    pages = _pages(site["nav"])
    assert {page.name for page in DOCS.glob("*.md")} == pages
    ci = (ROOT / ".ci" / "run").read_text()
    assert "mkdocs build --strict" in ci
    assert "twine check --strict" in ci and "python3 -m build" in ci


def test_the_package_metadata_is_fit_for_a_package_index():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and "LICENSE" in project["license-files"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert project["authors"] and project["classifiers"]
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(project["urls"])
    assert any("setuptools>=77" in r for r in PYPROJECT["build-system"]["requires"])
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in changelog and "## [Unreleased]" in changelog
    from byoi_bot import __version__

    assert project["version"] == __version__ and f"## [{__version__}]" in changelog


def _requirement_names(requirement: str) -> set[str]:
    """The distribution a requirement names, and those its extras bring in by psycopg's
    convention (`psycopg[pool]` installs `psycopg-pool`)."""
    match = re.match(r"([\w.-]+)(?:\[([\w,\s]+)\])?", requirement)
    name = match[1].lower().replace("_", "-")
    extras = [e.strip() for e in (match[2] or "").split(",") if e.strip()]
    return {name, *(f"{name}-{extra}" for extra in extras)}


def test_every_imported_third_party_package_is_declared():
    project = PYPROJECT["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["postgres"]]
    declared = set().union(*map(_requirement_names, requirements))
    distributions = packages_distributions()
    imported = set()
    for path in (ROOT / "byoi_bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = sorted(
        m for m in imported if m not in sys.stdlib_module_names and m != "byoi_bot"
    )
    assert "requests" in third_party and "urllib3" in third_party
    for module in third_party:
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        assert names & declared, f"{module} is imported but not declared in pyproject.toml"


def test_the_shipped_examples_are_the_packages():
    for name in ("byoi.env", "byoi.toml"):
        assert (DOCS / "examples" / name).read_text() == (
            ROOT / "byoi_bot" / "examples" / name
        ).read_text(), f"cp byoi_bot/examples/{name} docs/examples/"
    assert "examples/*" in PYPROJECT["tool"]["setuptools"]["package-data"]["byoi_bot"]
