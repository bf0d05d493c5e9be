"""The monitoring files in deploy/k8s/monitoring, checked as `promtool check rules` would
(no promtool here: promql-parser, a port of Prometheus's parser): every alert and panel
expression parses, names only metrics documented in docs/operations.md (which
tests/e2e/test_metrics.py scrapes from the running services), and every alert has a
severity, a summary and a runbook section that exists; every service has a
ServiceMonitor on a port its Service has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from metric_names import documented_metrics, is_documented

ROOT = Path(__file__).parents[2]
MONITORING = ROOT / "deploy" / "k8s" / "monitoring"
OPERATIONS = ROOT / "docs" / "operations.md"
SERVICES = ("gateway", "auth-service", "connector-connectwise", "aggregator")
_METRIC = re.compile(r"\b((?:syntaskio|http_server|messaging)_[a-z0-9_]+)")


def anchors() -> set[str]:
    """GitHub's anchors of operations.md's headings."""
    found = set()
    for line in OPERATIONS.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


def rules() -> list[dict[str, Any]]:
    rule_file = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    assert rule_file["kind"] == "PrometheusRule"
    return [rule for group in rule_file["spec"]["groups"] for rule in group["rules"]]


def panel_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_metrics_table_is_there() -> None:
    assert {"syntaskio_sync_runs_total", "http_server_request_duration_seconds"} <= (
        documented_metrics()
    )


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_alert_parses_and_names_documented_metrics_and_a_runbook(
    rule: dict[str, Any],
) -> None:
    promql_parser.parse(rule["expr"])
    used = set(_METRIC.findall(rule["expr"]))
    assert used
    documented = documented_metrics()
    assert [name for name in used if not is_documented(name, documented)] == []
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"]
    page, _, anchor = rule["annotations"]["runbook"].partition("#")
    assert page == "docs/operations.md"
    assert anchor in anchors()
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_every_dashboard_panel_parses_and_names_documented_metrics() -> None:
    documented = documented_metrics()
    for expr in panel_expressions():
        promql_parser.parse(expr)
        used = set(_METRIC.findall(expr))
        assert used, expr
        assert [name for name in used if not is_documented(name, documented)] == [], expr


def test_a_broken_expression_is_caught() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        promql_parser.parse("sum(rate(syntaskio_sync_runs_total[5m])")
    assert not is_documented("syntaskio_made_up_total", documented_metrics())


def test_every_service_is_scraped_on_its_metrics_port() -> None:
    monitors = {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all((MONITORING / "service-monitors.yaml").read_text())
    }
    assert set(monitors) == set(SERVICES)
    for service in SERVICES:
        docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/base" / f"{service}.yaml").read_text()))
        [svc] = [d for d in docs if d["kind"] == "Service"]
        [deployment] = [d for d in docs if d["kind"] == "Deployment"]
        ports = {p["name"] for p in svc["spec"]["ports"]}
        [endpoint] = monitors[service]["spec"]["endpoints"]
        assert endpoint["port"] in ports
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "metrics", "containerPort": 9464} in container["ports"]
        selector = monitors[service]["spec"]["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": service}
