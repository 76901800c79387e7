"""deploy/k8s: each overlay renders, validates against the Kubernetes and KEDA schemas, and keeps its promises."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.main import get_command

from commands.cli import app as cli_app
from shared.settings import Settings
from tests.deploy.keda_schema import REDIS_AUTH_PARAMETERS, SCHEMAS
from tests.deploy.kustomize import KustomizeError, build
from worker.app import celery_config
from worker.queues import QUEUES, broker_lists

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("overlays/production", "overlays/emulator")
# The oldest Kubernetes we support and the newest schema kubernetes-validate ships, both pinned.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
NAMESPACE = "m365-provisioner"
SECRET_NAME = "m365-provisioner"
# Environment variables that must only ever come from the Secret.
SECRET_VARS = {"SECRET_KEY", "DATABASE_URL", "BROKER_URL", "REDIS_URL", "FLOWER_BASIC_AUTH", "SMTP_PASSWORD",
               "WEBHOOK_SECRET", "BROKER_REDIS_PASSWORD", "METRICS_TOKEN"}
# A margin on top of Celery's own numbers for acks, event flush and broker close.
SHUTDOWN_MARGIN_S = 15

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    return {name: build(K8S / name) for name in ("base", *OVERLAYS)}


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_specs(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]


def containers(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for where, pod in pod_specs(objects):
        for c in pod.get("initContainers", []) + pod["containers"]:
            yield f"{where}/{c['name']}", c


def config_data(objects: list[Obj]) -> dict[str, str]:
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("m365-provisioner-")]
    return cm["data"]


def secret_example() -> dict[str, str]:
    return yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())["stringData"]


# --- rendering and schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_component_into_the_namespace(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"
    for kind, name in [("Namespace", NAMESPACE), ("Deployment", "api"), ("Service", "api"),
                       ("PodDisruptionBudget", "api"), ("Deployment", "worker"), ("ScaledObject", "worker"),
                       ("TriggerAuthentication", "worker-broker"), ("Deployment", "beat"), ("Deployment", "flower"),
                       ("Service", "flower"), ("Job", "migrate")]:
        find(objects, kind, name)
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, f"{o['kind']}/{o['metadata']['name']}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", ("base", *OVERLAYS))
def test_core_objects_validate_strictly(rendered: dict[str, list[Obj]], overlay: str, version: str) -> None:
    core = [o for o in rendered[overlay] if o["kind"] not in SCHEMAS]
    assert core
    for o in core:
        kubernetes_validate.validate(o, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_objects_match_the_documented_spec(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    keda = [o for o in objects if o["kind"] in SCHEMAS]
    assert {o["kind"] for o in keda} == set(SCHEMAS)
    for o in keda:
        jsonschema.Draft202012Validator(SCHEMAS[o["kind"]]).validate(o)
    scaled = find(objects, "ScaledObject", "worker")
    target = find(objects, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert "replicas" not in target["spec"], "KEDA owns the worker count; a fixed replicas fights it on every apply"
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    for trigger in scaled["spec"]["triggers"]:
        auth = find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        params = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
        assert params <= REDIS_AUTH_PARAMETERS
        assert "address" in params or {"host", "port"} <= params or "address" in trigger["metadata"]
        assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == {SECRET_NAME}


def test_workers_scale_on_every_queue_they_consume(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["overlays/production"]
    scaled = find(objects, "ScaledObject", "worker")
    # Every Redis list a message can wait in: the provisioning queue's priority levels too.
    assert {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]} == \
        {name for queue in QUEUES for name in broker_lists(queue)}
    command = find(objects, "Deployment", "worker")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert set(command[command.index("-Q") + 1].split(",")) == set(QUEUES)


def test_worker_liveness_pings_its_own_node_name(rendered: dict[str, list[Obj]]) -> None:
    worker = find(rendered["overlays/production"], "Deployment", "worker")["spec"]["template"]["spec"]["containers"][0]
    node = worker["command"][worker["command"].index("-n") + 1]
    assert node == "worker@$(POD_NAME)"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in worker["env"]
    script = worker["livenessProbe"]["exec"]["command"][-1]
    # Exec probes get no $(VAR) expansion from Kubernetes, hence sh and ${POD_NAME}.
    assert "celery -A worker.app:app inspect ping" in script and '-d "worker@${POD_NAME}"' in script
    assert worker["livenessProbe"]["timeoutSeconds"] > int(re.search(r"--timeout (\d+)", script).group(1))  # type: ignore[union-attr]


def test_keda_reads_the_same_redis_database_as_celery(rendered: dict[str, list[Obj]]) -> None:
    """The BROKER_REDIS_* keys of the example Secret describe BROKER_URL, and databaseIndex is its database."""
    example = secret_example()
    broker = urlsplit(example["BROKER_URL"])
    assert example["BROKER_REDIS_ADDRESS"] == f"{broker.hostname}:{broker.port}"
    assert example["BROKER_REDIS_TLS"] == ("enable" if broker.scheme == "rediss" else "disable")
    scaled = find(rendered["overlays/production"], "ScaledObject", "worker")
    assert {t["metadata"]["databaseIndex"] for t in scaled["spec"]["triggers"]} == {broker.path.strip("/")}


# --- invariants -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_exactly_one_beat_and_never_two_during_a_rollout(rendered: dict[str, list[Obj]], overlay: str) -> None:
    beat = find(rendered[overlay], "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert not [o for o in rendered[overlay] if o["kind"] == "ScaledObject" and
                o["spec"]["scaleTargetRef"]["name"] == "beat"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_grace_period_covers_celery_shutdown(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """SIGTERM is a warm shutdown: running tasks finish first. Give them their whole time limit plus Celery's own."""
    conf = celery_config(Settings())
    pod = find(rendered[overlay], "Deployment", "worker")["spec"]["template"]["spec"]
    needed = conf["task_time_limit"] + conf["worker_soft_shutdown_timeout"] + SHUTDOWN_MARGIN_S
    assert pod["terminationGracePeriodSeconds"] >= needed
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_sized_and_locked_down(rendered: dict[str, list[Obj]], overlay: str) -> None:
    uid = int(re.search(r"--uid (\d+)", (ROOT / "deploy" / "Dockerfile").read_text()).group(1))  # type: ignore[union-attr]
    for where, pod in pod_specs(rendered[overlay]):
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == uid, where
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["enableServiceLinks"] is False, where
        tmp = [v for v in pod["volumes"] if v["name"] == "tmp"]
        assert tmp and "emptyDir" in tmp[0], f"{where}: /tmp must be an emptyDir"
    for where, c in containers(rendered[overlay]):
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
        assert "memory" in c["resources"]["limits"], where
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["capabilities"] == {"drop": ["ALL"]}, where
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], f"{where}: BEAT_DIR and tempfiles need /tmp"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_http_containers_have_readiness_and_liveness(rendered: dict[str, list[Obj]], overlay: str) -> None:
    served = 0
    for where, c in containers(rendered[overlay]):
        if not c.get("ports"):
            continue
        served += 1
        port_names = {p["name"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in c, f"{where}: {probe}"
            action = c[probe].get("httpGet") or c[probe].get("tcpSocket")
            assert action and action["port"] in port_names, f"{where}: {probe} probes a port the container serves"
    assert served >= 2
    api = find(rendered[overlay], "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # ENVIRONMENT=production: the API does not start without the token that guards /metrics.
    assert "METRICS_TOKEN" in {var["name"] for var in api["env"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_only_from_the_secret_by_reference(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    assert not [o for o in objects if o["kind"] == "Secret"], "the Secret is created outside the kustomization"
    documented = set(secret_example()) | {"SMTP_PASSWORD", "WEBHOOK_SECRET"}
    assert not SECRET_VARS & set(config_data(objects))
    for where, c in containers(objects):
        for var in c.get("env", []):
            if var["name"] in SECRET_VARS:
                assert "value" not in var, f"{where}: {var['name']} is a literal"
                ref = var["valueFrom"]["secretKeyRef"]
                assert ref["name"] == SECRET_NAME and ref["key"] == var["name"], where
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == SECRET_NAME and ref["key"] in documented, f"{where}: {ref}"
        for src in c.get("envFrom", []):
            assert "secretRef" not in src or src["secretRef"]["name"] == SECRET_NAME, where
    text = "\n".join(yaml.safe_dump(o) for o in objects)
    assert "stringData" not in text
    for auth in (o for o in objects if o["kind"] == "TriggerAuthentication"):
        assert {ref["key"] for ref in auth["spec"]["secretTargetRef"]} <= documented


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_a_provisioner_command(rendered: dict[str, list[Obj]], overlay: str) -> None:
    cli_commands = set(get_command(cli_app).commands)  # type: ignore[attr-defined]
    for where, c in containers(rendered[overlay]):
        command = c["command"]
        assert command[0] == "provisioner", where
        assert command[1] in cli_commands, f"{where}: {command[1]} is not a provisioner command"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_app_pod_starts_before_the_schema_is_migrated(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    for name in ("api", "worker", "beat"):
        pod = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        assert [i["command"] for i in pod["initContainers"]] == [["provisioner", "migrate"]], name
    job = find(objects, "Job", "migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["provisioner", "migrate"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0, "a finished Job must go, or the next apply cannot replace it"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_labels_and_selectors_agree(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    pods = {}
    for o in objects:
        if o["kind"] == "ConfigMap":
            continue
        labels = o["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "m365-provisioner", o["metadata"]["name"]
        assert labels.get("app.kubernetes.io/part-of") == "m365-provisioner", o["metadata"]["name"]
        if o["kind"] in ("Deployment", "Job"):
            template = o["spec"]["template"]["metadata"]["labels"]
            assert template.get("app.kubernetes.io/component"), o["metadata"]["name"]
            pods[o["metadata"]["name"]] = template
            if o["kind"] == "Deployment":
                assert o["spec"]["selector"]["matchLabels"].items() <= template.items()
    for o in objects:
        selector = {"Service": lambda s: s["selector"],
                    "PodDisruptionBudget": lambda s: s["selector"]["matchLabels"]}.get(o["kind"])
        if selector:
            sel = selector(o["spec"])
            chosen = [n for n, labels in pods.items() if sel.items() <= labels.items()]
            assert chosen == [o["metadata"]["name"]], f"{o['kind']}/{o['metadata']['name']} selects {chosen}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_is_reached_through_tls_issued_by_cert_manager(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    ingress = find(objects, "Ingress", "api")
    assert ingress["metadata"]["annotations"].get("cert-manager.io/cluster-issuer")
    tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    assert all(t["secretName"] for t in ingress["spec"]["tls"])
    service_port = find(objects, "Service", "api")["spec"]["ports"][0]["name"]
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts, f"{rule['host']} is served without TLS"
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"] == {"name": "api", "port": {"name": service_port}}
    # Nothing else exposes the API outside the cluster.
    assert find(objects, "Service", "api")["spec"]["type"] == "ClusterIP"


# --- configuration --------------------------------------------------------------------------------------------


def test_base_config_is_settings_at_their_code_defaults(rendered: dict[str, list[Obj]]) -> None:
    """Every key is a real setting, and the base repeats the code's default (tune in an overlay, not here)."""
    data = config_data(rendered["base"])
    fields = Settings.model_fields
    for key, value in data.items():
        if key == "BEAT_DIR":
            assert value == "/tmp"
            continue
        assert key.lower() in fields, f"{key} is not a setting in shared/settings.py"
        one: dict[str, Any] = {key.lower(): value}
        parsed = getattr(Settings(**one), key.lower())
        assert parsed == fields[key.lower()].default, f"{key}={value} differs from the code default"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_config_is_valid_settings(rendered: dict[str, list[Obj]], overlay: str) -> None:
    data: dict[str, Any] = {k.lower(): v for k, v in config_data(rendered[overlay]).items() if k != "BEAT_DIR"}
    Settings(**data)


def test_production_pins_its_image_and_scales_the_api(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["overlays/production"]
    images = {c["image"] for _, c in containers(objects)}
    assert len(images) == 1
    (image,) = images
    assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1]
    assert find(objects, "Deployment", "api")["spec"]["replicas"] >= 2
    assert config_data(objects)["LOG_JSON"] == "true"


def test_emulator_overlay_points_every_root_at_the_emulator_and_trusts_its_ca(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["overlays/emulator"]
    service = find(objects, "Service", "emulator")
    port = service["spec"]["ports"][0]["port"]
    data = config_data(objects)
    for root in ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL"):
        assert data[root] == f"https://emulator:{port}", root
    emulator = find(objects, "Deployment", "emulator")
    pod = emulator["spec"]["template"]["spec"]
    # The emulator's certificate names its host name: it must be the name the clients dial.
    assert pod["hostname"] == service["metadata"]["name"] == "emulator"
    assert emulator["spec"]["replicas"] == 1 and emulator["spec"]["strategy"] == {"type": "Recreate"}
    command = pod["containers"][0]["command"]
    ca_out = command[command.index("--ca-out") + 1]
    assert f"cat {ca_out}" in (K8S / "overlays" / "emulator" / "kustomization.yaml").read_text()
    bundle = Path(data["MS_CA_BUNDLE"])
    for name in ("api", "worker"):
        spec = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        (main,) = spec["containers"]
        mounts = [m for m in main["volumeMounts"] if bundle.parent == Path(m["mountPath"])]
        assert mounts, f"{name} does not mount {bundle.parent}"
        assert volumes[mounts[0]["name"]]["configMap"]["name"] == "emulator-ca"
    assert "MS_CA_BUNDLE" not in config_data(rendered["overlays/production"])


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(KustomizeError, match="commonLabels"):
        build(tmp_path)
