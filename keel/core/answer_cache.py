"""What the semantic answer cache may keep and serve: pure decisions, no I/O.

An answer is reused only when it can be proven still right: it cites documents (whose versions
it remembers, so a change invalidates it), it was approved if it needed review, and the review
policy it passed is the one the new request would apply (`review_policy_digest`). A similar
embedding is not enough on its own: `same_specifics` requires the two questions to name the same
numbers, names and quoted strings ("Team Aurora" is not "Team Borealis"), and `same_wording`, the
guard with no false hit on bench/data/paraphrases.jsonl, also the same content words in the same
order ("Which systems depend on Cinder?" is not "Which systems does Cinder depend on?").
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from keel.core.domain import ReviewMode, ReviewOverrides, ReviewRecord, TaskResult
from keel.core.settings import ReviewPolicySettings

# Hex digits of the policy digest: 64 bits, enough to tell a tenant's few policies apart.
_DIGEST_CHARS = 16
_APPROVING = frozenset({"approve", "edit"})


def review_policy_digest(
    mode: ReviewMode | str,
    policy: ReviewPolicySettings,
    overrides: ReviewOverrides,
    default_threshold: float | None = None,
) -> str:
    """A short stable digest of everything that decides whether, and by whom, an answer is reviewed.

    Values are taken as `review_reasons` applies them (an override over the tenant's value), so a
    request whose override repeats the tenant's value gets the same digest. `default_threshold`:
    agent.grounding_threshold, what a policy without a threshold of its own applies.
    """
    threshold = _first(overrides.grounding_threshold, policy.grounding_threshold, default_threshold)
    patterns = (
        policy.sensitive_patterns if overrides.sensitive_patterns is None else overrides.sensitive_patterns
    )
    decisive = {
        "mode": mode,
        "policy_mode": policy.mode,
        "grounding_threshold": threshold,
        "max_cost": _first(overrides.max_cost, policy.max_cost),
        "sensitive_patterns": list(patterns),
        "four_eyes": policy.four_eyes,
        "group": policy.group,
    }
    canonical = json.dumps(decisive, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:_DIGEST_CHARS]


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def final_review(result: TaskResult) -> ReviewRecord | None:
    """The review that decided the task (its last round), None when it needed none."""
    if result.review is not None:
        return result.review
    return result.reviews[-1] if result.reviews else None


def cacheable(result: TaskResult) -> str:
    """ "" when the result may be cached, else why not (for the trace).

    Only a completed, cited answer: an uncited one ("not answered") could never be invalidated by
    a document change. One that went to review only when its last round approved it (as is or
    edited) and no round rejected it.
    """
    if result.status != "completed":
        return f"status {result.status}"
    if not result.answer:
        return "no answer"
    if not result.citations:
        return "no citations: nothing would invalidate it"
    if any(not c.version for c in result.citations):
        return "a citation without a document version"
    versions: dict[str, str] = {}
    for citation in result.citations:
        if versions.setdefault(citation.document_id, citation.version) != citation.version:
            return f"citations read two versions of document {citation.document_id}"
    if any(r.decision == "reject" for r in result.reviews):
        return "a review rejected it"
    review = final_review(result)
    if review is not None and review.decision not in _APPROVING:
        return f"review decision {review.decision}"
    return ""


def approved_by(result: TaskResult) -> str:
    """The reviewer who approved (or edited) the answer; "" when no review was needed."""
    review = final_review(result)
    return review.reviewer if review is not None and review.decision in _APPROVING else ""


def cited_versions(result: TaskResult) -> dict[str, str]:
    """Cited document id -> the version its quotes were read from (what invalidates the answer)."""
    return {c.document_id: c.version for c in result.citations}


# --- the specifics guard --------------------------------------------------------------------

# Words that open or glue a question: capitalised at its start, they name nothing.
_FUNCTION_TEXT = """a an the this that these those what whats which who whom whose when where why how is are
was were be been do does did can could should would will shall may might must have has had i me my
we our us you your it its they their there here in on at of for to from by with about into per
and or but if then so please tell show list give find name explain describe compare let lets
any all some each every many much more most other another one ones"""
_FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())
# Left out of the wording comparison: the possessive's "s", and politeness.
_IGNORED = frozenset({"s", "please", "thanks", "kindly"})
# Words that flip a question's meaning: one question having one and the other not is a difference.
_NEGATIONS = frozenset({"not", "no", "never", "without", "except", "none", "nobody", "neither", "nor"})
# Spelled-out numbers ("one" is left out: it is far more often a pronoun, "a new one").
_NUMBER_TEXT = "zero - two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen \
sixteen seventeen eighteen nineteen twenty"
_NUMBER_WORDS = {word: str(n) for n, word in enumerate(_NUMBER_TEXT.split()) if word != "-"}
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<!\w)'([^']+)'(?!\w)")
# Between two words, it ends a sentence: the next word opens one.
_SENTENCE_END = re.compile(r"[.?!:;]\s")
_TOKEN = re.compile(r"[^\W_]+(?:[-.,/][^\W_]+)*", re.UNICODE)


@dataclass(frozen=True)
class _Parsed:
    tokens: frozenset[str]  # every word, normalised
    specifics: frozenset[str]  # the words that name something
    quoted: frozenset[str]  # quoted strings, normalised


def same_specifics(question_a: str, question_b: str) -> bool:
    """Whether two questions name the same specifics: numbers (digits or number words up to
    twenty), capitalised names and acronyms, quoted strings, and negations. Case-insensitive: a
    word capitalised in either question must be in the other one too, so "who leads team aurora"
    matches "Who leads Team Aurora?" and not "Who leads Team Borealis?".
    """
    a, b = _parse(question_a), _parse(question_b)
    if not (a.specifics | b.specifics) <= (a.tokens & b.tokens):
        return False
    text_a, text_b = _flat(question_a), _flat(question_b)
    return all(q in text_a for q in b.quoted) and all(q in text_b for q in a.quoted)


def same_wording(question_a: str, question_b: str) -> bool:
    """Whether two questions ask the same in the same words, but for case, punctuation, function
    words ("what is the" / "what's"), plural and tense endings and slips (a doubled letter, two
    letters swapped): `same_specifics`, and the same content words in the same order.

    Order matters: "Which systems depend on Cinder?" is not "Which systems does Cinder depend
    on?", and no rule on words tells that reordering from a harmless one ("why does the CI
    pipeline fail on lint" / "why is lint failing in the CI pipeline"); an embedding does not
    either (bench/answer_cache_threshold.py).
    """
    if not same_specifics(question_a, question_b):
        return False
    words_a, words_b = _content(question_a), _content(question_b)
    return len(words_a) == len(words_b) and all(map(_same_word, words_a, words_b))


def _content(question: str) -> list[str]:
    text = question.replace("’", "'").replace("n't", " not")
    words = (_normal(raw) for raw in _TOKEN.findall(text))
    return [_stem(word) for word in words if word not in _FUNCTION_WORDS and word not in _IGNORED]


def _stem(word: str) -> str:
    """A crude English stem: plural and tense endings off ("services", "service" -> "servic")."""
    if word.isalpha() and len(word) > 4:
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _same_word(a: str, b: str) -> bool:
    """Equal, or one slip apart: a doubled letter ("resett", "enrolment") or two letters swapped
    ("passwrod"). Not any one-letter edit: "enable" and "unable" are one apart."""
    if a == b:
        return True
    if len(a) < 4 or not (a.isalpha() and b.isalpha()):
        return False
    if _undoubled(a) == _undoubled(b):
        return True
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def _undoubled(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", word)


def _parse(question: str) -> _Parsed:
    text = question.replace("’", "'").replace("n't", " not")
    quoted = frozenset(_flat(next(g for g in m.groups() if g)) for m in _QUOTED.finditer(text))
    tokens: set[str] = set()
    specifics: set[str] = set()
    end = 0  # of the previous word
    for match in _TOKEN.finditer(text):
        raw, word = match.group(), _normal(match.group())
        tokens.add(word)
        initial = end == 0 or _SENTENCE_END.search(text[end : match.start()]) is not None
        if _names_something(raw, word, initial):
            specifics.add(word)
        end = match.end()
    return _Parsed(frozenset(tokens), frozenset(specifics), quoted)


def _normal(raw: str) -> str:
    """Lower case, without hyphens, thousands separators or a version's "v": "v4.2" -> "4.2",
    "10,000" -> "10000", "Wi-Fi" -> "wifi", "seven" -> "7"."""
    word = raw.lower().replace("-", "")
    word = re.sub(r"(?<=\d),(?=\d{3})", "", word)
    word = re.sub(r"^v(?=\d)", "", word)
    return _NUMBER_WORDS.get(word, word)


def _names_something(raw: str, word: str, initial: bool) -> bool:
    """A number, a negation, an acronym or mixed-case name ("SSO", "iPhone"), or a capitalised word
    that does not open a sentence (there, capitals say nothing)."""
    if word in _NEGATIONS or any(ch.isdigit() for ch in word):
        return True
    if word in _FUNCTION_WORDS:
        return False
    if any(ch.isupper() for ch in raw[1:]):
        return True
    return raw[0].isupper() and not initial


def _flat(text: str) -> str:
    return " ".join(_normal(t) for t in _TOKEN.findall(text))
