"""Answer providers: extractive by default, any OpenAI-compatible endpoint when configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.core.models.base import AnswerProvider, Embed, Generation, ModelError
from keel.core.models.extractive import ExtractiveProvider, FindEntities
from keel.core.models.openai_compat import OpenAICompatibleProvider

if TYPE_CHECKING:
    from keel.core.settings import Settings

__all__ = [
    "AnswerProvider",
    "ExtractiveProvider",
    "Generation",
    "ModelError",
    "OpenAICompatibleProvider",
    "make_provider",
]


def make_provider(
    settings: Settings, embed: Embed, find_entities: FindEntities | None = None
) -> AnswerProvider:
    """The configured provider; the extractive one when no endpoint is set.

    `find_entities` lets the extractive answerer follow a multi-hop chain (the worker passes
    ingestion's entity extractor: the core does not reach up for it).
    """
    models = settings.models
    if models.provider == "extractive":
        return ExtractiveProvider(embed, find_entities=find_entities)
    from openai import OpenAI

    client = OpenAI(
        base_url=models.base_url,
        api_key=models.api_key.get_secret_value() if models.api_key else "not-needed",
        max_retries=0,  # Temporal owns retries
        timeout=models.request_timeout_s,
    )
    return OpenAICompatibleProvider(
        client, models.model, embed, max_tokens=models.max_tokens, temperature=models.temperature
    )
