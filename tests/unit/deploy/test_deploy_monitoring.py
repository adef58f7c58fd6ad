"""deploy/k8s/components/monitoring: the PodMonitor and the alerting rules, rendered into each
overlay with the real Kustomize. Each rule's expression is parsed as PromQL (promql-parser), and
every metric and label it names is one the parts really expose: the checker reads the metrics the
sink, the processors, the gateway and the API declare (checked against prometheus_client's own
rendering), so a renamed metric or label fails here rather than leaving an alert that can never
fire."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Iterator

import promql_parser as pq
import pytest
import yaml
from deploy_render import K8S, OVERLAYS, agentstream_workloads, of_kind, render_with_component

RULES = K8S / "components" / "monitoring" / "prometheusrule.yaml"
# Labels Prometheus adds to every scraped series (the PodMonitor's target labels).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "endpoint", "service"}
# Series that are Prometheus's own, not the parts'.
PROMETHEUS_SERIES = {"up": set()}
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^\d+[smhd]$")


# Where the parts declare their metrics: read from the source, every Counter/Gauge/Histogram with
# a literal name and label list (they all are), so a metric added or renamed is seen here.
METRIC_MODULES = ["sink/metrics.py", "stream_processors/metrics.py", "api/gateway/metrics.py", "api/metrics.py"]
SUFFIXES = {"Counter": ("_total", "_created"), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count", "_created")}


def declared(source: str) -> dict[str, set[str]]:
    """Every sample name the metrics declared in ``source`` expose (``x_total``, ``x_bucket``
    ...) -> its label names."""
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SUFFIXES):
            continue
        args = list(node.args) + [k.value for k in node.keywords if k.arg == "labelnames"]
        if not (args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
            continue
        labels: set[str] = set()
        for a in args[2:]:
            if isinstance(a, (ast.List, ast.Tuple)):
                labels = {e.value for e in a.elts if isinstance(e, ast.Constant)}
        base = args[0].value.removesuffix("_total") if node.func.id == "Counter" else args[0].value
        for suffix in SUFFIXES[node.func.id]:
            out[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


@pytest.fixture(scope="module")
def exposed() -> dict[str, set[str]]:
    root = Path(__file__).resolve().parents[3]
    out = dict(PROMETHEUS_SERIES)
    for rel in METRIC_MODULES:
        out.update(declared((root / rel).read_text()))
    from agentstream.schemas.offset_gaps import gap_metric_names  # a collector, not declared Counters

    for prefix in ("agentstream_processors", "agentstream_sink", "agentstream_alerts_forwarder", "agentstream_export_otlp"):
        out.update(gap_metric_names(prefix))
    return out


def test_the_declarations_are_read_as_the_client_exposes_them(exposed):
    """The source reading agrees with prometheus_client's own rendering of a part's metrics."""
    from prometheus_client import generate_latest

    from agentstream.stream_processors.metrics import ProcessorMetrics

    m = ProcessorMetrics()
    m.records_out.labels(topic="t").inc()
    m.batch_seconds.observe(0.1)
    m.errors.labels(what="w", error_class="bug").inc()
    for line in generate_latest(m.registry).decode().splitlines():
        if line.startswith("agentstream_"):
            name, _, rest = line.partition("{") if "{" in line.split(" ")[0] else (line.split(" ")[0], "", "")
            labels = set(re.findall(r'(\w+)="', rest))
            assert name in exposed and labels <= exposed[name], line
    assert exposed["agentstream_processors_errors_total"] == {"what", "error_class"}
    assert exposed["agentstream_sink_insert_seconds_bucket"] == {"table", "le"}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["spec"]["groups"] for r in g["rules"]]


def selectors(node: Any) -> Iterator[tuple[str, list[Any], list[str]]]:
    """(metric name, its matchers, the labels grouped or matched on around it) of each vector
    selector in a parsed expression."""
    around: list[str] = []
    todo: list[tuple[Any, list[str]]] = [(node, around)]
    while todo:
        n, labels = todo.pop()
        kind = type(n).__name__
        if kind == "VectorSelector":
            yield n.name, list(n.matchers.matchers), labels
        elif kind == "MatrixSelector":
            todo.append((n.vector_selector, labels))
        elif kind == "AggregateExpr":
            mod = n.modifier.labels if n.modifier is not None else []
            todo.append((n.expr, labels + list(mod)))
        elif kind == "BinaryExpr":
            mod = n.modifier.matching.labels if n.modifier is not None and n.modifier.matching is not None else []
            todo += [(n.lhs, labels + list(mod)), (n.rhs, labels + list(mod))]
        elif kind == "Call":
            todo += [(a, labels) for a in n.args]
        elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
            todo.append((n.expr, labels))


def check_expr(expr: str, exposed: dict[str, set[str]]) -> list[str]:
    """What in ``expr`` names a metric or label no part exposes (empty: all real)."""
    problems = []
    for name, matchers, grouped in selectors(pq.parse(expr)):
        if name not in exposed:
            problems.append(f"no part exposes {name}")
            continue
        known = exposed[name] | TARGET_LABELS
        for m in matchers:
            if m.name not in known:
                problems.append(f"{name} has no label {m.name}")
        for label in grouped:
            if label not in known:
                problems.append(f"{name} is grouped by {label}, which it does not have")
    return problems


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_each_rule_parses_and_names_only_real_metrics_and_labels(rule, exposed):
    assert check_expr(rule["expr"], exposed) == []


def test_the_checker_is_not_vacuous(exposed):
    assert check_expr("sum(rate(agentstream_sink_rows_totals[5m])) > 0", exposed) == [
        "no part exposes agentstream_sink_rows_totals"]
    assert check_expr('sum(rate(agentstream_sink_rows_total{tabel="events"}[5m]))', exposed) == [
        "agentstream_sink_rows_total has no label tabel"]
    assert check_expr("sum by (topic) (agentstream_sink_paused)", exposed) == [
        "agentstream_sink_paused is grouped by topic, which it does not have"]
    with pytest.raises(ValueError):
        pq.parse("sum(rate(agentstream_sink_rows_total[5m])")


def test_rules_are_a_plain_prometheus_rule_file_with_what_on_call_needs():
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc["spec"]) == {"groups"}  # `yq .spec` is a Prometheus rule file as it stands
    names = [g["name"] for g in doc["spec"]["groups"]]
    assert len(names) == len(set(names))
    alerts = [r["alert"] for r in rules()]
    assert len(alerts) == len(set(alerts)) and all(re.fullmatch(r"Agentstream[A-Z][A-Za-z]+", a) for a in alerts)
    for r in rules():
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert r["labels"]["severity"] in SEVERITIES
        assert r["annotations"]["summary"] and len(r["annotations"]["description"]) > 60
        assert "for" not in r or DURATION.match(r["for"]), r["alert"]
        # every template variable is one Prometheus gives an alert
        for var in re.findall(r"\{\{\s*(\$[\w.]+)", " ".join(r["annotations"].values())):
            assert var == "$value" or var.startswith("$labels."), (r["alert"], var)


def test_label_values_match_what_the_parts_write():
    """Regexes and values in the rules against the real topic names (default prefix), error
    classes and API route templates: a matcher that can never match is a silent alert."""
    from agentstream.api.app import create_app
    from agentstream.schemas import topic_name
    from agentstream.schemas.consumer_errors import ErrorClass
    from agentstream.schemas.offset_gaps import OUTCOMES
    from agentstream.sink.view_repair import DERIVED_FROM_EVENTS, OUTCOMES as VIEW_REPAIR_OUTCOMES

    values: dict[str, set[str]] = {
        "topic": {topic_name(t) for t in ("events", "dlq", "quarantine", "alerts", "raw", "commands", "policies")},
        "error_class": {c.value for c in ErrorClass},
        "table": {"events", "alerts"} | {t.table for t in DERIVED_FROM_EVENTS},
        # the metrics label a request with its route's template, the OpenAPI document's paths
        "route": set(create_app().openapi()["paths"]),
        "status": {str(s) for s in (200, 201, 204, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503)},
        "outcome": set(OUTCOMES) | set(VIEW_REPAIR_OUTCOMES),
    }
    checked = 0
    for r in rules():
        for name, matchers, _ in selectors(pq.parse(r["expr"])):
            for m in matchers:
                if m.name not in values:
                    continue
                hits = {v for v in values[m.name]
                        if (re.fullmatch(m.value, v) if "Re" in str(m.op) else v == m.value)}
                assert hits, f"{r['alert']}: {name}{{{m.name}{m.op}{m.value!r}}} matches nothing the parts write"
                if m.name == "topic":  # one logical topic each, not several by accident
                    assert len(hits) == 1, (r["alert"], hits)
                checked += 1
    assert checked >= 8


@pytest.fixture(scope="module", params=OVERLAYS)
def with_monitoring(request, tmp_path_factory):
    return render_with_component(request.param, "monitoring", tmp_path_factory.mktemp("kz"))


def test_the_component_adds_the_rules_and_a_pod_monitor_that_selects_every_part(with_monitoring):
    (rule,) = of_kind(with_monitoring, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())["spec"]
    assert rule["metadata"]["labels"]["app.kubernetes.io/part-of"] == "agentstream"
    (pm,) = of_kind(with_monitoring, "PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    want = pm["spec"]["selector"]["matchLabels"]
    ports = {e["port"]: e["path"] for e in pm["spec"]["podMetricsEndpoints"]}
    assert set(ports.values()) == {"/metrics"}
    workloads = agentstream_workloads(with_monitoring)
    assert workloads
    for w in workloads:
        tpl = w["spec"]["template"]
        assert want.items() <= tpl["metadata"]["labels"].items(), w["metadata"]["name"]
        named = {p["name"] for c in tpl["spec"]["containers"] for p in c.get("ports", [])}
        annotated = tpl["metadata"].get("annotations", {})
        if annotated.get("prometheus.io/scrape") == "true":
            # the pod's metrics port is one the PodMonitor scrapes
            port = int(annotated["prometheus.io/port"])
            (name,) = [p["name"] for c in tpl["spec"]["containers"] for p in c.get("ports", [])
                       if p["containerPort"] == port]
            assert name in ports and name in named, w["metadata"]["name"]


def test_the_operator_kinds_are_declared_for_the_schema_check():
    # PrometheusRule and PodMonitor have no schema in kubernetes-validate; the structure is
    # checked above, as for the other operators' kinds.
    from test_deploy_k8s_schemas import CUSTOM_KINDS

    assert ("monitoring.coreos.com/v1", "PrometheusRule") in CUSTOM_KINDS
    assert ("monitoring.coreos.com/v1", "PodMonitor") in CUSTOM_KINDS


def test_the_docs_explain_every_alert():
    text = (Path(__file__).resolve().parents[3] / "docs" / "deploy.md").read_text()
    missing = [r["alert"] for r in rules() if r["alert"] not in text]
    assert not missing, f"docs/deploy.md does not mention {missing}"
