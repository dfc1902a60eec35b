"""Extractor: candidate sentences -> the quoted answer, its answer phrase, a confidence, or an honest abstention.

Each candidate sentence is scored by a linear function of evidence that needs no model call (FEATURES):
its own, its passage's and its neighbours' cosine to the question (vectors from the index); the idf-weighted
share of the question's terms found in the sentence, around it and in its document; whether it holds the
kind of thing the question asks for (a number for "how many", a date for "when", a name for "who"), near the
question's words; and whether it says anything beyond the question. A logistic squash of the best sentence's
score is the confidence; below Settings.min_confidence the assistant abstains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import numpy as np

from .lexical import term_spans, tokenize
from .retrieval import Candidates, Query
from .store import CHUNKS, UNITS, Snapshot
from .types import Citation, Passage

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|"
    "eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|dozen|"
    "half|once|twice"
)
_NUMBER = re.compile(
    rf"\b\d{{1,2}}:\d\d\b"
    rf"|(?:[$€£]\s?)?\d(?:[\d,.]*\d)?[½¼¾]?(?:\s?(?:%|percent|million|billion|thousand))?"
    rf"|\b(?:(?:{_NUMBER_WORDS})[\s-]?)+\b",
    re.IGNORECASE,
)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DATE = re.compile(
    rf"\b(?:(?:(?:{_DAYS}),?\s+)?(?:\d{{1,2}}\s+)?(?:{_MONTHS})(?:\s+\d{{1,2}})?(?:,?\s+\d{{4}})?"
    rf"|\d{{4}}-\d{{2}}-\d{{2}}"
    rf"|(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)(?:\s+and\s+\d{{1,2}}(?:st|nd|rd|th))?\s+centur(?:y|ies)"
    rf"|(?:1[0-9]|20)\d{{2}}s?"
    rf"|{_DAYS})\b"
)
_CALENDAR = re.compile(rf"^(?:{_MONTHS}|{_DAYS})$")
_NAME = re.compile(r"\b[A-Z][\w’'.-]*(?:\s+(?:of|de|du|la|van|von|the|al|bin)?\s*[A-Z][\w’'.-]*)*")
_PATTERNS = {"number": _NUMBER, "date": _DATE, "name": _NAME}

_ASKS_NUMBER = re.compile(
    r"\b(how (many|much|old|long|far|large|big|tall|often|high|heavy|fast|wide|deep)"
    r"|what (percentage|percent|age|number|amount|proportion|share|fraction))\b",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(r"\b(when|(what|which) (year|date|day|month|century|decade|era))\b", re.IGNORECASE)
#: Nouns after "what"/"which" whose answer is a proper name: "Which team ...", "What city ...".
_NAMED_THINGS = (
    "city|cities|country|countries|state|states|nation|team|teams|club|company|companies|firm|person|people|player|"
    "players|man|woman|king|queen|leader|president|ruler|emperor|group|band|organization|organisation|university|"
    "school|college|stadium|venue|network|channel|station|newspaper|river|island|mountain|region|province|county|"
    "town|village|capital|continent|language|tribe|dynasty|family|duke|pope|author|writer|artist|singer|performer|"
    "coach|quarterback|kicker|brand"
)
_ASKS_NAME = re.compile(rf"\b(who|whom|whose|where|(what|which)(\s+\w+){{0,2}}\s+({_NAMED_THINGS}))\b", re.IGNORECASE)
#: Words right after "what"/"which" that name the kind of answer rather than its subject ("What year ...").
_KIND_WORDS = re.compile(
    rf"\b(?:what|which)\s+(?:\w+\s+){{0,2}}?({_NAMED_THINGS}|year|years|date|day|month|century|decade|era|name|"
    rf"number|amount|percentage|kind|type|sort|time|color|colour)\b",
    re.IGNORECASE,
)
#: "What did they build?", "What is she building?": the answer is the object that follows the verb.
_ASKS_OBJECT = re.compile(
    r"^\s*(?:[Ww]hat|[Ww]hich)(?:\s+\w+)?\s+(?:(?:do|does|did|will|would|can|could|should|may|might)\s+.+\s+([a-z]+)"
    r"|(?:is|are|was|were)\s+.+\s+([a-z]+ing)|(?:has|have|had)\s+.+\s+([a-z]+(?:ed|en)))\W*$"
)
#: "How many <unit>": the answer is the number before the unit.
_UNIT = re.compile(r"\bhow (?:many|much)\s+([a-z]+)", re.IGNORECASE)
_WORD = re.compile(r"\w+(?:[.,'’]\w+)*")
#: Where a phrase ends: punctuation that closes a clause.
_CLAUSE_END = re.compile(r"[,;:.!?()\[\]\"“”—–]|\s-\s")
#: A kind word ("year", "team") counts this much of its idf: it names the answer's kind, not the subject.
KIND_WORD_WEIGHT = 0.3


@dataclass(frozen=True)
class Weights:
    """The scoring function: a weighted sum of FEATURES, then confidence = 1 / (1 + exp(-steepness * (sum - bias))).

    How they were set (no question or document of the dev sets is special-cased): features were kept when they
    helped on both SQuAD articles; the weights are a coordinate-ascent search for hit@1 (+ hit@3 / 2 + source@1
    / 4) on the 810 Super Bowl 50 questions alone, rounded (the fit moved hit@1 from 0.683 to 0.689 and
    nothing on Normans, held out: 0.760 both). `bias` is where a logistic fit separates the Super Bowl
    questions from Normans questions asked of the Super Bowl paragraphs alone (1.41; the other way round
    1.47): below it the documents are about something else. `steepness` is the fit of "a citation holds the
    answer" with that bias fixed (2.3), so an answered question's confidence reads roughly as that chance.
    """

    sentence_dense: float = 1.0
    chunk_dense: float = 1.0
    neighbour_dense: float = 0.2
    sentence_terms: float = 0.8
    context_terms: float = 0.4
    document_terms: float = 0.3
    next_terms: float = -0.2
    answer_kind: float = 0.15
    kind_missing: float = -0.2
    kind_near: float = 0.1
    novelty: float = 0.2
    bias: float = 1.4
    steepness: float = 2.5

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in FEATURES])


#: The evidence about one candidate sentence, in the order of `Extractor.features` columns.
FEATURES = tuple(f.name for f in fields(Weights) if f.name not in ("bias", "steepness"))
#: The features that need the sentence's text scanned for the asked kind of answer; each is 0 or 1.
_KIND_FEATURES = ("answer_kind", "kind_missing", "kind_near")


def asked_kind(question: str) -> str:
    """'number', 'date', 'name' or '' — what kind of words the answer should contain.

    >>> asked_kind("When did the Normans arrive?"), asked_kind("Which team won?"), asked_kind("Why?")
    ('date', 'name', '')
    """
    if _ASKS_NUMBER.search(question):
        return "number"
    if _ASKS_DATE.search(question):
        return "date"
    if _ASKS_NAME.search(question):
        return "name"
    return ""


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text)}


def kind_spans(sentence: str, kind: str, question: str) -> list[tuple[int, int]]:
    """Spans in `sentence` of the asked kind that the question does not already say, in order.

    >>> kind_spans("Then Jackson elected Chokwe Lumumba.", "name", "Who did Jackson elect?")
    [(21, 35)]
    """
    return list(_kind_spans(sentence, kind, _words(question)))


def _kind_spans(sentence: str, kind: str, asked: set[str]) -> Iterator[tuple[int, int]]:
    """`kind_spans` one at a time, so that asking whether there is one stops at the first."""
    pattern = _PATTERNS.get(kind)
    if pattern is None:
        return
    for m in pattern.finditer(sentence):
        start, end = _trim(sentence, m.start(), m.end(), kind)
        phrase = sentence[start:end]
        words = _words(phrase)
        if not words or words <= asked:
            continue
        if kind == "name" and (words & asked or _CALENDAR.match(phrase) or (start == 0 and len(words) == 1)):
            # subtle: a name sharing a word with the question is its subject, not its answer ("Who did Denver
            # beat?" is not answered by "Denver Broncos"); every sentence starts with a capital
            continue
        yield start, end


def _trim(sentence: str, start: int, end: int, kind: str) -> tuple[int, int]:
    """A match without surrounding blanks and punctuation, a possessive 's, or a capitalised stop word that
    only starts the sentence ("Then Anderson" -> "Anderson")."""
    while start < end and not sentence[start].isalnum() and sentence[start] not in "$€£":
        start += 1
    while end > start and not sentence[end - 1].isalnum() and sentence[end - 1] != "%":
        end -= 1
    if kind == "name":
        if sentence[start:end].endswith(("'s", "’s")):
            end -= 2
        first = _WORD.match(sentence, start)
        if start == 0 and first and first.end() < end and not tokenize(first.group()):
            start = first.end()
            while sentence[start].isspace():
                start += 1
    return start, end


def answer_phrase(sentence: str, question: str) -> tuple[int, int] | None:
    """Offsets inside `sentence` of the words that answer `question`, or None when unsure.

    Measured on SQuAD, a guess is right about three times in four; None is the answer to anything less
    clear-cut: a number or date question gets the one span of that kind the question does not already say
    (or, among several, the one next to the question's words; for "how many X", the one before X); a name
    question the one name; "What did/is <subject> <verb>?" the words after that verb up to the end of the clause.

    >>> answer_phrase("He was 34 years old.", "How old was he?")
    (7, 9)
    >>> s = "Mayor Chow is building thousands of new homes, and more."
    >>> s[slice(*answer_phrase(s, "What is she building?"))]
    'thousands of new homes'
    """
    kind = asked_kind(question)
    if not kind:
        return _object_phrase(sentence, question, _word_terms(sentence))
    spans = kind_spans(sentence, kind, question)
    if len(spans) == 1:
        return spans[0]
    if kind == "name" or not spans:
        return None
    words = _word_terms(sentence)
    unit = _UNIT.search(question)
    if kind == "number" and unit:
        before = [sp for sp in spans if _followed_by(sp, words, tokenize(unit.group(1)), reach=2)]
        if len(before) == 1:
            return before[0]
    asked = set(tokenize(question))
    matched = [i for i, (_, _, t) in enumerate(words) if t and t[0] in asked]
    distance = [_word_distance(span, words, matched) for span in spans]
    if min(distance) <= 1 and distance.count(min(distance)) == 1:
        return spans[distance.index(min(distance))]
    return None


def _word_terms(sentence: str) -> list[tuple[int, int, list[str]]]:
    """Every word with its BM25 term ([] for a stop word), from one tokenizer run over the sentence."""
    terms = {start: t for start, _, t in term_spans(sentence)}
    return [(m.start(), m.end(), [terms[m.start()]] if m.start() in terms else []) for m in _WORD.finditer(sentence)]


def _object_phrase(sentence: str, question: str, words) -> tuple[int, int] | None:
    """For a short "What did/is <subject> <verb>?": the words after that verb in the sentence, to the clause end."""
    m = _ASKS_OBJECT.match(question)
    if not m or len(question.split()) > 8:
        return None
    verb = tokenize(next(g for g in m.groups() if g))
    at = [i for i, (_, _, t) in enumerate(words) if verb and t == verb]
    if len(at) != 1:
        return None
    start = words[at[0]][1]
    boundary = _CLAUSE_END.search(sentence, start)
    end = boundary.start() if boundary else len(sentence)
    inside = [w for w in words if start <= w[0] and w[1] <= end]
    asked = set(tokenize(question))
    if not inside or len(inside) > 12 or all(not t or t[0] in asked for _, _, t in inside):
        return None
    return inside[0][0], inside[-1][1]


def _followed_by(span: tuple[int, int], words, term: list[str], reach: int) -> bool:
    """Whether `term` is among the `reach` words after the span: "seven times" for "how many times"."""
    after = [t for ws, _, t in words if ws >= span[1]][:reach]
    return bool(term) and term in after


def _word_distance(span: tuple[int, int], words, matched: list[int]) -> int:
    """Words between a span and the nearest question word outside it."""
    inside = [i for i, (ws, we, _) in enumerate(words) if ws < span[1] and we > span[0]]
    outside = [j for j in matched if j not in inside]
    if not inside or not outside:
        return len(words)
    return min(abs(i - j) for i in inside for j in outside)


def question_weights(question: str, idf: dict[str, float]) -> dict[str, float]:
    """Idf of each question term, the words that only name the answer's kind damped.

    >>> question_weights("What year was it founded?", {"year": 2.0, "found": 2.0})
    {'year': 0.6, 'found': 2.0}
    """
    kind_words = set(tokenize(" ".join(m.group(1) for m in _KIND_WORDS.finditer(question))))
    return {t: w * (KIND_WORD_WEIGHT if t in kind_words else 1.0) for t, w in idf.items()}


def _coverage(terms: dict[str, float], present) -> float:
    """Share of the terms' weight that is present: {'a': 3, 'b': 1} in {'a'} -> 0.75."""
    total = sum(terms.values())
    return sum(w for t, w in terms.items() if t in present) / total if total else 0.0


@dataclass(frozen=True)
class Scored:
    sentence: int
    chunk: int
    score: float


class Extractor:
    """Chooses answer sentences among a retriever's candidates."""

    def __init__(self, snapshot: Snapshot, weights: Weights = Weights()):
        self.snapshot = snapshot
        self.weights = weights

    def _sentence_text(self, s: int) -> str:
        row = self.snapshot.rows(UNITS, [s])[0]
        return self.snapshot.document(int(row["document"])).text[row["start"] : row["end"]]

    def _neighbourhood(self, sentences: np.ndarray) -> dict[int, list[int]]:
        """Each sentence's neighbours in its own document (the one before, the one after)."""
        size = self.snapshot.size(UNITS)
        around = np.unique(np.concatenate([sentences - 1, sentences, sentences + 1]))
        around = around[(around >= 0) & (around < size)]
        doc = dict(zip(around.tolist(), self.snapshot.rows(UNITS, around)["document"].tolist()))
        return {s: [n for n in (s - 1, s + 1) if doc.get(n, -1) == doc[s]] for s in sentences.tolist()}

    def features(self, question: str, query: Query, candidates: Candidates, keep: int | None = None) -> np.ndarray:
        """One row of FEATURES per candidate sentence, each in [0, 1] (cosines in [-1, 1]).

        With `keep`, the answer-kind columns (a regex pass over the sentence) are filled only for candidates that
        could still rank among the best `keep`; the others leave them 0 and stay below those `keep` whatever
        the columns would say. The columns of a candidate that can still rank are exact.
        """
        out = np.zeros((len(candidates.sentences), len(FEATURES)), dtype=np.float64)
        if not len(out):
            return out
        col = {name: i for i, name in enumerate(FEATURES)}
        snap = self.snapshot
        weights = question_weights(question, snap.idf(UNITS, query.terms))
        weights.update({t: query.history_weight * w for t, w in snap.idf(UNITS, query.history_terms).items() if t not in weights})
        by_id = weights
        own_docs = snap.rows(UNITS, candidates.sentences)["document"]
        docs = np.unique(own_docs)
        holding = snap.documents_holding(list(weights), docs)
        document_terms = {d: _coverage(weights, {t for t, held in holding.items() if d in held}) for d in docs.tolist()}
        # candidates come in runs, so most sentences are someone's neighbour too: fetch each one's terms and vector once
        neighbours = self._neighbourhood(candidates.sentences)
        around = sorted(set(neighbours) | {n for near in neighbours.values() for n in near})
        terms = dict(zip(around, snap.terms(UNITS, around)))
        vectors = dict(zip(around, snap.vectors(UNITS, around) @ query.vector))

        def terms_of(s: int) -> frozenset[str]:
            return terms[s]

        for i, s in enumerate(candidates.sentences.tolist()):
            own = terms_of(s)
            near = neighbours[s]
            context = own.union(*(terms_of(n) for n in near))
            following = terms_of(s + 1) if s + 1 in near else set()
            row = out[i]
            row[col["sentence_dense"]] = candidates.sentence_dense[i]
            row[col["chunk_dense"]] = candidates.chunk_dense[i]
            row[col["neighbour_dense"]] = max((float(vectors[n]) for n in near), default=0.0)
            row[col["sentence_terms"]] = _coverage(by_id, own)
            row[col["context_terms"]] = _coverage(by_id, context)
            row[col["document_terms"]] = document_terms[int(own_docs[i])]
            row[col["next_terms"]] = _coverage(by_id, following)
            row[col["novelty"]] = min(len(own - by_id.keys()), 3) / 3
        kind = asked_kind(question)
        if not kind:
            return out
        rows = np.arange(len(out)) if keep is None else np.flatnonzero(self._could_rank(out, keep, _KIND_FEATURES))
        asked = _words(question)
        texts = {}
        for i in rows.tolist():
            texts[i] = self._sentence_text(int(candidates.sentences[i]))
            found = next(_kind_spans(texts[i], kind, asked), None) is not None  # the first span settles both
            out[i, col["answer_kind"]] = found
            out[i, col["kind_missing"]] = not found and kind != "name"
        # the spans' word positions cost a tokenizer run and every span, so "near" is filled last, for fewer rows
        near = rows if keep is None else rows[self._could_rank(out[rows], keep, ("kind_near",))]
        for i in near.tolist():
            if out[i, col["answer_kind"]]:
                out[i, col["kind_near"]] = _kind_near(_kind_spans(texts[i], kind, asked), term_spans(texts[i]), weights)
        return out

    def _could_rank(self, features: np.ndarray, keep: int, unknown: tuple[str, ...]) -> np.ndarray:
        """Whether each candidate, at its best once the `unknown` columns (each 0 or 1) are filled, reaches the
        `keep`-th best candidate at its worst; one that does not cannot enter the best `keep`."""
        if len(features) <= keep:
            return np.ones(len(features), dtype=bool)
        w = self.weights
        partial = features @ w.vector()
        weights = [getattr(w, name) for name in unknown]
        best, worst = partial + sum(max(x, 0.0) for x in weights), partial + sum(min(x, 0.0) for x in weights)
        return best >= np.partition(worst, -keep)[-keep]

    def score(self, question: str, query: Query, candidates: Candidates, keep: int | None = None) -> list[Scored]:
        """The best `keep` candidates (all, when None), best first, each with its score in [0, 1]; the first
        one's is the answer's confidence."""
        if len(candidates.sentences) == 0:
            return []
        w = self.weights
        raw = self.features(question, query, candidates, keep) @ w.vector()
        scores = 1.0 / (1.0 + np.exp(-w.steepness * (raw - w.bias)))
        order = np.argsort(-raw, kind="stable")[:keep]
        return [Scored(int(candidates.sentences[i]), int(candidates.chunks[i]), float(scores[i])) for i in order]

    def citation(self, question: str, scored: Scored) -> Citation:
        unit = self.snapshot.rows(UNITS, [scored.sentence])[0]
        start, end = int(unit["start"]), int(unit["end"])
        document = self.snapshot.document(int(unit["document"]))
        quote = document.text[start:end]
        chunk = self.snapshot.rows(CHUNKS, [scored.chunk])[0]
        c_start, c_end = int(chunk["start"]), int(chunk["end"])
        phrase = answer_phrase(quote, question)
        return Citation(
            source=document.source,
            quote=quote,
            start=start,
            end=end,
            line=line_of(document.text, start),
            score=round(scored.score, 4),
            answer_span=(start + phrase[0], start + phrase[1]) if phrase else None,
            page=document.page_of(start),
            context_start=c_start,
            context_end=c_end,
            context=document.text[c_start:c_end],
        )

    def passages(self, candidates: Candidates, count: int) -> list[Passage]:
        """The best retrieved chunks, shown as the closest passages."""
        out = []
        rows = self.snapshot.rows(CHUNKS, candidates.ranked_chunks[:count])
        for rank, (doc, start, end) in enumerate(zip(rows["document"].tolist(), rows["start"].tolist(), rows["end"].tolist())):
            document = self.snapshot.document(doc)
            out.append(
                Passage(document.source, start, end, line_of(document.text, start), document.text[start:end], round(1.0 / (1 + rank), 4))
            )
        return out


def _kind_near(spans: Iterable[tuple[int, int]], terms, weights: dict[str, float], reach: int = 4) -> float:
    """1 when a span of the asked kind sits within `reach` indexed words of a question term."""
    matched = [i for i, (_, _, t) in enumerate(terms) if t in weights]
    for a, b in spans:
        at = [i for i, (ws, we, _) in enumerate(terms) if ws < b and we > a]
        if at and any(min(abs(i - j) for j in at) <= reach for i in matched if i not in at):
            return 1.0
    return 0.0


def line_of(text: str, offset: int) -> int:
    """1-based line number of a character offset."""
    return text.count("\n", 0, offset) + 1
