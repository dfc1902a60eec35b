"""Reading the seeds folder is forgiving: bad files are reported and skipped, never fatal."""

import os

import pytest

from qa.documents import content_hashes, load_documents
from qa.errors import CorpusError
from conftest import write_corpus


def test_reads_txt_and_md_recursively_with_relative_sources(tmp_path):
    write_corpus(tmp_path, {"a.txt": "Alpha.", "sub/b.md": "Beta.", "c.csv": "x,y"})
    notes = []
    docs = load_documents(tmp_path, 10_000, notes.append)
    assert [d.source for d in docs] == ["a.txt", "sub/b.md"]
    assert notes == ["skipped c.csv: only .txt, .md files are indexed"]


def test_bad_files_are_skipped_with_one_line_each(tmp_path):
    write_corpus(
        tmp_path,
        {"good.txt": "Fine text.", "empty.txt": "  \n", "binary.txt": b"\x00\x01\x02abc", "latin1.txt": "caf\xe9".encode("latin-1"), "big.txt": "x" * 500},
    )
    os.symlink(tmp_path, tmp_path / "loop")  # a directory symlink loop is not followed
    notes = []
    docs = load_documents(tmp_path, 100, notes.append)
    assert [d.source for d in docs] == ["good.txt"]
    text = "\n".join(notes)
    for name, reason in [("empty.txt", "empty"), ("binary.txt", "binary"), ("latin1.txt", "not UTF-8"), ("big.txt", "limit")]:
        assert f"skipped {name}" in text and reason in text


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="no readable"):
        load_documents(tmp_path, 100, print)
    with pytest.raises(CorpusError, match="does not exist"):
        load_documents(tmp_path / "nope", 100, print)


def test_content_hashes_follow_the_bytes(tmp_path):
    write_corpus(tmp_path, {"a.txt": "one"})
    before = content_hashes(tmp_path)
    (tmp_path / "a.txt").write_text("two")
    assert content_hashes(tmp_path)["a.txt"] != before["a.txt"]
