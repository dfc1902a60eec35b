"""The chat as a workspace, below the page: asking within chosen documents (the library and `qa ask --source`)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import TOY, make_assistant

from qa.errors import QAError

#: Two men of whom "How old was he?" can be asked: only the chosen document says which one is meant.
PEOPLE = {
    "valencia.txt": "Carlos Ruiz became mayor of Valencia in 2015. He was 38 years old at the time.\n",
    "keeper.txt": "Tom Reed retired as the lighthouse keeper of Fastnet in 2001. He was 67 years old then.\n",
}


@pytest.fixture(scope="module")
def people(tmp_path_factory, embedder):
    assistant = make_assistant(tmp_path_factory.mktemp("people"), embedder, files={**TOY, **PEOPLE})
    assistant.index()
    return assistant


@pytest.mark.parametrize("source, words", [("valencia.txt", "38 years old"), ("keeper.txt", "67 years old")])
def test_asking_within_one_document_answers_from_it_alone(people, source, words):
    answer = people.ask("How old was he?", sources=[source])
    assert answer.answered and words in answer.answer
    assert {c.source for c in answer.citations} == {p.source for p in answer.passages} == {source}
    text = (people.settings.seeds_dir / source).read_text()
    assert all(text[c.start : c.end] == c.quote for c in answer.citations)


def test_retrieval_itself_is_restricted_not_its_results_filtered(people):
    """Bees outrank Etna for this question over all files; within volcano.txt the search still finds Etna's
    sentences, which a filter over the unrestricted top hits would have dropped."""
    question = "How many eggs does the queen lay a day?"
    everywhere = people.ask(question)
    assert everywhere.citations[0].source == "notes/bees.md"
    within = people.ask(question, sources=["volcano.txt"])
    assert within.passages and {p.source for p in within.passages} == {"volcano.txt"}
    assert all(c.source == "volcano.txt" for c in within.citations)


@pytest.mark.parametrize(
    "sources, words",
    [([], "no document chosen"), (["nope.txt"], "not an indexed document: nope.txt"), (["../volcano.txt"], "not an indexed document")],
)
def test_a_bad_choice_of_documents_is_one_clear_error(people, sources, words):
    with pytest.raises(QAError, match=words):
        people.ask("How high is Mount Etna?", sources=sources)


def test_qa_ask_source_is_repeatable_and_checked(people):
    s = people.settings
    base = [sys.executable, "-m", "qa", "ask", "--seeds", str(s.seeds_dir), "--index", str(s.index_dir)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")

    def run(*args):
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=120)

    out = run("--json", "--source", "keeper.txt", "--source", "volcano.txt", "How old was he?")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert "67 years old" in answer["answer"] and {c["source"] for c in answer["citations"]} <= {"keeper.txt", "volcano.txt"}
    bad = run("--source", "missing.txt", "How old was he?")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode != 0 and len(lines) == 1 and lines[0].startswith("qa: ") and "missing.txt" in lines[0], bad.stderr


# -- adding documents ---------------------------------------------------------------------------------------------

from qa.documents import add_file, check_upload, safe_name  # noqa: E402


@pytest.mark.parametrize(
    "name, safe",
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("/etc/cron.d/evil.md", "evil.md"),
        ("..\\..\\windows\\win.ini.txt", "win.ini.txt"),
        (".bashrc.txt", "bashrc.txt"),
        ("a\x00b.txt", "ab.txt"),
        ("evil\u202etxt.exe.md", "eviltxt.exe.md"),
        ("zero\u200bwidth\u2066.txt", "zerowidth.txt"),
        ("Cafe\u0301.TXT", "Caf\u00e9.txt"),
        ("line\nbreak\r.txt", "linebreak.txt"),
    ],
)
def test_hostile_upload_names_become_plain_names_in_the_folder(name, safe):
    assert safe_name(name) == safe


@pytest.mark.parametrize("name", ["", "..", "../", ".txt", "\u202e\u200b", "noext"])
def test_a_name_with_nothing_usable_is_refused(name):
    with pytest.raises(ValueError, match="no usable file name"):
        safe_name(name)


def test_a_very_long_name_is_cut_and_keeps_its_suffix():
    name = safe_name("é" * 400 + ".md")
    assert name.endswith(".md") and len(name.encode()) <= 160 and set(name[:-3]) == {"é"}


def test_adding_never_replaces_a_file_or_follows_a_link(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (seeds / "notes.txt").write_text("old notes\n")
    (seeds / "link.txt").symlink_to(outside)
    assert add_file(seeds, "notes.txt", b"new notes\n") == "notes (2).txt"
    assert add_file(seeds, "notes.txt", b"newer\n") == "notes (3).txt"
    assert add_file(seeds, "link.txt", b"through the link?\n") == "link (2).txt"
    assert (seeds / "notes.txt").read_text() == "old notes\n" and outside.read_text() == "precious\n"
    assert (seeds / "notes (2).txt").read_text() == "new notes\n" and (seeds / "link.txt").is_symlink()
    assert sorted(p.name for p in seeds.iterdir()) == ["link (2).txt", "link.txt", "notes (2).txt", "notes (3).txt", "notes.txt"]


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("big.txt", b"x" * 1001, "over the"),
        ("blob.txt", b"\x00\x01\x02 binary", "binary file"),
        ("latin.txt", "café".encode("latin-1"), "not UTF-8"),
        ("broken.pdf", b"%PDF-1.4 not really", "unreadable PDF"),
        ("broken.docx", b"PK not a zip", "unreadable Word file"),
        ("empty.md", b"", "empty file"),
        ("script.sh", b"echo hi\n", "can be added"),
    ],
)
def test_a_file_that_cannot_be_indexed_is_refused_with_its_reason(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=words):
        check_upload(name, path, max_bytes=1000)


def test_added_files_are_answered_from_at_once_and_refusals_write_nothing(tmp_path, embedder):
    import docx

    assistant = make_assistant(tmp_path, embedder, files={"volcano.txt": TOY["volcano.txt"]}, max_upload_files=3)
    assistant.index()
    word = docx.Document()
    word.add_paragraph("Harbour rules.")
    word.add_paragraph("The harbour of Vigo closes its gates at 22:00 every night.")
    up = tmp_path / "uploads"
    up.mkdir()
    word.save(up / "rules.docx")
    (up / "lighthouse.txt").write_text("The Tower of Hercules is a Roman lighthouse in A Coruña.\n")
    (up / "blob.txt").write_bytes(b"\x00\x00binary")
    before = sorted(p.name for p in assistant.settings.seeds_dir.iterdir())
    with pytest.raises(QAError, match="4 files at once; the limit is 3"):
        assistant.add_documents([(p.name, p) for p in [*up.iterdir(), up / "blob.txt"]])
    assert sorted(p.name for p in assistant.settings.seeds_dir.iterdir()) == before
    report, refused = assistant.add_documents([("../rules.docx", up / "rules.docx"), ("lighthouse.txt", up / "lighthouse.txt"), ("blob.txt", up / "blob.txt")])
    assert (report.added, report.unchanged) == (2, 1)
    assert [(r.name, r.reason) for r in refused] == [("blob.txt", "binary file")]
    assert not (assistant.settings.seeds_dir / "blob.txt").exists()
    answer = assistant.ask("When does the harbour of Vigo close its gates?")
    assert answer.answered and "22:00" in answer.answer and answer.citations[0].source == "rules.docx"
    assert assistant.ask("Where is the Tower of Hercules?").citations[0].source == "lighthouse.txt"


# -- feedback as a regression set ------------------------------------------------------------------------------------


def test_qa_eval_scores_the_index_against_the_answers_marked_good(tmp_path, embedder):
    from qa.web import Feedback, feedback_record

    people = make_assistant(tmp_path, embedder)
    people.index()
    feedback = Feedback(tmp_path / "feedback.jsonl")
    etna = people.ask("How high is Mount Etna?")
    nitrogen = people.ask("What is the boiling point of liquid nitrogen?")
    bees = people.ask("How many eggs does the queen lay a day?")
    feedback.append({**feedback_record(etna, []), "verdict": "good"})
    feedback.append({**feedback_record(nitrogen, []), "verdict": "good"})
    feedback.append({**feedback_record(bees, []), "verdict": "bad"})
    s = people.settings
    out = subprocess.run(
        [sys.executable, "-m", "qa", "eval", "--json", "--seeds", str(s.seeds_dir), "--index", str(s.index_dir), str(tmp_path / "feedback.jsonl")],
        capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300,
    )
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.splitlines()[0])
    assert (row["questions"], row["hit@1"], row["abstain"], row["non_verbatim"]) == (2, 1.0, 1.0, 0)
    (s.seeds_dir / "volcano.txt").write_text("Mount Etna is a volcano on Sicily.\n")  # the answer is gone
    out = subprocess.run(
        [sys.executable, "-m", "qa", "eval", "--json", "--seeds", str(s.seeds_dir), "--index", str(s.index_dir), str(tmp_path / "feedback.jsonl")],
        capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["hit@1"] == 0.0


# -- removing a document ---------------------------------------------------------------------------------------------


def test_a_removed_document_leaves_the_index_and_its_file_goes_to_the_trash(tmp_path, embedder):
    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    seeds = assistant.settings.seeds_dir
    (tmp_path / ".trash" / "notes").mkdir(parents=True)
    (tmp_path / ".trash" / "notes" / "bees.md").write_text("an older bees.md, trashed before\n")
    report = assistant.remove_document("notes/bees.md")
    assert (report.removed, report.files) == (1, 2)
    assert not (seeds / "notes" / "bees.md").exists()
    assert (tmp_path / ".trash" / "notes" / "bees (2).md").read_text() == TOY["notes/bees.md"]
    assert (tmp_path / ".trash" / "notes" / "bees.md").read_text() == "an older bees.md, trashed before\n"
    answer = assistant.ask("How many eggs does the queen lay a day?")
    assert all(c.source != "notes/bees.md" for c in answer.citations)
    for bad in ["notes/bees.md", "../seeds/volcano.txt", "/etc/passwd"]:
        with pytest.raises(QAError, match="not an indexed document"):
            assistant.remove_document(bad)
    assert (seeds / "volcano.txt").exists()


# -- updates cost what changed ------------------------------------------------------------------------------------


def test_an_update_reads_only_the_files_whose_size_or_mtime_moved(tmp_path, embedder):
    """A file with the indexed size and mtime is not read again, however many there are: proven by one rewritten
    to the same length with its mtime put back, which the update does not see, while a touched file is read
    (and found the same) and an edited one is embedded again. A refused file is reported once, not every update."""
    assistant = make_assistant(tmp_path, embedder, files={**TOY, "blob.txt": b"\x00\x01binary"})
    assistant.index()
    assert sum("skipped blob.txt: binary file" in m for m in assistant.messages) == 1
    seeds = assistant.settings.seeds_dir

    volcano = seeds / "volcano.txt"
    before = volcano.stat()
    volcano.write_text(TOY["volcano.txt"].replace("Sicily", "Sicilx"), encoding="utf-8")
    os.utime(volcano, ns=(before.st_atime_ns, before.st_mtime_ns))
    bees = seeds / "notes" / "bees.md"
    os.utime(bees, ns=(bees.stat().st_atime_ns, bees.stat().st_mtime_ns + 10**9))
    report = assistant.index()
    assert (report.files, report.added, report.changed, report.removed, report.unchanged) == (3, 0, 0, 0, 3)
    assert report.chunks_embedded == 0
    assert "Sicily" in assistant.ask("Where is Mount Etna?").answer  # the index still holds what it read
    assert sum("blob.txt" in m for m in assistant.messages) == 1

    (seeds / "jackson.txt").write_text("The city of Jackson is the capital of Mississippi.\n", encoding="utf-8")
    (seeds / "blob.txt").unlink()
    report = assistant.index()
    assert (report.files, report.changed, report.unchanged, report.chunks_embedded) == (3, 1, 2, 1)
    assert "Mississippi" in assistant.ask("What is Jackson the capital of?").answer
    assert assistant.status().index.skipped == () and not assistant.staleness()


def test_a_skipped_file_is_read_again_at_each_update_but_reported_once(tmp_path, embedder):
    """A skip can depend on the settings, not the file: after the size limit is raised, the same untouched file is
    indexed. And when the only files left cannot be read, the update refuses rather than commit an empty index."""
    from dataclasses import replace

    from qa import Assistant

    big = "The long report says the harbour wall was rebuilt in 1911. " * 40
    assistant = make_assistant(tmp_path, embedder, files={"short.txt": "The ferry leaves at noon.\n", "long.txt": big, "blob.txt": b"\x00\x01binary"}, max_file_bytes=1_000)
    assistant.index()
    assistant.index()
    assert sum("skipped long.txt" in m for m in assistant.messages) == 1
    assert [f.source for f in assistant.status().index.skipped] == ["blob.txt", "long.txt"]

    roomy = Assistant(replace(assistant.settings, max_file_bytes=100_000), warn=assistant.messages.append)
    roomy.embedder = embedder
    report = roomy.index()
    assert (report.files, report.added, report.unchanged) == (2, 1, 1)
    assert sum("skipped blob.txt" in m for m in assistant.messages) == 1
    assert "1911" in roomy.ask("When was the harbour wall rebuilt?").answer

    (roomy.settings.seeds_dir / "short.txt").unlink()
    (roomy.settings.seeds_dir / "long.txt").unlink()
    before = roomy.status().index
    with pytest.raises(QAError, match="no readable"):
        roomy.index()
    assert roomy.status().index.commit == before.commit


def test_questions_are_answered_while_a_build_embeds_on_its_own_niced_thread(tmp_path, embedder):
    """A build paused between two of its batches (its progress callback waits) holds the index lock; a question
    asked then is answered from the last commit. Meanwhile the batches run on the embedder's build thread at
    build_nice, and Python hands its lock over every build_switch_interval, put back when the build ends."""
    import sys
    import threading

    many = "".join(f"Line {i} of the ledger records a delivery of {i} crates of pears.\n" for i in range(40))
    assistant = make_assistant(tmp_path, embedder, batch_size=8)  # batches of 32 texts: the ledger takes several
    assistant.index()
    (assistant.settings.seeds_dir / "ledger.txt").write_text(many, encoding="utf-8")
    paused, go_on, seen = threading.Event(), threading.Event(), {}
    interval_before = sys.getswitchinterval()

    def progress(done: int, total: int) -> None:
        if 0 < done < total and not paused.is_set():
            builders = [t for t in threading.enumerate() if t.name.startswith("qa-build")]
            seen["nice"] = [os.getpriority(os.PRIO_PROCESS, t.native_id) for t in builders]
            seen["interval"] = sys.getswitchinterval()
            paused.set()
            go_on.wait(120)

    reports = []
    build = threading.Thread(target=lambda: reports.append(assistant.index(progress)))
    build.start()
    try:
        assert paused.wait(300), "the build never reached its second batch"
        answer = assistant.ask("How many eggs does the queen lay a day?")
        assert answer.answered and "1,500 eggs" in answer.answer
        assert "ledger.txt" not in {d.source for d in assistant.status().index.documents}
    finally:
        go_on.set()
        build.join(300)
    s = assistant.settings
    assert seen["nice"] and all(n >= s.build_nice for n in seen["nice"])
    assert seen["interval"] == pytest.approx(min(s.build_switch_interval, interval_before))
    assert sys.getswitchinterval() == interval_before
    assert reports and reports[0].added == 1
    assert "ledger.txt" in {d.source for d in assistant.status().index.documents}
