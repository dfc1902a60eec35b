"""Extractor: candidate sentences -> the quoted answer, its answer phrase, a confidence, or an honest abstention.

Each candidate is scored by a small linear function of evidence that needs no model call: its own and its
passage's cosine to the question, its neighbours' cosine, idf-weighted overlap of the question's terms with
the sentence and with its context, and whether it holds the kind of thing the question asks for (a number
for "how many", a name for "who"). The best sentence's score, squashed, is the confidence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .lexical import tokenize
from .retrieval import Candidates, Query
from .store import IndexData
from .types import Citation, Passage

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|"
    "eighty|ninety|hundred|thousand|million|billion|dozen|half"
)
_NUMBER = re.compile(
    rf"(?:[$€£]\s?)?\d[\d,.]*(?:\s?(?:%|percent|million|billion|thousand))?"
    rf"|\b(?:(?:{_NUMBER_WORDS})[\s-]?)+\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b[A-Z][\w’'.-]*(?:\s+(?:of|de|du|la|van|von|the|al|bin)?\s*[A-Z][\w’'.-]*)*")
_ASKS_NUMBER = re.compile(
    r"\b(how (many|much|old|long|far|large|big|tall|often)|what (year|date|percentage|age|number)|when|in which year)\b",
    re.IGNORECASE,
)
_ASKS_NAME = re.compile(r"\b(who|whom|whose|where|which (city|country|team|company|person|group|place))\b", re.IGNORECASE)


@dataclass(frozen=True)
class Weights:
    """The scoring function: a measured linear mix (see README, 'Answer quality'), then a logistic squash."""

    sentence_dense: float = 1.0
    chunk_dense: float = 0.5
    neighbour_dense: float = 0.2
    sentence_terms: float = 0.8
    context_terms: float = 0.4
    answer_kind: float = 0.15
    bias: float = -1.2
    steepness: float = 6.0


def asked_kind(question: str) -> str:
    """'number', 'name' or '' — what kind of words the answer should contain."""
    if _ASKS_NUMBER.search(question):
        return "number"
    if _ASKS_NAME.search(question):
        return "name"
    return ""


def answer_phrase(sentence: str, kind: str, question: str) -> tuple[int, int] | None:
    """Offsets inside `sentence` of the words that answer a number/name question, or None.

    >>> answer_phrase("He was 34 years old.", "number", "How old was he?")
    (7, 9)
    """
    if kind == "number":
        pattern = _NUMBER
    elif kind == "name":
        pattern = _NAME
    else:
        return None
    asked = {w.lower() for w in re.findall(r"\w+", question)}
    for m in pattern.finditer(sentence):
        phrase = m.group().strip()
        words = {w.lower() for w in re.findall(r"\w+", phrase)}
        if phrase and not words <= asked and (kind != "name" or m.start() > 0 or len(words) > 1):
            start = m.start() + (len(m.group()) - len(m.group().lstrip()))
            return start, start + len(phrase)
    return None


def _coverage(terms: dict[str, float], present: set[str]) -> float:
    total = sum(terms.values())
    return sum(w for t, w in terms.items() if t in present) / total if total else 0.0


@dataclass(frozen=True)
class Scored:
    sentence: int
    chunk: int
    score: float


class Extractor:
    """Chooses answer sentences among a retriever's candidates."""

    def __init__(self, data: IndexData, weights: Weights = Weights()):
        self.data = data
        self.weights = weights

    def _text(self, doc: int, start: int, end: int) -> str:
        return self.data.documents[doc].text[start:end]

    def _sentence_text(self, s: int) -> str:
        doc, start, end = self.data.sentences[s]
        return self._text(doc, start, end)

    def _neighbours(self, s: int) -> list[int]:
        doc = self.data.sentences[s, 0]
        return [n for n in (s - 1, s + 1) if 0 <= n < len(self.data.sentences) and self.data.sentences[n, 0] == doc]

    def score(self, question: str, query: Query, candidates: Candidates) -> list[Scored]:
        """Candidates best first, each with its score in [0, 1]."""
        if len(candidates.sentences) == 0:
            return []
        w = self.weights
        idf = self.data.sentence_bm25.idf(query.terms)
        idf.update({t: 0.5 * v for t, v in self.data.sentence_bm25.idf(query.history_terms).items() if t not in idf})
        kind = asked_kind(question)
        vectors = self.data.sentence_vectors
        scored = []
        for i, s in enumerate(candidates.sentences.tolist()):
            text = self._sentence_text(s)
            own = set(tokenize(text))
            near = self._neighbours(s)
            context = own.union(*(tokenize(self._sentence_text(n)) for n in near))
            neighbour_dense = max((float(vectors[n] @ query.vector) for n in near), default=0.0)
            has_kind = 1.0 if kind and answer_phrase(text, kind, question) else 0.0
            raw = (
                w.sentence_dense * float(candidates.sentence_dense[i])
                + w.chunk_dense * float(candidates.chunk_dense[i])
                + w.neighbour_dense * neighbour_dense
                + w.sentence_terms * _coverage(idf, own)
                + w.context_terms * _coverage(idf, context)
                + w.answer_kind * has_kind
                + w.bias
            )
            score = 1.0 / (1.0 + math.exp(-w.steepness * raw))
            scored.append(Scored(s, int(candidates.chunks[i]), score))
        scored.sort(key=lambda x: -x.score)
        return scored

    def citation(self, question: str, scored: Scored) -> Citation:
        doc, start, end = (int(x) for x in self.data.sentences[scored.sentence])
        document = self.data.documents[doc]
        quote = document.text[start:end]
        _, c_start, c_end, _, _ = (int(x) for x in self.data.chunks[scored.chunk])
        phrase = answer_phrase(quote, asked_kind(question), question)
        return Citation(
            source=document.source,
            quote=quote,
            start=start,
            end=end,
            line=line_of(document.text, start),
            score=round(scored.score, 4),
            answer_span=(start + phrase[0], start + phrase[1]) if phrase else None,
            context_start=c_start,
            context_end=c_end,
            context=document.text[c_start:c_end],
        )

    def passages(self, candidates: Candidates, count: int) -> list[Passage]:
        """The best retrieved chunks, shown as the closest passages."""
        out = []
        for rank, c in enumerate(candidates.ranked_chunks[:count].tolist()):
            doc, start, end, _, _ = (int(x) for x in self.data.chunks[c])
            document = self.data.documents[doc]
            out.append(
                Passage(document.source, start, end, line_of(document.text, start), document.text[start:end], round(1.0 / (1 + rank), 4))
            )
        return out


def line_of(text: str, offset: int) -> int:
    """1-based line number of a character offset."""
    return text.count("\n", 0, offset) + 1
