"""Answer selection without the model: what a question asks for, which words answer it, and how sentences are
scored, on hand-made vectors so every test runs in milliseconds."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.answering import (
    FEATURES,
    RANKING_TREES,
    TREE_WINDOWS,
    Extractor,
    RankingTrees,
    answer_phrase,
    asked_kind,
    exact_kind,
    kind_spans,
    question_weights,
    ranking_trees,
    reranked,
    tree_candidates,
)
from qa.config import Settings
from qa.embedding import token_directions, token_rows
from qa.errors import QAError
from qa.folder_store import FolderStore
from qa.lexical import tokenize
from qa.retrieval import Query, Retriever
from qa.store import CHUNKS, UNITS
from qa.types import Changes, Chunk, Document, IndexedDocument, Sentence
from conftest import make_assistant


@pytest.mark.parametrize(
    "question, kind",
    [
        ("How many eggs does the queen lay?", "number"),
        ("How old was Lumumba when he became mayor?", "number"),
        ("What percentage of voters turned out?", "number"),
        ("When did the Normans arrive?", "date"),
        ("In what year was the franchise founded?", "date"),
        ("Who coordinates the Progressive International?", "name"),
        ("Where did the mayor-elect speak?", "name"),
        ("Which NFL team won Super Bowl 50?", "name"),
        ("What is she building?", ""),
        ("Why did the coup happen?", ""),
        ("What time does the clinic close on Fridays?", "date"),
        ("How late can families shop?", "date"),
        ("What's Sofia's mobile number?", "phone"),
        ("What is her email address?", "email"),
        # a contact word that only qualifies something else asks for no contact
        ("Who is the IT engineer running the email migration?", "name"),
        ("What does MFA stand for in the migration email?", ""),
        ("How much is a duplicate document over the phone?", "number"),
        # an amount named by its noun, and the people of everyday files
        ("What is the late fee?", "number"),
        ("What does it cost to break the lease early?", "number"),
        ("Which councillors voted against it?", "name"),
        ("Which team charges the most?", "name"),
        ("What is the support email?", "email"),
        ("What does a replacement battery cost?", "number"),
    ],
)
def test_asked_kind(question, kind):
    assert asked_kind(question) == kind


def _phrase(sentence, question):
    span = answer_phrase(sentence, question)
    return sentence[span[0] : span[1]] if span else None


@pytest.mark.parametrize(
    "sentence, question, words",
    [
        ("He was also 34 years old with a name people struggle to pronounce.", "How old was he?", "34"),
        ("Over the last year, our canvasses sent out over 5,000 people.", "How many people did they send out?", "5,000"),
        ("The game was played on February 7, 2016, at Levi's Stadium.", "When was the game played?", "February 7, 2016"),
        ("David Adler is the general coordinator of the Progressive International.", "Who coordinates the Progressive International?", "David Adler"),
        ("Then Anderson scored on a 2-yard run.", "Who scored the touchdown?", "Anderson"),
        ("It sacked him seven times in 2015 and forced three turnovers.", "How many times was he sacked?", "seven"),
        ("Mayor Chow is building thousands of new homes, and more.", "What is she building?", "thousands of new homes"),
    ],
)
def test_answer_phrase_marks_the_answering_words(sentence, question, words):
    assert _phrase(sentence, question) == words


@pytest.mark.parametrize(
    "sentence, question",
    [
        ("Coldplay headlined, with Beyoncé and Bruno Mars as guests.", "Who performed at halftime?"),  # which name?
        ("The Broncos beat the Patriots.", "Why did it happen?"),  # nothing to mark
        ("The city has many parks.", "How many museums are there?"),  # no number at all
        ("Jackson elected a mayor.", "Who did Jackson elect?"),  # the only name is the question's own
    ],
)
def test_answer_phrase_is_none_when_unsure(sentence, question):
    assert answer_phrase(sentence, question) is None


def test_kind_spans_skip_what_the_question_already_says():
    sentence = "On Monday, Jackson elected Chokwe Lumumba in 2017."
    assert [sentence[a:b] for a, b in kind_spans(sentence, "name", "Who did Jackson elect?")] == ["Chokwe Lumumba"]
    assert [sentence[a:b] for a, b in kind_spans(sentence, "date", "When in 2017 did it happen?")] == ["Monday"]


@pytest.mark.parametrize(
    "sentence, kind, question, found",
    [
        ("Direct: (555) 019-4470 | Mobile: (555) 019-8812", "phone", "What is her phone number?", ["(555) 019-4470", "(555) 019-8812"]),
        ("Tel: 01632 960487\nMob: 07700 900774", "phone", "What's her mobile number?", ["01632 960487", "07700 900774"]),
        ("Date: Wed, 11 Sep 2024 16:22:07 +0100", "phone", "What's his phone number?", []),
        ("Spent: $61,207.55 (3.2% under budget)", "phone", "What's the phone number?", []),
        ("Dana Whitfield · dana@maplegrove.org · 555-0142", "email", "What's her email?", ["dana@maplegrove.org"]),
        ("- Friday: 7:30 am – 6:00 pm", "date", "What time do you close on Friday?", ["7:30 am", "6:00 pm"]),
        ("Open 10 a.m. to 9 p.m. daily.", "date", "What hours?", ["10 a.m", "9 p.m"]),
        ("Published Feb. 19, 2025 · Joined: Mar 2013", "date", "When was it published?", ["Feb. 19, 2025", "Mar 2013"]),
    ],
)
def test_lines_of_contacts_and_clock_times_hold_the_asked_kind(sentence, kind, question, found):
    assert [sentence[a:b] for a, b in kind_spans(sentence, kind, question)] == found


@pytest.mark.parametrize(
    "sentence, found",
    [
        ("5. Press Hot Water to start rinsing.", []),
        ("1.8 Litres of water fill the tank.", ["1.8"]),
        ("2019. The year it opened.", ["2019"]),
        ("2) Fill the tank with 1.8 L of water.", ["1.8"]),
        ("40 seconds after the light turns green.", ["40"]),
    ],
)
def test_a_line_s_own_numbering_is_not_a_number_that_answers(sentence, found):
    assert [sentence[a:b] for a, b in kind_spans(sentence, "number", "How many?")] == found


@pytest.mark.parametrize(
    "sentence, found",
    [
        ("Removal of old desks: £180.00 + VAT", ["£180.00"]),
        ("Parking is free for members; guests pay 4 pounds.", ["is free", "4 pounds"]),
        ("Saturday: 7:00 a.m. – 8:00 p.m. Feel free to call.", []),
    ],
)
def test_sums_of_money_are_told_from_clock_times_and_figures_of_speech(sentence, found):
    assert [sentence[a:b] for a, b in kind_spans(sentence, "money", "How much is it?")] == found


@pytest.mark.parametrize(
    "sentence, found",
    [
        ("Group lessons meet at 9:45 and 13:15 on 26 March.", ["9:45", "13:15"]),
        ("Open 7am - 1pm, late nights until 10 pm.", ["7am", "1pm", "10 pm"]),
        ("Limits reset at midnight; a coffee is £2.30 and the sale ends 30 June.", ["midnight"]),
    ],
)
def test_a_time_of_day_is_told_from_dates_and_prices(sentence, found):
    assert [sentence[a:b] for a, b in kind_spans(sentence, "clock", "What time is it?")] == found


def test_a_time_of_day_question_wants_a_time_whatever_kind_it_is_read_as():
    assert [exact_kind(q, asked_kind(q)) for q in ("What are the Saturday opening hours?", "What time does it open?")] == ["clock"] * 2
    question = "What time of year is best for planting?"
    assert exact_kind(question, asked_kind(question)) is None


def test_kind_words_count_less_than_the_subject():
    weights = question_weights("What year was the franchise founded?", {"year": 2.0, "franchis": 2.0, "found": 2.0})
    assert weights["year"] < weights["franchis"] == weights["found"] == 2.0


# -- scoring on a tiny index with hand-made vectors -------------------------------------------------------

DOCS = {
    "bees.txt": "Bees live in colonies. The queen lays about 1,500 eggs a day. Workers dance to share flowers.",
    "etna.txt": "Mount Etna is an active volcano in Sicily. It is about 3,357 metres high.",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An index built by hand: one sentence per period, one chunk per document, orthogonal unit vectors."""
    documents, sentences, chunks = [], [], []
    for d, (source, text) in enumerate(DOCS.items()):
        documents.append(Document(source, text, "0" * 64))
        first = len(sentences)
        start = 0
        for part in text.split(". "):
            end = start + len(part) + (0 if part.endswith(".") else 1)
            sentences.append((d, start, end))
            start = end + 1
        chunks.append((d, 0, len(text), first, len(sentences)))
    dim = len(sentences) + len(chunks)
    sentence_vectors = np.eye(dim, dtype=np.float32)[: len(sentences)]
    chunk_vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    for c, (_, _, _, first, last) in enumerate(chunks):
        chunk_vectors[c] = sentence_vectors[first:last].sum(axis=0)
        chunk_vectors[c] /= np.linalg.norm(chunk_vectors[c])
    texts = [documents[d].text[a:b] for d, a, b in sentences]
    upserts = []
    for d, doc in enumerate(documents):
        rows = [i for i, s in enumerate(sentences) if s[0] == d]
        units = [Sentence(a, b, doc.text[a:b]) for _, a, b in (sentences[i] for i in rows)]
        chunk = Chunk(0, len(doc.text), doc.text, 0, len(units))
        tokens = [token_rows(sentence_vectors[i : i + 1]) for i in rows]  # one "word piece" a sentence, its own vector
        upserts.append(IndexedDocument(doc, len(doc.text), 0, units, [chunk], sentence_vectors[rows], chunk_vectors[d : d + 1], tokens))
    store = FolderStore(tmp_path_factory.mktemp("tiny") / "index")
    key = Settings().index_key()
    store.update(key, Changes(upserts))
    return store.open(key), texts


def _retriever(snapshot):
    s = Settings()
    return Retriever(snapshot, s.retrieval_depth, s.passages, s.direct_units)


def _ask(data, question, toward):
    """Score `question` with a query vector pointing mostly at sentence `toward`."""
    chunk_vectors = data.vectors(CHUNKS, np.arange(data.size(CHUNKS)))
    vector = 0.8 * data.vectors(UNITS, [toward])[0] + 0.2 * chunk_vectors.mean(axis=0)
    query = Query(vector / np.linalg.norm(vector), tokenize(question), [])
    extractor = Extractor(data)
    candidates = _retriever(data).search(query)
    return extractor, extractor.score(question, query, candidates), candidates, query


def test_the_sentence_with_the_answer_is_quoted_verbatim_with_its_phrase(tiny):
    data, texts = tiny
    extractor, scored, _, _ = _ask(data, "How many eggs does the queen lay?", toward=1)
    citation = extractor.citation("How many eggs does the queen lay?", scored[0])
    assert citation.quote == texts[1] == DOCS["bees.txt"][citation.start : citation.end]
    a, b = citation.answer_span
    assert DOCS["bees.txt"][a:b] == "1,500" and citation.start <= a < b <= citation.end
    assert citation.source == "bees.txt" and citation.line == 1
    assert [s.score for s in scored] == sorted((s.score for s in scored), reverse=True)
    assert all(0.0 <= s.score <= 1.0 for s in scored)


def test_a_question_the_documents_do_not_touch_scores_low(tiny):
    data, _ = tiny
    _, on_topic, _, _ = _ask(data, "How high is Mount Etna?", toward=4)
    vector = np.ones(data.status.dimension, dtype=np.float32)
    vector[: data.size(UNITS)] = 0.0  # orthogonal to every sentence
    query = Query(vector / np.linalg.norm(vector), tokenize("Who wrote Hamlet?"), [])
    off = Extractor(data).score("Who wrote Hamlet?", query, _retriever(data).search(query))
    assert on_topic[0].score > 0.5 > off[0].score


def test_features_are_one_bounded_row_per_window(tiny):
    data, _ = tiny
    extractor, _, candidates, query = _ask(data, "How high is Mount Etna?", toward=4)
    windows, features = extractor.features("How high is Mount Etna?", query, candidates)
    assert features.shape == (len(windows), len(FEATURES)) and len(windows) >= len(candidates.sentences)
    assert np.all(features >= -1.0) and np.all(features <= 1.0)
    assert all(w.last - w.first in (1, 2, 3) for w in windows)
    terms = features[:, FEATURES.index("sentence_terms")]
    best = windows[int(np.argmax(terms))]
    assert any("Etna" in tiny[1][u] for u in range(best.first, best.last))


def test_a_window_span_and_its_phrase_are_the_documents_own_text(tiny):
    data, _ = tiny
    extractor, scored, _, _ = _ask(data, "How many eggs does the queen lay?", toward=1)
    for s in scored:
        c = extractor.citation("How many eggs does the queen lay?", s)
        text = DOCS[c.source]
        assert text[c.start : c.end] == c.quote
        assert c.answer_span is None or c.start <= c.answer_span[0] < c.answer_span[1] <= c.end
    units = [set(range(s.sentence, s.end)) for s in scored]
    assert all(not (a & b) for i, a in enumerate(units) for b in units[i + 1 :])  # no two citations overlap


def test_an_acronym_is_answered_by_its_expansion():
    from qa.answering import expansion

    s = "Reports go to the Plant Safety Board (PSB) within a day."
    assert s[slice(*expansion(s, "PSB"))] == "Plant Safety Board"
    t = "Ask the PSB (Plant Safety Board) first."
    assert t[slice(*expansion(t, "PSB"))] == "Plant Safety Board"
    assert expansion("The PSB meets on Fridays.", "PSB") is None


def test_a_window_counts_its_words_and_only_long_ones_pay_the_size_penalty(tiny):
    from qa.answering import LONG_WORDS, WORDS_SCALE

    data, _ = tiny
    extractor, _, candidates, query = _ask(data, "How high is Mount Etna?", toward=4)
    windows, features = extractor.features("How high is Mount Etna?", query, candidates)
    for w, row in zip(windows, features):
        u0, u1 = extractor.unit(w.first), extractor.unit(w.last - 1)
        words = min(len(data.document(u0.document).text[u0.start : u1.end].split()), WORDS_SCALE)
        assert row[FEATURES.index("words")] == words / WORDS_SCALE
        assert row[FEATURES.index("long_words")] == max(words - LONG_WORDS, 0) / WORDS_SCALE


def test_window_cosines_are_those_of_its_units(tiny):
    """Every window's dense evidence, computed for all windows at once, is its units' cosines and summed vector."""
    data, _ = tiny
    extractor, _, candidates, query = _ask(data, "How many eggs does the queen lay?", toward=1)
    windows, features = extractor.features("How many eggs does the queen lay?", query, candidates)
    for w, row in zip(windows, features):
        vectors = data.vectors(UNITS, np.arange(w.first, w.last))
        cosines = vectors @ query.vector
        assert row[FEATURES.index("sentence_dense")] == pytest.approx(cosines.max(), abs=1e-6)
        assert row[FEATURES.index("window_dense")] == pytest.approx(cosines.sum() / np.linalg.norm(vectors.sum(axis=0)), abs=1e-6)


def _window_feature(assistant, question, name, history=()):
    """Index the assistant's corpus; one FEATURES column of `question`, by the text of each candidate window."""
    assistant.index()
    live = assistant.live()
    query, _, previous = assistant._search_for(live, question, history, None)
    windows, features = live.extractor.features(question, query, live.retriever.search(query), previous)
    texts = [live.extractor._window_text(w.first, w.last) for w in windows]
    return dict(zip(texts, features[:, FEATURES.index(name)].tolist()))


#: A question from the floor repeats what is asked; the reply after it answers.
MINUTES = {
    "minutes.txt": (
        "Membership fees\n\n"
        "The committee agreed to raise the senior membership fee to £240 from April.\n\n"
        "Question from the floor (Anna Kowal): would junior members pay more as well?\n"
        "Reply (Treasurer): No. Junior membership will stay at £120 for this year.\n"
    ),
}


def test_a_window_that_ends_asking_is_marked_and_the_reply_is_quoted(tmp_path, embedder):
    assistant = make_assistant(tmp_path, embedder, MINUTES)
    question = "Will junior members have to pay more?"
    asking = _window_feature(assistant, question, "asking")
    assert asking["Question from the floor (Anna Kowal): would junior members pay more as well?"] == 1.0
    reply = "Question from the floor (Anna Kowal): would junior members pay more as well?\nReply (Treasurer): No."
    assert asking[reply] == 0.0
    answer = assistant.ask(question)
    assert answer.answered and "£120" in answer.citations[0].quote
    text = (tmp_path / "seeds" / "minutes.txt").read_text(encoding="utf-8")
    assert text[answer.citations[0].start : answer.citations[0].end] == answer.citations[0].quote


def test_a_window_that_holds_the_question_s_phrase_is_told_from_one_that_holds_its_words_apart(tmp_path, embedder):
    """"accepted solution" as a phrase, not "solution" and "accepted" in one line: adjacent terms are evidence."""
    thread = (
        "Accepted solution posted on 7 October by gravel_ken.\n\n"
        "My first solution was never accepted, so I posted a second one.\n"
    )
    assistant = make_assistant(tmp_path, embedder, {"thread.txt": thread})
    phrases = _window_feature(assistant, "When was the accepted solution posted?", "phrases")
    assert phrases["Accepted solution posted on 7 October by gravel_ken."] == 1.0
    assert phrases["My first solution was never accepted, so I posted a second one."] == 0.0


def test_an_update_that_states_the_new_value_beside_the_old_is_marked(tmp_path, embedder):
    """A correction naming both values ("8:15am, not 9:30am") is told from the old statement and from updates that
    state one value or none."""
    email = (
        "The coach leaves school at 9:30am on Monday 2 June.\n\n"
        "Correction: the coach now leaves school at 8:15am, not 9:30am as I wrote this morning.\n\n"
        "The packed lunch has moved to the second day.\n\n"
        "The return coach now leaves the museum at 3:45pm.\n"
    )
    assistant = make_assistant(tmp_path, embedder, {"trip.txt": email})
    corrects = _window_feature(assistant, "What time does the coach leave on 2 June?", "corrects")
    assert corrects["Correction: the coach now leaves school at 8:15am, not 9:30am as I wrote this morning."] == 1.0
    assert corrects["The coach leaves school at 9:30am on Monday 2 June."] == 0.0
    assert corrects["The packed lunch has moved to the second day."] == 0.0
    assert corrects["The return coach now leaves the museum at 3:45pm."] == 0.0  # one value, not "3:45pm" and "45"


def test_a_statement_that_a_later_update_matching_the_question_may_replace_is_marked(tmp_path, embedder):
    """`overruled`: an update further down the same file that matches the question marks the lines before it,
    not itself, a window holding it, the lines after it, another file's lines, or a line followed only by an
    update about something else."""
    rules = (
        "House rules\n\n"
        "Check-out by: 10:00\n\n"
        "Update (3 March): check-out is now 10:30 for all rooms.\n\n"
        "Breakfast is served in the garden room.\n\n"
        "Update: the bar now closes at 23:00.\n"
    )
    other = "Guest parking\n\nCheck-out by: 11:00 for cars in the yard.\n"
    assistant = make_assistant(tmp_path, embedder, {"rules.md": rules, "parking.md": other})
    overruled = _window_feature(assistant, "What time is check-out?", "overruled")
    assert overruled["Check-out by: 10:00"] > 0.0
    assert overruled["Update (3 March): check-out is now 10:30 for all rooms."] == 0.0
    assert overruled["Check-out by: 10:00\n\nUpdate (3 March): check-out is now 10:30 for all rooms."] == 0.0
    assert overruled["Breakfast is served in the garden room."] == 0.0
    assert overruled["Check-out by: 11:00 for cars in the yard."] == 0.0


def test_an_update_in_the_quoted_older_message_below_a_reply_does_not_overrule_the_reply(tmp_path, embedder):
    """A reply written above the message it quotes: the quoted update is the older statement."""
    thread = (
        "Hi Sam,\n\n"
        "The survey visit is on Thursday at 2pm, as we agreed on the phone.\n\n"
        "Kind regards,\nJo\n\n"
        "On Mon 3 March, Sam wrote:\n"
        "> Update: the survey visit is now moved to Wednesday at 9am.\n"
    )
    assistant = make_assistant(tmp_path, embedder, {"thread.txt": thread})
    overruled = _window_feature(assistant, "When is the survey visit?", "overruled")
    assert overruled["The survey visit is on Thursday at 2pm, as we agreed on the phone."] == 0.0


def test_a_window_without_the_number_or_code_the_question_names_is_marked(tmp_path, embedder):
    """`figures_missing`: the idf-weighted share of the question's own numbers and codes ("4.2.5", "E4") that a
    window lacks, with its heading, the lines beside it under the same heading and its file's path (folders too);
    not the next section's heading, not a follow-up's history, not sums, times or dates."""
    notes = (
        "# Release notes\n\n"
        "## Version 4.2.0 — 14 April 2025\n\n"
        "- Faster sync of shopping lists between phones.\n"
        "- A new dark theme for the recipe view.\n"
        "- Timers keep running when the screen locks.\n\n"
        "## Version 4.2.5 — 2 June 2025\n\n"
        "- Fixed a crash when importing recipes from a web page.\n"
        "- Timers no longer reset when the phone rotates.\n"
        "- Error E4 now says which ingredient it could not read.\n"
    )
    beta = "# What is new\n\nShopping lists can be shared with a household.\n"
    assistant = make_assistant(tmp_path, embedder, {"notes.md": notes, "beta/release-5.0.1/draft.md": beta})
    missing = _window_feature(assistant, "When did version 4.2.5 come out?", "figures_missing")
    assert missing["## Version 4.2.0 — 14 April 2025"] == 1.0
    assert missing["## Version 4.2.5 — 2 June 2025"] == 0.0
    assert missing["- Timers no longer reset when the phone rotates."] == 0.0  # under the heading that names it
    assert missing["- Timers keep running when the screen locks."] == 1.0  # the next heading is another section
    missing = _window_feature(assistant, "What does E4 mean after version 4.2.5?", "figures_missing")
    assert missing["- Error E4 now says which ingredient it could not read."] == 0.0
    idf = assistant.live().extractor.snapshot.idf(UNITS, ["e4", "4.2.5"])
    assert missing["## Version 4.2.5 — 2 June 2025"] == pytest.approx(idf["e4"] / (idf["e4"] + idf["4.2.5"]))
    missing = _window_feature(assistant, "Can shopping lists be shared in 5.0.1?", "figures_missing")
    assert missing["Shopping lists can be shared with a household."] == 0.0  # the folder names it
    assert missing["- Faster sync of shopping lists between phones."] == 1.0
    assert set(_window_feature(assistant, "When do timers reset?", "figures_missing").values()) == {0.0}
    assert set(_window_feature(assistant, "What came out on 2 June 2025?", "figures_missing").values()) == {0.0}
    history = ("What changed in version 4.2.5?",)
    assert set(_window_feature(assistant, "When did it come out?", "figures_missing", history).values()) == {0.0}


def test_a_statement_of_a_value_its_file_says_was_replaced_is_marked_stale(tmp_path, embedder):
    """`stale`: a window stating a value that its own file retracts ("£178, not £165"), not the correction
    itself (also where the window starts mid-line, after the update word), a line giving only the current
    value, another file's line, or a value that a range or a start date merely follows "from" with."""
    minutes = (
        "Summer camp\n\n"
        "HQ said the cost per Scout would be £165, covering food and site fees.\n\n"
        "Correction to item 4: the correct cost per Scout is £178, not £165.\n\n"
        "Parents will be told the cost of £178 by letter.\n\n"
        "The camp was first planned for 12 June.\n\n"
        "Update: the camp date has changed. The camp has moved from 12 June to 19 June.\n\n"
        "The site office is open from 9am to 5pm.\n\n"
        "Scouts arrive at the camp site at 9am.\n\n"
        "Update: from 1 March the camp kit list is online.\n\n"
        "Camp kit must be labelled by 1 March.\n"
    )
    other = "Winter camp\n\nThe winter camp costs £165 per Scout.\n"
    assistant = make_assistant(tmp_path, embedder, {"minutes.txt": minutes, "winter.txt": other})
    stale = _window_feature(assistant, "How much will summer camp cost per Scout?", "stale")
    assert stale["HQ said the cost per Scout would be £165, covering food and site fees."] == 1.0
    assert stale["Correction to item 4: the correct cost per Scout is £178, not £165."] == 0.0
    assert stale["Parents will be told the cost of £178 by letter."] == 0.0
    assert stale["The winter camp costs £165 per Scout."] == 0.0
    stale = _window_feature(assistant, "When is the summer camp?", "stale")
    assert stale["The camp was first planned for 12 June."] == 1.0
    assert stale["The camp has moved from 12 June to 19 June."] == 0.0
    stale = _window_feature(assistant, "What time do Scouts arrive at the camp site?", "stale")
    assert stale["Scouts arrive at the camp site at 9am."] == 0.0
    stale = _window_feature(assistant, "When must camp kit be labelled?", "stale")
    assert stale["Camp kit must be labelled by 1 March."] == 0.0


@pytest.mark.parametrize(
    "quote, names",
    [
        ("Ines Baptiste chairs it. The board meets in May.", ["Ines Baptiste"]),
        ("The committee is chaired by Ines Baptiste, since January.\nInes Baptiste joined in 2016.", ["Ines Baptiste"]),
        ("Dana Whitfield\nPTA Communications Chair", ["Dana Whitfield", "PTA Communications Chair"]),
        ("Caldwell said about 1,100 people came.", ["Caldwell"]),  # a lone sentence start, when nothing else is named
        # a date, the pronoun I and a label name no one, though a show named after a day does
        ("Sun 10 Mar  19:00  Tidewrack Folk - Dafydd Penhaligorn", ["Tidewrack Folk", "Dafydd Penhaligorn"]),
        ("Sunday Papers - Wenna Clodd", ["Sunday Papers", "Wenna Clodd"]),
        ("I've asked the office.", []),
        ("Subject: Re: March rota", []),
        ("Scarcliffe Junction: EM gauge", ["Scarcliffe Junction", "EM"]),
    ],
)
def test_a_follow_up_points_at_the_names_of_the_answer_not_at_sentence_starts(quote, names):
    from qa.types import Citation

    assert Extractor.names(None, Citation("a.txt", quote, 0, len(quote), 1, 1.0)) == names


RELEASES = {
    "release-notes.md": (
        "# Release notes\n\n"
        "## 4.2.1 — 21 October 2024\n\n"
        "- Fixed a crash when exporting invoices to PDF.\n\n"
        "## 4.2.0 — 12 August 2024\n\n"
        "- Added mileage claims to expenses.\n"
    ),
}


def test_a_heading_is_a_window_alone_and_never_part_of_a_longer_one(tmp_path, embedder):
    """A version's heading says when it came out: it is a candidate window of its own, marked as a heading."""
    heading = _window_feature(make_assistant(tmp_path, embedder, RELEASES), "When did version 4.2.1 come out?", "heading")
    assert heading["## 4.2.1 — 21 October 2024"] == 1.0
    assert heading["- Fixed a crash when exporting invoices to PDF."] == 0.0
    assert not any("\n" in text and "##" in text for text in heading)


MANUAL = {
    "manual.md": (
        "# Specifications\n\n"
        "| Part | Capacity |\n"
        "|------|----------|\n"
        "| Water tank | 1.8 L, removable |\n"
        "| Bean hopper | 250 g |\n"
    ),
}


def test_a_table_s_header_row_is_context_never_the_answer(tmp_path, embedder):
    """The header row repeats the question's words ("capacity"), but it is the rows' context: the quote is a row."""
    assistant = make_assistant(tmp_path, embedder, MANUAL)
    question = "What is the capacity of the part that holds the beans?"
    label = _window_feature(assistant, question, "label_terms")
    assert "| Part | Capacity |" not in label
    assert label["| Bean hopper | 250 g |"] > label["| Water tank | 1.8 L, removable |"] == 0.0
    answer = assistant.ask(question)
    assert answer.answered and answer.citations[0].quote == "| Bean hopper | 250 g |"


def test_a_table_without_a_rule_row_has_no_header_and_its_first_row_is_quoted(tmp_path, embedder):
    """An HTML key/value table has no |---| rule: its first row is data like the others."""
    page = "<h2>Specifications</h2><table><tr><td>Water tank</td><td>1.8 L</td></tr><tr><td>Weight</td><td>7 kg</td></tr></table>"
    assistant = make_assistant(tmp_path, embedder, {"spec.html": page})
    assistant.index()
    answer = assistant.ask("How much water does the water tank hold?")
    assert answer.answered and answer.citations[0].quote.startswith("| Water tank | 1.8 L |")


def test_the_token_match_is_each_question_word_s_best_cosine_in_the_window_averaged(tmp_path, embedder):
    """MaxSim over the stored token vectors: recomputed here from the model's own outputs for each unit."""
    notes = (
        "Collection days\n\n"
        "Green bins go out on Tuesday evening.\n"
        "Black bins are collected every other Friday.\n"
        "The depot on Mill Lane takes garden waste.\n"
    )
    assistant = make_assistant(tmp_path, embedder, {"bins.txt": notes})
    question = "Which day is the black bin collected?"
    match = _window_feature(assistant, question, "token_match")
    asked = token_directions(embedder.encode_query_tokens([question]).tokens[0])
    assert len(asked) >= 3  # "day", "black", "bin", "collected": no stop word or punctuation

    def per_word(lines: list[str]) -> np.ndarray:
        units = [token_directions(t) for t in embedder.encode_tokens(lines).tokens]
        return np.max([(asked @ u.T).max(axis=1) for u in units], axis=0)

    for text, value in match.items():
        best = per_word(text.split("\n"))
        assert value == pytest.approx(float(best.mean()), abs=0.01)  # int8 rows, and batch padding
    one, two = "Black bins are collected every other Friday.", "Green bins go out on Tuesday evening.\nBlack bins are collected every other Friday."
    assert max(match, key=match.get) in (one, two) and match[one] > match["The depot on Mill Lane takes garden waste."]
    assert match[two] >= match[one]  # a unit more can only offer each word a better match


def test_a_search_without_token_vectors_has_no_token_match(tiny):
    data, _ = tiny
    extractor, _, candidates, query = _ask(data, "How high is Mount Etna?", toward=4)
    assert query.tokens is None
    _, features = extractor.features("How high is Mount Etna?", query, candidates)
    assert not features[:, FEATURES.index("token_match")].any()


def test_a_question_term_no_candidate_s_document_holds_is_marked_unmentioned(tmp_path, embedder):
    """The same share on every window of the question: "Tokyo" is in no document, "population" is (and "what"
    only asks)."""
    files = {"cities.txt": "We know that New York has about 50 times the population of Jackson.\nJackson is in Mississippi.\n"}
    assistant = make_assistant(tmp_path, embedder, files)
    unmentioned = list(_window_feature(assistant, "What is the population of Tokyo?", "unmentioned").values())
    idf = assistant.live().snapshot.idf(UNITS, ["what", "popul", "tokyo"])
    assert unmentioned == [pytest.approx(idf["tokyo"] / sum(idf.values()))] * len(unmentioned)
    assert set(_window_feature(assistant, "What is the population of Jackson?", "unmentioned").values()) == {0.0}


@given(st.lists(st.floats(-50, 50), min_size=1, max_size=80), st.data())
def test_the_trees_re_rank_the_best_windows_and_leave_the_rest_below_them_in_order(linear, data):
    linear = np.array(linear)
    top = tree_candidates(linear)
    assert len(top) == min(len(linear), TREE_WINDOWS) and set(linear[top]) >= {linear.max()}
    boost = np.array(data.draw(st.lists(st.floats(-5, 5), min_size=len(top), max_size=len(top))))
    out = reranked(linear, top, boost)
    rest = np.setdiff1d(np.arange(len(linear)), top)
    assert np.allclose(out[top], linear[top] + boost)
    if len(rest):
        assert out[rest].max() <= out[top].min() + 1e-9
        assert np.all(np.diff(out[rest][np.argsort(-linear[rest], kind="stable")]) <= 1e-9)  # in their linear order


def test_the_shipped_trees_change_the_order_of_some_windows():
    """Trees that output a constant would leave the linear ranking as it is: the shipped ones must not."""
    rng = np.random.default_rng(0)
    features = rng.random((TREE_WINDOWS, len(FEATURES)))
    linear = np.linspace(1.0, 0.0, TREE_WINDOWS)  # windows in index order
    order = np.argsort(-ranking_trees().rescore(linear, features), kind="stable")
    assert sorted(order) == list(range(TREE_WINDOWS)) and list(order) != list(range(TREE_WINDOWS))


def test_trees_fitted_on_other_features_or_a_damaged_file_are_refused(tmp_path):
    text = RANKING_TREES.read_text()
    renamed = tmp_path / "renamed.txt"
    renamed.write_text(text.replace("feature_names=" + " ".join(FEATURES), "feature_names=" + " ".join(reversed(FEATURES)), 1))
    with pytest.raises(QAError, match="other features"):
        RankingTrees(renamed)
    cut = tmp_path / "cut.txt"
    cut.write_text(text[: len(text) // 3])
    with pytest.raises(QAError, match="cannot read the ranking trees"):
        RankingTrees(cut)
