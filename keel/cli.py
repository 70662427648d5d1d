"""`keel`: start the platform, run one component, ingest documents, evaluate retrieval."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from pathlib import Path

import typer

from keel.settings import Settings

app = typer.Typer(add_completion=False, help="Keel: agentic RAG on Temporal, Qdrant and FalkorDB.")

SUPPORTED_SUFFIXES = {".md", ".txt"}


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as err:
        typer.echo(f"keel: invalid settings:\n{err}", err=True)
        raise typer.Exit(2) from err


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Every readiness poll and API call would otherwise be an INFO line.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command()
def up(
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Ingest the demo corpus once ready."),
) -> None:
    """Start Temporal, FalkorDB, a worker and the API on the embedded defaults, and supervise them."""
    from keel.services import PortInUseError, run_platform

    _logging()
    try:
        code = run_platform(_settings(), demo=demo)
    except PortInUseError as err:
        typer.echo(f"keel: {err}", err=True)
        raise typer.Exit(2) from err
    raise typer.Exit(code)


@app.command()
def worker() -> None:
    """Run one worker (Qdrant Edge in-process) against the configured Temporal."""
    from keel.temporal import TemporalUnavailableError
    from keel.worker import run_worker

    _logging()
    try:
        asyncio.run(run_worker(_settings()))
    except TemporalUnavailableError as err:
        typer.echo(f"keel worker: {err}", err=True)
        raise typer.Exit(1) from err


@app.command()
def api() -> None:
    """Serve the REST API with uvicorn."""
    import uvicorn

    from api.app import create_app

    _logging()
    settings = _settings()
    uvicorn.run(create_app(settings), host=settings.api.host, port=settings.api.port, log_level="info")


@app.command()
def ingest(
    path: Path = typer.Argument(..., help="A file, or a folder searched recursively for .md and .txt files."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for indexing to finish."),
) -> None:
    """Index documents through an ingestion workflow (the same files twice change nothing)."""
    from ingestion.files import DocumentFileError, load_documents

    settings = _settings()
    try:
        documents = load_documents(path, SUPPORTED_SUFFIXES)
    except DocumentFileError as err:
        typer.echo(f"keel ingest: {err}", err=True)
        raise typer.Exit(2) from err
    if not documents:
        typer.echo(f"keel ingest: no {', '.join(sorted(SUPPORTED_SUFFIXES))} files under {path}", err=True)
        raise typer.Exit(2)
    code = asyncio.run(_ingest(settings, documents, wait))
    raise typer.Exit(code)


async def _ingest(settings: Settings, documents: list[tuple[str, str, str]], wait: bool) -> int:
    from temporalio.service import RPCError

    from keel.ingest_client import start_batch
    from keel.temporal import TemporalUnavailableError

    try:
        handle = await start_batch(settings, documents, batch_id=f"ingest-batch-{uuid.uuid4().hex}")
    except RPCError as err:
        typer.echo(f"keel ingest: Temporal at {settings.temporal_address} refused: {err.message}", err=True)
        return 1
    except TemporalUnavailableError as err:
        typer.echo(f"keel ingest: {err}", err=True)
        return 1
    typer.echo(f"ingesting {len(documents)} documents: workflow {handle.id}")
    if not wait:
        return 0
    result = await handle.result()
    chunks = sum(d.chunks for d in result.indexed)
    typer.echo(f"indexed {len(result.indexed)} documents ({chunks} chunks); failed {len(result.failed)}")
    for document_id, reason in result.failed.items():
        typer.echo(f"  failed {document_id}: {reason}", err=True)
    return 1 if result.failed else 0


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
) -> None:
    """Score every retrieval pipeline on a dataset: quality, and latency per stage."""
    import json

    from keel.evaluation import evaluate, format_report
    from retrieval.eval_data import DatasetError, load_beir, load_hotpotqa
    from retrieval.pipeline import PIPELINES
    from retrieval.types import StoreError

    _logging()
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
    try:
        report = evaluate(
            data,
            train,
            _settings(),
            names,
            hotpotqa=hotpotqa is not None,
            rebuild=rebuild,
            save_adapter=save_adapter,
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


def _add_sources() -> None:
    from keel.sources_cli import app as sources_app

    app.add_typer(sources_app, name="sources")


_add_sources()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
