"""Lexical side of retrieval: one tokenizer for documents and questions, and BM25 over it.

A segment of the index keeps `Postings`: raw term frequencies and text lengths, not scores, so BM25 is scored at
query time with the statistics of every live segment (`LiveBm25`): the number of live texts, each term's live
document frequency, the live average length. The scores are the ones bm25s gives a single index of the same
texts (its defaults: method "lucene", k1 1.5, b 0.75), whatever the segments, deletions and merges.
"""

from __future__ import annotations

import re
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

#: bm25s's defaults, which qa used before it scored BM25 itself: term-frequency saturation and length normalisation.
K1, B = 1.5, 0.75

_WORD = re.compile(r"\w+(?:[.,'’]\w+)*")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """BM25's stop words (bm25s's English list): never indexed, never a content token."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def term_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, term) of every word BM25 indexes: `tokenize` with the offsets kept, one stemmer call per text."""
    stop = stopwords()
    kept = [(m.start(), m.end(), w) for m in _WORD.finditer(text) if (w := m.group().lower().replace("’", "'")) not in stop]
    stems = _stemmer().stemWords([w for _, _, w in kept])
    return [(a, b, t) for (a, b, _), t in zip(kept, stems)]


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words dropped, stemmed: "The mayors elected" -> ['mayor', 'elect']."""
    return [t for _, _, t in term_spans(text)]


def idf(df, n):
    """BM25 idf, Lucene's variant (never negative): log(1 + (n - df + 0.5) / (df + 0.5))."""
    return np.log(1.0 + (n - np.asarray(df, dtype=np.float64) + 0.5) / (np.asarray(df, dtype=np.float64) + 0.5))


_ARRAYS = ("indptr", "rows", "tf", "lengths", "row_start", "row_terms")


class Postings:
    """The lexical index of one segment's texts, column per term (CSC, as bm25s lays it out):
    term t is in texts rows[indptr[t]:indptr[t+1]] (ascending, each once), tf[...] times;
    text i has `lengths[i]` tokens and distinct term ids row_terms[row_start[i]:row_start[i+1]] (ascending).
    """

    def __init__(self, vocab: list[str], indptr, rows, tf, lengths, row_start, row_terms):
        self.vocab = vocab
        self.indptr, self.rows, self.tf = indptr, rows, tf
        self.lengths, self.row_start, self.row_terms = lengths, row_start, row_terms

    @cached_property
    def ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.vocab)}

    @cached_property
    def terms_array(self) -> np.ndarray:
        """The vocabulary as an object array, so a text's terms are one gather."""
        return np.array(self.vocab, dtype=object)

    @property
    def texts(self) -> int:
        return len(self.lengths)

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> "Postings":
        ids: dict[str, int] = {}
        terms = np.fromiter((ids.setdefault(t, len(ids)) for tokens in token_lists for t in tokens), dtype=np.int64)
        lengths = np.fromiter((len(tokens) for tokens in token_lists), dtype=np.int64, count=len(token_lists))
        rows = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
        return cls._from_triples(list(ids), terms, rows, np.ones(len(terms), dtype=np.int64), lengths)

    @classmethod
    def _from_triples(cls, vocab: list[str], terms: np.ndarray, rows: np.ndarray, counts: np.ndarray, lengths: np.ndarray) -> "Postings":
        """From (term, row, count) triples, a (term, row) pair possibly repeated: counts are summed."""
        n, v = len(lengths), len(vocab)
        keys, inverse = np.unique(terms * max(n, 1) + rows, return_inverse=True)
        tf = np.bincount(inverse, weights=counts, minlength=len(keys)).astype(np.int32)
        col, row = keys // max(n, 1), keys % max(n, 1)
        indptr = np.searchsorted(col, np.arange(v + 1)).astype(np.int64)
        by_row = np.lexsort((col, row))
        row_start = np.searchsorted(row[by_row], np.arange(n + 1)).astype(np.int64)
        return cls(vocab, indptr, row.astype(np.int32), tf, lengths.astype(np.int32), row_start, col[by_row].astype(np.int32))

    @classmethod
    def take(cls, parts: list[tuple["Postings", np.ndarray]], size: int) -> "Postings":
        """A new index of `size` texts taken from parts (a merge): each part's array gives the new number of each
        of its texts, -1 for a text left out."""
        vocab: dict[str, int] = {}
        terms, rows, counts = [], [], []
        lengths = np.zeros(size, dtype=np.int64)
        for postings, new_row in parts:
            col = np.repeat(np.arange(len(postings.vocab), dtype=np.int64), np.diff(postings.indptr))
            mapped = new_row[postings.rows]
            live = mapped >= 0
            used = np.unique(col[live])
            remap = np.full(len(postings.vocab), -1, dtype=np.int64)
            remap[used] = [vocab.setdefault(postings.vocab[t], len(vocab)) for t in used.tolist()]
            terms.append(remap[col[live]])
            rows.append(mapped[live])
            counts.append(postings.tf[live].astype(np.int64))
            kept = new_row >= 0
            lengths[new_row[kept]] = postings.lengths[kept]
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)  # noqa: E731
        return cls._from_triples(list(vocab), cat(terms), cat(rows), cat(counts), lengths)

    def save(self, folder: Path) -> list[Path]:
        """Write the arrays and the vocabulary into `folder`; returns the files written."""
        import json

        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
            written.append(folder / f"{name}.npy")
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        return [*written, folder / "vocab.json"]

    @classmethod
    def load(cls, folder: Path) -> "Postings":
        import json

        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        arrays = [np.load(folder / f"{name}.npy") for name in _ARRAYS]
        postings = cls(vocab, *arrays)
        sizes = (len(postings.indptr) - 1, postings.indptr[-1], len(postings.tf), len(postings.row_start) - 1, postings.row_start[-1])
        if sizes != (len(vocab), len(postings.rows), len(postings.rows), postings.texts, len(postings.row_terms)):
            raise ValueError("postings of different lengths")
        return postings


class LiveBm25:
    """BM25 over the live texts of several segments, numbered by the snapshot: `live[i]` maps part i's texts to
    snapshot ids (-1 for a deleted text). Deleted texts count in no statistic and get no score."""

    def __init__(self, parts: list[Postings], live: list[np.ndarray], size: int):
        self.size = size
        self._parts = parts
        #: snapshot id -> (part, text number in it), for `terms`
        self._part_of, self._local = np.zeros(size, dtype=np.int32), np.zeros(size, dtype=np.int64)
        for i, ids in enumerate(live):
            alive = np.flatnonzero(ids >= 0)
            self._part_of[ids[alive]], self._local[ids[alive]] = i, alive
        total = sum(int(np.maximum(p.lengths[ids >= 0], 1).sum()) for p, ids in zip(parts, live))  # an empty text counts 1, as in bm25s
        self.avgdl = total / self.size if self.size else 1.0
        #: per part: snapshot id and BM25 term-frequency factor of each live posting, and the live term offsets
        self._ids, self._tfc, self._indptr = [], [], []
        for p, ids in zip(parts, live):
            keep = ids[p.rows] >= 0
            col = np.repeat(np.arange(len(p.vocab)), np.diff(p.indptr))[keep]
            rows = p.rows[keep]
            tf = p.tf[keep].astype(np.float64)
            norm = K1 * (1.0 - B + B * np.maximum(p.lengths[rows], 1) / self.avgdl)
            self._ids.append(ids[rows])
            self._tfc.append((tf / (tf + norm)).astype(np.float32))
            self._indptr.append(np.concatenate([[0], np.cumsum(np.bincount(col, minlength=len(p.vocab)))]))
        self._df: dict[str, int] = {}  # questions repeat their terms: each one's live count is summed once

    def df(self, term: str) -> int:
        """Live texts holding `term`."""
        n = self._df.get(term)
        if n is None:
            n = 0
            for p, indptr in zip(self._parts, self._indptr):
                t = p.ids.get(term)
                if t is not None:
                    n += int(indptr[t + 1] - indptr[t])
            self._df[term] = n
        return n

    def idf(self, terms) -> dict[str, float]:
        return {t: float(idf(self.df(t), self.size)) for t in terms}

    def scores(self, weights: dict[str, float]) -> np.ndarray:
        """sum over terms of weight * BM25 for every live text (zeros where no term is found).
        Touches only the texts in the terms' postings."""
        scores = np.zeros(self.size, dtype=np.float32)
        for term, weight in weights.items():
            factor = weight * float(idf(self.df(term), self.size))
            for p, indptr, ids, tfc in zip(self._parts, self._indptr, self._ids, self._tfc):
                t = p.ids.get(term)
                if t is None or indptr[t] == indptr[t + 1]:
                    continue
                span = slice(indptr[t], indptr[t + 1])
                # a term's postings hold each text once, so plain fancy-index addition is exact (and ~10x np.add.at)
                scores[ids[span]] += factor * tfc[span]
        return scores

    def postings(self, term: str) -> list[np.ndarray]:
        """Snapshot ids of the live texts holding `term`, one ascending array per part."""
        out = []
        for p, indptr, ids in zip(self._parts, self._indptr, self._ids):
            t = p.ids.get(term)
            if t is not None and indptr[t] < indptr[t + 1]:
                out.append(ids[indptr[t] : indptr[t + 1]])
        return out

    def terms(self, ids) -> list[frozenset[str]]:
        out = []
        for i in np.asarray(ids, dtype=np.int64).tolist():
            p = self._parts[self._part_of[i]]
            local = self._local[i]
            out.append(frozenset(p.terms_array[p.row_terms[p.row_start[local] : p.row_start[local + 1]]].tolist()))
        return out

