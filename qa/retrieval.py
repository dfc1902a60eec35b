"""Retriever: a question's vector and terms -> candidate units with their passage, ranked by fused evidence.

Dense and BM25 search run at two levels of the index snapshot, chunks and units, and are fused by reciprocal
rank; the units of the best chunks, plus the best units found directly, become the candidates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .store import CHUNKS, UNITS, Snapshot

#: Reciprocal-rank-fusion constant; 60 is the value of the original paper and the common default.
RRF_K = 60


@dataclass(frozen=True)
class Query:
    """A question ready for search: unit vector, BM25 terms, and the terms of earlier turns, which count
    `history_weight` as much. `sources`, when set, restricts the search to those files. `tokens` are the
    question's own token vectors (int8 rows, embedding.token_rows), for the answerer's token match; None for
    a search that ranks units by one signal alone."""

    vector: np.ndarray
    terms: list[str]
    history_terms: list[str]
    history_weight: float = 0.5
    sources: frozenset[str] | None = None
    tokens: np.ndarray | None = None

    def weights(self) -> dict[str, float]:
        """Each term's multiplier in the BM25 sum: how often the question says it, plus the history's share."""
        weights = {t: float(n) for t, n in Counter(self.terms).items()}
        for t, n in Counter(self.history_terms).items():
            weights[t] = weights.get(t, 0.0) + self.history_weight * n
        return weights


@dataclass(frozen=True)
class Candidates:
    """Candidate answer units (snapshot unit ids) with the retrieval evidence for each."""

    sentences: np.ndarray
    chunks: np.ndarray  # for each candidate: its best containing chunk
    sentence_dense: np.ndarray
    chunk_dense: np.ndarray
    chunk_rank: np.ndarray  # fused rank of that chunk (0 = best), len(chunks) when not retrieved
    ranked_chunks: np.ndarray  # fused order of the retrieved chunks, best first


def _rrf(*rankings: np.ndarray) -> np.ndarray:
    """Ids in fused order: each list adds 1 / (RRF_K + rank)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, i in enumerate(ranking.tolist()):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return np.array(sorted(fused, key=lambda i: -fused[i]), dtype=np.int64)


class Retriever:
    """Searches one index snapshot; cheap to build, so a new commit gets a new Retriever.

    `depth` hits are fused per level; the units of the best `passages` chunks and the best `direct` units
    found on their own become the candidates.
    """

    def __init__(self, snapshot: Snapshot, depth: int, passages: int, direct: int):
        self.snapshot = snapshot
        self.depth = depth
        self.passages = passages
        self.direct = direct

    def _fused(self, level: str, query: Query, dense_k: int, lexical_k: int) -> np.ndarray:
        snap = self.snapshot
        dense = snap.search_dense(level, query.vector, dense_k, query.sources).ids
        lexical = snap.search_lexical(level, query.weights(), self.depth, query.sources).ids[:lexical_k]
        return _rrf(dense, lexical)

    def search(self, query: Query) -> Candidates:
        snap = self.snapshot
        chunk_order = self._fused(CHUNKS, query, self.depth, self.depth)
        top_chunks = chunk_order[: self.passages]
        direct = self._fused(UNITS, query, self.direct, self.direct)
        spans = snap.rows(CHUNKS, top_chunks)
        from_chunks = [s for first, last in zip(spans["first"].tolist(), spans["last"].tolist()) for s in range(first, last)]
        sentences = np.array(sorted(set(from_chunks) | set(direct.tolist())), dtype=np.int64)

        rank_of = {int(c): r for r, c in enumerate(chunk_order)}
        best_chunk = np.empty(len(sentences), dtype=np.int64)
        chunk_rank = np.empty(len(sentences), dtype=np.int64)
        for i, holders in enumerate(snap.containing_chunks(sentences)):
            best = min(holders, key=lambda c: rank_of.get(c, len(chunk_order) + c))
            best_chunk[i] = best
            chunk_rank[i] = rank_of.get(best, len(chunk_order))
        sentence_dense = snap.vectors(UNITS, sentences) @ query.vector if len(sentences) else np.zeros(0)
        chunk_dense = snap.vectors(CHUNKS, best_chunk) @ query.vector if len(sentences) else np.zeros(0)
        return Candidates(sentences, best_chunk, sentence_dense, chunk_dense, chunk_rank, top_chunks)

    def single_signal(self, method: str, query: Query, k: int) -> list[tuple[int, int]]:
        """(unit, chunk) of the best k units by one signal alone, the baselines of `qa eval`: "bm25" over units,
        "dense" over units, or "chunks": the nearest chunk, then its units by their own vectors."""
        snap = self.snapshot
        if method == "bm25":
            units = snap.search_lexical(UNITS, query.weights(), k, query.sources).ids
        elif method == "dense":
            units = snap.search_dense(UNITS, query.vector, k, query.sources).ids
        else:
            best = snap.search_dense(CHUNKS, query.vector, 1, query.sources).ids
            if not len(best):
                return []
            row = snap.rows(CHUNKS, best)[0]
            inside = np.arange(row["first"], row["last"])
            units = inside[np.argsort(-(snap.vectors(UNITS, inside) @ query.vector))][:k]
        return [(int(u), holders[0]) for u, holders in zip(units.tolist(), snap.containing_chunks(units))]
