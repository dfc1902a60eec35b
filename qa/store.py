"""The index as a store: one interface for everything above it, whatever holds the index.

Two levels are indexed, each row a record with named fields (types.UNIT_ROW, types.CHUNK_ROW) and a unit-length
vector: UNITS (answer units: sentences, lines, table rows..., each also with its content word pieces' vectors,
for the answerer's token match) and CHUNKS (token-budgeted runs of units, the passages). A build hands the
store the files that changed (`Changes`), the store commits them atomically, and readers `open()` a read-only
`Snapshot` of the last commit: a reader sees one commit or the next, never a mix.

Contract of a snapshot's ids, which retrieval and answering rely on: row ids of a level are ints in
[0, `size(level)`); a document's rows have consecutive ids, in document order, and a chunk's `first`/`last`
are unit ids; a row that is not live (deleted, or a gap) never shares a `document` with a live row and is
never returned by a search. Ids are valid within one snapshot only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager

import numpy as np

from .errors import IndexMismatchError
from .types import Changes, Document, Hits, IndexStatus

UNITS, CHUNKS = "units", "chunks"
LEVELS = (UNITS, CHUNKS)
#: Index format; an index written in another one is rebuilt once, with a note.
FORMAT_VERSION = 5  # 4: units' token vectors; 5: a checksum of every segment file


class Snapshot(ABC):
    """One commit of the index, read-only; cheap to search from many threads at once."""

    status: IndexStatus

    @abstractmethod
    def document(self, d: int) -> Document:
        """Document number `d` (the `document` field of its rows), with its text."""

    @abstractmethod
    def size(self, level: str) -> int:
        """The bound of the level's row ids (live rows and gaps alike)."""

    @abstractmethod
    def rows(self, level: str, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The records of `ids`, as a UNIT_ROW or CHUNK_ROW record array in the order asked."""

    @abstractmethod
    def vectors(self, level: str, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The unit-length float32 vectors of `ids`, (len(ids), dimension), in the order asked."""

    @abstractmethod
    def unit_tokens(self, ids: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Each unit's token vectors as stored (IndexedDocument.unit_tokens: int8, (tokens, dimension)), in the
        order asked."""

    @abstractmethod
    def search_dense(self, level: str, vector: np.ndarray, k: int, sources: Collection[str] | None = None) -> Hits:
        """The k live rows of highest inner product with `vector`; with `sources`, only rows of those files."""

    @abstractmethod
    def search_lexical(self, level: str, weights: Mapping[str, float], k: int, sources: Collection[str] | None = None) -> Hits:
        """The k live rows of highest positive sum over terms of weight * BM25 (Lucene variant, k1 1.5, b 0.75,
        statistics over the live rows of the level); `weights` maps lexical.tokenize terms to multipliers."""

    @abstractmethod
    def idf(self, level: str, terms: Collection[str]) -> dict[str, float]:
        """BM25 idf of each term over the live rows of the level; an unseen term gets the highest."""

    @abstractmethod
    def terms(self, level: str, ids: Sequence[int] | np.ndarray) -> list[frozenset[str]]:
        """The distinct tokenize terms of each row of `ids`."""

    @abstractmethod
    def documents_holding(self, terms: Collection[str], documents: Sequence[int] | np.ndarray) -> dict[str, set[int]]:
        """For each term, which of `documents` have a chunk holding it."""

    @abstractmethod
    def containing_chunks(self, units: Sequence[int] | np.ndarray) -> list[list[int]]:
        """For each unit id, the chunks whose range holds it (more than one where chunks overlap)."""


def mismatch(built: dict, wanted: dict) -> IndexMismatchError:
    """The refusal of an index built with other settings, naming each one that differs."""
    diffs = ", ".join(
        f"{k} {built[k]!r} (now {wanted[k]!r})" if k in built else f"{k} not recorded (now {wanted[k]!r})"
        for k in wanted
        if built.get(k) != wanted[k]
    )
    return IndexMismatchError(f"index was built with {diffs}; run `qa index` to rebuild it")


class IndexStore(ABC):
    """Where the index lives: builds and updates it per file, describes it, opens snapshots of it."""

    @abstractmethod
    def lock(self) -> AbstractContextManager:
        """Held for a whole build; a second build raises IndexBusyError at once instead of racing the first."""

    @abstractmethod
    def commit_id(self) -> str:
        """A name of the last commit, cheap to read, that changes with every commit (IndexMissingError if none)."""

    @abstractmethod
    def status(self) -> IndexStatus:
        """Describe the last commit without loading rows or vectors; IndexMissingError / IndexCorruptError /
        IndexMismatchError (another index format) when it cannot be used."""

    @abstractmethod
    def open(self, key: dict) -> Snapshot:
        """A snapshot of the last commit; refuses one built with another `Settings.index_key()` than `key`,
        or damaged, with an error that says to run `qa index`. `snapshot.status.commit` is the commit read."""

    def verify(self) -> None:
        """Check the stored rows against what was written (IndexCorruptError if they differ), before a build
        calls the index up to date. The folder store reads its files' checksums; PostgreSQL checks its own
        pages where data checksums are on (the default of clusters made by PostgreSQL 18's initdb), so
        there is nothing more for qa to read there."""

    @abstractmethod
    def update(self, key: dict, changes: Changes) -> IndexStatus:
        """Commit `changes` atomically under `key` (call while holding `lock()`); on any failure the last
        commit is left as it was and nothing half-written stays behind. Returns the new commit's status."""


def open_store(location) -> IndexStore:
    """The store behind `Settings.index_dir`: a database for a postgresql:// URL, else a folder."""
    if isinstance(location, str) and location.startswith(("postgresql://", "postgres://")):
        from .pgstore import PgStore

        return PgStore(location)
    from .folder_store import FolderStore

    return FolderStore(location)
