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
    "make_providers",
]


def make_provider(
    settings: Settings, embed: Embed, find_entities: FindEntities | None = None, profile: str = "default"
) -> AnswerProvider:
    """The provider of a model profile; the extractive one when the profile names no endpoint.

    `find_entities` lets the extractive answerer follow a multi-hop chain (the worker passes
    ingestion's entity extractor: the core does not reach up for it).
    """
    chosen = settings.models.profile(profile)
    if not chosen.base_url:
        return ExtractiveProvider(embed, find_entities=find_entities, min_fit=settings.agent.min_answer_fit)
    from openai import OpenAI

    client = OpenAI(
        base_url=chosen.base_url,
        api_key=chosen.api_key.get_secret_value() if chosen.api_key else "not-needed",
        max_retries=0,  # Temporal owns retries
        timeout=settings.models.request_timeout_s,
    )
    return OpenAICompatibleProvider(
        client, chosen.model, embed, max_tokens=chosen.max_tokens, temperature=chosen.temperature
    )


def make_providers(
    settings: Settings, embed: Embed, find_entities: FindEntities | None = None
) -> dict[str, AnswerProvider]:
    """A provider for every profile the generate step or the router may choose, by name."""
    return {
        name: make_provider(settings, embed, find_entities, name) for name in settings.models.profile_names()
    }
