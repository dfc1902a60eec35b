"""Records that cross module lines. No logic beyond conversion to plain dicts."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Document:
    """One file of the seeds folder, as read. `source` is its path relative to the folder, with '/'.

    `text` is the file's UTF-8 text, or for HTML and PDF the extracted text that citations point into;
    `page_starts` holds the offset where each PDF page begins (empty for other formats).
    """

    source: str
    text: str
    sha256: str
    page_starts: tuple[int, ...] = ()

    def page_of(self, offset: int) -> int | None:
        """1-based PDF page of a character offset; None for formats without pages."""
        return bisect.bisect_right(self.page_starts, offset) if self.page_starts else None


@dataclass(frozen=True)
class Sentence:
    """A sentence of a document: `document.text[start:end] == text`, no surrounding whitespace."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Chunk:
    """Consecutive sentences `first..last-1` of a document, packed to the token budget; quoted by offsets too."""

    start: int
    end: int
    text: str
    first: int
    last: int


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, shown as context and as the 'closest passages' when the documents don't answer."""

    source: str
    start: int
    end: int
    line: int
    text: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    """A verbatim quotation: the file's text at [start, end) is `quote`, on line `line` (1-based).

    `answer_span`, when set, marks the words inside the quote that answer the question (file offsets too).
    `context_start`/`context_end` bound the passage around the quote, for showing it in place.
    """

    source: str
    quote: str
    start: int
    end: int
    line: int
    score: float
    answer_span: tuple[int, int] | None = None
    page: int | None = None
    context_start: int = 0
    context_end: int = 0
    context: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["answer_span"] = list(self.answer_span) if self.answer_span else None
        return d


@dataclass(frozen=True)
class Answer:
    """What `ask` returns; `to_dict()` is the JSON contract of `qa ask --json` and the web API."""

    question: str
    answered: bool
    answer: str
    confidence: float
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.answer,
            "confidence": round(self.confidence, 4),
            "citations": [c.to_dict() for c in self.citations],
            "passages": [p.to_dict() for p in self.passages],
        }


@dataclass(frozen=True)
class IndexReport:
    """What a build did; `qa index --json` prints `to_dict()`."""

    files: int
    added: int
    changed: int
    removed: int
    unchanged: int
    chunks: int
    chunks_embedded: int
    sentences_embedded: int
    seconds: float
    full_rebuild: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
