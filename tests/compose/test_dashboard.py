"""The provisioned Grafana dashboard queries only metrics Keel exports, and shows all of them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from activities.metrics import WORKER_METRICS

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
DASHBOARD = COMPOSE / "grafana" / "dashboards" / "keel.json"
# A Keel metric named in PromQL; label values and other strings are blanked out first.
METRIC_NAME = re.compile(r"(?<![A-Za-z0-9_:])keel_[A-Za-z0-9_:]*")
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
DECLARED = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def _queries(node: Any) -> Iterator[str]:
    """Every PromQL string of the dashboard: panel targets' `expr`, template variables' queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition", "query") and isinstance(value, str):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    return {name for query in _queries(dashboard) for name in METRIC_NAME.findall(QUOTED.sub('""', query))}


def declared(exposition: str) -> dict[str, str]:
    """The metric names an exposition declares (`# TYPE` lines, present with no sample too), by type."""
    return dict(DECLARED.findall(exposition))


def series_names(families: dict[str, str]) -> set[str]:
    """What a query may name: each family, and a histogram's _bucket, _sum and _count series."""
    names = set(families)
    for name, kind in families.items():
        if kind == "histogram":
            names |= {name + suffix for suffix in HISTOGRAM_SERIES}
    return names


class _WorkerMetrics(Collector):
    def collect(self) -> Iterator[Metric]:
        for metric in WORKER_METRICS:
            yield from metric.collect()


def worker_families() -> dict[str, str]:
    registry = CollectorRegistry()
    registry.register(_WorkerMetrics())
    return declared(generate_latest(registry).decode())


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.mark.unit
def test_the_parser_finds_metric_names_and_skips_strings() -> None:
    query = (
        'histogram_quantile(0.95, sum by (le) (rate(keel_a_bucket{job="keel_not_a_metric"}[5m])))'
        " / keel_b + on(x) keel_c{y=~'keel_nope'}"
    )
    assert queried_metrics({"targets": [{"expr": query}]}) == {"keel_a_bucket", "keel_b", "keel_c"}


@pytest.mark.unit
def test_every_panel_queries_the_provisioned_prometheus(dashboard: dict[str, Any]) -> None:
    source = yaml.safe_load(
        (COMPOSE / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"] and all(target["expr"] for target in panel["targets"]), panel["title"]
    provider = yaml.safe_load((COMPOSE / "grafana" / "provisioning" / "dashboards" / "keel.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


@pytest.mark.unit
def test_prometheus_scrapes_the_api_and_the_workers() -> None:
    config = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["keel-api"]["static_configs"][0]["targets"] == ["keel-api:8000"]
    assert jobs["keel-api"]["metrics_path"] == "/metrics"
    workers = jobs["keel-worker"]["dns_sd_configs"][0]
    assert workers["names"] == ["keel-worker"] and workers["port"] == 9464


@pytest.mark.integration
async def test_the_dashboard_queries_exactly_what_keel_exports(
    api: httpx.AsyncClient, dashboard: dict[str, Any]
) -> None:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    families = {
        name: kind
        for name, kind in {**declared(response.text), **worker_families()}.items()
        # `_created`: prometheus-client's creation time of a labelled counter or histogram, once used.
        if name.startswith("keel_") and not name.endswith("_created")
    }
    queried = queried_metrics(dashboard)
    unknown = queried - series_names(families)
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"
    # And the other way: each exported family is on some panel (a histogram through any of its series).
    shown = {name for name in families if series_names({name: families[name]}) & queried}
    assert shown == set(families), f"exported but on no panel: {sorted(set(families) - shown)}"
