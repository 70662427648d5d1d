"""What no request may carry into a store or a workflow: control characters, NULs, lone surrogates,
unbounded metadata. Refused at the edge with a 422 naming the field.

FalkorDB, Redis keys, file paths and Temporal payloads each choke on some of these (a NUL ends a C
string; a lone surrogate cannot be encoded as UTF-8), so they never get past the request models
and parameters below.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from fastapi import Path
from pydantic import AfterValidator, BaseModel, field_validator

# What a field may not hold: any control character (below U+0020, or DEL) or lone surrogate;
# free text (documents, questions, answers, reasons) may hold tabs and line breaks. One regex
# search each: a 2 MB document is checked in C, not a character at a time in Python.
_NOT_PLAIN = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_NOT_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

# Document metadata is a caller's free-form dict stored with the document: bounded so that it
# stays a label, not a second document.
MAX_METADATA_DEPTH = 4
MAX_METADATA_ITEMS = 200
MAX_METADATA_KEY_CHARS = 200
MAX_METADATA_STRING_CHARS = 2000

# Path parameters (task, document, source and key ids): generous, as an unknown id is a 404,
# but far from what a store or a log line should be handed.
MAX_PATH_ID_CHARS = 256


def bad_character(text: str, free_text: bool = False) -> str | None:
    """Why `text` is refused (the first offending character and where), or None when it is fine."""
    found = (_NOT_FREE_TEXT if free_text else _NOT_PLAIN).search(text)
    if found is None:
        return None
    code, position = ord(found.group()), found.start()
    if 0xD800 <= code <= 0xDFFF:
        return f"contains a lone surrogate (U+{code:04X}) at position {position}"
    if code == 0:
        return f"contains a NUL character at position {position}"
    return f"contains a control character (U+{code:04X}) at position {position}"


def _check_strings(value: Any, free_text: bool) -> None:
    """Every string in `value` (a string, or a list of them) is acceptable; ValueError otherwise."""
    if isinstance(value, str):
        reason = bad_character(value, free_text)
        if reason:
            raise ValueError(reason)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, free_text)


def plain(value: str) -> str:
    """An id, name, glob or path: no control characters at all."""
    _check_strings(value, free_text=False)
    return value


class CheckedIn(BaseModel):
    """A request body whose every string field is checked before any other validation.

    Fields named in `free_text` may hold tabs and line breaks; `metadata` fields are walked
    whole (keys, values, depth and size)."""

    free_text: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: Any) -> Any:
        if info.field_name == "metadata":
            check_metadata(value)
        else:
            _check_strings(value, free_text=info.field_name in cls.free_text)
        return value


def check_metadata(value: Any) -> None:
    """Bounded in depth, items and string lengths; keys plain, string values free text."""
    items = _walk_metadata(value, depth=0)
    if items > MAX_METADATA_ITEMS:
        raise ValueError(f"has {items} items; the limit is {MAX_METADATA_ITEMS}")


def _walk_metadata(value: Any, depth: int) -> int:
    """How many items `value` holds, all of them checked."""
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"is nested deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, dict):
        count = 0
        for key, item in value.items():
            if isinstance(key, str):
                _check_key(key)
            count += 1 + _walk_metadata(item, depth + 1)
            if count > MAX_METADATA_ITEMS:  # stop early: a huge dict is not walked whole
                return count
        return count
    if isinstance(value, list):
        count = 0
        for item in value:
            count += 1 + _walk_metadata(item, depth + 1)
            if count > MAX_METADATA_ITEMS:
                return count
        return count
    if isinstance(value, str):
        if len(value) > MAX_METADATA_STRING_CHARS:
            raise ValueError(
                f"holds a string of {len(value)} characters; the limit is {MAX_METADATA_STRING_CHARS}"
            )
        _check_strings(value, free_text=True)
    return 0


def _check_key(key: str) -> None:
    if len(key) > MAX_METADATA_KEY_CHARS:
        raise ValueError(f"has a key of {len(key)} characters; the limit is {MAX_METADATA_KEY_CHARS}")
    reason = bad_character(key)
    if reason:
        raise ValueError(f"has a key that {reason}")


# What Linux allows (NAME_MAX, PATH_MAX): past them the OS refuses the path with an error, so a
# longer one is the caller's mistake, said as such.
MAX_PATH_BYTES = 4095
MAX_PATH_COMPONENT_BYTES = 255


def check_path(path: str) -> str:
    """A server path the OS can take: not too long, whole or in any of its parts (in UTF-8 bytes)."""
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        raise ValueError(f"is {size} bytes long; the limit is {MAX_PATH_BYTES}")
    for part in path.split("/"):
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > MAX_PATH_COMPONENT_BYTES:
            raise ValueError(f"has a name of {size} bytes; the limit is {MAX_PATH_COMPONENT_BYTES}")
    return path


# A path parameter naming a resource: checked like a body's id (the route still answers 404 for
# an id that cannot exist).
PathId = Annotated[str, Path(max_length=MAX_PATH_ID_CHARS), AfterValidator(plain)]
