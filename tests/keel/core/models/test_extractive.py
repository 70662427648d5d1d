"""The extractive provider on the real MiniLM encoder: verbatim quotes, matching citations."""

from __future__ import annotations

import pytest

from keel.core.chunks import ScoredChunk
from keel.core.models import ExtractiveProvider
from keel.core.models.base import Embed, split_sentences
from keel.core.models.extractive import NO_ANSWER, question_focus, relation_sides, shown
from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder

pytestmark = pytest.mark.unit

PASSAGES = [
    ScoredChunk(
        document_id="policy-expense",
        chunk_id="policy-expense#0",
        title="Expense Policy",
        text="# Expense Policy\nThe daily meal limit is 60 euros. Receipts are required for every claim.",
    ),
    ScoredChunk(
        document_id="system-kestrel",
        chunk_id="system-kestrel#0",
        title="Kestrel",
        text="Kestrel is the event streaming platform. Events are kept for 7 days.",
    ),
    ScoredChunk(
        document_id="garden",
        chunk_id="garden#0",
        title="Gardening",
        text="Tomatoes grow best in warm, sunny gardens. Water them in the morning.",
    ),
]


@pytest.fixture(scope="module")
def embed() -> Embed:
    return DenseEncoder(Settings().embedding_model_path()).encode_documents


def test_answer_quotes_passage_sentences_verbatim_with_matching_citations(embed: Embed) -> None:
    gen = ExtractiveProvider(embed).generate("What is the daily meal limit?", PASSAGES)
    by_chunk = {p.chunk_id: p for p in PASSAGES}
    assert gen.citations
    for citation in gen.citations:
        passage = by_chunk[citation.chunk_id]
        assert citation.document_id == passage.document_id
        assert citation.quote in split_sentences(passage.text)
        assert citation.quote in gen.answer
    assert gen.citations[0].quote == "The daily meal limit is 60 euros."
    # A quote that does not name its document's subject is shown after it.
    assert gen.answer.startswith("Expense Policy: The daily meal limit is 60 euros.")
    # It reports no usage of its own: the generate step counts the tokens with the tokenizer.
    assert (gen.input_tokens, gen.output_tokens) == (0, 0)
    assert gen.model == ExtractiveProvider.model


def test_max_sentences_bounds_the_citations(embed: Embed) -> None:
    gen = ExtractiveProvider(embed, max_sentences=1).generate("How long are Kestrel events kept?", PASSAGES)
    assert [c.quote for c in gen.citations] == ["Events are kept for 7 days."]
    assert gen.citations[0].chunk_id == "system-kestrel#0"


@pytest.mark.parametrize(
    "passages",
    [[], [ScoredChunk(document_id="empty", chunk_id="empty#0", title="Empty", text="# Only a heading\n")]],
)
def test_no_usable_passages_give_the_no_answer_text(embed: Embed, passages: list[ScoredChunk]) -> None:
    gen = ExtractiveProvider(embed).generate("What is the daily meal limit?", passages)
    assert gen.answer == NO_ANSWER
    assert gen.citations == []


@pytest.mark.parametrize("kwargs", [{"max_sentences": 0}, {"min_fit": -0.1}, {"min_fit": 1.0}])
def test_invalid_configuration_is_rejected(embed: Embed, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ExtractiveProvider(embed, **kwargs)  # type: ignore[arg-type]


def test_an_unrelated_question_gets_the_no_answer_text(embed: Embed) -> None:
    gen = ExtractiveProvider(embed).generate("What is the recipe for banana bread?", PASSAGES)
    assert gen.answer == NO_ANSWER and gen.citations == []


def test_a_multi_hop_question_follows_the_chain_across_passages(embed: Embed) -> None:
    from ingestion.entities import extract_entities

    chain = [
        ScoredChunk(
            document_id="project-halcyon",
            chunk_id="project-halcyon#0000",
            title="Project Halcyon",
            text="Project Halcyon depends on Kestrel.",
        ),
        ScoredChunk(
            document_id="system-kestrel",
            chunk_id="system-kestrel#0000",
            title="Kestrel",
            text="Kestrel is owned by Team Aurora.",
        ),
        ScoredChunk(
            document_id="team-aurora",
            chunk_id="team-aurora#0000",
            title="Team Aurora",
            text="Team Aurora is led by Maya Okafor.",
        ),
        ScoredChunk(
            document_id="team-meridian",
            chunk_id="team-meridian#0000",
            title="Team Meridian",
            text="Team Meridian works on Project Halcyon.",
        ),
    ]
    gen = ExtractiveProvider(embed, find_entities=extract_entities).generate(
        "Who leads the team that owns the system Project Halcyon depends on?", chain
    )
    assert [c.document_id for c in gen.citations] == ["project-halcyon", "system-kestrel", "team-aurora"]
    assert gen.answer.endswith("Team Aurora is led by Maya Okafor.")


def test_a_revision_keeps_the_answer_and_adds_what_the_reviewer_asked_for(embed: Embed) -> None:
    revised = ExtractiveProvider(embed).revise(
        "What is the daily meal limit?", "Also say how long Kestrel keeps events", PASSAGES
    )
    quotes = [c.quote for c in revised.citations]
    assert quotes[0] == "The daily meal limit is 60 euros."  # what was right stays, first
    assert "Events are kept for 7 days." in quotes  # what the instruction asked for is added
    assert len(quotes) == len(set(quotes))  # no sentence twice
    assert revised.answer.index(quotes[0]) < revised.answer.index("Events are kept for 7 days.")


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("# Gate codes\nThe west gate code is 4417.", ["The west gate code is 4417."]),
        ("# Gate codes\n\nThe west gate code is 4417", ["The west gate code is 4417"]),
        ("# Gate codes\r\nThe west gate code is 4417.\r\n", ["The west gate code is 4417."]),
        (
            "## Parking\nVisitors park in lot C. Staff park below.",
            ["Visitors park in lot C.", "Staff park below."],
        ),
        (
            "# Parking\n- Visitors park in lot C\n* Staff park in the **garage**\n10. Show a pass",
            ["Visitors park in lot C", "Staff park in the **garage**", "Show a pass"],
        ),
        ("> - A quoted item\n---\n###\n#hashtags are text.", ["A quoted item", "#hashtags are text."]),
        (
            "Designed by Ken St. Andre for the U.S. Army. It sold well.",
            ["Designed by Ken St. Andre for the U.S. Army.", "It sold well."],
        ),
    ],
)
def test_split_sentences_reads_markdown_lines(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences
    # Quotes stay verbatim parts of the passage: the review page marks them in place.
    assert all(s in text for s in sentences)


@pytest.mark.parametrize(
    ("question", "text", "quote"),
    [
        (
            "What is the west gate code?",
            "# Gate codes\nThe west gate code is 4417.",
            "The west gate code is 4417.",
        ),
        (
            "Where do visitors park?",
            "# Parking\n- Visitors park in lot C\n- Staff park in the garage",
            "Visitors park in lot C",
        ),
    ],
)
def test_a_short_markdown_passage_is_answered_from_its_body(
    embed: Embed, question: str, text: str, quote: str
) -> None:
    passage = ScoredChunk(document_id="doc", chunk_id="doc#0000", title=text.split("\n")[0][2:], text=text)
    gen = ExtractiveProvider(embed).generate(question, [passage])
    assert gen.citations and gen.citations[0].quote == quote, gen


def test_a_sentence_in_two_overlapping_chunks_is_quoted_once(embed: Embed) -> None:
    first = ScoredChunk(
        chunk_id="limits#0", document_id="limits", title="Limits", text="The daily meal limit is 60 euros."
    )
    overlap = ScoredChunk(
        chunk_id="limits#1",
        document_id="limits",
        title="Limits",
        text="The daily meal  limit is 60 euros. Hotels are booked through the travel desk.",
    )
    gen = ExtractiveProvider(embed).generate("What is the daily meal limit?", [first, overlap])
    quotes = [" ".join(c.quote.split()).casefold() for c in gen.citations]
    assert quotes.count("the daily meal limit is 60 euros.") == 1, gen.answer
    assert gen.citations[0].chunk_id == "limits#0"  # from the better-ranked passage


def _doc(document_id: str, title: str, text: str) -> ScoredChunk:
    return ScoredChunk(document_id=document_id, chunk_id=f"{document_id}#0000", title=title, text=text)


def test_a_bridge_question_cites_both_hops_and_reaches_the_fact(embed: Embed) -> None:
    from ingestion.entities import extract_entities

    passages = [
        _doc(
            "quiet-harbor", "Quiet Harbor (film)", "Quiet Harbor is a 1998 drama film directed by Ilse Varga."
        ),
        _doc("harbor-town", "Harbor Town", "Harbor Town is a fishing village with a quiet harbor."),
        _doc(
            "ilse-varga", "Ilse Varga", "Ilse Varga is a Hungarian director. She was born in Szeged in 1961."
        ),
    ]
    gen = ExtractiveProvider(embed, find_entities=extract_entities).generate(
        "In which city was the director of the film Quiet Harbor born?", passages
    )
    cited = [c.document_id for c in gen.citations]
    assert cited[:2] == ["quiet-harbor", "ilse-varga"] and set(cited) == {"quiet-harbor", "ilse-varga"}, cited
    assert "Szeged" in gen.answer
    # The second hop's quote does not name its subject: the answer says whose it is.
    assert "Ilse Varga: She was born in Szeged in 1961." in gen.answer


def test_a_comparison_cites_both_things_compared(embed: Embed) -> None:
    passages = [
        _doc("orrin", "Orrin Museum", "The Orrin Museum opened to the public in 1874."),
        _doc("dale", "Dale Gallery", "The Dale Gallery was founded in 1902 by a group of painters."),
        _doc("river", "River Walk", "The river walk connects the museum district to the old port."),
    ]
    gen = ExtractiveProvider(embed).generate(
        "Which opened first, the Orrin Museum or the Dale Gallery?", passages
    )
    assert {c.document_id for c in gen.citations} == {"orrin", "dale"}, gen.answer
    # Both sides of a comparison are stated, not only cited.
    assert "1874" in gen.answer and "1902" in gen.answer, gen.answer


def test_a_bridge_answer_states_the_fact_and_only_cites_the_hop_that_leads_to_it(embed: Embed) -> None:
    from ingestion.entities import extract_entities

    lead = "Mira Holt was a chemistry professor at Dunmore University."
    fact = "Dunmore University is a public university in the city of Carrow."
    passages = [
        _doc("mira-holt", "Mira Holt", lead),
        _doc("dunmore", "Dunmore University", fact + " It has 9,000 students."),
        _doc("carrow-fc", "Carrow FC", "Carrow FC is a football club that plays in the city's league."),
    ]
    gen = ExtractiveProvider(embed, find_entities=extract_entities).generate(
        "Mira Holt was a chemistry professor at a university that is located in what city?", passages
    )
    assert sorted(c.quote for c in gen.citations) == [fact, lead], gen.citations
    assert gen.answer == fact


def test_a_sentence_naming_a_clubs_designated_name_leads_to_that_club(embed: Embed) -> None:
    # The player's sentence names "Holt Rovers", the article is "Holt Rovers F.C.": the same
    # club (as ingestion links them), so the pair is a hop and beats a club that shares only
    # the league with the question.
    from ingestion.entities import extract_entities

    lead = "Dan Kerr is an English footballer who last played for Holt Rovers as a forward."
    fact = "Holt Rovers Football Club is a football club in Holt which plays in the Northern Premier League."
    other = (
        "Ashby Town Football Club is a football club based in the market town of Ashby that competes"
        " in the Northern Premier League, the seventh tier of English football."
    )
    passages = [
        _doc("kerr", "Dan Kerr (footballer)", lead),
        _doc("ashby", "Ashby Town F.C.", other),
        _doc("holt", "Holt Rovers F.C.", fact),
    ]
    gen = ExtractiveProvider(embed, find_entities=extract_entities).generate(
        "Dan Kerr last played for which football club from the Northern Premier League?", passages
    )
    assert {c.document_id for c in gen.citations} == {"kerr", "holt"}, gen.citations
    assert "Holt Rovers" in gen.answer and "Ashby" not in gen.answer, gen.answer


@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("Mira Holt taught at a university that is located in what city?", {"city"}),
        ("The author of Sexual Politics attended which British university?", {"british", "university"}),
        ("In which role did Caroline Carver play?", {"role"}),
        ("How many laps did he run?", {"lap"}),
        # "in which" opens a relative clause: the question's own wh-word comes later.
        ("The battle in which Arimondi died was fought in what year?", {"year"}),
        ("He led a mission to which tribe of indigenous people?", {"tribe"}),
        ("How many staff work in the office the Blue Desk works from?", {"staff", "work"}),
        ("Who leads Team Aurora?", set()),
    ],
)
def test_question_focus_is_the_wh_phrase(question: str, focus: set[str]) -> None:
    assert question_focus(question) == focus


def test_a_quote_is_cut_after_the_last_clause_the_question_needs() -> None:
    quote = (
        "Jerry Glanville is a former football player and coach, a former racing driver and team owner,"
        " and a sportscaster."
    )
    cut = shown(quote, "Jerry Glanville", "Who is younger, Keith Bostic or Jerry Glanville?")
    assert cut == "Jerry Glanville is a former football player and coach …"
    # Items of a list are no clauses: the occupations asked for stay.
    listed = "Alan Pakula was an American film director, writer and producer."
    assert (
        shown(listed, "Alan Pakula", "What occupations do Alan Pakula and Charles Burnett share?") == listed
    )
    # A clause holding the kind of fact asked for stays, however few question terms it has.
    counted = "The county lies in the north of the state, and as of 2010 its population was 9,984 in all."
    asked = "How many inhabitants does Brown County have?"
    assert shown(counted, "Brown County", asked) == f"Brown County: {counted}"
    # The cut quote is still its own sentence when another follows it.
    assert split_sentences(f"{cut} Keith Bostic is a former football player.") == [
        cut,
        "Keith Bostic is a former football player.",
    ]


def test_quotes_about_something_else_are_not_an_answer(embed: Embed) -> None:
    passages = [
        _doc("expense", "Expense Policy", "The daily meal limit is 60 euros. Hotels are booked centrally."),
        _doc("kestrel", "Kestrel", "Kestrel is the event streaming platform. Events are kept for 7 days."),
    ]
    gen = ExtractiveProvider(embed).generate("What is the salary of the chief executive officer?", passages)
    assert gen.answer == NO_ANSWER and not gen.citations
    assert gen.notes and "fit" in gen.notes[0]


def test_the_default_abstention_threshold_is_the_calibrated_one() -> None:
    from keel.core.models.answer_fit import MIN_FIT

    assert Settings().agent.min_answer_fit == MIN_FIT


def test_a_quote_is_shown_without_asides_the_question_does_not_need() -> None:
    quote = "Nola Varga (born 4 May 1961) is a director from Szeged (Csongrád, Hungary)."
    shown_for_work = shown(quote, "Nola Varga", "What does Nola Varga do?")
    assert shown_for_work == "Nola Varga is a director from Szeged (Csongrád, Hungary)."  # a place stays
    assert shown(quote, "Nola Varga", "When was Nola Varga born?") == quote  # the date is asked for
    assert shown("She (born 1961) directs.", "Nola Varga", "Who directs?") == "Nola Varga: She directs."


def test_relations_are_read_in_both_directions(embed: Embed) -> None:
    from ingestion.entities import extract_entities

    # Both directions in the one document the question names. (A dependent stated only in its
    # own document is not enough on its own: no cited document is about Harrow, so the fit is low.)
    passages = [
        _doc(
            "harrow",
            "Harrow",
            "Harrow does not depend on any other service; it writes to local disks so it survives outages. "
            "Vantage and Quillon both depend on Harrow for their storage.",
        ),
        _doc("vantage", "Vantage", "Vantage is the route planner of the fleet."),
    ]
    provider = ExtractiveProvider(embed, find_entities=extract_entities)
    dependents = provider.generate("Which services depend on Harrow?", passages)
    assert "Vantage and Quillon" in dependents.answer and "does not depend" not in dependents.answer
    dependencies = provider.generate("What does Harrow depend on?", passages)
    assert dependencies.answer.startswith("Harrow does not depend on any other service"), dependencies.answer


@pytest.mark.parametrize(
    ("text", "name", "object_side"),
    [
        ("Vantage and Quillon depend on Harrow.", "harrow", True),
        ("Harrow does not depend on any other service.", "harrow", False),
        ("Project Alder is sponsored by Mira Holt.", "mira holt", False),  # a passive "by": the agent
        ("Project Alder is sponsored by Mira Holt.", "project alder", True),
    ],
)
def test_relation_sides_read_word_order_and_the_passive(text: str, name: str, object_side: bool) -> None:
    assert relation_sides(text, name, {"depend", "sponsor"}) == {
        ("depend" if "depend" in text else "sponsor"): object_side
    }


def test_a_relative_clause_is_the_first_hop_and_the_main_part_the_second(embed: Embed) -> None:
    from ingestion.entities import extract_entities

    passages = [
        _doc(
            "lena-ortiz",
            "Lena Ortiz",
            "Lena Ortiz is a member of the Pathfinder Crew and is the navigation lead for Beacon.",
        ),
        _doc(
            "pathfinder-crew",
            "Pathfinder Crew",
            "Lena Ortiz is a member of the Pathfinder Crew at Harbor Labs. "
            "The Pathfinder Crew is led by Ravi Menon.",
        ),
        _doc("beacon", "Beacon", "Beacon is the ship tracker that the Pathfinder Crew maintains."),
    ]
    gen = ExtractiveProvider(embed, find_entities=extract_entities).generate(
        "Who leads the crew that Lena Ortiz is a member of?", passages
    )
    assert "Ravi Menon" in gen.answer, gen.answer
    assert [c.document_id for c in gen.citations][:2] == ["lena-ortiz", "pathfinder-crew"]


def test_a_bridge_question_follows_the_name_its_clause_asks_about(embed: Embed) -> None:
    # A guard on the behaviour, not on one weight: this small case comes out right even with
    # `_NEAR_BRIDGE_WEIGHT` at 0. The demo's Atlas Portal question is the one that needs the
    # weight (bench/answer_offline.py: 23/24 demo facts without it, 24/24 with it).
    from ingestion.entities import extract_entities

    passages = [
        _doc(
            "harbor-app",
            "Harbor App",
            "Harbor App depends on Tidemark for its maps and on Coinvault for card payments.",
        ),
        _doc("tidemark", "Tidemark", "Tidemark is maintained by the Kelp Crew."),
        _doc("coinvault", "Coinvault", "Coinvault is maintained by the Reef Crew."),
    ]
    gen = ExtractiveProvider(embed, find_entities=extract_entities).generate(
        "Which crew maintains the service that Harbor App depends on for card payments?", passages
    )
    assert "Reef Crew" in gen.answer and "Kelp Crew" not in gen.answer, gen.answer
