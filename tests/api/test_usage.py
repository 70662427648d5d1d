"""`GET /v1/usage`: the caller's tenant's usage from the ledger, grouped, filtered by day, as JSON
or CSV; another tenant's never; auditors only; bad parameters named in a 422."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from keel.core.settings import Settings
from keel.core.usage import METRICS, StepUsage
from keel.stores.redis import make_redis
from keel.stores.usage import UsageLedger

pytestmark = pytest.mark.integration


@dataclass
class Recorded:
    a: str
    b: str
    day0: date
    day1: date


def record(ledger: UsageLedger, tenant: str, key: str, day: date, usage: StepUsage, tasks: int = 0) -> None:
    assert ledger.record(uuid.uuid4().hex, tenant, key, day, "p1", usage, tasks=tasks)


def write_usage(ledger: UsageLedger, a: str, b: str, today: date) -> Recorded:
    """Tenant a: two tasks on two days by two keys, one reviewed, and an old day outside any
    30-day range; tenant b: one expensive call."""
    day0, day1, old = today - timedelta(days=2), today - timedelta(days=1), today - timedelta(days=40)
    gen = dict(step="generate", kind="model", model="gpt-x", calls=1)
    record(
        ledger,
        a,
        "keya1",
        day0,
        StepUsage(**gen, input_tokens=1000, output_tokens=200, latency_ms=900, cost=0.5),
    )
    record(
        ledger, a, "keya1", day0, StepUsage("retrieve", "embed", "minilm", texts=2, latency_ms=40, cpu_ms=30)
    )
    record(ledger, a, "keya1", day0, StepUsage("task"), tasks=1)
    record(
        ledger,
        a,
        "keya2",
        day1,
        StepUsage(**gen, input_tokens=500, output_tokens=100, latency_ms=600, cost=0.25),
    )
    record(
        ledger,
        a,
        "keya2",
        day1,
        StepUsage("review", "review", "human", calls=1, latency_ms=180_000, cost=3.0),
    )
    record(ledger, a, "keya2", day1, StepUsage("task"), tasks=1)
    record(ledger, a, "keya1", old, StepUsage(**gen, input_tokens=9, cost=9.0))
    record(
        ledger, b, "keyb1", day0, StepUsage("generate", "model", "gpt-y", calls=1, input_tokens=7, cost=7.0)
    )
    return Recorded(a, b, day0, day1)  # fmt: skip


@pytest.fixture(scope="module")
def usage(settings: Settings) -> Iterator[Recorded]:
    client = make_redis(settings.falkordb_url)
    suffix = uuid.uuid4().hex[:8]
    yield write_usage(UsageLedger(client), f"ua{suffix}", f"ub{suffix}", datetime.now(UTC).date())
    client.close()


def _range(r: Recorded) -> dict[str, str]:
    return {"from": r.day0.isoformat(), "to": r.day1.isoformat()}


async def test_by_day_with_the_total(callers, usage: Recorded) -> None:
    auditor = callers("aud", "auditor", tenant=usage.a)
    got = await auditor.get("/v1/usage", params={"group_by": "day", **_range(usage)})
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["currency"], body["from"], body["to"], body["group_by"]) == (
        "USD",
        usage.day0.isoformat(),
        usage.day1.isoformat(),
        ["day"],
    )
    by_day = {row["day"]: row for row in body["rows"]}
    assert set(by_day) == {usage.day0.isoformat(), usage.day1.isoformat()}
    assert by_day[usage.day1.isoformat()]["cost"] == pytest.approx(3.25)  # largest first
    assert body["rows"][0]["day"] == usage.day1.isoformat()
    assert by_day[usage.day0.isoformat()]["input_tokens"] == 1000
    assert all(row["key"] == row["model"] == "" for row in body["rows"])
    total = body["total"]
    assert (total["tasks"], total["calls"], total["texts"]) == (2, 3, 2)
    assert total["cost"] == pytest.approx(3.75)


async def test_by_model_step_and_key(callers, usage: Recorded) -> None:
    auditor = callers("aud", "auditor", tenant=usage.a)
    by_model = (await auditor.get("/v1/usage", params={"group_by": "model", **_range(usage)})).json()
    costs = {row["model"]: row["cost"] for row in by_model["rows"]}
    assert costs == pytest.approx({"human": 3.0, "gpt-x": 0.75, "minilm": 0.0, "": 0.0})
    by_step = (await auditor.get("/v1/usage", params={"group_by": "step", **_range(usage)})).json()
    steps = {row["step"]: row for row in by_step["rows"]}
    assert steps["task"]["tasks"] == 2 and steps["review"]["latency_ms"] == 180_000
    assert steps["retrieve"]["cpu_ms"] == 30
    # Comma-separated and repeated are the same.
    both = await auditor.get("/v1/usage", params={"group_by": "key,step", **_range(usage)})
    repeated = await auditor.get(
        "/v1/usage", params=[("group_by", "key"), ("group_by", "step"), *_range(usage).items()]
    )
    assert both.json() == repeated.json()
    pairs = {(row["key"], row["step"]): row["cost"] for row in both.json()["rows"]}
    assert pairs[("keya2", "review")] == pytest.approx(3.0)
    assert pairs[("keya1", "generate")] == pytest.approx(0.5)
    assert both.json()["group_by"] == ["key", "step"]


async def test_the_range_filters_days(callers, usage: Recorded) -> None:
    auditor = callers("aud", "auditor", tenant=usage.a)
    one_day = await auditor.get(
        "/v1/usage", params={"from": usage.day1.isoformat(), "to": usage.day1.isoformat()}
    )
    assert [row["day"] for row in one_day.json()["rows"]] == [usage.day1.isoformat()]
    # The default range is the last 30 days: the day 40 days ago is not in it.
    recent = (await auditor.get("/v1/usage")).json()
    assert recent["total"]["cost"] == pytest.approx(3.75)
    assert recent["to"] == datetime.now(UTC).date().isoformat()
    wide = await auditor.get("/v1/usage", params={"from": (usage.day0 - timedelta(days=60)).isoformat()})
    assert wide.json()["total"]["cost"] == pytest.approx(12.75)


async def test_csv_export(callers, usage: Recorded) -> None:
    auditor = callers("aud", "auditor", tenant=usage.a)
    got = await auditor.get("/v1/usage", params={"group_by": "day,model", "format": "csv", **_range(usage)})
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"].startswith("attachment;")
    assert usage.a in got.headers["content-disposition"]
    header, *rows = list(csv.reader(io.StringIO(got.text)))
    assert header == ["day", "model", *METRICS]
    lines = {(row[0], row[1]): dict(zip(header, row, strict=True)) for row in rows}
    assert rows[0][:2] == [usage.day1.isoformat(), "human"]  # largest cost first
    review = lines[(usage.day1.isoformat(), "human")]
    assert (review["calls"], review["latency_ms"], review["cost"], review["tasks"]) == (
        "1",
        "180000",
        "3",
        "0",
    )
    assert lines[(usage.day0.isoformat(), "gpt-x")]["input_tokens"] == "1000"
    assert lines[(usage.day0.isoformat(), "")]["tasks"] == "1"  # the task line
    assert set(lines) == {
        (usage.day0.isoformat(), "gpt-x"),
        (usage.day0.isoformat(), "minilm"),
        (usage.day0.isoformat(), ""),
        (usage.day1.isoformat(), "gpt-x"),
        (usage.day1.isoformat(), "human"),
        (usage.day1.isoformat(), ""),
    }


async def test_an_auditor_sees_only_their_tenant(callers, usage: Recorded) -> None:
    a = (
        await callers("aud", "auditor", tenant=usage.a).get("/v1/usage", params={"group_by": "tenant"})
    ).json()
    assert [row["tenant"] for row in a["rows"]] == [usage.a]
    b_auditor = callers("aud", "auditor", tenant=usage.b)
    for group_by in ("tenant", "key", "model,key,day"):
        got = await b_auditor.get("/v1/usage", params={"group_by": group_by, **_range(usage)})
        assert got.status_code == 200, got.text
        assert usage.a not in got.text and "keya" not in got.text and "gpt-x" not in got.text
        assert got.json()["total"]["cost"] == pytest.approx(7.0)
    csv_of_b = await b_auditor.get("/v1/usage", params={"group_by": "key", "format": "csv"})
    assert "keya" not in csv_of_b.text and "keyb1" in csv_of_b.text
    # The tenant's admin is an auditor of it.
    admin = await callers("boss", tenant=usage.a).get("/v1/usage", params=_range(usage))
    assert admin.status_code == 200 and admin.json()["total"]["cost"] == pytest.approx(3.75)


async def test_only_auditors(callers, usage: Recorded) -> None:
    got = await callers("sub", "submitter", tenant=usage.a).get("/v1/usage")
    assert got.status_code == 403
    assert "'auditor'" in got.json()["detail"]


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"group_by": "colour"}, ["query", "group_by", 0]),
        ({"group_by": "day,nope"}, ["query", "group_by", 1]),
        ({"from": "2026-13-01"}, ["query", "from"]),
        ({"to": "yesterday"}, ["query", "to"]),
        ({"from": "2026-12-02", "to": "2026-12-01"}, ["query", "from"]),
        ({"from": "2024-01-01", "to": "2026-01-01"}, ["query", "from"]),
        ({"format": "xml"}, ["query", "format"]),
    ],
)
async def test_bad_parameters_are_named(callers, usage: Recorded, params: dict, where: list) -> None:
    got = await callers("aud", "auditor", tenant=usage.a).get("/v1/usage", params=params)
    assert got.status_code == 422, got.text
    body = got.json()
    assert body["errors"][0]["loc"] == where, body
    assert body["detail"]


async def test_the_schema_declares_csv_and_the_errors(callers) -> None:
    anonymous = callers.raw({})
    try:
        schema = (await anonymous.get("/openapi.json")).json()
    finally:
        await anonymous.aclose()
    operation = schema["paths"]["/v1/usage"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert {"401", "403", "422", "503"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {"group_by", "from", "to", "format"}
