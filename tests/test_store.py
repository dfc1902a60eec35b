"""The vector index type follows the segment size; a large (HNSW) segment answers like the exact one."""

import numpy as np

import qa.segment
from qa.folder_store import FolderStore
from qa.segment import vector_index, vectors_of
from qa.store import UNITS
from conftest import make_assistant


def test_hnsw_beyond_the_flat_limit_finds_the_exact_neighbours(monkeypatch):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3_000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    monkeypatch.setattr(qa.segment, "FLAT_LIMIT", 1_000)
    hnsw, flat = vector_index(vectors), vector_index(vectors[:1_000])
    assert hasattr(hnsw, "hnsw") and not hasattr(flat, "hnsw")
    assert np.array_equal(vectors_of(hnsw), vectors)
    queries = vectors[:50] + 0.05 * rng.standard_normal((50, 384)).astype(np.float32)
    found = np.array([qa.segment.search(hnsw, q, 10)[0] for q in queries])
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.99


def test_an_hnsw_index_is_saved_loaded_and_answers_like_a_flat_one(tmp_path, embedder, monkeypatch):
    flat = make_assistant(tmp_path / "flat", embedder)
    flat.index()
    monkeypatch.setattr(qa.segment, "FLAT_LIMIT", 2)
    hnsw = make_assistant(tmp_path / "hnsw", embedder)
    hnsw.index()
    loaded = FolderStore(hnsw.settings.index_dir).open(hnsw.settings.index_key())
    import faiss

    assert hasattr(faiss.downcast_index(faiss.read_index(str(next(hnsw.settings.index_dir.glob("seg-*")) / "units.faiss"))), "hnsw")
    ids = np.arange(loaded.size(UNITS))
    assert np.allclose(loaded.vectors(UNITS, ids), flat.live().snapshot.vectors(UNITS, ids), atol=1e-6)
    for question in ("How many eggs does the queen lay?", "How high is Mount Etna?", "Who is the mayor of Jackson?"):
        a, b = flat.ask(question), hnsw.ask(question)
        assert [(c.source, c.start, c.end) for c in a.citations] == [(c.source, c.start, c.end) for c in b.citations]
