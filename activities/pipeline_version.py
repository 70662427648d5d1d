"""The pipeline version of a worker: one digest of everything that decides an answer's content and
cost (models, prompts, retrieval settings, reranker weights, feedback adapter), recorded with every
task, in its result, usage and trace, so a change in cost or quality is tied to its cause.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from keel.core.models import extractive, openai_compat
from keel.core.settings import Settings
from retrieval.factories import reranker_weights_path


def _file_digest(path: str | Path) -> str:
    file = Path(path)
    if file.is_dir():
        return "dir:" + file.name  # a model folder: named, not hashed (hundreds of MB)
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


def pipeline_parts(settings: Settings) -> dict[str, Any]:
    """What the version digests, by part (what a trace reader compares between two versions)."""
    models = settings.models
    retrieval = settings.retrieval.model_dump(mode="json")
    retrieval["ltr_weights"] = _file_digest(reranker_weights_path(settings))
    if settings.retrieval.feedback_adapter_path:
        retrieval["feedback_adapter"] = _file_digest(settings.retrieval.feedback_adapter_path)
    return {
        "models": {
            name: models.profile(name).model_dump(mode="json", include={"model", "max_tokens", "temperature"})
            | {"provider": "openai" if models.profile(name).base_url else "extractive"}
            for name in models.profile_names()
        },
        "router": models.router.model_dump(mode="json"),
        "prompts": hashlib.sha256(
            (openai_compat.system_prompt("{boundary}") + repr(extractive.NO_ANSWER)).encode()
        ).hexdigest()[:16],
        "embedding": {
            "model": settings.embedding_model_name,
            "query": settings.embedding.query_runtime,
        },
        "retrieval": retrieval,
        "agent": settings.agent.model_dump(mode="json"),
    }


def pipeline_version(settings: Settings) -> str:
    """`pv-` and 12 hex digits of the parts above."""
    digest = hashlib.sha256(json.dumps(pipeline_parts(settings), sort_keys=True).encode()).hexdigest()
    return f"pv-{digest[:12]}"
