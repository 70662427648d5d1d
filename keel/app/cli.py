"""`keel`: start the platform, run one component, ingest documents, evaluate retrieval and answers.

The composition root of every process: each command builds what it needs, nothing is global.
"""

from __future__ import annotations

import asyncio
import glob
from pathlib import Path

import typer

from keel.app.cli_common import load_settings, setup_logging
from keel.core.settings import Settings

app = typer.Typer(add_completion=False, help="Keel: agentic RAG on Temporal, Qdrant and FalkorDB.")


@app.command()
def up(
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Ingest the demo corpus once ready."),
) -> None:
    """Start Temporal, FalkorDB, a worker and the API on the embedded defaults, and supervise them."""
    from keel.app.launcher import LaunchError, run_platform

    setup_logging()
    try:
        code = run_platform(load_settings(), demo=demo)
    except LaunchError as err:
        typer.echo(f"keel: {err}", err=True)
        raise typer.Exit(2) from err
    raise typer.Exit(code)


@app.command()
def worker(
    role: str = typer.Option(
        "all",
        "--role",
        help="all: agent tasks and ingestion; agent or ingest: that queue only (scaled out, "
        "ingestion then runs on workers of its own).",
    ),
) -> None:
    """Run a worker process (Qdrant Edge in-process) against the configured Temporal."""
    from keel.app.worker import ROLES, run_worker
    from keel.control.temporal import TemporalUnavailableError

    if role not in ROLES:
        typer.echo(f"keel worker: --role {role!r}: expected one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    setup_logging()
    try:
        asyncio.run(run_worker(load_settings(), role=role))
    except TemporalUnavailableError as err:
        typer.echo(f"keel worker: {err}", err=True)
        raise typer.Exit(1) from err


@app.command()
def api() -> None:
    """Serve the REST API with uvicorn."""
    import uvicorn

    from keel.app.api_server import build_api

    setup_logging()
    settings = load_settings()
    uvicorn.run(build_api(settings), host=settings.api.host, port=settings.api.port, log_level="info")


@app.command()
def ingest(
    path: Path = typer.Argument(..., help="A folder (searched recursively) or one file."),
    source_id: str = typer.Option("", "--id", help="Its source id; default: the folder's or file's name."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait, with a progress bar, until indexed."),
) -> None:
    """Index a folder or a file. It becomes a source (keel sources list) synced now: the same
    path again indexes only what changed, and drops documents whose files are gone."""
    raise typer.Exit(asyncio.run(_ingest(load_settings(), path, source_id, wait)))


async def _ingest(settings: Settings, path: Path, source_id: str, wait: bool) -> int:
    """Register the path as an on-demand source (kept as is when it already is one), sync it."""
    import redis

    from ingestion.parsers import SUPPORTED_SUFFIXES
    from keel.app.sources_cli import registry_for, run_sync
    from keel.control.errors import ControlError
    from keel.control.sources import new_spec, register, source_id_for
    from keel.control.temporal import TemporalUnavailableError, connect
    from keel.stores.sources import SourceNotFoundError

    if not path.exists():
        typer.echo(f"keel ingest: {path} does not exist", err=True)
        return 2
    if path.is_file() and path.suffix.lower() not in SUPPORTED_SUFFIXES:
        typer.echo(f"keel ingest: {path} is not a supported file ({', '.join(SUPPORTED_SUFFIXES)})", err=True)
        return 2
    try:
        if path.is_dir():
            spec = new_spec(settings.tenant, path, source_id)
        else:  # one file: a source of its folder that includes only that file
            file_source = source_id or source_id_for(path.with_suffix(""))
            spec = new_spec(settings.tenant, path.parent, file_source, include=[glob.escape(path.name)])
    except ControlError as err:
        typer.echo(f"keel ingest: {err}", err=True)
        return 2
    if not _has_documents(Path(spec.root), spec.include):
        typer.echo(f"keel ingest: no {', '.join(SUPPORTED_SUFFIXES)} files under {path}", err=True)
        return 2
    try:
        client = await connect(settings)
        registry = registry_for(settings)
        try:
            known = registry.get(settings.tenant, spec.source_id)
        except SourceNotFoundError:
            known = None
        if known is not None and (known.root, known.include) != (spec.root, spec.include):
            other = f"{known.root} ({', '.join(known.include)})"
            typer.echo(f"keel ingest: source {spec.source_id!r} is {other}; pass another --id", err=True)
            return 2
        if known is None:
            await register(client, registry, spec, settings.temporal.ingest_queue)
            typer.echo(f"source {spec.source_id}: {path.resolve()} (keel sources list)")
        return await run_sync(settings, spec.source_id, wait, command="keel ingest")
    except TemporalUnavailableError as err:
        typer.echo(f"keel ingest: {err}", err=True)
        return 1
    except redis.RedisError as err:
        typer.echo(f"keel ingest: FalkorDB at {settings.falkordb_address} is unavailable: {err}", err=True)
        return 1


def _has_documents(root: Path, include: list[str]) -> bool:
    """Whether any supported file under `root` is included; stops at the first (no hashing)."""
    from ingestion.parsers import SUPPORTED_SUFFIXES
    from ingestion.sources import matches

    return any(
        file.suffix.lower() in SUPPORTED_SUFFIXES
        and file.is_file()
        and matches(file.relative_to(root).as_posix(), include, [])
        for file in root.rglob("*")
    )


@app.command("eval")
def eval_command(
    dataset: Path = typer.Option(
        None, "--dataset", help="A BEIR dataset directory (corpus.jsonl, queries.jsonl, qrels/)."
    ),
    split: str = typer.Option("test", "--split", help="The qrels split to score: train, dev or test."),
    hotpotqa: Path = typer.Option(
        None, "--hotpotqa", help="A HotpotQA jsonl file; its paragraphs are pooled into one corpus."
    ),
    pipelines: str = typer.Option("all", "--pipelines", help="Comma-separated pipeline names, or 'all'."),
    max_queries: int = typer.Option(
        0, "--max-queries", help="Score only the first N judged queries (0: all)."
    ),
    out: Path = typer.Option(None, "--out", help="Also write the report as JSON here."),
    save_adapter: Path = typer.Option(
        None, "--save-adapter", help="Write the feedback adapter fit on the whole train split here."
    ),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Rebuild the evaluation index even if a finished one matches."
    ),
    tune_on: Path = typer.Option(
        None,
        "--tune-on",
        help="Leave one dataset out: fit every tunable choice (dense weight, the adaptive gates) on "
        "this other dataset alone (a BEIR directory's train split, or a HotpotQA jsonl file).",
    ),
    answers: bool = typer.Option(
        False,
        "--answers",
        help="Score answers instead: the real agent end to end (review never) over --hotpotqa FILE, "
        "--questions FILE or --demo; one table per provider.",
    ),
    questions: Path = typer.Option(
        None,
        "--questions",
        help="--answers: Keel's questions format (JSON list or JSONL of question, "
        "answer, documents, corpus).",
    ),
    corpus: Path = typer.Option(None, "--corpus", help="--answers: the folder of the questions' corpus."),
    demo: bool = typer.Option(False, "--demo", help="--answers: the demo questions over the demo corpus."),
    concurrency: int = typer.Option(2, "--concurrency", help="--answers: tasks running at once."),
    data_dir: Path = typer.Option(
        None,
        "--data-dir",
        help="--answers: keep the servers' data here, reused next time (default: a temporary dir).",
    ),
    unanswerable: bool = typer.Option(
        False,
        "--unanswerable",
        help="--answers --hotpotqa: then the same questions over the pool without any supporting "
        "paragraph (a tenant of its own), where each answer should abstain; and a grounding "
        "calibration over both.",
    ),
) -> None:
    """Score every retrieval pipeline on a dataset: quality, and latency per stage; with --answers,
    the agent's answers: fact, F1, citations, abstention, latency and cost per provider."""
    import json

    if answers:
        raise typer.Exit(
            _eval_answers(
                hotpotqa,
                questions,
                corpus,
                demo,
                dataset,
                max_queries,
                concurrency,
                data_dir,
                out,
                unanswerable,
            )
        )
    from keel.app.evaluation import evaluate, format_report
    from keel.core.pipelines import PIPELINES
    from retrieval.eval_data import DatasetError, load_beir, load_hotpotqa
    from retrieval.types import StoreError

    setup_logging()
    if (dataset is None) == (hotpotqa is None):
        typer.echo("keel eval: give exactly one of --dataset DIR or --hotpotqa FILE", err=True)
        raise typer.Exit(2)
    names = list(PIPELINES) if pipelines == "all" else [p.strip() for p in pipelines.split(",") if p.strip()]
    unknown = [n for n in names if n not in PIPELINES]
    if unknown or not names:
        typer.echo(
            f"keel eval: unknown pipeline(s) {unknown or names}; choose from {', '.join(PIPELINES)}", err=True
        )
        raise typer.Exit(2)
    if max_queries < 0:
        typer.echo("keel eval: --max-queries must be 0 (all) or more", err=True)
        raise typer.Exit(2)
    try:
        if hotpotqa is not None:
            data, train = load_hotpotqa(hotpotqa), None
        else:
            data = load_beir(dataset, split)
            has_train = (dataset / "qrels" / "train.tsv").is_file()
            train = (data if split == "train" else load_beir(dataset, "train")) if has_train else None
    except DatasetError as err:
        typer.echo(f"keel eval: {err}", err=True)
        raise typer.Exit(2) from err
    if save_adapter is not None and train is None:
        typer.echo("keel eval: --save-adapter needs a train split (qrels/train.tsv) to learn from", err=True)
        raise typer.Exit(2)
    if max_queries:
        data = data.sliced(max_queries)
    tuning = None
    if tune_on is not None:
        if save_adapter is not None:
            typer.echo("keel eval: --save-adapter learns from the train split; --tune-on uses none", err=True)
            raise typer.Exit(2)
        try:
            tuning = load_hotpotqa(tune_on) if tune_on.is_file() else load_beir(tune_on, "train")
        except DatasetError as err:
            typer.echo(f"keel eval: --tune-on: {err}", err=True)
            raise typer.Exit(2) from err
        train = None  # nothing is learnt from the evaluated dataset
    try:
        report = evaluate(
            data,
            train,
            load_settings(),
            names,
            hotpotqa=hotpotqa is not None,
            rebuild=rebuild,
            save_adapter=save_adapter,
            tune_on=tuning,
        )
    except (ValueError, StoreError, TimeoutError) as err:
        # Unusable reranker weights or cross-encoder path, a store that refused: named, no trace.
        typer.echo(f"keel eval: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(format_report(report))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        typer.echo(f"wrote {out}")


def _eval_answers(
    hotpotqa: Path | None,
    questions: Path | None,
    corpus: Path | None,
    demo: bool,
    dataset: Path | None,
    max_queries: int,
    concurrency: int,
    data_dir: Path | None,
    out: Path | None,
    unanswerable: bool = False,
) -> int:
    """`keel eval --answers`: load the question set (and with `unanswerable`, the same questions
    without their supporting paragraphs), run it on a platform of its own, print the tables."""
    import json

    from keel.app.answer_eval import (
        AnswerSetError,
        demo_set,
        evaluate_answers,
        format_report,
        hotpotqa_set,
        keel_set,
        unanswerable_set,
    )
    from retrieval.eval_data import DatasetError

    setup_logging()
    if dataset is not None or sum((hotpotqa is not None, questions is not None, demo)) != 1:
        typer.echo(
            "keel eval --answers: give exactly one of --hotpotqa FILE, --questions FILE or --demo", err=True
        )
        return 2
    if max_queries < 0 or concurrency < 1:
        typer.echo(
            "keel eval --answers: --max-queries must be 0 (all) or more, --concurrency 1 or more", err=True
        )
        return 2
    if unanswerable and hotpotqa is None:
        typer.echo("keel eval --answers: --unanswerable needs --hotpotqa FILE", err=True)
        return 2
    try:
        if hotpotqa is not None:
            answer_set = hotpotqa_set(hotpotqa, max_queries)
        elif questions is not None:
            answer_set = keel_set(questions, corpus, max_queries)
        else:
            answer_set = demo_set(max_queries)
    except (AnswerSetError, DatasetError) as err:
        typer.echo(f"keel eval: {err}", err=True)
        return 2
    try:
        without = unanswerable_set(answer_set) if unanswerable else None
        report = asyncio.run(evaluate_answers(answer_set, load_settings(), concurrency, data_dir, without))
    except (AnswerSetError, TimeoutError) as err:
        typer.echo(f"keel eval: {err}", err=True)
        return 1
    typer.echo(format_report(report))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        typer.echo(f"wrote {out}")
    return 0


def _add_subcommands() -> None:
    from keel.app.cost_model_cli import cost_model
    from keel.app.keys_cli import app as keys_app
    from keel.app.sources_cli import app as sources_app
    from keel.app.usage_cli import usage

    app.add_typer(sources_app, name="sources")
    app.add_typer(keys_app, name="keys")
    app.command("usage")(usage)
    app.command("cost-model")(cost_model)


_add_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
