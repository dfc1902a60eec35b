"""The folder store's promises: an updated index answers exactly like a fresh build of the same files, a killed
build leaves the last commit answering, a damaged index is one `qa:` line that changes nothing, and segments
are merged without touching what is not merged. Store-level tests use random vectors (no model needed)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qa.segment
from qa.cli import main
from qa.embedding import Encoded, token_rows
from qa.errors import IndexCorruptError, QAError
from qa.folder_store import FolderStore
from qa.lexical import tokenize
from qa.store import CHUNKS, LEVELS, UNITS
from qa.types import Changes, Chunk, Document, IndexedDocument, Sentence
from conftest import make_assistant, write_corpus

ROOT = Path(__file__).resolve().parent.parent
KEY = {"model": "random vectors", "chunk_tokens": 200}
WORDS = "bee queen hive etna lava sicily river delta tea leaf mayor city vote water crisis harbour ship".split()


def random_document(source: str, rng: np.random.Generator, dimension: int = 8) -> IndexedDocument:
    """A document of a few random sentences, one chunk per two sentences, random unit vectors."""
    sentences = [" ".join(rng.choice(WORDS, rng.integers(2, 7))).capitalize() + "." for _ in range(rng.integers(1, 6))]
    text = " ".join(sentences)
    units, at = [], 0
    for s in sentences:
        units.append(Sentence(at, at + len(s), s))
        at += len(s) + 1
    chunks = [Chunk(units[i].start, units[min(i + 2, len(units)) - 1].end, "", i, min(i + 2, len(units))) for i in range(0, len(units), 2)]
    chunks = [Chunk(c.start, c.end, text[c.start : c.end], c.first, c.last) for c in chunks]
    vectors = rng.standard_normal((len(units) + len(chunks), dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    doc = Document(source, text, str(rng.integers(1 << 62)))
    tokens = [token_rows(rng.standard_normal((rng.integers(0, 4), dimension))) for _ in units]
    return IndexedDocument(doc, len(text), 0, units, chunks, vectors[: len(units)], vectors[len(units) :], tokens)


def commit(store: FolderStore, upserts=(), removed=(), rebuild=False):
    with store.lock():
        return store.update(KEY, Changes(list(upserts), list(removed), rebuild=rebuild))


def exact_hits(a, b) -> None:
    """The same ids in the same order with the same scores (BM25 within float32 rounding of its sums)."""
    assert np.array_equal(a.ids, b.ids) and np.allclose(a.scores, b.scores, rtol=1e-6, atol=0)


def same_snapshots(a, b, queries, same_hits=exact_hits) -> None:
    """Two snapshots hold the same rows, terms and vectors under the same ids, and search alike."""
    held = lambda snap: [(d.source, d.sha256, d.units, d.chunks) for d in snap.status.documents]  # noqa: E731
    assert held(a) == held(b)
    for level in LEVELS:
        ids = np.arange(a.size(level))
        assert a.size(level) == b.size(level)
        assert np.array_equal(a.rows(level, ids), b.rows(level, ids))
        assert a.terms(level, ids) == b.terms(level, ids)
        assert np.array_equal(a.vectors(level, ids), b.vectors(level, ids))
        if level == UNITS:
            assert all(np.array_equal(x, y) for x, y in zip(a.unit_tokens(ids), b.unit_tokens(ids), strict=True))
        for q in queries:
            weights = {t: 1.0 for t in tokenize(q)}
            same_hits(a.search_lexical(level, weights, 10), b.search_lexical(level, weights, 10))
            for vector in a.vectors(level, ids[:3]):
                same_hits(a.search_dense(level, vector, 5), b.search_dense(level, vector, 5))
    for d in range(len(a.status.documents)):
        assert a.document(d) == b.document(d)


# -- updates answer like a fresh build -------------------------------------------------------------------------

POOL = {
    "bees": "Honey bees live in colonies of up to 60,000 workers. The queen lays about 1,500 eggs a day.\n",
    "bees2": "A bee colony has one queen. The queen lays up to 2,000 eggs on a summer day.\n",
    "etna": "Mount Etna is an active volcano on the east coast of Sicily. It is about 3,357 metres high.\n",
    "etna2": "Mount Etna grew to about 3,400 metres after recent eruptions. Lava flows reach the villages.\n",
    "tea": "Green tea is made from unoxidised leaves of Camellia sinensis.\nBlack tea is oxidised.\n",
    "river": "The Danube flows through ten countries. It is 2,850 kilometres long and ends in a delta.\n",
    "mayor": "In 2017, Jackson elected its own young mayor. He was 34 years old.\nThe city later faced a water crisis.\n",
}
FILES = ("a.txt", "b.md", "notes/c.txt", "d.txt")
QUESTIONS = ["How many eggs does the queen lay?", "How high is Mount Etna?", "What is green tea made from?",
             "How long is the Danube?", "How old was the mayor of Jackson?"]


class CachedEmbedder:
    """The session's real model, remembering each text's vector: a text embedded alone or in another batch gets
    the same vector, so an updated index and a fresh build can be compared exactly (and questions cost one call)."""

    def __init__(self, embedder):
        self._embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}

    def encode(self, texts, batch_size=64, progress=None):
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._embedder.encode(missing, batch_size)))
        if progress:
            progress(len(texts))
        return np.array([self._vectors[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)

    def encode_tokens(self, texts, batch_size=64, progress=None):
        missing = [t for t in dict.fromkeys(texts) if ("tokens", t) not in self._vectors]
        if missing:
            encoded = self._embedder.encode_tokens(missing, batch_size)
            self._vectors.update({("tokens", t): encoded[i : i + 1] for i, t in enumerate(missing)})
        if progress:
            progress(len(texts))
        got = [self._vectors[("tokens", t)] for t in texts]
        vectors = np.array([g.vectors[0] for g in got], dtype=np.float32).reshape(len(texts), -1)
        return Encoded(vectors, [g.tokens[0] for g in got])

    def encode_query_tokens(self, texts):
        key = tuple(texts)
        if key not in self._vectors:
            self._vectors[key] = self._embedder.encode_query_tokens(texts)
        return self._vectors[key]

    def __getattr__(self, name):
        return getattr(self._embedder, name)


#: One commit: for each file, None (leave it), "" (remove it) or the POOL text it gets.
steps = st.lists(st.fixed_dictionaries({f: st.sampled_from([None, None, "", *POOL]) for f in FILES}), min_size=1, max_size=5)


@pytest.fixture(scope="module")
def cached(embedder):
    return CachedEmbedder(embedder)


def apply_history(assistant, history) -> None:
    """Write, change and remove seeds files step by step ("" removes a file), indexing after each step."""
    seeds = assistant.settings.seeds_dir
    for step in history:
        for name, content in step.items():
            if content == "":
                (seeds / name).unlink(missing_ok=True)
            elif content:
                write_corpus(seeds, {name: POOL[content]})
        if not any(seeds.rglob("*.*")):
            write_corpus(seeds, {"a.txt": POOL["river"]})
        assistant.index()
        assert not assistant.staleness()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=steps)
def test_any_sequence_of_updates_answers_exactly_like_a_fresh_build(history, cached):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        updated = make_assistant(tmp / "updated", cached, {"a.txt": POOL["tea"]})
        updated.store = FolderStore(updated.settings.index_dir, max_segments=2)  # merge often
        updated.index()
        seeds = updated.settings.seeds_dir
        apply_history(updated, history)
        fresh = make_assistant(tmp / "fresh", cached, {p.relative_to(seeds).as_posix(): p.read_text() for p in seeds.rglob("*.*")})
        fresh.index()
        assert len(updated.status().index.documents) == len(fresh.status().index.documents)
        same_snapshots(updated.live().snapshot, fresh.live().snapshot, QUESTIONS)
        for question in QUESTIONS:
            assert updated.ask(question).to_dict() == fresh.ask(question).to_dict()


# -- merges -------------------------------------------------------------------------------------------------------


def test_merges_bound_the_segments_and_never_touch_an_unmerged_graph(tmp_path, monkeypatch):
    monkeypatch.setattr(qa.segment, "FLAT_LIMIT", 20)  # the first segment gets HNSW graphs
    rng = np.random.default_rng(1)
    store = FolderStore(tmp_path / "index", max_segments=4)
    docs = {f"doc{i:02d}.txt": random_document(f"doc{i:02d}.txt", rng) for i in range(30)}
    commit(store, docs.values())
    big = next((tmp_path / "index").glob("seg-*"))
    graph = (big / "chunks.faiss").stat()
    assert _is_graph(big / "chunks.faiss")
    for i in range(12):  # one file changed per commit
        source = f"doc{i % 5:02d}.txt"
        docs[source] = random_document(source, rng)
        status = commit(store, [docs[source]])
        assert status.details["segments"] <= 4
        assert big.is_dir() and (big / "chunks.faiss").stat().st_mtime_ns == graph.st_mtime_ns  # never re-linked
    assert len(list((tmp_path / "index").glob("commit-*"))) == 2  # the live commit and the one before it
    fresh = FolderStore(tmp_path / "fresh")
    commit(fresh, docs.values())
    same_snapshots(store.open(KEY), fresh.open(KEY), ["queen bee", "lava etna", "harbour ship ship"])

    for i in range(10, 20):  # a third of the big segment changes: it is rewritten without its deleted rows
        source = f"doc{i:02d}.txt"
        docs[source] = random_document(source, rng)
    status = commit(store, [docs[f"doc{i:02d}.txt"] for i in range(10, 20)], removed=["doc29.txt"])
    del docs["doc29.txt"]
    assert big.name not in _segments(store) and status.details["deleted_share"] < 0.3
    docs["doc00.txt"] = random_document("doc00.txt", rng)
    commit(store, [docs["doc00.txt"]])
    assert not big.exists()  # kept one commit longer, for a reader that had just opened the one before
    fresh = FolderStore(tmp_path / "fresh2")
    commit(fresh, docs.values())
    same_snapshots(store.open(KEY), fresh.open(KEY), ["queen bee", "lava etna", "harbour ship ship"])


def _is_graph(path: Path) -> bool:
    import faiss

    return hasattr(faiss.downcast_index(faiss.read_index(str(path))), "hnsw")


def _segments(store: FolderStore) -> list[str]:
    return [e["name"] for e in json.loads((store.folder / store.commit_id()).read_text())["segments"]]


def test_search_within_chosen_documents(tmp_path):
    rng = np.random.default_rng(2)
    store = FolderStore(tmp_path / "index")
    docs = [random_document(f"d{i}.txt", rng) for i in range(6)]
    commit(store, docs[:3])
    commit(store, docs[3:] + [random_document("d0.txt", rng)])  # d0 changed: its first version is deleted
    snap = store.open(KEY)
    chosen = {"d0.txt", "d4.txt"}
    allowed = {d for d in range(6) if snap.document(d).source in chosen}
    for level in LEVELS:
        vector = snap.vectors(level, [0])[0]
        for hits in (snap.search_dense(level, vector, 50, chosen), snap.search_lexical(level, {t: 1.0 for t in WORDS}, 50, chosen)):
            assert len(hits.ids) and set(snap.rows(level, hits.ids)["document"].tolist()) <= allowed
        every = snap.search_dense(level, vector, 1000)
        assert sorted(every.ids.tolist()) == list(range(snap.size(level)))  # deleted rows are never returned


# -- kill -9 ------------------------------------------------------------------------------------------------------

BUILDER = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_folder_store import KEY, commit, random_document
from qa.folder_store import FolderStore
store = FolderStore(sys.argv[1], max_segments=3)
rng = np.random.default_rng(int(sys.argv[3]))
try:
    live = {d.source: d.sha256 for d in store.status().documents}
except Exception:
    live = {}
for n in range(10_000):
    upserts = [random_document(f"f{i}.txt", rng) for i in rng.choice(12, rng.integers(1, 4), replace=False)]
    removed = [s for s in live if rng.random() < 0.1 and s not in {u.document.source for u in upserts}]
    after = {s: h for s, h in live.items() if s not in removed} | {u.document.source: u.document.sha256 for u in upserts}
    print(json.dumps({"before": live, "after": after}), flush=True)
    commit(store, upserts, removed)
    live = after
"""


def test_kill_9_at_random_points_leaves_the_last_commit_answering(tmp_path):
    index = tmp_path / "index"
    rng = np.random.default_rng(3)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for trial in range(6):
        proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(index), str(ROOT / "tests"), str(trial)], stdout=subprocess.PIPE, text=True, env=env)
        seen = [json.loads(proc.stdout.readline())]  # imports done, the first build under way
        threading.Event().wait(float(rng.uniform(0.05, 1.5)))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        seen += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if not (index / "CURRENT").exists():  # killed before the very first commit
            assert seen[-1]["before"] == {}
            continue
        snap = FolderStore(index).open(KEY)
        live = {d.source: d.sha256 for d in snap.status.documents}
        assert live in (seen[-1]["before"], seen[-1]["after"]), f"trial {trial}: neither the last commit nor the one in flight"
        for level in LEVELS:
            rows = snap.rows(level, np.arange(snap.size(level)))
            for d, a, b in zip(rows["document"].tolist(), rows["start"].tolist(), rows["end"].tolist()):
                assert snap.document(d).text[a:b].strip()
    status = commit(FolderStore(index), [random_document("f0.txt", rng)])
    names = {p.name for p in index.iterdir()}
    assert not any(n.startswith("tmp-") for n in names) and len([n for n in names if n.startswith("commit-")]) == 2
    assert status.documents and FolderStore(index).open(KEY).size(UNITS) > 0


# -- damaged indexes: one line, nothing changed, repaired by the next build ---------------------------------------


def _damage_missing(index: Path, _):
    shutil.rmtree(next(index.glob("seg-*")))


def _damage_truncated(index: Path, _):
    path = next(index.glob("seg-*")) / "units.npy"
    path.write_bytes(path.read_bytes()[:-10])


def _damage_deletions(index: Path, assistant):
    (assistant.settings.seeds_dir / "volcano.txt").write_text("Mount Etna is about 3,400 metres high.\n")
    assistant.index()  # a second segment; the first one's volcano.txt is deleted
    pointer = index / (index / "CURRENT").read_text().strip()
    commit = json.loads(pointer.read_text())
    for entry in commit["segments"]:
        entry["deleted"] = []  # now volcano.txt is live twice
    pointer.write_text(json.dumps(commit))


def _damage_checksums(index: Path, _):
    pointer = index / (index / "CURRENT").read_text().strip()
    commit = json.loads(pointer.read_text())
    for written in commit["segments"][0]["files"].values():
        del written["crc32"]
    pointer.write_text(json.dumps(commit))


def _damage_other_model(index: Path, _):
    other = FolderStore(index.parent / "other")
    rng = np.random.default_rng(0)
    doc = random_document("volcano.txt", rng, dimension=384)
    with other.lock():
        other.update(dict(KEY, model="another/model"), Changes([doc]))
    entry = json.loads((other.folder / other.commit_id()).read_text())["segments"][0]
    shutil.copytree(other.folder / entry["name"], index / entry["name"])
    pointer = index / (index / "CURRENT").read_text().strip()
    commit = json.loads(pointer.read_text())
    commit["segments"].append(entry)
    pointer.write_text(json.dumps(commit))


def test_token_vectors_that_do_not_match_a_segment_s_units_are_refused_when_it_is_read(tmp_path):
    store = FolderStore(tmp_path / "index")
    docs = [random_document(f"{i}.txt", np.random.default_rng(i)) for i in range(3)]
    with store.lock():
        store.update(KEY, Changes(docs))
    path = next(store.folder.glob("seg-*")) / "unit-token-starts.npy"
    np.save(path, np.load(path)[::-1])  # the same size, so the commit's file sizes still match
    with pytest.raises(QAError, match="cannot be read .token vectors that do not match the units.; run `qa index`"):
        FolderStore(store.folder).open(KEY)


@pytest.mark.parametrize("file", ["unit-tokens.npy", "units.faiss", "texts.json"])
def test_a_byte_changed_in_place_is_found_by_the_next_build_which_repairs_it(tmp_path, embedder, file):
    """The size stays, so only the checksum can tell: a build must not call such an index up to date."""
    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    path = next(assistant.settings.index_dir.glob("seg-*")) / file
    data = bytearray(path.read_bytes())
    data[len(data) - 3] ^= 0x01  # inside the data, past every header a reader checks
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=rf"is damaged \({file} is not as written\); run `qa index`"):
        FolderStore(assistant.settings.index_dir).verify()
    report = make_assistant(tmp_path, embedder, files={}).index()
    assert report.full_rebuild == "the previous index is damaged" and report.chunks_embedded == report.chunks
    FolderStore(assistant.settings.index_dir).verify()
    assert make_assistant(tmp_path, embedder, files={}).index().full_rebuild == ""


def _listing(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "damage, words",
    [(_damage_missing, "missing"), (_damage_truncated, "truncated"), (_damage_deletions, "deletions"), (_damage_other_model, "another model"),
     (_damage_checksums, "incomplete")],
)
def test_a_damaged_index_is_one_line_changes_nothing_and_the_next_build_repairs_it(tmp_path, embedder, capsys, damage, words):
    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    index = assistant.settings.index_dir
    damage(index, assistant)
    before = _listing(index)
    capsys.readouterr()
    for argv in (["ask", "How high is Mount Etna?"], ["ask", "--json", "How many eggs does the queen lay?"]):
        assert main([*argv[:1], "--seeds", str(assistant.settings.seeds_dir), "--index", str(index), *argv[1:]]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("qa: ") and words in err[0] and "qa index" in err[0], err
    assert _listing(index) == before
    report = assistant.index()
    assert report.full_rebuild == "the previous index is damaged"
    assert assistant.ask("How high is Mount Etna?").answered


# -- issue 16 item 8: disk full --------------------------------------------------------------------------------------

FULL_DISK = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # no file may grow past 4 kB: the disk is 'full' (EFBIG)
from qa.cli import main
from qa.errors import IndexCorruptError, QAError
sys.exit(main(["index", "--seeds", sys.argv[1], "--index", sys.argv[2]]))
"""


def test_a_full_disk_during_an_update_is_one_line_and_leaves_the_old_index_and_no_files(tmp_path, embedder):
    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    index = assistant.settings.index_dir
    before = _listing(index)
    (assistant.settings.seeds_dir / "volcano.txt").write_text("Mount Etna is 9,999 metres high in this rewrite. " * 30 + "\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(assistant.settings.seeds_dir), str(index)],
                            capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.startswith("qa:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and "could not write the index" in lines[0] and "previous index is unchanged" in lines[0], result.stderr
    after = _listing(index)
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}
    assert "3,357" in make_assistant(tmp_path, embedder, files={}).ask("How high is Mount Etna?").citations[0].context
    assert assistant.index().changed == 1


def test_serve_starts_on_the_old_index_when_the_rebuild_at_start_fails(tmp_path, embedder, monkeypatch, capsys):
    from qa.web import build_first

    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    (assistant.settings.seeds_dir / "volcano.txt").write_text("Mount Etna is 9,999 metres high in this rewrite.\n")

    def disk_full(self, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("qa.lexical.Postings.save", disk_full)
    capsys.readouterr()
    build_first(assistant)
    err = capsys.readouterr().err
    assert "No space left on device" in err and "serving the index built before" in err
    assert "3,357" in assistant.ask("How high is Mount Etna?").citations[0].context
    empty = make_assistant(tmp_path / "never-built", embedder)
    with pytest.raises(QAError, match="No space left on device"):
        build_first(empty)  # nothing to fall back on


# -- issue 16 item 12: the live snapshot after a commit -------------------------------------------------------------


def test_questions_after_a_commit_share_one_load_and_a_commit_during_a_load_is_not_missed(tmp_path, embedder, monkeypatch):
    assistant = make_assistant(tmp_path, embedder)
    assistant.index()
    assistant.ask("How high is Mount Etna?")
    builder = make_assistant(tmp_path, embedder, files={})  # another process building the same index
    volcano = assistant.settings.seeds_dir / "volcano.txt"

    def rebuild(height: str) -> None:
        volcano.write_text(f"Mount Etna is an active volcano. It is about {height} metres high.\n")
        builder.index()

    real_open, opens = assistant.store.open, []

    def counted(key):
        opens.append(key)
        return real_open(key)

    monkeypatch.setattr(assistant.store, "open", counted)
    rebuild("8,888")
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: assistant.ask("How high is Mount Etna?"), range(16)))
    assert len(opens) == 1 and all("8,888" in a.citations[0].context for a in answers)

    def open_while_another_commits(key):
        snapshot = counted(key)
        monkeypatch.setattr(assistant.store, "open", counted)
        rebuild("7,777")  # lands after this load read its commit
        return snapshot

    monkeypatch.setattr(assistant.store, "open", open_while_another_commits)
    rebuild("6,666")
    assert "6,666" in assistant.ask("How high is Mount Etna?").citations[0].context  # what the load read
    assert "7,777" in assistant.ask("How high is Mount Etna?").citations[0].context  # and the next question sees the new one
    assert len(opens) == 3
