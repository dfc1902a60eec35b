"""A qa index of N chunks without encoding N texts: real chunk texts and vectors, copied and perturbed.

Embedding 10^6 chunks (and their ~6x10^6 sentences) would take about a day on a 2-core machine, yet search, retrieval and answer selection
only need records, BM25 statistics and vectors of the right count. So row i is a chunk of a real build
(texts cycled in a shuffled order), its vector that chunk's vector plus Gaussian noise (cosine ~0.8 to it),
renormalised. Simplification, said in the table: each synthetic chunk is also its own single sentence, so
the sentence level holds N rows (a real corpus has ~6 sentences per chunk) and shares the chunk level's
FAISS index and BM25 model. The vector index is the product's own `vector_index`, so FLAT_LIMIT applies.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

#: Bump when the way rows are made changes, so cached synthetic indexes are rebuilt.
VERSION = 1
#: Noise per dimension: |noise|^2 ~ 384 * SIGMA^2 = 0.56, so a copy keeps cosine ~0.8 to its original.
SIGMA = 0.0383
ROWS_PER_DOCUMENT = 50


def cache_key(n: int, pool_texts: list[str], sigma: float = SIGMA) -> str:
    """Changes when the pool, the row recipe, or the index code (store, lexical) changes."""
    import qa.lexical
    import qa.store

    h = hashlib.sha256(f"{VERSION} {n} {sigma} {qa.store.FLAT_LIMIT}".encode())
    for module in (qa.store, qa.lexical):
        h.update(Path(module.__file__).read_bytes())
    for text in pool_texts:
        h.update(text.encode())
    return h.hexdigest()[:16]


def pool_of(index_dir: Path) -> tuple[list[str], np.ndarray]:
    """Chunk texts and vectors of a built index."""
    from qa.store import BuildFolder

    data = BuildFolder(index_dir).load()
    texts = [data.documents[d].text[a:b] for d, a, b, _, _ in data.chunks.tolist()]
    return texts, np.array(data.chunk_vectors, copy=True)


def build(n: int, pool_dir: Path, out_dir: Path, sigma: float = SIGMA, seed: int = 0) -> dict:
    """Write a synthetic index of `n` chunks into `out_dir` (a qa index folder); returns timings."""
    from qa.config import Settings
    from qa.lexical import Bm25, tokenize
    from qa.store import BuildFolder, IndexData, vector_index
    from qa.types import Document

    started = time.perf_counter()
    texts, vectors = pool_of(pool_dir)
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.permutation(len(texts)) for _ in range(-(-n // len(texts)))])[:n]

    documents, rows = [], []
    for d, lo in enumerate(range(0, n, ROWS_PER_DOCUMENT)):
        parts, cursor = [], 0
        for j in pick[lo : lo + ROWS_PER_DOCUMENT].tolist():
            rows.append((d, cursor, cursor + len(texts[j])))
            parts.append(texts[j])
            cursor += len(texts[j]) + 1
        text = "\n".join(parts)
        documents.append(Document(f"synthetic/{d:06d}.txt", text, hashlib.sha256(text.encode()).hexdigest()))
    sentences = np.array(rows, dtype=np.int64)
    chunks = np.column_stack([sentences, np.arange(n), np.arange(n) + 1]).astype(np.int64)

    out = np.empty((n, vectors.shape[1]), dtype=np.float32)
    for lo in range(0, n, 100_000):
        block = vectors[pick[lo : lo + 100_000]] + sigma * rng.standard_normal((min(100_000, n - lo), vectors.shape[1]), dtype=np.float32)
        out[lo : lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    records_s = time.perf_counter() - started

    t = time.perf_counter()
    index = vector_index(out)
    faiss_s = time.perf_counter() - t
    t = time.perf_counter()
    terms = [tokenize(t) for t in texts]  # copies share their original's list: 10^6 rows fit in memory
    bm25 = Bm25.build([terms[j] for j in pick.tolist()])
    bm25_s = time.perf_counter() - t

    data = IndexData(
        manifest={
            "settings": Settings().index_key(),
            "dimension": int(out.shape[1]),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": {},
            "skipped": {},
            "counts": {"files": len(documents), "chunks": n, "sentences": n},
            "synthetic": {"rows": n, "pool": len(texts), "sigma": sigma, "seed": seed},
        },
        documents=documents,
        sentences=sentences,
        chunks=chunks,
        sentence_index=index,
        chunk_index=index,
        sentence_bm25=bm25,
        chunk_bm25=bm25,
    )
    t = time.perf_counter()
    BuildFolder(out_dir).save(data)
    save_s = time.perf_counter() - t
    return {
        "rows": n,
        "pool": len(texts),
        "records_s": round(records_s, 1),
        "faiss_s": round(faiss_s, 1),
        "bm25_s": round(bm25_s, 1),
        "save_s": round(save_s, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "index_type": type(index).__name__,
    }
