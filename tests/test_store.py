"""The vector index type follows the corpus size; a large-corpus (HNSW) index answers like the exact one."""

import numpy as np

import qa.store
from qa.store import BuildFolder, vector_index, vectors_of
from conftest import make_assistant


def test_hnsw_beyond_the_flat_limit_finds_the_exact_neighbours(monkeypatch):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3_000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    monkeypatch.setattr(qa.store, "FLAT_LIMIT", 1_000)
    hnsw, flat = vector_index(vectors), vector_index(vectors[:1_000])
    assert hasattr(hnsw, "hnsw") and hnsw.hnsw.efSearch == qa.store.ef_search(3_000) and not hasattr(flat, "hnsw")
    assert np.array_equal(vectors_of(hnsw), vectors)
    queries = vectors[:50] + 0.05 * rng.standard_normal((50, 384)).astype(np.float32)
    _, found = hnsw.search(queries, 10)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.99


def test_an_hnsw_index_is_saved_loaded_and_answers_like_a_flat_one(tmp_path, embedder, monkeypatch):
    flat = make_assistant(tmp_path / "flat", embedder)
    flat.index()
    monkeypatch.setattr(qa.store, "FLAT_LIMIT", 2)
    hnsw = make_assistant(tmp_path / "hnsw", embedder)
    hnsw.index()
    loaded = BuildFolder(hnsw.settings.index_dir).load(hnsw.settings.index_key())
    assert loaded.sentence_index.hnsw.efSearch == qa.store.ef_search(loaded.sentence_index.ntotal)
    assert np.allclose(loaded.sentence_vectors, flat.live().data.sentence_vectors, atol=1e-6)
    for question in ("How many eggs does the queen lay?", "How high is Mount Etna?", "Who is the mayor of Jackson?"):
        a, b = flat.ask(question), hnsw.ask(question)
        assert [(c.source, c.start, c.end) for c in a.citations] == [(c.source, c.start, c.end) for c in b.citations]
