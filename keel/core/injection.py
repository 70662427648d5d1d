"""Retrieved text that reads like instructions to a model (OWASP LLM01, indirect prompt injection).

A pure detector: the grade step runs it over the passages the generator was given, and the
review policy turns a hit into a review reason under `auto`. It never filters or rewrites a
passage; what it finds goes to a person. Each rule fires only on text aimed at a model or its
prompt: overriding "previous instructions", role changes, chat-template tokens, fake prompt
fences, requests to approve the answer or reveal what the model holds, fake citation markers.
An imperative alone never fires, so a manual's "ignore the warning light" or "approve the
purchase order in the ERP" passes (tests/keel/core/test_injection.py has both kinds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from keel.core.chunks import ScoredChunk

# Characters of a matched phrase kept to show in traces.
EXCERPT_CHARS = 80

# Who an injection addresses. Bare "model", "agent" and "bot" are left out: manuals are full of
# product models and support agents.
_AI = (
    r"(?:ai|a\.i\.|artificial\s+intelligence|assistants?|chat\s?bots?|(?:large\s+)?language\s+models?"
    r"|llms?|gpt(?:-\d)?|chatgpt|claude|gemini|copilot|ai\s+(?:model|agent|system)s?"
    r"|graders?|evaluators?|reviewer\s+bots?)"
)
_PROMPT = r"(?:instructions?|prompts?|directives?|rules|guidelines|guardrails|constraints|programming)"
# A word that scopes an override to the model's own prompt: "ignore the instructions on the box"
# is a manual; "ignore all previous instructions" is not.
_SCOPE = (
    r"(?:all|previous|prior|above|earlier|preceding|former|original|initial|system|developer|safety|your)"
)
_FILLER = r"(?:the|of|any|every|other|existing|current|above|previous|prior|these|those|all|your|system)"
# Keel's own boundary: another tenant's data is what an injection would reach for.
_OTHER_TENANT = r"(?:other|another|different)\s+tenants?(?:'s?)?"
_ANY_TENANT = r"(?:other|another|different|all|every|each)\s+tenants?(?:'s?)?"

_RULES: tuple[tuple[str, str], ...] = (
    (
        "override",
        rf"\b(?:ignore|disregard|forget|override|bypass|discard|abandon|set\s+aside"
        rf"|(?:do\s+not|don'?t|stop)\s+(?:follow|obey)(?:ing)?)\s+(?:{_FILLER}\s+){{0,2}}{_SCOPE}\s+"
        rf"(?:{_FILLER}\s+){{0,2}}(?:{_PROMPT}|context|messages?|training)\b",
    ),
    (
        "override",
        r"\b(?:ignore|forget|disregard)\s+(?:(?:everything|anything)\s+(?:above|before|previous(?:ly)?|prior"
        r"|(?:that\s+)?(?:you\s+(?:were|have\s+been)\s+told|you\s+know|came\s+before))"
        r"|all\s+(?:of\s+)?(?:the\s+)?(?:above|text\s+above|that\s+came\s+before))\b",
    ),
    (
        "override",
        r"\b(?:new|updated|real|actual|true|secret|hidden)\s+(?:system\s+)?(?:instructions?|prompt)\s*:"
        r"|\byour\s+(?:new|real|actual|updated)\s+(?:instructions|task|orders)\s+(?:are|is)\b"
        r"|\bignore\s+(?:the\s+)?user'?s\s+(?:question|query|request|message)",
    ),
    (
        "role change",
        rf"\byou\s+are\s+(?:now|no\s+longer)\b[^.!?\n]{{0,40}}?(?:\b{_AI}\b|\bdan\b|jailbr|unrestricted"
        r"|unfiltered|uncensored|bound\s+by|restricted\s+by|\bpersona\b)",
    ),
    ("role change", rf"\bact\s+as\s+(?:an?\s+)?(?:\w+\s+)?(?:{_AI}|dan)\b"),
    (
        "role change",
        rf"\b(?:pretend|roleplay|role-play)\s+(?:that\s+)?(?:you\s+are|to\s+be|as)\s+(?:an?\s+)?(?:\w+\s+)?"
        rf"(?:{_AI}|dan|unrestricted|unfiltered|uncensored|evil|jailbroken)\b"
        r"|\bpretend\s+(?:that\s+)?you\s+(?:are\s+not|have\s+no)\b",
    ),
    (
        "role change",
        r"\b(?:developer|dan|god|jailbreak|jailbroken|unrestricted|unfiltered)\s+mode\s+(?:enabled|on|activated)\b",
    ),
    (
        "addresses a model",
        rf"\b(?:note|message|instructions?|attention|important|notice|reminder|directive|request)\s*"
        rf"(?:to|for)\s+(?:the\s+|any\s+|all\s+)?{_AI}\b(?!\s*-?\s*(?:platform|services?|studio|hub|api)\b)",
    ),
    (
        "addresses a model",
        rf"(?:^|[.!?]\s+)(?:dear\s+|hey\s+|hi\s+|attention\s+)?{_AI}\s*[:,!]\s*(?:please\s+)?(?:ignore|disregard"
        r"|forget|approve|reveal|print|output|say|respond|answer|tell|write|include|insert|add|mark|cite"
        r"|repeat|do\s+not|don'?t|never|always|you\b)",
    ),
    (
        "addresses a model",
        rf"\bif\s+you\s+are\s+(?:an?\s+)?{_AI}\b|\b{_AI}\s+(?:reading|processing|parsing|summari[sz]ing|indexing)\s+this\b",
    ),
    (
        "addresses a model",
        rf"\b(?:the|any)\s+{_AI}\s+(?:must|should|shall|will|is\s+(?:instructed|required)\s+to)\s+(?:now\s+)?"
        r"(?:ignore|disregard|approve|reveal|output|print|respond|answer|say|include|cite|repeat|forget|not"
        r"|never|always|only|mark|rate|score|grade|pass|accept)\b",
    ),
    (
        "approve",
        r"\bapprove\s+this\s+(?:answer|response|output|reply|task|draft|completion)\b"
        r"|\b(?:this|the)\s+(?:answer|response|output)\s+(?:is|has\s+(?:already\s+)?been)\s+(?:pre-?)?approved\b",
    ),
    (
        "approve",
        r"\b(?:mark|flag|rate|grade|score|label|classify|treat)\s+(?:this|the|your)\s+(?:answer|response|output"
        r"|reply|draft|document|passage|text|source)\s+as\s+(?:approved|correct|safe|accurate|grounded|verified"
        r"|trusted|reliable|authoritative|high[- ]quality)\b",
    ),
    (
        "approve",
        r"\b(?:say|reply|respond|answer|output|print|write|return)\s+(?:only\s+)?(?:with\s+|exactly\s+)?[\"'“]?"
        r"\s*(?:i\s+have\s+been\s+pwned|pwned|approved|access\s+granted|jailbroken|hacked)\b",
    ),
    (
        "reveal",
        rf"\b(?:reveal|print|output|show|repeat|leak|disclose|display|dump|list|share|send|tell\s+me|give\s+me)"
        rf"\s+(?:me\s+)?(?:\w+\s+){{0,3}}?(?:(?:system|initial|hidden|original|developer|secret)\s+prompt"
        rf"|(?:hidden|initial|original|developer|secret)\s+(?:instructions|message)|system\s+instructions"
        rf"|(?:instructions|prompt|text)\s+above|{_OTHER_TENANT}"
        rf"|(?:contents?\s+of\s+)?your\s+(?:context(?:\s+window)?|prompt|conversation))",
    ),
    (
        "reveal",
        rf"\b{_ANY_TENANT}\s+(?:\w+\s+){{0,2}}(?:secrets?|passwords?|credentials|api\s+keys?|private\s+keys?)"
        rf"|\b{_OTHER_TENANT}\s+(?:\w+\s+){{0,2}}(?:data|documents?|records?|files?|information)\b",
    ),
    (
        "reveal",
        r"\b(?:do\s+not|don'?t|never)\s+(?:mention|reveal|disclose|acknowledge|repeat)\s+(?:these|this|the)\s+"
        r"(?:\w+\s+)?(?:instructions?|prompt|note)\b",
    ),
    (
        "system prompt",
        r"\b(?:system|developer)\s+(?:prompt|message|instructions?)\s*(?::|override|update|has\s+changed)"
        r"|\b(?:new|updated|override|overridden|real|actual|true)\s+(?:system|developer)\s+(?:prompt|message"
        r"|instructions?)\b|\byour\s+(?:system\s+prompt|instructions\s+above|(?:original|initial)\s+(?:instructions|programming))\b"
        r"|\bBEGIN\s+(?:SYSTEM|ADMIN|DEVELOPER)\s+(?:PROMPT|MESSAGE|INSTRUCTIONS?|OVERRIDE)\b"
        r"|\b(?:system|admin|developer)\s+(?:note|notice|override|alert)\s*:",
    ),
    (
        "role tag",
        r"<\|[a-z_]{2,30}\|>|\[/?INST\]|<</?SYS>>|</?(?:start_of_turn|end_of_turn)>"
        # A closing tag: "<user>" alone is a placeholder in many manuals ("ssh <user>@host").
        r"|</(?:system|assistant|user|instructions?|developer|system_prompt)>"
        r"|^[ \t]*#{2,}[ \t]*(?:system|assistant|user|human|instructions?|response|developer)"
        r"(?:[ \t]+(?:message|prompt))?[ \t]*:?[ \t]*$",
    ),
    (
        "fake fence",
        # A prompt's own fence, as a provider writes one: "<document-…>", "<document id=…>", a
        # closing tag. A bare "<document>" is left alone: XML manuals show it.
        r"</?(?:document|passage|untrusted)-[\w-]+[^<>]{0,80}>|<(?:document|passage)\s+(?:id|index|source|title)\s*="
        r"|</(?:documents?|passages?|untrusted[\w-]*)>"
        r"|={3,}\s*(?:end|begin)\s+(?:of\s+)?(?:documents?|passages?|data|context|system)\b",
    ),
    (
        "fake citation",
        r"【\d+(?::\d+)?†[^】]{0,40}】"
        r"|\[(?:doc|document|passage|chunk)(?:[_ -]?id)?\s*[:#=]\s*[^\]\n]{1,80}\]"
        # "[Source: WHO, 2020]" is a report's own; a path, a chunk id or a tenant in it is not.
        r"|\[sources?\s*[:=][^\]\n]{0,80}?(?:/|#\d|\.(?:md|txt|pdf|docx?)\b|tenant)[^\]\n]{0,80}\]"
        r"|\[[\w.-]+#0\d{3}\]|\b(?:sources?|citations?|cited)\s*:\s*\[\d+\]"
        r"|\b(?:cite|citing|cited\s+as|attribute\s+(?:this|it)\s+to)\s+(?:\w+\s+){0,4}\[\d+\]",
    ),
    ("exfiltration", r"!\[[^\]]*\]\(https?://[^)\s]*(?:\{|%7B|\$)"),
)
_COMPILED = tuple((name, re.compile(pattern, re.IGNORECASE | re.MULTILINE)) for name, pattern in _RULES)


@dataclass(frozen=True)
class InstructionHit:
    rule: str  # e.g. "override", "role tag", "fake citation"
    excerpt: str  # the matched text, cut to EXCERPT_CHARS


@dataclass(frozen=True)
class SuspectPassage:
    """A passage that reads like instructions, with what in it did."""

    chunk_id: str
    document_id: str
    hits: list[InstructionHit]

    @property
    def rules(self) -> list[str]:
        return list(dict.fromkeys(hit.rule for hit in self.hits))


def instruction_hits(text: str) -> list[InstructionHit]:
    """The first match of each rule that fires on `text`; empty for ordinary prose."""
    hits = []
    for name, pattern in _COMPILED:
        if match := pattern.search(text):
            hits.append(InstructionHit(name, " ".join(match.group(0).split())[:EXCERPT_CHARS]))
    return hits


def looks_like_instructions(text: str) -> bool:
    return any(pattern.search(text) for _, pattern in _COMPILED)


def suspect_passages(passages: Sequence[ScoredChunk]) -> list[SuspectPassage]:
    """The passages (title and text) that read like instructions to a model, in the order given."""
    found = []
    for passage in passages:
        if hits := instruction_hits(f"{passage.title}\n{passage.text}"):
            found.append(SuspectPassage(passage.chunk_id, passage.document_id, hits))
    return found
