"""One measurement per process, so peak memory and model state belong to that measurement alone.

    python bench/worker.py build '{"corpus": "...", "index": "..."}'

Each command prints one JSON object as its last stdout line. Only the standard library is imported at the
top, so each measurement pays for the imports it needs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _assistant(corpus: str, index: str, backend: str = "torch"):
    from qa import Settings
    from qa.assistant import Assistant

    notes: list[str] = []
    assistant = Assistant(Settings(seeds_dir=Path(corpus), index_dir=Path(index), backend=backend), warn=notes.append)
    return assistant, notes


def _raw_encoder(embedder, batch_size: int = 64):
    """The model called directly: sentence-transformers for torch, the onnxruntime session for onnx."""
    model = embedder._model
    if embedder.backend == "torch":
        st = model.st
        return lambda texts: st.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return lambda texts: model.encode(texts, batch_size, embedder.build_threads)


def build(a: dict) -> dict:
    """Index a corpus end to end; the raw encode limit is measured on the build's own batches, interleaved."""
    import numpy as np
    import qa.assistant as qa_assistant
    from measure import Stages, folder_mb, peak_rss_mb
    from qa.assistant import Assistant
    from qa.chunking import Chunker
    import qa.segment
    from qa.embedding import Embedder
    from qa.folder_store import FolderStore
    from qa.lexical import Postings

    assistant, notes = _assistant(a["corpus"], a["index"], a.get("backend", "torch"))
    embedder = assistant.embedder
    t = time.perf_counter()
    embedder.encode_query(["warm up"])
    load_s = time.perf_counter() - t
    raw = _raw_encoder(embedder, assistant.settings.batch_size)
    # subtle: the first full-window batch after a load pays for allocations (~0.8 s here); pay it before
    # timing, or the build's first slice carries it and the raw encode of the same batch, right after, does not
    t = time.perf_counter()
    raw(["warm up " * embedder.window] * assistant.settings.batch_size)
    warm_s = time.perf_counter() - t
    fraction = float(a.get("limit_fraction", 0.25))
    stride = max(1, round(1 / fraction)) if fraction > 0 else 0

    stages = Stages()
    for owner, name, label in (
        (qa_assistant, "load_documents", "read files"),
        (Chunker, "split", "split"),
        (Chunker, "_block_sentences", "split: pysbd"),
        (Chunker, "count_tokens", "split: tiktoken"),
        (Embedder, "word_pieces", "word_pieces"),
        (Embedder, "encode_tokens", "encode"),
        (FolderStore, "update", "store"),
        (qa.segment, "tokenize", "store: bm25 tokenize"),
        (Postings, "build", "store: bm25 index"),
        (qa.segment, "vector_index", "store: faiss"),
    ):
        stages.wrap(owner, name, label)

    state = {"texts": None, "order": None, "prev": 0, "batch": 0, "raw_s": 0.0, "raw_n": 0, "hook_s": 0.0, "hook_cpu": 0.0, "raw_cpu": 0.0, "last": None, "slices": []}
    encode = embedder.encode_tokens  # chunks' and units' calls both go through it, progress counting on across them

    def capture(texts, batch_size=64, progress=None, tokens=True):
        before = state["texts"] or []
        order = np.argsort([-len(t) for t in texts], kind="stable") + len(before)
        state["texts"] = before + list(texts)
        state["order"] = order if state["order"] is None else np.concatenate([state["order"], order])
        state["last"] = time.perf_counter()
        return encode(texts, batch_size, progress, tokens)

    embedder.encode_tokens = capture
    batch = assistant.settings.batch_size

    def progress(done: int, total: int) -> None:
        if not stride or state["order"] is None or done <= state["prev"]:
            return
        t0, c0 = time.perf_counter(), time.process_time()
        slice_s = t0 - state["last"] if state["last"] else None
        raw_before = state["raw_s"]
        span = state["order"][state["prev"] : done]
        state["prev"] = done
        for lo in range(0, len(span), batch):
            b = state["batch"]
            state["batch"] += 1
            if b % stride == (b // stride) % stride:  # one batch in `stride`, at a rotating position
                texts = [state["texts"][i] for i in span[lo : lo + batch]]
                t1, c1 = time.perf_counter(), time.process_time()
                raw(texts)
                state["raw_s"] += time.perf_counter() - t1
                state["raw_cpu"] += time.process_time() - c1
                state["raw_n"] += len(texts)
        if slice_s and stride == 1:
            state["slices"].append(round(slice_s / (state["raw_s"] - raw_before), 2))
        state["last"] = time.perf_counter()
        state["hook_s"] += state["last"] - t0
        state["hook_cpu"] += time.process_time() - c0

    profiler = None
    if a.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t, c = time.perf_counter(), time.process_time()
    report = assistant.index(progress)
    wall = time.perf_counter() - t - state["hook_s"]
    cpu = time.process_time() - c - state["hook_cpu"]
    if profiler:
        profiler.disable()
        _dump_profile(profiler, Path(a["profile"]))

    texts = report.chunks_embedded + report.sentences_embedded
    seconds = stages.report()
    seconds["encode"] = round(seconds.get("encode", 0.0) - state["hook_s"], 3)
    top = [k for k in seconds if ":" not in k]
    seconds["other"] = round(wall - sum(seconds[k] for k in top), 3)
    limit = state["raw_n"] / state["raw_s"] if state["raw_s"] else None
    return {
        "files": report.files,
        "chunks": report.chunks,
        "sentences": report.sentences_embedded,
        "texts": texts,
        "build_s": round(wall, 2),
        "texts_per_s": round(texts / wall, 2),
        "limit_texts_per_s": round(limit, 2) if limit else None,
        "limit_sample": state["raw_n"],
        "slice_vs_raw": state["slices"][:40],
        "ratio": round(texts / wall / limit, 3) if limit else None,
        "cpu_ratio": round((state["raw_cpu"] / state["raw_n"]) / (cpu / texts), 3) if limit else None,
        "encode_only_ratio": round(texts / seconds["encode"] / limit, 3) if limit and seconds["encode"] else None,
        "stages_s": seconds,
        "model_load_s": round(load_s, 2),
        "warm_up_s": round(warm_s, 2),
        "peak_rss_mb": peak_rss_mb(),
        "index_mb": folder_mb(assistant.settings.index_dir),
        "notes": notes,
    }


def answer(a: dict) -> dict:
    """Warm answer latency, each question timed beside one raw encode of the same question."""
    import numpy as np
    from measure import Stages, folder_mb, peak_rss_mb, percentile
    from qa.answering import Extractor
    from qa.assistant import Assistant
    from qa.embedding import Embedder
    from qa.folder_store import FolderSnapshot
    from qa.retrieval import Retriever
    from qa.store import CHUNKS, UNITS

    assistant, notes = _assistant(a["corpus"], a["index"], a.get("backend", "torch"))
    questions = json.loads(Path(a["questions"]).read_text())
    t = time.perf_counter()
    live = assistant.live()
    load_s = time.perf_counter() - t
    raw = _raw_encoder(assistant.embedder)
    for q in questions[:3]:
        assistant.ask(q["q"], q["history"])
        raw([q["q"]])

    stages = Stages()
    for owner, name, label in (
        (Assistant, "live", "live check"),
        (Embedder, "encode_query_tokens", "encode"),
        (Retriever, "search", "search"),
        (FolderSnapshot, "search_dense", "search: dense"),
        (FolderSnapshot, "search_lexical", "search: bm25"),
        (Extractor, "score", "score"),
        (Extractor, "citation", "citations"),
        (Extractor, "passages", "passages"),
    ):
        stages.wrap(owner, name, label)
    profiler = None
    if a.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    asks, raws, answered = [], [], 0
    for _ in range(int(a.get("reps", 2))):
        for q in questions:
            t = time.perf_counter()
            raw([q["q"]])
            raws.append(time.perf_counter() - t)
            if profiler:
                profiler.enable()
            t = time.perf_counter()
            result = assistant.ask(q["q"], q["history"])
            asks.append(time.perf_counter() - t)
            if profiler:
                profiler.disable()
            answered += result.answered
    if profiler:
        _dump_profile(profiler, Path(a["profile"]))
    raw_ms = 1000 * float(np.median(raws))
    cpu_ms = _answer_cpu_ms(assistant, questions)
    out = {
        "chunks": live.snapshot.size(CHUNKS),
        "sentences": live.snapshot.size(UNITS),
        "segments": live.snapshot.status.details["segments"],
        "questions": len(asks),
        "answered": answered,
        "p50_ms": round(1000 * percentile(asks, 50), 2),
        "p95_ms": round(1000 * percentile(asks, 95), 2),
        "raw_question_ms": round(raw_ms, 2),
        "p50_ratio": round(1000 * percentile(asks, 50) / raw_ms, 3),
        "p95_ratio": round(1000 * percentile(asks, 95) / raw_ms, 3),
        "cpu_ms": cpu_ms,
        "stages_ms_per_question": stages.report(per=len(asks)),
        "index_load_s": round(load_s, 2),
        "index_type": _index_type(assistant.settings.index_dir),
        "index_mb": folder_mb(assistant.settings.index_dir),
        "peak_rss_mb": peak_rss_mb(),
        "notes": notes,
    }
    if a.get("recall") and out["index_type"] != "IndexFlatIP":
        out["recall"] = _recall(_largest_graph(assistant.settings.index_dir), assistant.embedder.encode_query([q["q"] for q in questions]))
    return out


def _answer_cpu_ms(assistant, questions: list[dict], rounds: int = 5) -> float:
    """Process CPU ms per answer once the question is encoded (search, scoring, citations): the best of `rounds`
    passes, so time the process spent waiting for a core shared with other work is not counted."""
    from qa.lexical import tokenize
    from qa.retrieval import Query

    live = assistant.live()
    encoded = assistant.embedder.encode_query_tokens([q["q"] for q in questions])
    queries = [(q["q"], Query(v, tokenize(q["q"]), [], tokens=t)) for q, v, t in zip(questions, encoded.vectors, encoded.tokens)]
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for question, query in queries:
            candidates = live.retriever.search(query)
            scored = live.extractor.score(question, query, candidates, keep=3)
            [live.extractor.citation(question, x) for x in scored]
            live.extractor.passages(candidates, 3)
        best = min(best, (time.process_time() - t) * 1000 / len(queries))
    return round(best, 3)


def _downcast(index):
    import faiss

    return faiss.downcast_index(index)


def _largest_graph(index_dir: Path):
    """The chunk vectors of the largest live segment (the one an HNSW graph is built for)."""
    import faiss

    seg = max(_live_segments(index_dir), key=lambda e: e["chunks"])
    return faiss.read_index(str(Path(index_dir) / seg["name"] / "chunks.faiss"))


def _live_segments(index_dir: Path) -> list[dict]:
    index_dir = Path(index_dir)
    return json.loads((index_dir / (index_dir / "CURRENT").read_text().strip()).read_text())["segments"]


def _index_type(index_dir: Path) -> str:
    """Index type of the largest segment's chunk vectors, as the answer path searches it."""
    return type(_downcast(_largest_graph(index_dir))).__name__


def _recall(index, questions, extra: int = 150, seed: int = 1) -> dict:
    """recall@10 and @50 of the approximate index against an exact scan of the same vectors."""
    import faiss
    import numpy as np
    from qa.segment import vectors_of

    index = _downcast(index)
    vectors = vectors_of(index)
    rng = np.random.default_rng(seed)
    noisy = vectors[rng.choice(len(vectors), extra, replace=False)] + 0.0383 * rng.standard_normal((extra, vectors.shape[1]), dtype=np.float32)
    queries = np.ascontiguousarray(np.vstack([questions, noisy / np.linalg.norm(noisy, axis=1, keepdims=True)]), dtype=np.float32)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    _, truth = flat.search(queries, 50)
    _, found = index.search(queries, 50)
    timing = {}
    for name, ix in (("hnsw", index), ("flat", flat)):
        t = time.perf_counter()
        for q in queries[:50]:
            ix.search(q[None, :], 50)
        timing[f"{name}_search_ms"] = round(1000 * (time.perf_counter() - t) / 50, 2)

    def recall(k: int) -> float:
        return round(float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)])), 4)

    return {
        "queries": len(queries),
        "question_queries": len(questions),
        "recall@10": recall(10),
        "recall@50": recall(50),
        "recall@10_questions": round(float(np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found[: len(questions)], truth)])), 4),
        "ef_search": int(index.hnsw.efSearch) if hasattr(index, "hnsw") else None,
        **timing,
    }


def _live_bytes(index_dir: Path) -> int:
    """Bytes of the live commit: its segments' files and the commit itself (not the generation kept before it)."""
    index_dir = Path(index_dir)
    commit = index_dir / (index_dir / "CURRENT").read_text().strip()
    return commit.stat().st_size + sum(f["size"] for e in _live_segments(index_dir) for f in e["files"].values())


def _listing(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_ino, p.stat().st_mtime_ns) for p in Path(folder).rglob("*") if p.is_file()}


def update(a: dict) -> dict:
    """One-file updates of a built index, each timed with the model already loaded (as in `qa serve --watch`):
    `text` added as a new file, then changed; wall time, its stages, and the bytes written against the size of
    the live index."""
    import qa.assistant as qa_assistant
    from measure import Stages
    from qa.embedding import Embedder
    from qa.folder_store import FolderStore

    assistant, notes = _assistant(a["corpus"], a["index"])
    assistant.embedder.encode_query(["warm up"])
    stages = Stages()
    for owner, name, label in ((qa_assistant, "load_documents", "read files"), (Embedder, "encode_tokens", "encode"), (FolderStore, "update", "store")):
        stages.wrap(owner, name, label)
    target = Path(a["corpus"]) / "bench-update.txt"  # the same file at every size: the index size is what varies
    runs = []
    for r in range(int(a.get("rounds", 3))):
        before = _listing(a["index"])
        target.write_text(a["text"] + f"\nThe update benchmark wrote this file for the {r + 1}th time.\n", encoding="utf-8")
        stages.seconds.clear()
        t = time.perf_counter()
        report = assistant.index()
        wall = time.perf_counter() - t
        after = _listing(a["index"])
        written = sum(v[0] for path, v in after.items() if before.get(path) != v)
        runs.append({"update_s": wall, "written": written, "index_bytes": _live_bytes(a["index"]), "texts": report.chunks_embedded + report.sentences_embedded,
                     "stages": dict(stages.seconds), "changed": report.changed, "added": report.added})
    mid = sorted(runs, key=lambda x: x["update_s"])[len(runs) // 2]
    return {
        "file": target.relative_to(a["corpus"]).as_posix(),
        "chunks": report.chunks,
        "rounds": len(runs),
        "update_s": round(mid["update_s"], 3),
        "update_s_all": [round(x["update_s"], 3) for x in runs],
        "texts_embedded": mid["texts"],
        "stages_s": {k: round(v, 3) for k, v in mid["stages"].items()},
        "bytes_written": mid["written"],
        "index_bytes": mid["index_bytes"],
        "written_share": round(mid["written"] / mid["index_bytes"], 5),
        "one_file_each": all(x["changed"] + x["added"] == 1 for x in runs),
        "segments": len(_live_segments(a["index"])),
        "notes": notes[:5],
    }


def segments(a: dict) -> dict:
    """Grow a synthetic index to `count` live segments by one-file commits (synthetic rows, no merging), or
    with `merge` fold every segment into one; returns the segments and the seconds taken."""
    import numpy as np
    import synthetic
    from qa.config import Settings
    from qa.folder_store import FolderStore
    from qa.types import Changes

    index = Path(a["index"])
    key = Settings().index_key()
    t = time.perf_counter()
    if a.get("merge"):
        store = FolderStore(index, max_segments=1)
        with store.lock():
            status = store.update(key, Changes())
    else:
        store = FolderStore(index, max_segments=10**6)
        texts, vectors = synthetic.pool_of(Path(a["pool"]))
        rng = np.random.default_rng(int(a.get("seed", 7)))
        status = store.status()
        while status.details["segments"] < int(a["count"]):
            first = int(rng.integers(len(status.documents)))  # replaces an existing file: its old rows become deleted
            docs = synthetic.documents(synthetic.ROWS_PER_DOCUMENT, texts, vectors, Path(a["corpus"]), rng, first=first)
            with store.lock():
                status = store.update(key, Changes(docs))
    seconds = time.perf_counter() - t
    return {"segments": status.details["segments"], "deleted_share": status.details["deleted_share"], "seconds": round(seconds, 1),
            "recall@10": _snapshot_recall(FolderStore(index).open(key))}


def _snapshot_recall(snap, queries: int = 200, seed: int = 1) -> float:
    """recall@10 of the snapshot's chunk search (every live segment, deleted rows skipped) against an exact scan
    of its live vectors, for noisy copies of random live chunks."""
    import numpy as np
    from qa.store import CHUNKS

    vectors = snap.vectors(CHUNKS, np.arange(snap.size(CHUNKS)))
    rng = np.random.default_rng(seed)
    q = vectors[rng.choice(len(vectors), queries, replace=False)] + 0.0383 * rng.standard_normal((queries, vectors.shape[1]), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.argsort(-(q @ vectors.T), axis=1)[:, :10]
    found = [snap.search_dense(CHUNKS, x, 10).ids for x in q]
    return round(float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)])), 4)


def synth(a: dict) -> dict:
    import synthetic
    from measure import peak_rss_mb

    out = synthetic.build(int(a["rows"]), Path(a["pool"]), Path(a["index"]))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def alone(a: dict) -> dict:
    """Answers per second of one process asking one question after another, nothing else running."""
    assistant, _ = _assistant(a["corpus"], a["index"])
    questions = json.loads(Path(a["questions"]).read_text())
    for q in questions[:3]:
        assistant.ask(q["q"], q["history"])
    n, t, deadline = 0, time.perf_counter(), time.perf_counter() + float(a.get("seconds", 15))
    while time.perf_counter() < deadline:
        q = questions[n % len(questions)]
        assistant.ask(q["q"], q["history"])
        n += 1
    return {"answers": n, "answers_per_s": round(n / (time.perf_counter() - t), 2)}


def web_serve(a: dict) -> dict:
    """Serve the chat on loopback until stdin closes; the first JSON line says where."""
    from measure import peak_rss_mb

    try:
        import qa.web as web
    except ImportError as e:
        return {"skipped": f"qa.web cannot be imported ({e})"}
    if not hasattr(web, "build_app"):
        return {"skipped": "qa/web.py has no build_app(assistant)"}
    assistant, _ = _assistant(a["corpus"], a["index"])
    assistant.ask("warm up")
    app = web.build_app(assistant)
    if hasattr(web, "launch"):
        url, _ = web.launch(app, "127.0.0.1", int(a["port"]))
    else:
        _, url, _ = app.queue().launch(server_name="127.0.0.1", server_port=int(a["port"]), prevent_thread_lock=True, quiet=True)
    print(json.dumps({"url": url, "concurrency": assistant.settings.ask_concurrency}), flush=True)
    cpu = os.times()
    sys.stdin.read()
    used = os.times()
    app.close()
    calls = getattr(getattr(assistant.embedder, "queries", None), "calls", None)  # model calls, batches included
    return {"peak_rss_mb": peak_rss_mb(), "cpu_s": round(used.user + used.system - cpu.user - cpu.system, 1), "model_calls": calls}


def web_load(a: dict) -> dict:
    """`users` gradio_client users, each with its own client, asking one question after another until time is up."""
    from measure import ask_load, percentile

    questions = json.loads(Path(a["questions"]).read_text())
    users, seconds = int(a.get("users", 20)), float(a.get("seconds", 60))
    run = ask_load([a["url"]], users, seconds, questions, timeout=60)
    latencies, answers = run["latencies"], len(run["latencies"])
    return {
        "users": users,
        "seconds": round(run["seconds"], 1),
        "answers": answers,
        "answers_per_s": round(answers / run["seconds"], 2),
        "p50_ms": round(1000 * percentile(latencies, 50), 1),
        "p95_ms": round(1000 * percentile(latencies, 95), 1),
        "client_cpu_ms_per_answer": round(1000 * run["cpu_seconds"] / max(1, answers), 1),
        "errors": len(run["errors"]),
        "error_samples": sorted(set(run["errors"]))[:3],
    }


def backends(a: dict) -> dict:
    """torch vs onnx: raw speed on the same texts (alternating rounds), cosine agreement, answer quality."""
    import numpy as np
    from qa.config import Settings
    from qa.embedding import Embedder
    from qa.folder_store import FolderStore
    from qa.store import CHUNKS, UNITS

    snap = FolderStore(Path(a["index"])).open(Settings().index_key())
    rng = np.random.default_rng(0)

    def texts_of(level: str, count: int) -> list[str]:
        rows = snap.rows(level, rng.permutation(snap.size(level))[:count])
        return [snap.document(int(r["document"])).text[r["start"] : r["end"]] for r in rows]

    chunks = texts_of(CHUNKS, a.get("chunks", 256))
    sentences = texts_of(UNITS, a.get("sentences", 1024))
    questions = [q["q"] for q in json.loads(Path(a["questions"]).read_text())]
    models = {}
    for name in ("torch", "onnx"):
        t = time.perf_counter()
        models[name] = Embedder(backend=name)
        models[name].encode_query(["warm up"])
        models[name] = (models[name], round(time.perf_counter() - t, 2))
    rates: dict[str, list[float]] = {}
    for _ in range(int(a.get("rounds", 3))):
        for kind, texts in (("chunks", chunks), ("sentences", sentences)):
            for name, (e, _) in models.items():
                t = time.perf_counter()
                e.encode(texts)
                rates.setdefault(f"{name} {kind}", []).append(len(texts) / (time.perf_counter() - t))
    q_ms: dict[str, list[float]] = {}
    for q in questions * 2:
        for name, (e, _) in models.items():
            t = time.perf_counter()
            e.encode_query([q])
            q_ms.setdefault(name, []).append(1000 * (time.perf_counter() - t))
    texts = chunks + sentences + questions
    cos = np.sum(models["torch"][0].encode(texts) * models["onnx"][0].encode(texts), axis=1)
    out = {
        "texts_per_s": {k: round(float(np.median(v)), 1) for k, v in rates.items()},
        "question_ms": {k: round(float(np.median(v)), 2) for k, v in q_ms.items()},
        "load_s": {k: v[1] for k, v in models.items()},
        "cosine": {"min": round(float(cos.min()), 4), "p01": round(float(np.percentile(cos, 1)), 4), "mean": round(float(cos.mean()), 5), "texts": len(texts)},
    }
    out["speedup"] = {k: round(out["texts_per_s"][f"onnx {k}"] / out["texts_per_s"][f"torch {k}"], 2) for k in ("chunks", "sentences")}
    out["speedup"]["question"] = round(out["question_ms"]["torch"] / out["question_ms"]["onnx"], 2)
    if a.get("quality"):
        out["quality"] = _quality(Path(a["work"]), {k: v[0] for k, v in models.items()}, a)
    return out


def _quality(work: Path, models: dict, a: dict) -> list[dict]:
    """`qa eval` rows for each backend: seeds_dev on the seeds, and a SQuAD sample, same questions for both."""
    from qa import Settings
    from qa import evaluation
    from qa.assistant import Assistant

    shared = Path(a["shared"])
    rows = []
    for name, embedder in models.items():
        for label, files in (("seeds_dev", [shared / "eval" / "seeds_dev.jsonl"]), ("squad", sorted((shared / "eval").glob("squad-*.json")))):
            root = work / f"quality-{name}-{label}"
            if label == "squad":
                (root / "seeds").mkdir(parents=True, exist_ok=True)
                questions = evaluation.sample(evaluation.load_squad(files, root / "seeds"), int(a.get("squad_limit", 300)))
                seeds = root / "seeds"
            else:
                questions = [q for f in files for q in evaluation.load_jsonl(f)]
                seeds = shared / "seeds"
            assistant = Assistant(Settings(seeds_dir=seeds, index_dir=root / "index", backend=name), warn=lambda m: None)
            assistant.embedder = embedder  # the model loaded for the speed rounds
            t = time.perf_counter()
            assistant.index()
            build_s = time.perf_counter() - t
            row = evaluation.evaluate(assistant, questions, "qa").row()
            rows.append({"backend": name, "set": label, "build_s": round(build_s, 1), **row})
    return rows


def _dump_profile(profiler, path: Path) -> None:
    import io
    import pstats

    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(path))
    for sort in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats(sort).print_stats(35)
        path.with_suffix(f".{sort}.txt").write_text(buffer.getvalue())


COMMANDS = {
    "build": build,
    "answer": answer,
    "synth": synth,
    "update": update,
    "segments": segments,
    "alone": alone,
    "web-serve": web_serve,
    "web-load": web_load,
    "backends": backends,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: worker.py {{{','.join(COMMANDS)}}} JSON")
    result = COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))
    print(json.dumps(result), flush=True)
