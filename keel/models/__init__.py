"""Answer providers: extractive by default, any OpenAI-compatible endpoint when configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.models.base import AnswerProvider, Citation, Embed, Generation, ModelError, Passage
from keel.models.extractive import ExtractiveProvider
from keel.models.openai_compat import OpenAICompatibleProvider

if TYPE_CHECKING:
    from keel.settings import Settings

__all__ = [
    "AnswerProvider",
    "Citation",
    "ExtractiveProvider",
    "Generation",
    "ModelError",
    "OpenAICompatibleProvider",
    "Passage",
    "make_provider",
]


def make_provider(settings: Settings, embed: Embed) -> AnswerProvider:
    """The configured provider; the extractive one when no endpoint is set."""
    models = settings.models
    if models.provider == "extractive":
        from ingestion.entities import extract_entities

        return ExtractiveProvider(embed, find_entities=extract_entities)
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
