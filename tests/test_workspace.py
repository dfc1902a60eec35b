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
