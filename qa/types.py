"""Records that cross module lines. No logic beyond conversion to plain dicts."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field

import numpy as np

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

    def summary(self, detail: bool = False) -> str:
        """'indexed 3 files, 14 chunks in 2.1 s (1 added, ...)' or 'the index is up to date (...)', for people;
        `detail` adds the time an unchanged check took and what was embedded (the command line shows them)."""
        counts = f"{self.files} file{'s' * (self.files != 1)}, {self.chunks} chunk{'s' * (self.chunks != 1)}"
        if not (self.added or self.changed or self.removed):
            checked = f", checked in {self.seconds:.1f} s" if detail else ""
            return f"the index is up to date ({counts}; nothing changed{checked})"
        embedded = f"; {self.chunks_embedded} chunks embedded" if detail else ""
        return (
            f"indexed {counts} in {self.seconds:.1f} s ({self.added} added, {self.changed} changed, "
            f"{self.removed} removed, {self.unchanged} unchanged{embedded})"
        )


#: Index rows as numpy record arrays, read by field name (`rows["document"]`), never by column position.
#: `document` numbers a document within one snapshot; a unit's `context_*` is as in `Sentence`;
#: a chunk holds units `first..last-1` (snapshot unit ids, last exclusive).
UNIT_ROW = np.dtype([("document", "<i8"), ("start", "<i8"), ("end", "<i8"), ("kind", "u1"), ("context_start", "<i8"), ("context_end", "<i8")])
CHUNK_ROW = np.dtype([("document", "<i8"), ("start", "<i8"), ("end", "<i8"), ("first", "<i8"), ("last", "<i8")])


@dataclass(frozen=True)
class IndexedDocument:
    """A document ready for the store: its units and chunks (chunk.first/last count from its first unit) and
    their unit-length vectors, row-aligned, and each unit's token vectors (its content word pieces', int8 rows
    as embedding.token_rows makes them; (0, dimension) for a unit with none). `size`/`mtime_ns` are the file's
    stat when it was read."""

    document: Document
    size: int
    mtime_ns: int
    units: list[Sentence]
    chunks: list[Chunk]
    unit_vectors: np.ndarray
    chunk_vectors: np.ndarray
    unit_tokens: list[np.ndarray]


@dataclass(frozen=True)
class SkippedFile:
    """A file of the seeds folder that could not be indexed, remembered so that it does not look new."""

    source: str
    sha256: str
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True)
class Changes:
    """One commit: store `upserts` (added or changed documents, replacing any stored version of the same source),
    delete `removed` sources. `skipped` replaces the remembered skipped files. `rebuild` drops everything stored
    first (another model or chunk settings, another index format, a damaged index)."""

    upserts: list[IndexedDocument] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    rebuild: bool = False


@dataclass(frozen=True)
class DocumentStatus:
    """One indexed file as the index knows it."""

    source: str
    sha256: str
    size: int
    mtime_ns: int
    units: int
    chunks: int


@dataclass(frozen=True)
class IndexStatus:
    """What the last commit holds, without loading it. `settings` is the `Settings.index_key()` it was built with;
    `details` carries facts of one kind of store (segments, deleted share)."""

    commit: str
    format_version: int
    settings: dict
    dimension: int
    built_at: str
    documents: tuple[DocumentStatus, ...]
    skipped: tuple[SkippedFile, ...] = ()
    details: dict = field(default_factory=dict)

    @property
    def units(self) -> int:
        return sum(d.units for d in self.documents)

    @property
    def chunks(self) -> int:
        return sum(d.chunks for d in self.documents)

    def to_dict(self) -> dict:
        return dict(asdict(self), units=self.units, chunks=self.chunks)


@dataclass(frozen=True)
class Hits:
    """Search results of one level: snapshot row ids, best first, and their scores."""

    ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Staleness:
    """How the seeds folder differs from what the live index was built from."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def describe(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in (("added", self.added), ("changed", self.changed), ("removed", self.removed)) if v]
        return ", ".join(parts)


@dataclass(frozen=True)
class Status:
    """`Assistant.status()`: the live index and whether the seeds folder has moved on since."""

    index: IndexStatus
    stale: Staleness

    def to_dict(self) -> dict:
        return {"index": self.index.to_dict(), "stale": asdict(self.stale)}
