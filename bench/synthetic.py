"""A qa index of N chunks without encoding N texts: real chunk texts and vectors, copied and perturbed.

Embedding 10^6 chunks (and their ~6x10^6 sentences) would take about a day on a 2-core machine, yet search, retrieval and answer selection
only need records, BM25 statistics and vectors of the right count. So row i is a chunk of a real build
(texts cycled in a shuffled order), its vector that chunk's vector plus Gaussian noise (cosine ~0.8 to it),
renormalised. Simplification, said in the table: each synthetic chunk is also its own single unit, so the unit
level holds N rows (a real corpus has ~6 units per chunk) with the chunk's vector, and TOKENS_PER_UNIT token
vectors (the row's vector, each with noise of its own). The documents are written
as files too (seeds/ beside the index), so a one-file update of a synthetic index is a real `qa index`.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

#: Bump when the way rows are made changes, so cached synthetic indexes are rebuilt.
VERSION = 3
#: Noise per dimension: |noise|^2 ~ 384 * SIGMA^2 = 0.56, so a copy keeps cosine ~0.8 to its original.
SIGMA = 0.0383
ROWS_PER_DOCUMENT = 50
#: Token vectors a synthetic unit stores: a dev unit has 10.6 content word pieces on average.
TOKENS_PER_UNIT = 11


def token_vectors(vectors: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """TOKENS_PER_UNIT int8 token rows per vector: it plus noise, so the index holds and reads what a real one does."""
    from qa.embedding import token_rows

    d = vectors.shape[1]
    return [token_rows(v + 2 * SIGMA * rng.standard_normal((TOKENS_PER_UNIT, d), dtype=np.float32)) for v in vectors]


def cache_key(n: int, pool_texts: list[str], sigma: float = SIGMA) -> str:
    """Changes when the pool, the row recipe, or the index code (store, segments, lexical) changes."""
    import qa.folder_store
    import qa.lexical
    import qa.segment

    h = hashlib.sha256(f"{VERSION} {n} {sigma} {qa.segment.FLAT_LIMIT}".encode())
    for module in (qa.folder_store, qa.segment, qa.lexical):
        h.update(Path(module.__file__).read_bytes())
    for text in pool_texts:
        h.update(text.encode())
    return h.hexdigest()[:16]


def pool_of(index_dir: Path) -> tuple[list[str], np.ndarray]:
    """Chunk texts and vectors of a built index."""
    from qa.config import Settings
    from qa.folder_store import FolderStore
    from qa.store import CHUNKS

    snap = FolderStore(index_dir).open(Settings().index_key())
    ids = np.arange(snap.size(CHUNKS))
    rows = snap.rows(CHUNKS, ids)
    texts = [snap.document(int(r["document"])).text[r["start"] : r["end"]] for r in rows]
    return texts, snap.vectors(CHUNKS, ids)


def documents(n: int, texts: list[str], vectors: np.ndarray, seeds: Path, rng: np.random.Generator, sigma: float = SIGMA, first: int = 0):
    """IndexedDocuments of `n` synthetic rows (ROWS_PER_DOCUMENT a file, files numbered from `first`), written
    into `seeds` as files."""
    from qa.types import Chunk, Document, IndexedDocument, Sentence

    pick = np.concatenate([rng.permutation(len(texts)) for _ in range(-(-n // len(texts)))])[:n]
    out = []
    for d, lo in enumerate(range(0, n, ROWS_PER_DOCUMENT)):
        rows = pick[lo : lo + ROWS_PER_DOCUMENT]
        text = "\n".join(texts[j] for j in rows.tolist())
        units, chunks, cursor = [], [], 0
        for i, j in enumerate(rows.tolist()):
            units.append(Sentence(cursor, cursor + len(texts[j]), texts[j]))
            chunks.append(Chunk(cursor, cursor + len(texts[j]), texts[j], i, i + 1))
            cursor += len(texts[j]) + 1
        noisy = vectors[rows] + sigma * rng.standard_normal((len(rows), vectors.shape[1]), dtype=np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        path = seeds / "synthetic" / f"{first + d:06d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        stat = path.stat()
        doc = Document(f"synthetic/{first + d:06d}.txt", text, hashlib.sha256(text.encode()).hexdigest())
        out.append(IndexedDocument(doc, stat.st_size, stat.st_mtime_ns, units, chunks, noisy, noisy, token_vectors(noisy, rng)))
    return out


def build(n: int, pool_dir: Path, out_dir: Path, sigma: float = SIGMA, seed: int = 0) -> dict:
    """Write a synthetic index of `n` chunks into `out_dir`, its documents into `out_dir/../seeds`; returns timings."""
    from qa.config import Settings
    from qa.folder_store import FolderStore
    from qa.types import Changes

    started = time.perf_counter()
    texts, vectors = pool_of(pool_dir)
    docs = documents(n, texts, vectors, out_dir.parent / "seeds", np.random.default_rng(seed), sigma)
    records_s = time.perf_counter() - started
    t = time.perf_counter()
    store = FolderStore(out_dir)
    with store.lock():
        status = store.update(Settings().index_key(), Changes(docs, rebuild=True))
    return {
        "rows": n,
        "pool": len(texts),
        "files": len(status.documents),
        "records_s": round(records_s, 1),
        "store_s": round(time.perf_counter() - t, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
