"""The story of a user: index a tiny corpus, ask, and get verbatim, cited quotations — or an honest abstention."""

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np
import pytest

from qa.chunking import UNIT_RULES
from qa.config import Settings
from qa.errors import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexMissingError, QAError, QuestionError
from qa.evaluation import load_jsonl
from qa.folder_store import FolderStore
from qa.store import CHUNKS, FORMAT_VERSION, UNITS
from conftest import SEEDS, TOY, make_assistant


def _file_text(assistant, source):
    return (assistant.settings.seeds_dir / source).read_bytes().decode("utf-8")


def test_every_record_in_the_index_maps_back_verbatim(toy):
    snap = toy.live().snapshot
    units = snap.rows(UNITS, np.arange(snap.size(UNITS)))
    for doc, start, end in zip(units["document"].tolist(), units["start"].tolist(), units["end"].tolist()):
        text = snap.document(doc).text
        assert text[start:end].strip() == text[start:end] != ""
    for chunk in snap.rows(CHUNKS, np.arange(snap.size(CHUNKS))):
        assert units[chunk["first"]]["start"] == chunk["start"] and units[chunk["last"] - 1]["end"] == chunk["end"]
        assert set(units[chunk["first"] : chunk["last"]]["document"].tolist()) == {chunk["document"]}
    sources = [d.source for d in toy.status().index.documents]
    assert sources == sorted(sources) == sorted(TOY)
    for d in range(len(sources)):
        assert _file_text(toy, snap.document(d).source) == snap.document(d).text


def test_save_and_load_round_trip(toy):
    live = toy.live().snapshot
    loaded = FolderStore(toy.settings.index_dir).open(toy.settings.index_key())
    assert [loaded.document(d).source for d in range(3)] == [live.document(d).source for d in range(3)]
    for level in (UNITS, CHUNKS):
        ids = np.arange(live.size(level))
        assert loaded.size(level) == live.size(level) and np.array_equal(loaded.rows(level, ids), live.rows(level, ids))
        assert np.array_equal(loaded.vectors(level, ids), live.vectors(level, ids))
        assert np.allclose(np.linalg.norm(loaded.vectors(level, ids), axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize(
    "question, source, words",
    [
        ("How old was Lumumba when he became mayor?", "jackson.txt", "34 years old"),
        ("How many eggs does the queen lay?", "notes/bees.md", "1,500 eggs"),
        ("How high is Mount Etna?", "volcano.txt", "3,357 metres"),
    ],
)
def test_answers_quote_the_document_and_cite_it(toy, question, source, words):
    answer = toy.ask(question)
    assert answer.answered, answer
    first = answer.citations[0]
    assert first.source == source and words in first.quote
    assert answer.answer == first.quote
    for c in answer.citations:
        assert _file_text(toy, c.source)[c.start : c.end] == c.quote
        assert _file_text(toy, c.source).count("\n", 0, c.start) + 1 == c.line


def test_onnx_backend_agrees_with_torch_and_switching_rebuilds(tmp_path, toy):
    from qa import Assistant

    assistant = Assistant(toy.settings.with_(index_dir=tmp_path / "index", backend="onnx"), warn=lambda m: None)
    assistant.index()
    agreement = assistant.embedder.encode(["How high is Mount Etna?"]) @ toy.embedder.encode(["How high is Mount Etna?"]).T
    assert agreement[0, 0] > 0.99
    for question in ("How old was Lumumba when he became mayor?", "How many eggs does the queen lay?"):
        onnx, torch = assistant.ask(question), toy.ask(question)
        assert onnx.answered and (onnx.citations[0].source, onnx.citations[0].quote) == (torch.citations[0].source, torch.citations[0].quote)
    with pytest.raises(IndexMismatchError, match="backend"):
        FolderStore(tmp_path / "index").open(toy.settings.index_key())
    back = Assistant(toy.settings.with_(index_dir=tmp_path / "index"), warn=lambda m: None)
    back.embedder = toy.embedder
    assert "backend" in back.index().full_rebuild


def test_json_contract(toy):
    d = json.loads(json.dumps(toy.ask("How do worker bees communicate?").to_dict()))
    assert {"question", "answered", "answer", "confidence", "citations"} <= d.keys()
    assert isinstance(d["answered"], bool) and 0.0 <= d["confidence"] <= 1.0
    scores = [c["score"] for c in d["citations"]]
    assert scores == sorted(scores, reverse=True)
    for c in d["citations"]:
        assert {"source", "quote", "start", "end", "line", "score"} <= c.keys()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, embedder):
    """The real seed corpus, indexed once for this module."""
    tmp = tmp_path_factory.mktemp("seeds")
    files = {p.name: p.read_bytes() for p in SEEDS.glob("*.txt")}
    assistant = make_assistant(tmp, embedder, files)
    assistant.index()
    return assistant


@pytest.mark.parametrize(
    "question, answer",
    [
        # subtle: the seed names two coordinators; "general coordinator" is the one this question singles out
        ("Who is the general coordinator of the Progressive International?", "David Adler"),
        ("How many Instagram followers did the campaign start from?", "two hundred thousand"),
        ("Where did the mayor-elect speak at a press conference on November 5?", "Unisphere"),
        ("How many people did JVP Action's canvasses send out?", "5,000"),
    ],
)
def test_seed_questions_are_answered(seeds, question, answer):
    result = seeds.ask(question)
    assert result.answered and answer in result.citations[0].quote


@pytest.mark.parametrize("question", ["Who wrote Hamlet?", "How do I bake sourdough bread?"])
def test_unrelated_questions_abstain_and_offer_closest_passages(seeds, question):
    result = seeds.ask(question)
    assert not result.answered and result.citations == []
    assert "do not answer" in result.answer and result.passages


def test_general_questions_the_seeds_do_not_touch_are_abstained_on(seeds):
    """The 60 of eval/offtopic.jsonl ("Who painted the Mona Lisa?"), which the abstention model is fitted with (so
    this is an in-sample check): a question near the line may tip either way with a refit ("What is the
    population of Tokyo?" meets Jackson's population at a confidence of 0.50), the share may not."""
    questions = [q.q for q in load_jsonl(SEEDS.parent / "eval/offtopic.jsonl")]
    answered = [q for q in questions if seeds.ask(q).answered]
    assert len(questions) == 60 and len(answered) <= 3, answered


@pytest.mark.parametrize("question", ["What is the population of Tokyo?", "Who wrote Hamlet?"])
def test_a_new_subject_in_a_chat_is_read_as_if_asked_first(seeds, question):
    """Only a question that points back (she, it, that...) is read against the previous answer."""
    alone = seeds.ask(question)
    after = seeds.ask(question, ["Who is the progressive mayor of Toronto?"])
    assert after.rewritten == alone.rewritten == question
    assert after.confidence == alone.confidence and after.answered == alone.answered
    assert [c.quote for c in after.citations] == [c.quote for c in alone.citations]


def test_follow_up_uses_the_history(seeds):
    result = seeds.ask("How old was he?", history=["Who did Jackson elect as mayor in 2017?"])
    assert result.answered and "34" in result.citations[0].quote


@pytest.mark.parametrize("question, message", [("", "empty"), ("   \n", "empty"), ("x" * 100_000, "limit")])
def test_bad_questions_get_clear_errors(toy, question, message):
    with pytest.raises(QuestionError, match=message):
        toy.ask(question)


def test_questions_asked_at_once_get_the_answers_they_get_alone(seeds):
    asks = [
        ("Who coordinates the Progressive International?", []),
        ("How old was he?", ["Who did Jackson elect as mayor in 2017?"]),
        ("Who wrote Hamlet?", []),
        ("Where did the mayor-elect speak at a press conference on November 5?", []),
    ] * 3
    alone = [seeds.ask(q, h) for q, h in asks]
    with ThreadPoolExecutor(len(asks)) as pool:
        together = list(pool.map(lambda qh: seeds.ask(*qh), asks))
    for a, b in zip(alone, together):
        assert (b.answered, [c.quote for c in b.citations]) == (a.answered, [c.quote for c in a.citations])
        assert b.confidence == pytest.approx(a.confidence, abs=1e-4)


def test_incremental_rebuild_embeds_only_what_changed(tmp_path, embedder):
    assistant = make_assistant(tmp_path, embedder)
    first = assistant.index()
    assert (first.added, first.chunks_embedded) == (3, first.chunks)
    seeds = assistant.settings.seeds_dir
    (seeds / "volcano.txt").write_text("Mount Etna is about 3,400 metres high after recent eruptions.\n")
    (seeds / "notes/bees.md").unlink()
    (seeds / "tea.txt").write_text("Green tea is made from unoxidised leaves of Camellia sinensis.\n")
    second = assistant.index()
    assert (second.added, second.changed, second.removed, second.unchanged) == (1, 1, 1, 1)
    assert second.chunks_embedded == 2  # the changed and the added file, one chunk each
    assert all(c.source != "notes/bees.md" for c in assistant.ask("How many eggs does the queen lay?").citations)
    assert assistant.ask("What is green tea made from?").citations[0].source == "tea.txt"
    assert assistant.index().chunks_embedded == 0  # nothing changed: a no-op


def test_index_problems_are_reported_and_repaired(tmp_path, embedder):
    assistant = make_assistant(tmp_path, embedder)
    with pytest.raises(IndexMissingError, match="qa index"):
        assistant.ask("Anything?")
    assistant.index()
    store = FolderStore(assistant.settings.index_dir)
    other = make_assistant(tmp_path, embedder, files={}, chunk_tokens=100)
    with pytest.raises(IndexMismatchError, match="chunk_tokens"):
        other.ask("How high is Etna?")
    with pytest.raises(IndexMismatchError, match="model"):
        store.open(dict(assistant.settings.index_key(), model="some/other-model"))
    vectors = next(assistant.settings.index_dir.glob("seg-*")) / "chunks.faiss"
    vectors.write_bytes(vectors.read_bytes()[:100])  # a half-written file
    with pytest.raises(IndexCorruptError, match="truncated"):
        store.open(assistant.settings.index_key())
    report = assistant.index()
    assert report.full_rebuild and report.chunks_embedded == report.chunks
    assert assistant.ask("How high is Mount Etna?").answered


def test_an_index_from_another_version_of_qa_is_rebuilt_once_not_called_damaged(tmp_path, embedder):
    assistant = make_assistant(tmp_path, embedder)
    index = assistant.settings.index_dir
    old = index / "build-20260101-000000-abcdef"  # the layout of index format 2: CURRENT names a whole build folder
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"format_version": 2, "settings": assistant.settings.index_key()}))
    (index / "CURRENT").write_text(old.name + "\n")
    with pytest.raises(IndexMismatchError, match=f"another version of qa .index format 2, now {FORMAT_VERSION}"):
        FolderStore(index).open(assistant.settings.index_key())
    report = assistant.index()
    assert "another version of qa" in report.full_rebuild and report.chunks_embedded == report.chunks
    assert assistant.messages.count(f"full rebuild: {report.full_rebuild}") == 1  # the one-line note
    assert not old.exists() and assistant.ask("How high is Mount Etna?").answered
    assert assistant.index().full_rebuild == ""  # once


@dataclass(frozen=True)
class _SettingsBeforeUnitRules(Settings):
    """How the release before keyed an index: it recorded no unit rules."""

    def index_key(self) -> dict[str, object]:
        return {k: v for k, v in super().index_key().items() if k != "unit_rules"}


def test_an_index_split_by_older_unit_rules_is_rebuilt_once(tmp_path, embedder):
    """Else its unchanged files would keep the sentence ends of the rules they were split by."""
    assistant = make_assistant(tmp_path, embedder)
    now = assistant.settings
    assistant.settings = _SettingsBeforeUnitRules(**{f.name: getattr(now, f.name) for f in fields(Settings)})
    assistant.index()
    assistant.settings = now
    with pytest.raises(IndexMismatchError, match=rf"unit_rules not recorded \(now {UNIT_RULES}\); run `qa index`"):
        FolderStore(now.index_dir).open(now.index_key())
    report = assistant.index()
    assert "unit_rules" in report.full_rebuild and report.chunks_embedded == report.chunks
    assert assistant.index().full_rebuild == ""  # once
    assert assistant.ask("How high is Mount Etna?").answered


def test_the_last_release_s_index_without_checksums_is_rebuilt_once(tmp_path, embedder):
    """Index format 4 named each segment file's size, not its checksum: refused with its version, then rebuilt."""
    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    index = assistant.settings.index_dir
    commit = index / (index / "CURRENT").read_text().strip()
    old = json.loads(commit.read_text(encoding="utf-8"))
    old["format_version"] = 4
    commit.write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(IndexMismatchError, match=rf"index format 4, now {FORMAT_VERSION}\); run `qa index`"):
        FolderStore(index).open(assistant.settings.index_key())
    report = assistant.index()
    assert "another version of qa" in report.full_rebuild and report.chunks_embedded == report.chunks
    assert assistant.index().full_rebuild == ""  # once
    assert assistant.ask("How high is Mount Etna?").answered


def test_second_build_refuses_while_one_runs(tmp_path, embedder):
    assistant = make_assistant(tmp_path, embedder)
    lock = assistant.store.lock()
    try:
        with pytest.raises(IndexBusyError, match="right now"):
            assistant.index()
    finally:
        lock.release()


def test_a_build_that_fails_while_writing_leaves_the_previous_index_and_nothing_half_written(tmp_path, embedder, monkeypatch):
    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    index = assistant.settings.index_dir
    before = sorted(p.name for p in index.iterdir())
    (assistant.settings.seeds_dir / "volcano.txt").write_text("Mount Etna is 9,999 metres high in this rewrite.\n")

    def disk_full(self, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("qa.lexical.Postings.save", disk_full)  # the failure strikes half-way through writing
    with pytest.raises(QAError, match="No space left on device.*previous index is unchanged"):
        assistant.index()
    monkeypatch.undo()
    assert sorted(p.name for p in index.iterdir()) == before  # the half-written segment is gone
    reader = make_assistant(tmp_path, embedder, files={})
    context = reader.ask("How high is Mount Etna?").citations[0].context
    assert "3,357" in context and "9,999" not in context  # the old build still answers
    assert assistant.index().changed == 1
    assert "9,999" in assistant.ask("How high is Mount Etna?").citations[0].context


def test_watch_rebuilds_when_a_file_appears(tmp_path, embedder):
    import threading

    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    stop, builds = threading.Event(), []
    thread = threading.Thread(target=assistant.watch, args=(builds.append, stop, 0.2))
    thread.start()
    try:
        (assistant.settings.seeds_dir / "tea.txt").write_text("Green tea is made from unoxidised leaves.\n")
        for _ in range(150):
            if builds:
                break
            stop.wait(0.2)
    finally:
        stop.set()
        thread.join()
    assert builds and builds[0].added == 1
    assert assistant.ask("What is green tea made from?").citations[0].source == "tea.txt"


#: Two board members called "she": only the previous answer says which one a follow-up means.
BOARD = {
    "parking.txt": (
        "Parking committee\n\n"
        "The parking committee is chaired by Ines Baptiste, who took the role in January.\n"
        "Ines Baptiste has been on the board since 2016 and runs the permit lottery.\n"
    ),
    "garden.txt": (
        "Garden club\n\n"
        "The garden club is led by Maria Lopez, who started the seed library.\n"
        "Maria Lopez has been on the board since 2009 and keeps the tool shed keys.\n"
    ),
    "bus.txt": (
        "Several parents asked whether the bus route changes in spring.\n"
        "The district said the new route starts on Monday, March 3, once the bridge reopens.\n"
        "Buses will leave the depot ten minutes earlier.\n"
    ),
}


@pytest.fixture(scope="module")
def board(tmp_path_factory, embedder):
    assistant = make_assistant(tmp_path_factory.mktemp("board"), embedder, BOARD)
    assistant.index()
    return assistant


def test_a_follow_up_points_at_the_previous_answer(board):
    first = board.ask("Who chairs the parking committee?")
    assert first.answered and "Ines Baptiste" in first.citations[0].quote
    follow = board.ask("How long has she been on the board?", history=["Who chairs the parking committee?"])
    assert follow.answered and "2016" in follow.citations[0].quote
    assert "Ines Baptiste" in follow.rewritten and follow.rewritten.startswith("How long has she been on the board?")


def test_the_window_with_the_answer_beats_the_line_that_repeats_the_question(board):
    answer = board.ask("When does the bus route change?")
    assert answer.answered and "March 3" in answer.citations[0].quote
    assert answer.citations[0].quote.count("\n") <= 2  # one window of at most three lines, not the passage
