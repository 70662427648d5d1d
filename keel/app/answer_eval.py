"""`keel eval --answers`: the real agent, end to end, over a question file; answers scored per provider.

Each question is a task (AgentWorkflow on a real Temporal, review "never", the answer cache
bypassed) after the corpus went through the real ingestion workflow. `evaluate_answers` starts
what that needs (FalkorDB, the Temporal dev server, an in-process worker) in a data dir of its
own and stops it all at the end; `run_answers` is the part that only needs them running.

Scores (keel/core/answer_metrics.py, after the official HotpotQA evaluation script):
  fact        the normalised gold answer inside the normalised answer, on word boundaries;
  F1          the script's token F1, best over the acceptable golds;
  yes/no      questions whose gold is yes or no are kept out of fact and F1 (the script's F1
              gives any sentence 0 against them) and scored by the answer's first word;
  docs cited  every expected document (HotpotQA: both supporting paragraphs) among the
              citations' document ids;
  abstained   no answer, the extractive answerer's NO_ANSWER, or no citation.

With --unanswerable (HotpotQA) the same questions run a second time over the pool without any
question's supporting paragraphs, where every answer should abstain; a calibration table then shows
how each grounding threshold would sort the answers sent: wrong ones caught, right ones held back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from temporalio.client import Client

from ingestion.files import load_documents
from keel.control.documents import start_batch
from keel.control.tasks import start_task
from keel.core.answer_metrics import (
    answer_words,
    best_f1,
    fact_found,
    normalize_answer,
    yes_no_correct,
    yes_no_gold,
)
from keel.core.domain import TaskRequest, TaskResult
from keel.core.models.extractive import NO_ANSWER
from keel.core.settings import FalkorDBSettings, Settings
from retrieval.eval_data import load_hotpotqa

TENANT = "answer-eval"  # prefix of the tenant each question set is indexed into
INGEST_BATCH = 500  # documents per ingestion workflow: its input stays small
CORPUS_SUFFIXES = frozenset({".md", ".txt"})
TASK_TIMEOUT_S = 600.0
FAILED = "(failed)"  # the provider a task that never returned a result is counted under
ABSTAIN_TARGET = 0.80  # the unanswerable set: share abstained, at least
REFUSE_TARGET = 0.10  # the answerable set run beside it: share refused (abstained), at most
CALIBRATION_THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 8))


def tenant_for(name: str) -> str:
    """The tenant a question set's corpus goes into: one data dir (--data-dir) can keep several."""
    return f"{TENANT}-{re.sub(r'[^A-Za-z0-9_-]+', '-', name).strip('-')}"[:64]


class AnswerSetError(ValueError):
    """A question file or corpus that cannot be read; the message names it and what is wrong."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: list[str]  # acceptable gold answers
    documents: list[str]  # document ids the answer should cite (may be empty)


@dataclass(frozen=True)
class AnswerSet:
    name: str
    questions: list[Question]
    documents: list[tuple[str, str, str]]  # (id, title, text): the corpus to index


@dataclass
class Record:
    """One question's outcome: what `--out` writes per question."""

    id: str
    question: str
    gold: list[str]
    answer: str
    model: str
    fact: bool | None  # None: a yes/no question (scored by yes_no instead)
    f1: float | None
    yes_no: bool | None  # None: not a yes/no question
    cited: list[str]
    expected_documents: list[str]
    both_cited: bool | None  # every expected document cited; None when none is expected
    abstained: bool
    words: int
    latency: float  # seconds, submit to result
    cost: float
    grounding: float  # the task result's grounding (0 when there was none)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # worker CPU by step (step threads)
    process_cpu_s: float = 0.0  # the worker process's CPU a task, all threads (the set's mean)
    rounds: int = 0  # retrieval rounds the agent ran
    error: str = ""


# --- Question files -------------------------------------------------------------------------


def hotpotqa_set(path: Path, max_queries: int = 0) -> AnswerSet:
    """A HotpotQA jsonl file: its questions (or the first `max_queries`) and the paragraphs of
    those questions pooled into one corpus, with retrieval.eval_data's document ids (titles)."""
    dataset = load_hotpotqa(path)  # raises DatasetError (a ValueError) for a malformed file
    qids = list(dataset.queries)[: max_queries or None]
    asked = set(qids)
    golds: dict[str, list[str]] = {}
    titles: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for row in (json.loads(line) for line in lines if line.strip()):
            if (qid := str(row["question_id"])) in asked:
                golds[qid] = [str(s) for a in row.get("answers_objects", []) for s in a.get("spans", [])]
                titles += [str(c["title"]) for c in row["contexts"]]
    if missing := [q for q in qids if not golds.get(q)]:
        raise AnswerSetError(f"{path}: question {missing[0]} has no answer span")
    questions = [Question(q, dataset.queries[q], golds[q], sorted(dataset.qrels[q])) for q in qids]
    # The pool of the questions asked: with every question, the same corpus `keel eval` searches.
    by_id = {d.document_id: d for d in dataset.documents}
    documents = [(t, by_id[t].title, by_id[t].text) for t in dict.fromkeys(titles)]
    return AnswerSet(path.stem, questions, documents)


def unanswerable_set(answer_set: AnswerSet) -> AnswerSet:
    """The same questions over the pool without any question's expected documents (HotpotQA: its
    supporting paragraphs). Removed by id across the whole pool, since a paragraph supporting one
    question can be another's distractor; every answer is then expected to abstain."""
    removed = {d for q in answer_set.questions for d in q.documents}
    kept = [d for d in answer_set.documents if d[0] not in removed]
    return AnswerSet(f"{answer_set.name}-unanswerable", answer_set.questions, kept)


def unanswerable_tenant(answer_set: AnswerSet) -> str:
    """The unanswerable pool's tenant, keyed by its documents too: a --data-dir kept from another
    slice would otherwise still hold paragraphs this pool removed."""
    digest = hashlib.sha256("\n".join(sorted(d[0] for d in answer_set.documents)).encode()).hexdigest()
    return tenant_for(f"{answer_set.name[:40]}-{digest[:8]}")


def keel_set(path: Path, corpus: Path | None = None, max_queries: int = 0) -> AnswerSet:
    """Keel's questions format: a JSON list (or JSONL) of {question, answer (a string or a list of
    acceptable strings), documents (expected ids, optional), id (optional), corpus (optional: a
    folder, relative to the file)}; `corpus` overrides the file's folders."""
    rows = _read_rows(path)[: max_queries or None]
    questions, folders = [], []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("question") or not row.get("answer"):
            raise AnswerSetError(f"{path}: entry {number} needs a question and an answer")
        answer = row["answer"]
        golds = [str(a) for a in answer] if isinstance(answer, list) else [str(answer)]
        expected = [str(d) for d in row.get("documents") or []]
        questions.append(Question(str(row.get("id") or f"q{number}"), str(row["question"]), golds, expected))
        if row.get("corpus"):
            folders.append(path.parent / str(row["corpus"]))
    folders = [corpus] if corpus is not None else list(dict.fromkeys(folders))
    if not folders:
        raise AnswerSetError(f"{path}: no corpus; give --corpus DIR or a corpus field")
    documents: dict[str, tuple[str, str, str]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise AnswerSetError(f"corpus {folder} is not a folder")
        documents.update((d[0], d) for d in load_documents(folder, CORPUS_SUFFIXES))
    if not documents:
        raise AnswerSetError(
            f"no {', '.join(sorted(CORPUS_SUFFIXES))} files under {', '.join(map(str, folders))}"
        )
    return AnswerSet(path.stem, questions, sorted(documents.values()))


def _read_rows(path: Path) -> list[Any]:
    if not path.is_file():
        raise AnswerSetError(f"{path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise AnswerSetError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(rows, list):
        raise AnswerSetError(f"{path}: expected a JSON list of questions")
    return rows


def demo_set(max_queries: int = 0) -> AnswerSet:
    """The demo questions over the demo corpus."""
    from keel.app.demo import CORPUS_DIR, QUESTIONS_FILE

    answer_set = keel_set(QUESTIONS_FILE, CORPUS_DIR, max_queries)
    return AnswerSet("demo", answer_set.questions, answer_set.documents)


# --- Scoring --------------------------------------------------------------------------------


def score(question: Question, result: TaskResult | None, latency: float, error: str = "") -> Record:
    """One task's answer against its question's golds and expected documents."""
    record = score_answer(
        question,
        (result.answer or "") if result else "",
        [c.document_id for c in result.citations] if result else [],
        result.model if result else FAILED,
        result.grounding if result else 0.0,
    )
    record.latency = round(latency, 3)
    record.cost = result.usage.cost if result else 0.0
    record.cpu_ms = _cpu_by_step(result)
    record.rounds = result.rounds if result else 0
    record.error = error
    return record


def score_answer(
    question: Question, answer: str, cited: Sequence[str], model: str, grounding: float
) -> Record:
    """An answer (and the documents it cites) against the question's golds and expected documents;
    what `score` reads from a task result, or bench/answer_offline.py from the answer step alone."""
    documents = sorted(set(cited))
    gold_yes_no = yes_no_gold(question.answers)
    return Record(
        id=question.id,
        question=question.text,
        gold=question.answers,
        answer=answer,
        model=model,
        fact=None if gold_yes_no else fact_found(answer, question.answers),
        f1=None if gold_yes_no else round(best_f1(answer, question.answers), 4),
        yes_no=yes_no_correct(answer, gold_yes_no) if gold_yes_no else None,
        cited=documents,
        expected_documents=question.documents,
        both_cited=set(question.documents) <= set(documents) if question.documents else None,
        abstained=not answer.strip()
        or normalize_answer(answer) == normalize_answer(NO_ANSWER)
        or not documents,
        words=answer_words(answer),
        latency=0.0,
        cost=0.0,
        grounding=grounding,
    )


def _cpu_by_step(result: TaskResult | None) -> dict[str, float]:
    """The worker CPU each step of the task took (its thread's, from the step's usage), summed
    over rounds: where a task's compute goes."""
    spent: dict[str, float] = {}
    for step in result.usage.steps if result else []:
        spent[step.step] = round(spent.get(step.step, 0.0) + step.cpu_ms, 3)
    return spent


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1) of the values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def summarise(records: Sequence[Record]) -> dict[str, Any]:
    """One provider's figures."""
    spans = [r for r in records if r.fact is not None]
    yes_no = [r for r in records if r.yes_no is not None]
    with_docs = [r for r in records if r.both_cited is not None]
    latencies = [r.latency for r in records]
    return {
        "n": len(records),
        "failed": sum(bool(r.error) for r in records),
        "fact": sum(bool(r.fact) for r in spans),
        "fact_n": len(spans),
        "f1": round(statistics.mean(r.f1 or 0.0 for r in spans), 4) if spans else None,
        "yes_no": sum(bool(r.yes_no) for r in yes_no),
        "yes_no_n": len(yes_no),
        "docs_cited": sum(bool(r.both_cited) for r in with_docs),
        "docs_n": len(with_docs),
        "abstained": sum(r.abstained for r in records),
        "median_words": statistics.median(r.words for r in records) if records else 0,
        "latency_p50_s": round(percentile(latencies, 0.5), 3),
        "latency_p95_s": round(percentile(latencies, 0.95), 3),
        "cost_per_task": statistics.mean(r.cost for r in records) if records else 0.0,
        "cost_total": sum(r.cost for r in records),
        "cpu_ms_per_task": _mean_cpu(records),
        "process_cpu_s_per_task": records[0].process_cpu_s if records else 0.0,
        "second_rounds": sum(r.rounds > 1 for r in records),
    }


def _mean_cpu(records: Sequence[Record]) -> dict[str, float]:
    """Mean worker CPU per task by step (a step a task did not run counts 0), and the total."""
    if not records:
        return {}
    steps = dict.fromkeys(step for r in records for step in r.cpu_ms)
    mean = {step: round(sum(r.cpu_ms.get(step, 0.0) for r in records) / len(records), 1) for step in steps}
    return {**mean, "total": round(sum(mean.values()), 1)}


def build_report(
    answer_set: AnswerSet,
    records: Sequence[Record],
    concurrency: int,
    currency: str,
    expect: Literal["answers", "abstention"] = "answers",
) -> dict[str, Any]:
    """One question set's report; `expect` "abstention": a set where every answer should abstain."""
    providers: dict[str, list[Record]] = {}
    for record in records:
        providers.setdefault(record.model, []).append(record)
    return {
        "dataset": answer_set.name,
        "expect": expect,
        "questions": len(answer_set.questions),
        "documents": len(answer_set.documents),
        "concurrency": concurrency,
        "currency": currency,
        "providers": {model: summarise(mine) for model, mine in sorted(providers.items())},
        "records": [asdict(r) for r in records],
    }


def is_right(record: Record) -> bool:
    """The gold fact found, or the right yes/no."""
    return bool(record.fact or record.yes_no)


def calibration(
    answerable: Sequence[Record], unanswerable: Sequence[Record] = (), configured: float = 0.5
) -> dict[str, Any]:
    """How each grounding threshold t would sort the answers sent (not abstained): the wrong ones it
    would catch (grounding < t) and the right ones it would hold back. Wrong: an answerable
    question's answer without its fact (or with the wrong yes/no), and any answer sent to an
    unanswerable question; `configured` (agent.grounding_threshold) is among the rows, marked."""
    sent = [r for r in answerable if not r.abstained]
    right = [r.grounding for r in sent if is_right(r)]
    wrong_answerable = [r.grounding for r in sent if not is_right(r)]
    wrong = wrong_answerable + [r.grounding for r in unanswerable if not r.abstained]

    def row(t: float) -> dict[str, Any]:
        caught, held = sum(g < t for g in wrong), sum(g < t for g in right)
        return {
            "threshold": t,
            "configured": t == configured,
            "wrong_caught": caught,
            "wrong_caught_share": round(caught / len(wrong), 4) if wrong else None,
            "right_held": held,
            "right_held_share": round(held / len(right), 4) if right else None,
        }

    return {
        "configured_threshold": configured,
        "wrong_n": len(wrong),
        "wrong_answerable_n": len(wrong_answerable),
        "wrong_unanswerable_n": len(wrong) - len(wrong_answerable),
        "right_n": len(right),
        "rows": [row(t) for t in sorted({*CALIBRATION_THRESHOLDS, configured})],
    }


def format_report(report: dict[str, Any]) -> str:
    """One plain-text table per provider (figure, count/n and share or value, what it means), for
    the unanswerable set too when it ran, then the grounding calibration table."""
    paired = "unanswerable" in report
    lines = _tables(report, paired)
    if paired:
        lines += ["", *_tables(report["unanswerable"], paired)]
    if "calibration" in report:
        lines += ["", *_calibration_table(report["calibration"])]
    return "\n".join(lines)


def _tables(report: dict[str, Any], paired: bool) -> list[str]:
    abstention = report.get("expect") == "abstention"
    setting = (
        "every question's supporting paragraphs removed, so each answer should abstain"
        if abstention
        else "the agent end to end"
    )
    lines = [
        f"{report['dataset']}: {report['questions']} questions over {report['documents']} documents; "
        f"{setting}, review never, answer cache bypassed, {report['concurrency']} at a time"
    ]
    for model, f in report["providers"].items():
        failed = f", failed {f['failed']}" if f["failed"] else ""
        lines += ["", f"provider {model}  (n = {f['n']}{failed})"]
        rows = _abstention_rows(f) if abstention else _answer_rows(f, paired)
        rows += [
            ("answer words", f"{f['median_words']:>11g}", "median"),
            (
                "latency s",
                f"{f['latency_p50_s']:>11.2f}{f['latency_p95_s']:>7.2f}",
                "p50, p95: submit to result",
            ),
            (
                f"cost {report['currency']}",
                f"{f['cost_per_task']:>11.6f}{f['cost_total']:>7.4f}",
                "per task, total",
            ),
        ]
        lines += [f"  {label:<14}{cells:<18}  {note}" for label, cells, note in rows]
        if f.get("cpu_ms_per_task"):
            steps = ", ".join(f"{step} {ms:g}" for step, ms in f["cpu_ms_per_task"].items())
            lines.append(f"  CPU ms/task    {steps}  (steps' own threads, mean)")
            lines.append(
                f"  CPU s/task     {f['process_cpu_s_per_task']:>11.3f}         worker process, all threads"
            )
            lines.append(f"  second rounds  {f['second_rounds']:>11}         tasks that retrieved again")
    return lines


def _answer_rows(f: dict[str, Any], paired: bool) -> list[tuple[str, str, str]]:
    f1 = f"{f['f1']:.3f}" if f["f1"] is not None else "-"
    abstained = "no answer, or no citation"
    if paired:  # beside the unanswerable set, an abstention here is a refusal to answer
        met = "met" if f["n"] and f["abstained"] / f["n"] <= REFUSE_TARGET else "missed"
        abstained = f"refused: no answer, or no citation; target <= {REFUSE_TARGET:.0%}, {met}"
    return [
        ("fact", _share(f["fact"], f["fact_n"]), "normalised gold in the normalised answer"),
        ("F1", f"{f1:>11}", "official HotpotQA token F1, mean"),
        ("yes/no", _share(f["yes_no"], f["yes_no_n"]), "gold yes/no: the answer's first word"),
        ("docs cited", _share(f["docs_cited"], f["docs_n"]), "every expected document cited"),
        ("abstained", _share(f["abstained"], f["n"]), abstained),
    ]


def _abstention_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    met = "met" if f["n"] and f["abstained"] / f["n"] >= ABSTAIN_TARGET else "missed"
    return [
        (
            "abstained",
            _share(f["abstained"], f["n"]),
            f"no answer, or no citation: expected; target >= {ABSTAIN_TARGET:.0%}, {met}",
        ),
        ("answered", _share(f["n"] - f["abstained"], f["n"]), "sent without the supporting paragraphs"),
        ("fact", _share(f["fact"], f["fact_n"]), "gold found all the same"),
        ("yes/no", _share(f["yes_no"], f["yes_no_n"]), "gold yes/no all the same"),
    ]


def _calibration_table(c: dict[str, Any]) -> list[str]:
    lines = [
        "grounding calibration: answers sent (not abstained), held back when grounding < t; "
        "* agent.grounding_threshold",
        f"  wrong {c['wrong_n']} (answerable {c['wrong_answerable_n']}, "
        f"unanswerable {c['wrong_unanswerable_n']}), right {c['right_n']}",
        f"  {'t':<6}{'wrong caught':<20}right held",
    ]
    for row in c["rows"]:
        mark = "*" if row["configured"] else " "
        caught = _share(row["wrong_caught"], c["wrong_n"])
        held = _share(row["right_held"], c["right_n"])
        lines.append(f"{mark} {row['threshold']:<6.2g}{caught:<20}{held}")
    return lines


def _share(count: int, n: int) -> str:
    return f"{count:>5}/{n:<5}{count / n:7.1%}" if n else f"{'-':>5}"


# --- Running --------------------------------------------------------------------------------


async def index_corpus(
    client: Client, settings: Settings, tenant: str, documents: Sequence[tuple[str, str, str]]
) -> int:
    """The documents through the ingestion workflow into `tenant`; how many were indexed."""
    tenant_settings = settings.model_copy(update={"tenant": tenant})
    indexed = 0
    for start in range(0, len(documents), INGEST_BATCH):
        batch = documents[start : start + INGEST_BATCH]
        handle = await start_batch(client, tenant_settings, batch, batch_id=f"answer-eval-{uuid.uuid4().hex}")
        result = await handle.result()
        if result.failed:
            example = next(iter(result.failed.items()))
            raise AnswerSetError(f"{len(result.failed)} documents failed to index, e.g. {example}")
        indexed += len(result.indexed)
        _progress(f"  indexed {indexed}/{len(documents)} documents")
    return indexed


async def ask(client: Client, task_queue: str, tenant: str, question: Question) -> Record:
    """One task, review never, the answer cache bypassed; scored, with its wall time."""
    started = time.perf_counter()
    try:
        task_id = await start_task(
            client,
            TaskRequest(question=question.text, review="never", tenant=tenant, cache=False),
            task_queue,
        )
        handle = client.get_workflow_handle(task_id, result_type=TaskResult)
        result = await asyncio.wait_for(handle.result(), TASK_TIMEOUT_S)
    except Exception as err:  # a failed or timed-out task is scored as one, not the run's end
        return score(question, None, time.perf_counter() - started, f"{type(err).__name__}: {err}")
    return score(question, result, time.perf_counter() - started)


async def run_answers(
    client: Client,
    settings: Settings,
    answer_set: AnswerSet,
    tenant: str = TENANT,
    concurrency: int = 2,
    index: bool = True,
) -> list[Record]:
    """Index the corpus into `tenant` (unless `index` is False), then ask every question, a
    `concurrency` at a time, against workers already polling `settings`' queues."""
    if index:
        started = time.perf_counter()
        count = await index_corpus(client, settings, tenant, answer_set.documents)
        _progress(f"indexed {count} documents in {time.perf_counter() - started:.0f} s")
    queue = settings.temporal.task_queue
    # Untimed: the worker's first task pays for lazy loading and cold caches.
    await ask(client, queue, tenant, answer_set.questions[0])
    slots = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def one(question: Question) -> Record:
        nonlocal done
        async with slots:
            record = await ask(client, queue, tenant, question)
        done += 1
        verdict = record.error or ("abstained" if record.abstained else f"fact {record.fact}, f1 {record.f1}")
        if record.yes_no is not None:
            verdict = record.error or f"yes/no {record.yes_no}"
        grounding = "" if record.error else f", grounding {record.grounding:.2f}"
        _progress(
            f"  {done}/{len(answer_set.questions)} {record.latency:.1f}s {record.model}: {verdict}{grounding}"
        )
        return record

    cpu_started = time.process_time()
    records = list(await asyncio.gather(*(one(q) for q in answer_set.questions)))
    # The worker runs in this process: its CPU per task, all threads (the encoders' own pools
    # too, which a step's thread time misses), with the client's small share.
    per_task = (time.process_time() - cpu_started) / len(records)
    _progress(f"{answer_set.name}: CPU of the worker process {per_task:.3f} s a task")
    for record in records:
        record.process_cpu_s = round(per_task, 4)
    return records


async def _platform(
    stack: AsyncExitStack, settings: Settings, directory: Path, tenant: str
) -> tuple[Client, Settings]:
    """FalkorDB and the Temporal dev server of this evaluation, and a worker; stopped by `stack`."""
    from keel.app.embedded import (
        dev_server_flags,
        free_port,
        start_falkordb,
        start_temporal,
        stop_process,
        wait_for_falkordb,
    )
    from keel.app.worker import build_components, make_worker

    host, port = "127.0.0.1", free_port()
    # Rebuildable data: one snapshot at shutdown, not an AOF replayed at the next start.
    falkordb = start_falkordb(directory / "falkordb", port, host, snapshot_only=True)
    stack.callback(stop_process, falkordb, 10)
    temporal_port = free_port()
    # Its own log file, not this command's stdout (which carries the tables).
    temporal = start_temporal(directory / "temporal", host, temporal_port, free_port(), dev_server_flags())
    stack.callback(stop_process, temporal, 10)
    wait_for_falkordb(host, port, timeout_s=60)
    client = await _connect(f"{host}:{temporal_port}", timeout_s=60)
    ours = settings.model_copy(
        update={
            "data_dir": directory / "keel",
            "tenant": tenant,
            "temporal": settings.temporal.model_copy(
                update={
                    "address": f"{host}:{temporal_port}",
                    "task_queue": f"answer-eval-{uuid.uuid4().hex[:8]}",
                    "ingest_task_queue": "",
                }
            ),
            "falkordb": FalkorDBSettings(url=f"redis://{host}:{port}", graph_prefix="answer-eval"),
        }
    )
    components = build_components(ours, stack.enter_context(ExitStack()))
    await stack.enter_async_context(make_worker(client, ours, components))
    return client, ours


async def _connect(address: str, timeout_s: float) -> Client:
    """A client of the Temporal server at `address`, once it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await Client.connect(address)
        except RuntimeError as err:  # not serving yet
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Temporal at {address} did not answer within {timeout_s} s: {err}"
                ) from err
            await asyncio.sleep(0.2)


async def evaluate_answers(
    answer_set: AnswerSet,
    settings: Settings,
    concurrency: int = 2,
    data_dir: Path | None = None,
    unanswerable: AnswerSet | None = None,
) -> dict[str, Any]:
    """Start the platform (in `data_dir`, kept for the next run, or a temporary one), index, ask
    every question, then those of `unanswerable` (in a tenant of its own), stop everything; the
    report as a dict, with the grounding calibration over both sets."""
    for asked in (answer_set, unanswerable):
        if asked is not None and not asked.questions:
            raise AnswerSetError(f"{asked.name}: no questions")
    unanswered: list[Record] = []
    with ExitStack() as dirs:
        directory = data_dir or Path(dirs.enter_context(tempfile.TemporaryDirectory(prefix="keel-answers-")))
        async with AsyncExitStack() as stack:
            tenant = tenant_for(answer_set.name)
            client, ours = await _platform(stack, settings, directory, tenant)
            records = await run_answers(client, ours, answer_set, tenant, concurrency)
            if unanswerable is not None:
                _progress(f"{unanswerable.name}: every answer should abstain")
                tenant = unanswerable_tenant(unanswerable)
                unanswered = await run_answers(client, ours, unanswerable, tenant, concurrency)
    currency = settings.cost.currency
    report = build_report(answer_set, records, concurrency, currency)
    if unanswerable is not None:
        report["unanswerable"] = build_report(unanswerable, unanswered, concurrency, currency, "abstention")
        report["targets"] = {"refused_max": REFUSE_TARGET, "abstained_min": ABSTAIN_TARGET}
    report["calibration"] = calibration(records, unanswered, settings.agent.grounding_threshold)
    return report


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
