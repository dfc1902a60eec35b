"""The index as a store: one interface for everything above it, whatever holds the index.

Two levels are indexed, each row a record with named fields (types.UNIT_ROW, types.CHUNK_ROW) and a unit-length
vector: UNITS (answer units: sentences, lines, table rows...) and CHUNKS (token-budgeted runs of units, the
passages). A build hands the store the files that changed (`Changes`), the store commits them atomically,
and readers `open()` a read-only `Snapshot` of the last commit: a reader sees one commit or the next, never a mix.

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

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexMissingError
from .lexical import Bm25
from .types import Changes, Document, Hits, IndexStatus

UNITS, CHUNKS = "units", "chunks"
LEVELS = (UNITS, CHUNKS)
#: Index format; an index written in another one is rebuilt once, with a note.
FORMAT_VERSION = 3  # 3: segments + commits, raw term frequencies, unit kind and context


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

    @abstractmethod
    def update(self, key: dict, changes: Changes) -> IndexStatus:
        """Commit `changes` atomically under `key` (call while holding `lock()`); on any failure the last
        commit is left as it was and nothing half-written stays behind. Returns the new commit's status."""



_BUILD_FORMAT = 2
#: Above this many vectors a flat scan gives way to HNSW: a flat scan of 5*10^4 takes about as long as one
#: HNSW search (~1-3 ms here, see `ef_search`), and grows linearly beyond.
FLAT_LIMIT = 50_000


def ef_search(vectors: int) -> int:
    """Candidates an HNSW search keeps, by index size. recall@10 against the exact scan in bench/ (all queries /
    the questions alone), graphs built with EF_CONSTRUCTION 200: 10^5 vectors, 384 -> 0.9995 / 0.9975 in
    1.1 ms; 10^6 vectors, 512 -> 0.995 / 0.975, 768 -> 0.999 / 0.995 in 2.4-3.0 ms (with efConstruction 80,
    1024 gave only 0.994 / 0.97)."""
    return 384 if vectors <= 300_000 else 768


#: Candidates kept while linking each new vector into the HNSW graph: 200 takes 2.8x as long to build as 80
#: (10^6 vectors: 409-443 s vs 144 s, hidden behind hours of encoding) and lifts recall at every efSearch.
EF_CONSTRUCTION = 200


@dataclass
class IndexData:
    """Everything a question needs, in memory.

    `sentences` rows are (document, start, end); `chunks` rows are (document, start, end, first, last) with
    first/last global sentence numbers, last exclusive. Vectors are unit length, row-aligned with the records.
    """

    manifest: dict
    documents: list[Document]
    sentences: np.ndarray
    chunks: np.ndarray
    sentence_index: object
    chunk_index: object
    sentence_bm25: Bm25
    chunk_bm25: Bm25

    @property
    def sentence_vectors(self) -> np.ndarray:
        return vectors_of(self.sentence_index)

    @property
    def chunk_vectors(self) -> np.ndarray:
        return vectors_of(self.chunk_index)


def vector_index(vectors: np.ndarray):
    """Inner product (= cosine on unit vectors) FAISS index: exact while small, HNSW beyond FLAT_LIMIT."""
    import faiss

    d = vectors.shape[1]
    if len(vectors) <= FLAT_LIMIT:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return _tuned(index)


def _tuned(index):
    """The search-time knobs, which a saved index file does not carry reliably."""
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = ef_search(index.ntotal)
    return index


def vectors_of(index) -> np.ndarray:
    """The stored vectors as a (n, d) array view, without copying, for flat and HNSW indexes alike."""
    import faiss

    index = faiss.downcast_index(index)
    flat = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
    n, d = flat.ntotal, flat.d
    if n == 0:
        return np.zeros((0, d), dtype=np.float32)
    return faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)


class BuildFolder:
    """The index folder of format 2 (one whole build per commit); replaced by the segment store."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def lock(self):
        """A lock held for a whole build; a second build refuses at once instead of racing the first."""
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / ".lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise IndexBusyError(f"another `qa index` is building {self.folder} right now; wait for it to finish") from None
        return lock

    def current(self) -> Path:
        pointer = self.folder / "CURRENT"
        try:
            name = pointer.read_text().strip()
        except FileNotFoundError:
            raise IndexMissingError(f"no index in {self.folder}; run `qa index` to build it") from None
        build = self.folder / name
        if not name.startswith("build-") or not build.is_dir():
            raise IndexCorruptError(f"index in {self.folder} points at a missing build; run `qa index` to rebuild it")
        return build

    def manifest(self) -> dict:
        return _read_manifest(self.current())

    def load(self, expected_key: dict | None = None) -> IndexData:
        """Load the live build; refuse a damaged one, or one built with other settings than `expected_key`."""
        import faiss

        build = self.current()
        manifest = _read_manifest(build)
        if expected_key is not None and manifest.get("settings") != expected_key:
            raise IndexMismatchError(_mismatch(manifest.get("settings", {}), expected_key))
        for name, size in manifest.get("sizes", {}).items():
            path = build / name
            if not path.is_file() or path.stat().st_size != size:
                raise IndexCorruptError(f"index file {path} is truncated or missing; run `qa index` to rebuild it")
        try:
            docs = json.loads((build / "documents.json").read_text(encoding="utf-8"))
            documents = [Document(d["source"], d["text"], d["sha256"], tuple(d["page_starts"])) for d in docs]
            data = IndexData(
                manifest=manifest,
                documents=documents,
                sentences=np.load(build / "sentences.npy"),
                chunks=np.load(build / "chunks.npy"),
                sentence_index=_tuned(faiss.read_index(str(build / "sentences.faiss"))),
                chunk_index=_tuned(faiss.read_index(str(build / "chunks.faiss"))),
                sentence_bm25=Bm25.load(build / "bm25-sentences"),
                chunk_bm25=Bm25.load(build / "bm25-chunks"),
            )
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
            raise IndexCorruptError(f"index in {build} cannot be read ({e}); run `qa index` to rebuild it") from None
        if not (len(data.sentences) == data.sentence_index.ntotal and len(data.chunks) == data.chunk_index.ntotal):
            raise IndexCorruptError(f"index in {build} has records and vectors of different lengths; run `qa index`")
        return data

    def save(self, data: IndexData) -> Path:
        """Write a new build beside the live one and switch CURRENT to it in one atomic rename."""
        import faiss

        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        tmp = self.folder / f"tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        docs = [{"source": d.source, "sha256": d.sha256, "text": d.text, "page_starts": d.page_starts} for d in data.documents]
        (tmp / "documents.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
        np.save(tmp / "sentences.npy", data.sentences)
        np.save(tmp / "chunks.npy", data.chunks)
        faiss.write_index(data.sentence_index, str(tmp / "sentences.faiss"))
        faiss.write_index(data.chunk_index, str(tmp / "chunks.faiss"))
        data.sentence_bm25.save(tmp / "bm25-sentences")
        data.chunk_bm25.save(tmp / "bm25-chunks")
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = dict(data.manifest, format_version=_BUILD_FORMAT)
        manifest["sizes"] = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        for path in [*files, tmp / "manifest.json"]:
            _fsync(path)
        build = self.folder / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        tmp.rename(build)
        pointer = self.folder / "CURRENT.tmp"
        pointer.write_text(build.name + "\n")
        _fsync(pointer)
        previous = self._live_name()
        os.replace(pointer, self.folder / "CURRENT")
        _fsync(self.folder)
        data.manifest = manifest
        self._remove_old_builds(keep={build.name, previous})
        return build

    def _live_name(self) -> str | None:
        try:
            return (self.folder / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None

    def _remove_leftovers(self) -> None:
        """Folders of builds that were killed before they finished."""
        for path in self.folder.glob("tmp-*"):
            shutil.rmtree(path, ignore_errors=True)

    def _remove_old_builds(self, keep: set) -> None:
        """Keep the new build and the one it replaced (a reader may have just followed CURRENT to it)."""
        for path in self.folder.glob("build-*"):
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)


def _read_manifest(build: Path) -> dict:
    try:
        manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"index in {build} has no manifest; run `qa index` to rebuild it") from None
    except (OSError, ValueError) as e:
        raise IndexCorruptError(f"index manifest in {build} is unreadable ({e}); run `qa index` to rebuild it") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format_version"), int):
        raise IndexCorruptError(f"index in {build} has an unknown format; run `qa index` to rebuild it")
    if manifest["format_version"] != _BUILD_FORMAT:
        raise IndexMismatchError(
            f"index was written by another version of qa (index format {manifest['format_version']}, now {_BUILD_FORMAT});"
            " run `qa index` to rebuild it"
        )
    return manifest


def _mismatch(built: dict, wanted: dict) -> str:
    diffs = ", ".join(f"{k} {built.get(k)!r} (now {wanted[k]!r})" for k in wanted if built.get(k) != wanted[k])
    return f"index was built with {diffs}; run `qa index` to rebuild it"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
