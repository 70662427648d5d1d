"""`keel eval`: bad input is named, not traced; HotpotQA and BEIR end to end on tiny corpora."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.app.cli import app
from keel.app.eval_index import TENANT, open_index
from keel.app.evaluation import (
    GATE_GRID,
    GatedRuns,
    cleaned,
    document_run,
    fit_gates,
    format_report,
    gate_scores,
)
from keel.core.chunks import ScoredChunk
from keel.core.pipelines import GATE_ALWAYS, PIPELINES
from keel.core.settings import FalkorDBSettings, Settings
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.eval_data import EvalDataset, load_hotpotqa
from retrieval.feedback import QueryAdapter
from retrieval.pipeline import QuerySignals, Retriever
from retrieval.types import SourceDocument

METRICS = {"nDCG@10", "R@10", "R@100", "MRR@10"}


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def _env(data_dir: Path, falkordb_url: str) -> dict[str, str]:
    return {"KEEL_DATA_DIR": str(data_dir), "KEEL_FALKORDB__URL": falkordb_url, "HF_HUB_OFFLINE": "1"}


# --- HotpotQA: bridge questions -----------------------------------------------------------
# Each question names A; A names B; B holds the answer and shares no word with the question.
# The two distractors share many of the question's words (as HotpotQA's do), so fusion alone
# ranks them above B, and only following A's link to B brings B into the top two.


@dataclass(frozen=True)
class Bridge:
    question: str
    answer: str
    a: tuple[str, str]  # (title, paragraph)
    b: tuple[str, str]
    distractors: tuple[tuple[str, str], ...]


BRIDGES = [
    Bridge(
        "Which city is the hometown of the man who directed Alder Creek?",
        "Braga",
        (
            "Alder Creek (film)",
            "Alder Creek is a 1994 drama film directed by Oren Tasker, about a logging family.",
        ),
        (
            "Oren Tasker",
            "Oren Tasker (born 1958 in Braga, Portugal) studied painting before turning to cinema.",
        ),
        (
            (
                "Hometown (song)",
                "Hometown is a song about a man who leaves his city, with a video directed in his hometown.",
            ),
            (
                "The City Man",
                "The City Man is a novel about which man in the city directed the hometown parade.",
            ),
        ),
    ),
    Bridge(
        "What instrument did the founder of Quillmark Records play?",
        "cello",
        (
            "Quillmark Records",
            "Quillmark Records is an independent record label founded in 1987 by Dessa Lindqvist in Leeds.",
        ),
        (
            "Dessa Lindqvist",
            "Dessa Lindqvist is a Swedish jazz cellist who toured Europe during the 1970s.",
        ),
        (
            (
                "Founder's Day (play)",
                "Founder's Day is a play about a school's founder and what instrument he did play.",
            ),
            (
                "Play It Again (album)",
                "Play It Again is an album on which the band's founder did play every instrument.",
            ),
        ),
    ),
    Bridge(
        "In which country was the architect of Harrowgate Library trained?",
        "Austria",
        (
            "Harrowgate Library",
            "Harrowgate Library is a public library completed in 1911; its architect was Ilse Marbury.",
        ),
        (
            "Ilse Marbury",
            "Ilse Marbury studied fine arts at Vienna, Austria, then worked thirty years as a draughtsman.",
        ),
        (
            (
                "Trained Architect (magazine)",
                "Trained Architect was a trade magazine profiling one country's buildings a month.",
            ),
            (
                "Country House Library",
                "The Country House Library is a reading room built in 1890 for a rural estate in Kent.",
            ),
        ),
    ),
    Bridge(
        "Who owns the company that makes the Velora scooter?",
        "Hexon Group",
        (
            "Velora (scooter)",
            "The Velora is an electric scooter made since 2016 by the company Brantwell Motors.",
        ),
        (
            "Brantwell Motors",
            "Brantwell Motors is a subsidiary of Hexon Group, a Danish holding firm based in Aarhus.",
        ),
        (
            (
                "Scooter Company Limited",
                "Scooter Company Limited is a British retailer of second-hand mopeds.",
            ),
            ("Kick scooter", "A kick scooter is a human-powered vehicle with a handlebar and a deck."),
        ),
    ),
    Bridge(
        "What river flows through the birthplace of the author of Gray Lanterns?",
        "Prut",
        ("Gray Lanterns", "Gray Lanterns is a 2003 poetry collection by the author Teodor Makarenko."),
        (
            "Teodor Makarenko",
            "Teodor Makarenko, a Ukrainian poet, was born in 1941 in Chernivtsi, a city on Prut.",
        ),
        (
            ("River of Birthplaces", "River of Birthplaces is a travel book on river towns."),
            ("Lantern festival", "At the lantern festival, paper lanterns flow down the river."),
        ),
    ),
    Bridge(
        "Which team did the coach of the Norrvik Falcons play for?",
        "Amsterdam Tigers",
        (
            "Norrvik Falcons",
            "The Norrvik Falcons are an ice hockey club coached since 2015 by Piet Vanderhoek.",
        ),
        (
            "Piet Vanderhoek",
            "Piet Vanderhoek is a retired Dutch defenceman who spent eleven seasons with Amsterdam Tigers.",
        ),
        (
            (
                "Coach of the Year",
                "Coach of the Year is an award; many winners did play for the team they coach.",
            ),
            ("Play for the Team", "Play for the Team is a coach's memoir on which team to play for."),
        ),
    ),
]


def write_hotpotqa(path: Path) -> Path:
    rows = []
    for number, bridge in enumerate(BRIDGES):
        paragraphs = [(bridge.a, True), *((d, False) for d in bridge.distractors), (bridge.b, True)]
        rows.append(
            {
                "question_id": f"q{number}",
                "question_text": bridge.question,
                "answers_objects": [
                    {"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": [bridge.answer]}
                ],
                "contexts": [
                    {"id": str(i), "title": title, "paragraph_text": text, "is_supporting": supporting}
                    for i, ((title, text), supporting) in enumerate(paragraphs)
                ],
            }
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- BEIR: a tiny corpus with train and test judgements -----------------------------------

# (title, text); the first 15 are judged (query i -> document d{i}), the rest only compete.
FACTS = [
    ("Aspirin", "Aspirin lowers fever and thins the blood by blocking cyclooxygenase."),
    ("Insulin", "Insulin is a hormone made by the pancreas that lets cells take up glucose."),
    (
        "Penicillin",
        "Penicillin, found by Alexander Fleming in 1928, kills bacteria by breaking their cell walls.",
    ),
    ("Hemoglobin", "Hemoglobin is the iron protein in red blood cells that carries oxygen."),
    (
        "Photosynthesis",
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in chloroplasts.",
    ),
    ("Mitochondrion", "The mitochondrion makes most of the cell's ATP through oxidative phosphorylation."),
    (
        "Vaccination",
        "Vaccination trains the immune system with a harmless antigen so it remembers a pathogen.",
    ),
    ("Caffeine", "Caffeine keeps people awake by blocking adenosine receptors in the brain."),
    ("Melatonin", "Melatonin is released by the pineal gland at night and regulates sleep timing."),
    ("Cholesterol", "High LDL cholesterol builds plaques in arteries and raises the risk of heart attack."),
    ("Vitamin D", "Skin makes vitamin D in sunlight; it helps the gut absorb calcium for bones."),
    (
        "Dopamine",
        "Dopamine signals reward; losing it in the substantia nigra causes Parkinson's disease.",
    ),
    (
        "Antibiotic resistance",
        "Bacteria become resistant to antibiotics when overuse selects for resistant mutants.",
    ),
    ("Telomere", "Telomeres cap chromosome ends and shorten each time a cell divides."),
    (
        "Gut microbiota",
        "The gut microbiota digests fibre into short-chain fatty acids that feed colon cells.",
    ),
    ("Volcano", "A volcano erupts when magma rises through cracks in the crust."),
    ("Glacier", "Glaciers carve U-shaped valleys as they slide downhill under their own weight."),
    ("Tide", "Tides rise and fall twice a day, pulled by the gravity of the moon."),
    ("Rainbow", "A rainbow appears when sunlight is refracted and reflected inside raindrops."),
    ("Earthquake", "Earthquakes release stress stored where tectonic plates lock together."),
    ("Copper", "Copper conducts electricity well and is drawn into wires."),
    ("Granite", "Granite is a coarse igneous rock of quartz, feldspar and mica."),
    ("Honeybee", "Honeybees dance to tell the hive where flowers with nectar are."),
    ("Octopus", "An octopus has three hearts and blue blood rich in hemocyanin."),
    ("Owl", "Owls hunt at night, finding mice by sound with asymmetric ears."),
    ("Bamboo", "Bamboo is a grass; some species grow almost a metre in a day."),
    ("Saturn", "Saturn's rings are made of ice and rock, and the planet would float in water."),
    ("Comet", "A comet grows a tail of gas and dust when it nears the sun."),
    ("Lightning", "Lightning heats the air to five times the sun's surface temperature, causing thunder."),
    ("Desert", "Deserts get less than 250 millimetres of rain a year."),
]
QUESTIONS = [
    "what drug reduces fever and thins blood",
    "which hormone controls glucose uptake",
    "who discovered the first antibiotic",
    "what protein carries oxygen in red cells",
    "how do plants make sugar from light",
    "where is ATP produced in the cell",
    "how does a vaccine teach immunity",
    "why does coffee keep you awake",
    "which hormone regulates sleep at night",
    "does LDL cholesterol cause heart attacks",
    "how does sunlight help bones",
    "what neurotransmitter is lost in Parkinson's disease",
    "why do bacteria resist antibiotics",
    "what shortens when cells divide",
    "how does gut bacteria digest fibre",
]
TRAIN_QUERIES = 12  # q0..q11 judged in train, q12..q14 in test


def write_beir(root: Path) -> Path:
    directory = root / "tinyfact"
    (directory / "qrels").mkdir(parents=True)
    corpus = [{"_id": f"d{i}", "title": title, "text": text} for i, (title, text) in enumerate(FACTS)]
    queries = [{"_id": f"q{i}", "text": text} for i, text in enumerate(QUESTIONS)]
    for name, rows in (("corpus", corpus), ("queries", queries)):
        (directory / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    header = "query-id\tcorpus-id\tscore\n"
    for split, ids in (("train", range(TRAIN_QUERIES)), ("test", range(TRAIN_QUERIES, len(QUESTIONS)))):
        (directory / "qrels" / f"{split}.tsv").write_text(header + "".join(f"q{i}\td{i}\t1\n" for i in ids))
    return directory


# --- bad input: exit code 2, the problem named, no stack trace ----------------------------


def _refused(*args: str, tmp_path: Path) -> str:
    code, output = _run("eval", *args, env={"KEEL_DATA_DIR": str(tmp_path / "data")})
    assert code == 2, output
    assert "Traceback" not in output
    return output


@pytest.mark.unit
def test_eval_needs_a_dataset(tmp_path: Path) -> None:
    assert "give exactly one of --dataset DIR or --hotpotqa FILE" in _refused(tmp_path=tmp_path)


@pytest.mark.unit
def test_eval_takes_one_dataset_only(tmp_path: Path) -> None:
    beir, hotpotqa = write_beir(tmp_path), write_hotpotqa(tmp_path / "dev.jsonl")
    output = _refused("--dataset", str(beir), "--hotpotqa", str(hotpotqa), tmp_path=tmp_path)
    assert "give exactly one of --dataset DIR or --hotpotqa FILE" in output


@pytest.mark.unit
def test_unknown_pipeline_lists_the_choices(tmp_path: Path) -> None:
    beir = write_beir(tmp_path)
    output = _refused("--dataset", str(beir), "--pipelines", "hybrid-convex,hybird-graph", tmp_path=tmp_path)
    assert "hybird-graph" in output
    assert all(name in output for name in PIPELINES)


@pytest.mark.unit
def test_missing_dataset_directory_is_named(tmp_path: Path) -> None:
    output = _refused("--dataset", str(tmp_path / "nowhere"), tmp_path=tmp_path)
    assert "nowhere is not a directory" in output


@pytest.mark.unit
def test_missing_hotpotqa_file_is_named(tmp_path: Path) -> None:
    output = _refused("--hotpotqa", str(tmp_path / "dev.jsonl"), tmp_path=tmp_path)
    assert "dev.jsonl does not exist" in output


@pytest.mark.unit
def test_split_without_judgements_names_the_splits_present(tmp_path: Path) -> None:
    output = _refused("--dataset", str(write_beir(tmp_path)), "--split", "dev", tmp_path=tmp_path)
    assert "dev.tsv does not exist" in output and "splits with judgements here: test, train" in output


@pytest.mark.unit
def test_negative_max_queries(tmp_path: Path) -> None:
    output = _refused("--dataset", str(write_beir(tmp_path)), "--max-queries", "-1", tmp_path=tmp_path)
    assert "--max-queries must be 0 (all) or more" in output


@pytest.mark.unit
def test_save_adapter_without_a_train_split(tmp_path: Path) -> None:
    hotpotqa = write_hotpotqa(tmp_path / "dev.jsonl")
    adapter = str(tmp_path / "a.npz")
    output = _refused(
        "--hotpotqa",
        str(hotpotqa),
        "--pipelines",
        "hybrid-convex",
        "--save-adapter",
        adapter,
        tmp_path=tmp_path,
    )
    assert "--save-adapter needs a train split" in output
    assert not (tmp_path / "data" / "eval").exists()  # refused before any index was built


@pytest.mark.unit
def test_tune_on_a_missing_dataset_is_named(tmp_path: Path) -> None:
    hotpotqa = write_hotpotqa(tmp_path / "dev.jsonl")
    output = _refused("--hotpotqa", str(hotpotqa), "--tune-on", str(tmp_path / "nowhere"), tmp_path=tmp_path)
    assert "--tune-on" in output and "nowhere is not a directory" in output


@pytest.mark.unit
def test_tune_on_learns_nothing_to_save(tmp_path: Path) -> None:
    beir, hotpotqa = write_beir(tmp_path), write_hotpotqa(tmp_path / "dev.jsonl")
    args = ("--dataset", str(beir), "--tune-on", str(hotpotqa), "--save-adapter", str(tmp_path / "a.npz"))
    assert "--tune-on uses none" in _refused(*args, tmp_path=tmp_path)


# --- HotpotQA end to end --------------------------------------------------------------------

HOTPOTQA_PIPELINES = ("hybrid-convex", "hybrid-graph", "hybrid-graph+rerank")


def _eval(*args: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(app, ["eval", *args], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@dataclass
class HotpotQARuns:
    dataset: Path
    data_dir: Path
    outputs: list[str]
    reports: list[dict[str, Any]]
    marker_mtimes: list[int]  # complete.json of the index, after each run


@pytest.fixture(scope="module")
def hotpotqa_runs(tmp_path_factory: pytest.TempPathFactory, falkordb_url: str) -> HotpotQARuns:
    """The same evaluation twice over one data dir: the second run finds the first's index."""
    root = tmp_path_factory.mktemp("hotpotqa")
    runs = HotpotQARuns(write_hotpotqa(root / "dev_6.jsonl"), root / "data", [], [], [])
    for number in (1, 2):
        out = root / f"report-{number}.json"
        pipelines = ",".join(HOTPOTQA_PIPELINES)
        output = _eval(
            "--hotpotqa", str(runs.dataset), "--pipelines", pipelines, "--out", str(out),
            env=_env(runs.data_dir, falkordb_url),
        )  # fmt: skip
        runs.outputs.append(output)
        runs.reports.append(json.loads(out.read_text()))
        [marker] = (runs.data_dir / "eval").glob("*/complete.json")
        runs.marker_mtimes.append(marker.stat().st_mtime_ns)
    return runs


@pytest.mark.integration
def test_hotpotqa_table_has_a_row_per_pipeline(hotpotqa_runs: HotpotQARuns) -> None:
    lines = hotpotqa_runs.outputs[0].splitlines()
    [header] = [line for line in lines if line.startswith("pipeline ")]
    assert header.split() == ["pipeline", "both@5", "both@10", "nDCG@10", "R@10", "R@100", "MRR@10"]
    for name in HOTPOTQA_PIPELINES:
        [row, latency] = [line for line in lines if line.split()[:1] == [name]]
        # The agent's own pipeline is marked "name *".
        cells = [cell for cell in row.split()[1:] if cell != "*"]
        assert all(0.0 <= float(cell) <= 1.0 for cell in cells)
        assert len(cells) == len(header.split()) - 1
        assert latency.split()[-1] != "-"  # the total, p50/p95 ms


@pytest.mark.integration
def test_hotpotqa_report_has_metrics_and_stage_latencies(hotpotqa_runs: HotpotQARuns) -> None:
    report = hotpotqa_runs.reports[0]
    assert (report["queries"], report["documents"]) == (len(BRIDGES), 4 * len(BRIDGES))
    assert report["reranker"] != "none"
    assert report["tuning"] == [
        {
            "queries": len(BRIDGES),
            "fit_on_train_queries": 0,
            "dense_weight": 0.5,
            "feedback_adapter": None,
            "graph_gate": 0.0,
            "rerank_gate": 0.0,
            "fit_dataset": "",
        }
    ]
    assert set(report["pipelines"]) == set(HOTPOTQA_PIPELINES)
    for name, result in report["pipelines"].items():
        assert set(result["metrics"]) == METRICS | {"both@5", "both@10"}
        assert all(0.0 <= value <= 1.0 for value in result["metrics"].values())
        stages = result["latency_ms"]
        assert {"encode_dense", "dense", "bm25", "fuse", "total"} <= set(stages)
        assert ("graph" in stages) == PIPELINES[name].graph
        assert ("rerank" in stages) == PIPELINES[name].rerank
        assert all(0.0 <= t["p50"] <= t["p95"] for t in stages.values())
    # Every question's two paragraphs are among the 24 documents, so all are found by 100.
    assert report["pipelines"]["hybrid-graph"]["metrics"]["R@100"] == 1.0


@pytest.mark.integration
def test_second_run_reuses_the_index_and_scores_the_same(hotpotqa_runs: HotpotQARuns) -> None:
    first, second = hotpotqa_runs.outputs
    assert f"indexed {4 * len(BRIDGES)}/{4 * len(BRIDGES)} documents" in first
    assert "indexed" not in second
    assert hotpotqa_runs.marker_mtimes[0] == hotpotqa_runs.marker_mtimes[1]
    before, after = (
        {name: r["metrics"] for name, r in report["pipelines"].items()} for report in hotpotqa_runs.reports
    )
    assert before == after


@pytest.mark.integration
def test_graph_expansion_brings_the_bridge_paragraph_up(
    hotpotqa_runs: HotpotQARuns, falkordb_url: str
) -> None:
    # B shares no word with its question, and both distractors outscore it on fusion alone;
    # only the link from A (which the question names) lifts B into the top two.
    settings = Settings(data_dir=hotpotqa_runs.data_dir, falkordb=FalkorDBSettings(url=falkordb_url))
    dense, sparse = DenseEncoder(settings.embedding_model_path()), SparseEncoder()
    dataset = load_hotpotqa(hotpotqa_runs.dataset)
    with open_index(dataset, settings, falkordb_url, dense, sparse) as index:
        retriever = Retriever(index.vectors, dense, sparse, index.graph)

        def top_two(question: str, pipeline: str) -> list[str]:
            found = retriever.retrieve(TENANT, question, PIPELINES[pipeline])
            return list(document_run(found.chunks, depth=2))

        for bridge in BRIDGES:
            assert top_two(bridge.question, "hybrid-graph") == [bridge.a[0], bridge.b[0]]
            assert bridge.b[0] not in top_two(bridge.question, "hybrid-convex")


# --- BEIR: supervised stages learn from train only ------------------------------------------


def _beir_eval(tmp_path: Path, falkordb_url: str, split: str) -> tuple[dict[str, Any], QueryAdapter]:
    out, adapter = tmp_path / "report.json", tmp_path / "adapter.npz"
    _eval(
        "--dataset", str(write_beir(tmp_path)), "--split", split,
        "--pipelines", "hybrid-convex,hybrid-convex+feedback",
        "--out", str(out), "--save-adapter", str(adapter),
        env=_env(tmp_path / "data", falkordb_url),
    )  # fmt: skip
    return json.loads(out.read_text()), QueryAdapter.load(adapter, 384)


@pytest.mark.integration
def test_test_split_is_scored_with_stages_fit_on_all_of_train(tmp_path: Path, falkordb_url: str) -> None:
    report, saved = _beir_eval(tmp_path, falkordb_url, "test")
    test_queries = len(QUESTIONS) - TRAIN_QUERIES
    assert report["queries"] == test_queries
    [tuning] = report["tuning"]
    assert (tuning["queries"], tuning["fit_on_train_queries"]) == (test_queries, TRAIN_QUERIES)
    assert 0.0 <= tuning["dense_weight"] <= 1.0
    # The adapter saved for the agent is the very one the test queries were scored with.
    assert tuning["feedback_adapter"] == saved.digest
    assert saved.trained_on == f"tinyfact/train ({TRAIN_QUERIES} queries)"
    assert set(report["pipelines"]) == {"hybrid-convex", "hybrid-convex+feedback"}
    for result in report["pipelines"].values():
        assert set(result["metrics"]) == METRICS
        assert all(0.0 <= value <= 1.0 for value in result["metrics"].values())


@pytest.mark.integration
def test_train_split_is_cross_fitted(tmp_path: Path, falkordb_url: str) -> None:
    report, saved = _beir_eval(tmp_path, falkordb_url, "train")
    assert report["queries"] == TRAIN_QUERIES
    folds = report["tuning"]
    assert len(folds) == 5
    # Each fold is scored by stages fit on the rest of train: the folds partition train.
    assert sum(f["queries"] for f in folds) == TRAIN_QUERIES
    for fold in folds:
        assert fold["queries"] > 0 and fold["fit_on_train_queries"] == TRAIN_QUERIES - fold["queries"]
        assert 0.0 <= fold["dense_weight"] <= 1.0
    assert len({f["feedback_adapter"] for f in folds}) == 5
    # The saved adapter is fit on all of train, so it is none of the folds'.
    assert saved.trained_on == f"tinyfact/train ({TRAIN_QUERIES} queries)"
    assert saved.digest not in {f["feedback_adapter"] for f in folds}
    assert "hybrid-convex+feedback" in report["pipelines"]


@pytest.mark.integration
def test_leave_one_dataset_out(tmp_path: Path, falkordb_url: str) -> None:
    # Scored on HotpotQA, everything tuned on the BEIR set's train split alone.
    out = tmp_path / "report.json"
    _eval(
        "--hotpotqa", str(write_hotpotqa(tmp_path / "dev.jsonl")), "--tune-on", str(write_beir(tmp_path)),
        "--pipelines", "hybrid-convex,adaptive", "--out", str(out),
        env=_env(tmp_path / "data", falkordb_url),
    )  # fmt: skip
    report = json.loads(out.read_text())
    [tuning] = report["tuning"]
    assert tuning["fit_dataset"] == "tinyfact/train"
    assert (tuning["queries"], tuning["fit_on_train_queries"]) == (len(BRIDGES), TRAIN_QUERIES)
    assert tuning["feedback_adapter"] is None  # an adapter fits one corpus: none crosses over
    assert tuning["graph_gate"] in GATE_GRID and tuning["rerank_gate"] in GATE_GRID
    adaptive = report["pipelines"]["adaptive"]
    assert set(adaptive["ran"]) == {"graph", "rerank"}
    assert all(0.0 <= share <= 1.0 for share in adaptive["ran"].values())
    assert "gate" in adaptive["latency_ms"]
    assert "ran" not in report["pipelines"]["hybrid-convex"]


# --- units ------------------------------------------------------------------------------------


def _gated(named: int, agreement: float, **ndcg_of: str) -> GatedRuns:
    """A query whose relevant document "r" is first in the runs named by `ndcg_of` keys."""
    runs = {}
    for graph in (False, True):
        for rerank in (False, True):
            key = ("graph" if graph else "") + ("rerank" if rerank else "") or "plain"
            runs[(graph, rerank)] = {"r": 2.0, "x": 1.0} if key in ndcg_of else {"x": 2.0, "r": 1.0}
    return GatedRuns(QuerySignals(named, agreement), runs)


@pytest.mark.unit
def test_gates_are_fit_to_the_stages_that_help() -> None:
    qrels = {q: {"r": 1} for q in ("a", "b", "c")}
    outcomes = {
        "a": _gated(1, 0.9, graph="", graphrerank=""),  # named: expansion helps
        "b": _gated(0, 0.2, plain="", graph=""),  # disagreement: reranking hurts
        "c": _gated(0, 0.9, plain="", graph="", rerank="", graphrerank=""),  # nothing changes
    }
    scores = gate_scores(qrels, outcomes)
    assert set(scores) == {(g, r) for g in GATE_GRID for r in GATE_GRID}
    assert scores[(0.0, 0.0)] == 1.0  # a expanded (it names a document), nobody reranked
    assert scores[(0.0, GATE_ALWAYS)] < 1.0  # b reranked
    # Every graph gate ties (a is named, b and c gain nothing): the lowest wins, as does rerank's.
    assert fit_gates(scores) == (0.0, 0.0)


@pytest.mark.unit
def test_a_stage_runs_where_it_earns_its_place() -> None:
    scores = {(g, r): 0.5 for g in GATE_GRID for r in GATE_GRID}
    scores[(0.3, GATE_ALWAYS)] = 0.6
    assert fit_gates(scores) == (0.3, GATE_ALWAYS)


@pytest.mark.unit
def test_cleaned_drops_what_the_stores_refuse() -> None:
    dataset = EvalDataset("d", [SourceDocument("a", "Ti\x96tle", "te\x00xt\x0cmore")], {}, {}, "fp")
    [document] = cleaned(dataset).documents
    assert (document.document_id, document.title, document.text) == ("a", "Title", "text\nmore")
    assert cleaned(dataset).fingerprint == "fp"  # the same index: its key hashes the files read


def _chunk(document_id: str, position: int, score: float) -> ScoredChunk:
    return ScoredChunk(f"{document_id}#{position:04d}", document_id, score)


@pytest.mark.unit
def test_document_run_ranks_documents_where_their_best_chunk_is() -> None:
    chunks = [
        _chunk("b", 2, 0.9),
        _chunk("a", 0, 0.8),
        _chunk("b", 0, 0.7),
        _chunk("c", 1, 0.7),
        _chunk("a", 3, 0.1),
    ]
    run = document_run(chunks)
    assert list(run) == ["b", "a", "c"]
    scores = list(run.values())
    assert all(high > low for high, low in itertools.pairwise(scores))
    assert list(document_run(chunks, depth=2)) == ["b", "a"]
    assert document_run([]) == {}


@pytest.mark.unit
def test_format_report() -> None:
    report = {
        "dataset": "tinyfact/test",
        "queries": 3,
        "documents": 30,
        "chunks": 31,
        "reranker": "none",
        "tuning": [
            {"queries": 3, "fit_on_train_queries": 12, "dense_weight": 0.6, "feedback_adapter": "abc123"}
        ],
        "pipelines": {
            "hybrid-convex": {
                "metrics": {"nDCG@10": 0.5, "MRR@10": 0.25},
                "latency_ms": {"dense": {"p50": 1.04, "p95": 2.0}, "total": {"p50": 3.0, "p95": 4.56}},
            },
            "hybrid-graph": {
                "metrics": {"nDCG@10": 0.75, "MRR@10": 1.0},
                "latency_ms": {"graph": {"p50": 0.5, "p95": 0.74}, "total": {"p50": 5.0, "p95": 6.0}},
            },
        },
    }
    lines = format_report(report).splitlines()
    assert lines[0] == "tinyfact/test: 3 queries, 30 documents (31 chunks); reranker none"
    assert lines[1] == "tuning: 3 queries <- fit on 12 (dense weight 0.6, adapter abc123)"
    assert lines[3].split() == ["pipeline", "nDCG@10", "MRR@10"]
    assert lines[4].split() == ["hybrid-convex", "0.5000", "0.2500"]
    assert lines[5].split() == ["hybrid-graph", "0.7500", "1.0000"]
    latency = {line.split()[0]: line.split()[1:] for line in lines[7:]}
    # Columns: encode_dense, dense, encode_bm25, bm25, fuse, gate, graph, rerank, total.
    assert latency["hybrid-convex"] == ["-", "1.0/2.0", "-", "-", "-", "-", "-", "-", "3.0/4.6"]
    assert latency["hybrid-graph"] == ["-", "-", "-", "-", "-", "-", "0.5/0.7", "-", "5.0/6.0"]


@pytest.mark.unit
def test_format_report_of_a_leave_one_out_run() -> None:
    report = {
        "dataset": "dev_250",
        "queries": 3,
        "documents": 30,
        "chunks": 31,
        "reranker": "ltr",
        "tuning": [
            {
                "queries": 3,
                "fit_on_train_queries": 809,
                "dense_weight": 0.4,
                "feedback_adapter": None,
                "graph_gate": 0.0,
                "rerank_gate": 0.3,
                "fit_dataset": "scifact/train",
            }
        ],
        "pipelines": {
            "adaptive": {
                "metrics": {"nDCG@10": 0.5},
                "latency_ms": {"gate": {"p50": 1.0, "p95": 2.0}},
                "ran": {"graph": 0.85, "rerank": 0.125},
            },
        },
    }
    lines = format_report(report).splitlines()
    assert (
        lines[1]
        == "tuning: 3 queries <- fit on 809 of scifact/train (dense weight 0.4, gates graph 0.0 rerank 0.3)"
    )
    assert "adaptive: gated stages ran graph on 85%, rerank on 12% of the queries" in lines
    [quality, latency] = [line for line in lines if line.startswith("adaptive ")]
    assert quality.split() == ["adaptive", "0.5000"]
    assert latency.split()[6] == "1.0/2.0"  # the gate column, after fuse


@pytest.mark.unit
def test_format_report_with_no_pipeline() -> None:
    assert format_report({"pipelines": {}}) == "no pipeline ran"
