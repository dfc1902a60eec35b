"""Lexical side of retrieval: one tokenizer for documents and questions, BM25 (bm25s) over it, and term weights."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w+(?:[.,'’]\w+)*")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def term_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, term) of every word BM25 indexes: `tokenize` with the offsets kept, one stemmer call per text."""
    stop = _stopwords()
    kept = [(m.start(), m.end(), w) for m in _WORD.finditer(text) if (w := m.group().lower().replace("’", "'")) not in stop]
    stems = _stemmer().stemWords([w for _, _, w in kept])
    return [(a, b, t) for (a, b, _), t in zip(kept, stems)]


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words dropped, stemmed: "The mayors elected" -> ['mayor', 'elect']."""
    return [t for _, _, t in term_spans(text)]


class Bm25:
    """BM25 over a list of texts, with what answer selection needs besides scores: each term's postings and
    document frequency, and each text's terms (so a candidate's words cost a slice, not a tokenizer run)."""

    def __init__(self, model, rows: tuple[np.ndarray, np.ndarray]):
        self._model = model
        # subtle: bm25s stores scores column-per-term (CSC): a term's postings are indices[indptr[t]:indptr[t+1]],
        # each text at most once, so its document frequency is the column length.
        self._indptr = np.asarray(model.scores["indptr"])
        self._indices = np.asarray(model.scores["indices"])
        self._data = np.asarray(model.scores["data"])
        self._df = np.diff(self._indptr)
        self._n = int(model.scores["num_docs"])
        #: Text i's term ids are _row_terms[_row_start[i]:_row_start[i + 1]] (the transpose bm25s does not keep).
        self._row_start, self._row_terms = rows

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> "Bm25":
        import bm25s

        model = bm25s.BM25()
        model.index([tokens or [""] for tokens in token_lists], show_progress=False)
        vocab = model.vocab_dict
        lengths = np.fromiter((len(tokens) for tokens in token_lists), dtype=np.int64, count=len(token_lists))
        start = np.concatenate([[0], np.cumsum(lengths)])
        terms = np.fromiter((vocab[t] for tokens in token_lists for t in tokens), dtype=np.int32, count=int(start[-1]))
        return cls(model, (start, terms))

    def save(self, folder: Path) -> None:
        self._model.save(str(folder), show_progress=False)
        np.save(Path(folder) / "row_start.npy", self._row_start)
        np.save(Path(folder) / "row_terms.npy", self._row_terms)

    @classmethod
    def load(cls, folder: Path) -> "Bm25":
        import bm25s

        model = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0)
        return cls(model, (np.load(Path(folder) / "row_start.npy"), np.load(Path(folder) / "row_terms.npy")))

    def term_ids(self, tokens) -> dict[str, int]:
        """Each token's id; tokens the index has never seen get distinct negative ids, found in no text."""
        vocab = self._model.vocab_dict
        return {t: vocab.get(t, -1 - i) for i, t in enumerate(tokens)}

    def terms_of(self, text: int) -> set[int]:
        """Ids of the terms of indexed text number `text`."""
        return set(self._row_terms[self._row_start[text] : self._row_start[text + 1]].tolist())

    def postings(self, term: str) -> np.ndarray:
        """Numbers of the texts holding `term`, ascending; empty when it is not indexed."""
        t = self._model.vocab_dict.get(term)
        if t is None:
            return self._indices[:0]
        return self._indices[self._indptr[t] : self._indptr[t + 1]]

    def scores(self, tokens: list[str], weight: float = 1.0, into: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every indexed text for the query tokens (zeros when none is known), times `weight`,
        added to `into` when given. Touches only the texts in the tokens' postings."""
        scores = np.zeros(self._n, dtype=np.float32) if into is None else into
        vocab = self._model.vocab_dict
        for token in tokens:
            t = vocab.get(token)
            if t is None:
                continue
            span = slice(self._indptr[t], self._indptr[t + 1])
            # a term's postings hold each text once, so plain fancy-index addition is exact (and ~10x np.add.at);
            # a question's terms can be in most texts: skip the multiplication when it changes nothing
            scores[self._indices[span]] += self._data[span] if weight == 1.0 else weight * self._data[span]
        return scores

    def idf(self, tokens: list[str]) -> dict[str, float]:
        """Inverse document frequency of each token; unseen tokens get the highest weight."""
        vocab = self._model.vocab_dict
        weights = {}
        for t in tokens:
            df = int(self._df[vocab[t]]) if t in vocab else 0
            weights[t] = float(np.log(1 + (self._n - df + 0.5) / (df + 0.5)))
        return weights
