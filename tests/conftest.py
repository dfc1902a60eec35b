"""Shared fixtures: one real model for the session, tiny corpora in tmp_path, never ../shared."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # a hidden hub download fails at once instead of stalling

from pathlib import Path

import pytest

from qa import Assistant, Settings
from qa.embedding import Embedder

SEEDS = Path(__file__).resolve().parent.parent / "seeds"

TOY = {
    "jackson.txt": (
        "Dear New York: A Love Letter From Jackson.\n"
        "In 2017, Jackson elected its own young socialist mayor. He was also 34 years old with a name people "
        "struggle to pronounce—Chokwe Antar Lumumba.\n"
        "The city later faced a water crisis that lasted for years.\n"
    ),
    "notes/bees.md": (
        "# Bees\n\nHoney bees live in colonies of up to 60,000 workers. The queen lays about 1,500 eggs a day.\n"
        "Worker bees communicate the location of flowers with a waggle dance.\n"
    ),
    "volcano.txt": "Mount Etna is an active volcano on the east coast of Sicily. It is about 3,357 metres high.\n",
}


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The packaged model, loaded once for every test that embeds."""
    e = Embedder()
    e.encode_query(["warm up"])
    return e


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def make_assistant(tmp: Path, embedder: Embedder, files: dict | None = None, **settings) -> Assistant:
    seeds = write_corpus(tmp / "seeds", TOY if files is None else files)
    messages: list[str] = []
    assistant = Assistant(Settings(seeds_dir=seeds, index_dir=tmp / "index", **settings), warn=messages.append)
    assistant.embedder = embedder  # share the session's loaded model
    assistant.messages = messages
    return assistant


@pytest.fixture(scope="module")
def toy(tmp_path_factory, embedder) -> Assistant:
    """An indexed toy corpus, shared by the tests of a module that only ask."""
    assistant = make_assistant(tmp_path_factory.mktemp("toy"), embedder)
    assistant.index()
    return assistant
