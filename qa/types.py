"""Records that cross module lines. No logic beyond conversion to plain dicts."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field

#: What an answer unit is; its number in this tuple is what an index stores, so names are only ever appended.
KINDS = ("sentence", "line", "table_row", "heading", "list_item", "code")


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
    """An answer unit of a document (a sentence, or a line, table row... by `kind`): `document.text[start:end] ==
    text`, no surrounding whitespace. `context_start`/`context_end` span the heading or table header it sits
    under, in the same text (0, 0 when none)."""

    start: int
    end: int
    text: str
    kind: str = "sentence"
    context_start: int = 0
    context_end: int = 0


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
    `context_start`/`context_end` bound the passage around the quote, for showing it in place; `heading` is the
    heading (for a table row, the table's header row) the quote sits under, "" when none.
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
    heading: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["answer_span"] = list(self.answer_span) if self.answer_span else None
        return d


@dataclass(frozen=True)
class Answer:
    """What `ask` returns; `to_dict()` is the JSON contract of `qa ask --json` and the web API.

    `rewritten` is the question as it was searched: for a follow-up, with what it points at in the previous
    answer ("How long has she been on the board? [Ines Baptiste]"); the question itself otherwise."""

    question: str
    answered: bool
    answer: str
    confidence: float
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    rewritten: str = ""

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "rewritten": self.rewritten or self.question,
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
