"""Where people run it (issue 22): the image's health check against a real bot, the lock
file, the systemd unit (`systemd-analyze`), the compose file, the Kubernetes manifests
(rendered as Kustomize would, validated against the Kubernetes schemas) and the example
alert rules (`promtool`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonpatch
import kubernetes_validate
import pytest
import yaml
from process_harness import ProcessBot
from test_packaging import instructions
from tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30.0"


def test_the_images_health_check_asks_the_running_bot(tmp_path):
    (check,) = instructions("HEALTHCHECK")
    command = json.loads(check[check.index("CMD ") + 4 :])
    assert command[:2] == ["python", "-c"]
    bot = ProcessBot(tmp_path, socket_mode=True)
    try:
        bot.start()
        port = bot.ops_url.rsplit(":", 1)[1]
        probe = [sys.executable, "-c", command[2]]
        env = bot.env | {"BYOI_METRICS_PORT": port}
        assert subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode == 0
        assert bot.terminate()[0] == 0
        assert subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode != 0
    finally:
        bot.close()
    assert instructions("STOPSIGNAL") == ["SIGTERM"]
    assert "BYOI_METRICS_PORT=9090" in instructions("ENV")[0]


def test_the_lock_file_pins_every_dependency_with_hashes():
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {
        re.sub(r"[-_.]+", "-", name).lower()
        for name in re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, re.M)
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["postgres"]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ]", d)[0]).lower() for d in wanted}
    assert names <= pinned, f"run pip-compile (see the Dockerfile): {sorted(names - pinned)}"
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.split("\n\n", 1)[0].split("#\n", 1)[-1])
    assert all("--hash=sha256:" in b for b in blocks if "==" in b)


def test_the_systemd_unit_verifies_and_is_hardened(tmp_path):
    require_tool("systemd-analyze")
    unit = (DEPLOY / "systemd" / "byoi-bot.service").read_text()
    for line in ("Type=notify", "DynamicUser=yes", "StateDirectory=byoi-bot", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "KillSignal=SIGTERM", "TimeoutStopSec=15"):  # fmt: skip
        assert f"\n{line}\n" in unit
    # verify checks that ExecStart's program exists: point it at one that does
    local = tmp_path / "byoi-bot.service"
    local.write_text(unit.replace("/opt/byoi-bot/bin/byoi-bot", shutil.which("true")))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and verify.stderr == "" and verify.stdout == "", verify
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(local)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert security.returncode == 0, security.stdout[-2000:]
    assert re.search(r"Overall exposure level for byoi-bot.service: [01]\.\d", security.stdout)


def test_the_compose_file_runs_one_instance_with_its_store_on_a_volume():
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    (bot,) = compose["services"].values()
    assert bot["image"] == "byoi-bot" and bot["volumes"] == ["byoi-data:/data"]
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"]
    assert bot["stop_grace_period"] == "15s", "longer than BYOI_STOP_TIMEOUT"
    assert "environment" not in bot, "secrets come from byoi.env"


def render(folder: Path) -> list[dict]:
    """`kustomize build folder` for what these kustomizations use: resources (files and
    bases), JSON 6902 patch files with a target, and inline `$patch: delete` patches."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "patches"}, kustomization
    docs: list[dict] = []
    for resource in kustomization["resources"]:
        path = folder / resource
        docs += render(path) if path.is_dir() else list(yaml.safe_load_all(path.read_text()))
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            target = patch["target"]
            (doc,) = [d for d in docs if _is(d, target["kind"], target["name"])]
            ops = yaml.safe_load((folder / patch["path"]).read_text())
            docs[docs.index(doc)] = jsonpatch.apply_patch(doc, ops)
        else:
            gone = yaml.safe_load(patch["patch"])
            assert gone.pop("$patch") == "delete"
            docs = [d for d in docs if not _is(d, gone["kind"], gone["metadata"]["name"])]
    return docs


def _is(doc: dict, kind: str, name: str) -> bool:
    return doc["kind"] == kind and doc["metadata"]["name"] == name


@pytest.mark.parametrize("layout", ["base", "overlays/postgres-replicas"])
def test_the_kubernetes_manifests_are_valid_against_the_schemas(layout):
    docs = render(KUBERNETES / layout)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001, "the image's numeric USER"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] > 10, "longer than BYOI_STOP_TIMEOUT"
    env = {e["name"]: e for e in container["env"]}
    kinds = {d["kind"] for d in docs}
    if layout == "base":
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert env["BYOI_DB"]["value"] == "/data/byoi.db"
        assert {"PersistentVolumeClaim", "Secret", "Service"} <= kinds
    else:
        assert deployment["spec"]["replicas"] == 2
        assert env["BYOI_DB"]["valueFrom"]["secretKeyRef"]["key"] == "BYOI_DB"
        assert "PersistentVolumeClaim" not in kinds and "PodDisruptionBudget" in kinds
        assert [v["name"] for v in pod["volumes"]] == ["tmp"]
        (secret,) = [d for d in docs if d["kind"] == "Secret"]
        assert secret["stringData"]["BYOI_DB"].startswith("postgresql://")


def test_the_example_alert_rules_pass_promtool_and_name_real_metrics(tmp_path):
    require_tool("promtool")
    rules = ROOT / "docs" / "alert-rules.yml"
    check = subprocess.run(
        ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(
        ["promtool", "test", "rules", str(ROOT / "tests" / "data" / "alert-rules.test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    exported = _exported_metric_names()
    named = set(re.findall(r"\bbyoi_[a-z_]+", rules.read_text()))
    assert named and named <= exported, sorted(named - exported)
    dashboard = (ROOT / "docs" / "grafana-dashboard.json").read_text()
    named = set(re.findall(r"\bbyoi_[a-z_]+", dashboard))
    assert named and named <= exported, sorted(named - exported)


def _exported_metric_names() -> set[str]:
    """Every series name the bot can export (histograms: _bucket, _sum, _count)."""
    from byoi_bot.metrics import Metrics

    names = {"byoi_store_up", "byoi_requests", "byoi_outbox_posts",
             "byoi_outbox_oldest_age_seconds", "byoi_leader", "byoi_slack_token_ok"}  # fmt: skip
    for family in Metrics().registry.collect():
        names |= {s.name for s in family.samples} | {family.name}
        if family.type == "histogram":
            names |= {f"{family.name}_{end}" for end in ("bucket", "sum", "count")}
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names
