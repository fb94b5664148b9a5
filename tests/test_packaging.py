"""What can be checked of the Dockerfile, the manifest and the README without an engine."""

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()


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
    }


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


def test_readme_shows_the_grammars_help():
    from byoi_bot import commands

    assert commands.help_text() in README


def test_the_two_replica_compose_file_shares_one_postgres_database():
    compose = yaml.safe_load((ROOT / "docs" / "compose.replicas.yml").read_text())
    bots = {name: s for name, s in compose["services"].items() if s.get("image") == "byoi-bot"}
    assert len(bots) == 2
    urls = {s["environment"]["BYOI_DB"] for s in bots.values()}
    assert len(urls) == 1 and urls.pop().startswith("postgresql://byoi:${POSTGRES_PASSWORD")
    assert all(s["depends_on"]["postgres"]["condition"] == "service_healthy" for s in bots.values())
    assert "docs/compose.replicas.yml" in README


def test_ci_starts_postgresql_for_the_tests_without_running_it_as_root():
    ci = (ROOT / ".ci" / "run").read_text()
    script = (ROOT / ".ci" / "postgres").read_text()
    assert "BYOI_TEST_POSTGRES_DSN=$(bash .ci/postgres)" in ci
    assert "export BYOI_TEST_POSTGRES_DSN" in ci
    assert "apt-get install" in script and "postgresql" in script
    assert "pg_ctlcluster" in script and "runuser -u postgres" in script  # never as root
    assert "127.0.0.1" in script
