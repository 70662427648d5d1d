"""`keel eval --answers`: question files read and refused, and the real agent on tiny slices."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from keel.app.answer_eval import (
    AnswerSet,
    AnswerSetError,
    Question,
    Record,
    build_report,
    calibration,
    demo_set,
    format_report,
    hotpotqa_set,
    keel_set,
    run_answers,
    score,
    tenant_for,
    unanswerable_set,
    unanswerable_tenant,
)
from keel.app.cli import app
from keel.core.chunks import Citation
from keel.core.domain import TaskResult
from keel.core.models.extractive import NO_ANSWER
from keel.core.usage import TaskUsage

if TYPE_CHECKING:
    from tests.conftest import Platform

HOTPOTQA = Path(__file__).parents[4] / "shared" / "assets" / "hotpotqa" / "dev_250.jsonl"
ROWS = ("fact", "F1", "yes/no", "docs cited", "abstained", "answer words", "latency s", "cost USD")


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["eval", *args], env=env)
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def _result(answer: str, documents: list[str], cost: float = 0.0, grounding: float = 1.0) -> TaskResult:
    citations = [Citation(document_id=d, chunk_id=f"{d}:0", quote="q") for d in documents]
    return TaskResult(
        "completed", answer, citations, grounding, 1, "extractive-minilm", usage=TaskUsage(cost=cost)
    )


# --- reading question files and scoring: no servers -------------------------------------------


@pytest.mark.unit
def test_keel_format_json_list_with_corpus_field(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "kestrel.md").write_text("# Kestrel\n\nTeam Aurora owns Kestrel.\n")
    questions = tmp_path / "questions.json"
    rows = [{"question": "Who owns Kestrel?", "answer": ["Team Aurora", "Aurora"], "corpus": "docs"}]
    questions.write_text(json.dumps(rows))
    loaded = keel_set(questions)
    assert [(q.id, q.answers, q.documents) for q in loaded.questions] == [
        ("q1", ["Team Aurora", "Aurora"], [])
    ]
    assert [d[0] for d in loaded.documents] == ["kestrel"]


@pytest.mark.unit
def test_keel_format_jsonl_needs_a_corpus(tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "Who?", "answer": "Nobody"}) + "\n")
    with pytest.raises(AnswerSetError, match="no corpus"):
        keel_set(questions)


@pytest.mark.unit
def test_demo_set_is_the_demo_questions_over_the_demo_corpus() -> None:
    demo = demo_set(max_queries=3)
    assert [q.id for q in demo.questions] == ["q01", "q02", "q03"]
    assert {"system-kestrel", "policy-data-retention"} <= {d[0] for d in demo.documents}


@pytest.mark.unit
@pytest.mark.skipif(not HOTPOTQA.is_file(), reason="the shared HotpotQA dev file is not here")
def test_hotpotqa_slice_pools_only_its_questions_paragraphs() -> None:
    sliced = hotpotqa_set(HOTPOTQA, max_queries=3)
    assert len(sliced.questions) == 3
    titles = {d[0] for d in sliced.documents}
    assert all(len(q.documents) == 2 and set(q.documents) <= titles for q in sliced.questions)
    assert len(titles) <= 30


@pytest.mark.unit
def test_score_fact_f1_citations_and_abstention() -> None:
    demo = demo_set(max_queries=1).questions[0]  # "Which team owns Kestrel?" -> Team Aurora
    found = score(demo, _result("Kestrel is owned by Team Aurora.", ["system-kestrel"], 0.25), 1.5)
    assert found.fact and found.both_cited and not found.abstained
    assert found.f1 == 0.5  # 2 shared tokens: precision 2/6, recall 2/2
    assert (found.words, found.cost, found.yes_no) == (6, 0.25, None)
    unsure = score(demo, _result(NO_ANSWER, []), 0.5)
    assert unsure.abstained and not unsure.fact and unsure.both_cited is False
    failed = score(demo, None, 600.0, "TimeoutError: ")
    assert failed.model == "(failed)" and failed.abstained


@pytest.mark.unit
def test_yes_no_questions_are_scored_apart() -> None:
    asked = Question("y", "Are both American?", ["yes"], [])
    record = score(asked, _result("Yes, both are.", ["a"]), 1.0)
    assert (record.fact, record.f1, record.yes_no) == (None, None, True)
    report = build_report(AnswerSet("t", [asked], []), [record], 1, "USD")
    figures = report["providers"]["extractive-minilm"]
    assert (figures["fact_n"], figures["yes_no"], figures["yes_no_n"], figures["f1"]) == (0, 1, 1, None)


@pytest.mark.unit
def test_answers_needs_exactly_one_question_set(tmp_path: Path) -> None:
    code, output = _run("--answers", env={"KEEL_DATA_DIR": str(tmp_path)})
    assert code == 2 and "give exactly one of --hotpotqa FILE, --questions FILE or --demo" in output
    code, output = _run("--answers", "--demo", "--questions", "q.json", env={"KEEL_DATA_DIR": str(tmp_path)})
    assert code == 2 and "Traceback" not in output


@pytest.mark.unit
def test_answers_missing_question_file_is_named(tmp_path: Path) -> None:
    code, output = _run("--answers", "--questions", str(tmp_path / "nowhere.json"))
    assert code == 2 and "nowhere.json does not exist" in output


# --- the real agent on real servers -----------------------------------------------------------


def _check_table(text: str, n: int) -> None:
    assert f"provider extractive-minilm  (n = {n})" in text
    for row in ROWS:
        assert any(line.strip().startswith(row) for line in text.splitlines()), row


@pytest.mark.integration
async def test_demo_slice_finds_the_expected_answers(
    platform: Platform, temporal_env: WorkflowEnvironment
) -> None:
    demo = demo_set(max_queries=3)
    expected = {d for q in demo.questions for d in q.documents}
    # The expected documents and a dozen others: enough to choose from, quick to index.
    corpus = [d for d in demo.documents if d[0] in expected] + [
        d for d in demo.documents if d[0] not in expected
    ][:12]
    sliced = AnswerSet("demo", demo.questions, corpus)
    records = await run_answers(temporal_env.client, platform.settings, sliced, f"ae-{uuid.uuid4().hex[:8]}")
    report = build_report(sliced, records, 2, "USD")
    figures = report["providers"]["extractive-minilm"]
    assert figures["n"] == 3 and figures["failed"] == 0
    assert figures["fact"] == 3 and figures["abstained"] == 0
    assert figures["docs_cited"] >= 2 and 0 < figures["f1"] <= 1
    assert 0 < figures["latency_p50_s"] <= figures["latency_p95_s"] < 30
    assert figures["cost_total"] == 0.0  # the extractive answerer is priced at 0
    _check_table(format_report(report), 3)


@pytest.mark.integration
@pytest.mark.skipif(not HOTPOTQA.is_file(), reason="the shared HotpotQA dev file is not here")
async def test_hotpotqa_slice_runs_and_scores(platform: Platform, temporal_env: WorkflowEnvironment) -> None:
    sliced = hotpotqa_set(HOTPOTQA, max_queries=3)
    records = await run_answers(temporal_env.client, platform.settings, sliced, f"ae-{uuid.uuid4().hex[:8]}")
    assert len(records) == 3 and not any(r.error for r in records)
    titles = {d[0] for d in sliced.documents}
    assert all(set(r.cited) <= titles for r in records)  # citations name eval_data's ids (titles)
    assert all((r.f1 is None) == (r.yes_no is not None) for r in records)
    _check_table(format_report(build_report(sliced, records, 2, "USD")), 3)


@pytest.mark.integration
def test_cli_runs_a_questions_file_on_servers_of_its_own(tmp_path: Path) -> None:
    """The whole command: its own FalkorDB, Temporal and worker, started and stopped; JSON out."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "kestrel.md").write_text(
        "# Kestrel\n\nKestrel is the event streaming platform. Team Aurora owns Kestrel.\n"
    )
    (tmp_path / "docs" / "policy.md").write_text("# Expense Policy\n\nThe daily meal limit is 60 euros.\n")
    questions = tmp_path / "questions.json"
    questions.write_text(
        json.dumps(
            [
                {"question": "Which team owns Kestrel?", "answer": "Team Aurora", "documents": ["kestrel"]},
                {"question": "What is the daily meal limit?", "answer": "60 euros", "documents": ["policy"]},
            ]
        )
    )
    out = tmp_path / "answers.json"
    env = {"KEEL_DATA_DIR": str(tmp_path / "unused"), "HF_HUB_OFFLINE": "1"}
    code, output = _run(
        "--answers",
        "--questions",
        str(questions),
        "--corpus",
        str(tmp_path / "docs"),
        "--out",
        str(out),
        env=env,
    )
    assert code == 0, output
    _check_table(output, 2)
    report = json.loads(out.read_text())
    assert [r["id"] for r in report["records"]] == ["q1", "q2"]
    assert all(r["fact"] and r["both_cited"] for r in report["records"])
    assert set(report["records"][0]) >= {
        "question",
        "gold",
        "answer",
        "f1",
        "cited",
        "abstained",
        "latency",
        "cost",
    }


@pytest.mark.unit
def test_each_question_set_has_a_tenant_of_its_own() -> None:
    assert tenant_for("dev_250") == "answer-eval-dev_250"
    assert tenant_for("my questions (v2)") == "answer-eval-my-questions-v2"
    assert len(tenant_for("x" * 100)) == 64


# --- the unanswerable set and the grounding calibration: no servers ---------------------------

_ASKED = [
    Question("a", "Who wrote Alpha?", ["Ann"], ["Alpha", "Ann"]),
    Question("b", "Is Beta older than Alpha?", ["yes"], ["Beta", "Alpha"]),
    Question("c", "Where is Gamma?", ["Rome"], ["Gamma", "Rome"]),
]


def _record(question: Question, answer: str, grounding: float) -> Record:
    return score(question, _result(answer, ["x"] if answer else [], grounding=grounding), 1.0)


@pytest.mark.unit
def test_unanswerable_pool_drops_every_supporting_document_and_keeps_the_rest() -> None:
    # "Ann" supports question a and is only a distractor of c: it goes all the same.
    pool = [(t, t, f"{t} text") for t in ("Alpha", "Ann", "Beta", "Delta", "Gamma", "Rome", "Zeta")]
    without = unanswerable_set(AnswerSet("toy", _ASKED, pool))
    assert without.name == "toy-unanswerable" and without.questions == _ASKED
    assert without.documents == [("Delta", "Delta", "Delta text"), ("Zeta", "Zeta", "Zeta text")]


@pytest.mark.unit
@pytest.mark.skipif(not HOTPOTQA.is_file(), reason="the shared HotpotQA dev file is not here")
def test_unanswerable_hotpotqa_slice_has_no_supporting_paragraph() -> None:
    sliced = hotpotqa_set(HOTPOTQA, max_queries=5)
    without = unanswerable_set(sliced)
    supporting = {d for q in sliced.questions for d in q.documents}
    kept = {d[0] for d in without.documents}
    assert not kept & supporting
    assert kept == {d[0] for d in sliced.documents} - supporting and len(kept) >= 30  # the distractors
    assert without.questions == sliced.questions


@pytest.mark.unit
def test_unanswerable_set_has_a_tenant_of_its_own_per_pool() -> None:
    pool = [(t, t, "") for t in ("Alpha", "Beta", "Delta", "Zeta")]
    without = unanswerable_set(AnswerSet("dev_250", _ASKED, pool))
    fewer = unanswerable_set(AnswerSet("dev_250", _ASKED, pool[:3]))
    tenant = unanswerable_tenant(without)
    assert tenant.startswith("answer-eval-dev_250-unanswerable-") and tenant != tenant_for("dev_250")
    assert unanswerable_tenant(fewer) != tenant  # a kept data dir never mixes two pools
    assert len(unanswerable_tenant(AnswerSet("x" * 100, [], pool))) <= 64


@pytest.mark.unit
def test_calibration_counts_wrong_caught_and_right_held() -> None:
    a, b, c = _ASKED
    answerable = [
        _record(a, "Ann wrote it.", 0.8),  # right
        _record(b, "No.", 0.35),  # wrong yes/no
        _record(c, "Milan.", 0.05),  # wrong fact
        _record(c, NO_ANSWER, 0.0),  # abstained: not sent, not counted
    ]
    unanswerable = [_record(a, "Bob.", 0.45), _record(b, "", 0.0), _record(c, "Rome.", 0.6)]
    table = calibration(answerable, unanswerable, configured=0.5)
    assert (table["wrong_n"], table["wrong_answerable_n"], table["wrong_unanswerable_n"]) == (4, 2, 2)
    assert table["right_n"] == 1
    rows = {row["threshold"]: row for row in table["rows"]}
    assert list(rows) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert [r["threshold"] for r in table["rows"] if r["configured"]] == [0.5]
    assert (rows[0.1]["wrong_caught"], rows[0.1]["wrong_caught_share"]) == (1, 0.25)
    assert (rows[0.5]["wrong_caught"], rows[0.5]["right_held"]) == (3, 0)
    assert rows[0.6]["wrong_caught"] == 3  # grounding 0.6 is not below 0.6
    assert (rows[0.7]["wrong_caught"], rows[0.7]["right_held_share"]) == (4, 0.0)
    # Without the unanswerable set, a configured threshold off the grid gets a row of its own.
    alone = calibration(answerable, configured=0.55)
    assert alone["wrong_n"] == 2 and alone["wrong_unanswerable_n"] == 0
    assert [r["threshold"] for r in alone["rows"] if r["configured"]] == [0.55]
    assert calibration([], [])["rows"][0]["wrong_caught_share"] is None


@pytest.mark.unit
def test_report_prints_both_sets_and_the_calibration_table() -> None:
    a, b, c = _ASKED
    answered = [_record(a, "Ann wrote it.", 0.8), _record(b, "Yes.", 0.7), _record(c, "Rome.", 0.9)]
    unanswered = [_record(a, NO_ANSWER, 0.0), _record(b, "", 0.0), _record(c, "Milan.", 0.2)]
    toy = AnswerSet("toy", _ASKED, [("Alpha", "Alpha", "")])
    report = build_report(toy, answered, 2, "USD")
    report["unanswerable"] = build_report(unanswerable_set(toy), unanswered, 2, "USD", "abstention")
    report["calibration"] = calibration(answered, unanswered)
    text = format_report(report)
    assert "toy-unanswerable: 3 questions over 0 documents" in text
    assert "refused: no answer, or no citation; target <= 10%, met" in text
    assert "expected; target >= 80%, missed" in text  # 2 of 3 abstained
    assert any(line.startswith("* 0.5") for line in text.splitlines())
    assert json.loads(json.dumps(report))["calibration"]["wrong_unanswerable_n"] == 1
    assert report["records"][0]["grounding"] == 0.8


@pytest.mark.unit
def test_unanswerable_needs_hotpotqa() -> None:
    code, output = _run("--answers", "--demo", "--unanswerable")
    assert code == 2 and "--unanswerable needs --hotpotqa FILE" in output
