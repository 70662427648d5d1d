"""Checks of a request against its caller and the configured limits, shared by the routes."""

from __future__ import annotations

from fastapi import HTTPException, status

from keel.core.identity import Principal, normal_name
from keel.core.settings import LimitSettings


def same_principal(named: str | None, caller: Principal, field: str) -> None:
    """A name in a body must be the caller's own (or absent): 422 naming both otherwise."""
    if named and normal_name(named) != caller.name:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{field} {named.strip()!r} is not the caller: this key's principal is {caller.name!r}",
        )


def check_question(question: str, limits: LimitSettings) -> None:
    if len(question) > limits.max_question_chars:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"the question has {len(question)} characters; the limit is {limits.max_question_chars}",
        )


def check_document(text: str, limits: LimitSettings) -> None:
    if len(text) > limits.max_document_chars:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the document has {len(text)} characters; the limit is {limits.max_document_chars}",
        )
