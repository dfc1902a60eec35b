"""FolderStore: the index as a folder of immutable segments and small commits, the way Lucene and Tantivy do it.

Layout of `index/`:
    CURRENT                 the name of the live commit, replaced atomically (os.replace + fsync)
    commit-<gen>-<id>.json  format version, settings, the live segments, and per segment its deleted documents
    seg-<id>/               one segment (see segment.py); never changed once written
    .lock                   held while a build runs
A build writes one segment with the added and changed files, marks the older versions of changed and removed
files deleted in the new commit, merges segments when they pile up or carry many deleted rows, and switches
CURRENT. A reader follows CURRENT once, so it sees one commit or the next, never a mix; `kill -9` at any point
leaves the last commit answering, and the next build removes what no commit names. The previous commit's
files are kept one generation, as a reader may have just opened it.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np

from . import segment
from .errors import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexMissingError, QAError
from .lexical import LiveBm25, Postings
from .segment import Segment
from .store import CHUNKS, FORMAT_VERSION, LEVELS, UNITS, IndexStore, Snapshot, mismatch
from .types import CHUNK_ROW, UNIT_ROW, Changes, Document, DocumentStatus, Hits, IndexStatus, SkippedFile

#: More live segments than this and the smallest are merged (into one, leaving about half as many): each
#: question searches every segment, so many small ones cost more than one of their size.
MAX_SEGMENTS = 8
#: A segment whose deleted rows pass this share of its rows is rewritten without them at the next build.
MAX_DELETED_SHARE = 0.3
#: Flat segments up to this many rows are searched as one pooled flat index (built when a snapshot opens), so a
#: question costs one scan for all the small segments a run of one-file updates leaves, not one call each.
POOL_ROWS = 10_000
_ROWS = {UNITS: UNIT_ROW, CHUNKS: CHUNK_ROW}


class FolderStore(IndexStore):
    """An index folder on this machine. Loaded segments are kept and shared by the snapshots that name them."""

    def __init__(self, folder: Path, max_segments: int = MAX_SEGMENTS, max_deleted_share: float = MAX_DELETED_SHARE):
        self.folder = Path(folder)
        self.max_segments = max_segments
        self.max_deleted_share = max_deleted_share
        self._loaded: dict[str, Segment] = {}
        self._loading = threading.Lock()
        #: Segments whose files matched their checksums: segments never change, so each is read once per process.
        self._verified: set[str] = set()

    # -- reading --------------------------------------------------------------------------------------------

    def lock(self):
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / ".lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise IndexBusyError(f"another `qa index` is building {self.folder} right now; wait for it to finish") from None
        return lock

    def commit_id(self) -> str:
        name = _read_pointer(self.folder)
        if name is None:
            raise IndexMissingError(f"no index in {self.folder}; run `qa index` to build it")
        return name

    def status(self) -> IndexStatus:
        name, commit = self._read_current()
        for entry in commit["segments"]:
            self._check_meta(entry, commit, self._meta(entry))
        return self._status(name, commit, [self._documents(e) for e in commit["segments"]])

    def open(self, key: dict) -> Snapshot:
        name, commit = self._read_current()
        if commit["settings"] != key:
            raise mismatch(commit["settings"], key)
        with self._loading:
            segments = [self._segment(e, commit) for e in commit["segments"]]
            self._loaded = {s.name: s for s in segments}
        status = self._status(name, commit, [s.documents for s in segments])
        return FolderSnapshot(status, segments, [set(e["deleted"]) for e in commit["segments"]])

    def _read_current(self) -> tuple[str, dict]:
        """The live commit, checked against the files it names (cheap: sizes, not contents)."""
        name = self.commit_id()
        if name.startswith("build-"):
            raise IndexMismatchError(f"index was written by another version of qa (index format {_old_format(self.folder / name)}, now {FORMAT_VERSION}); run `qa index` to rebuild it")
        path = self.folder / name
        if not (name.startswith("commit-") and path.is_file()):
            raise IndexCorruptError(f"index in {self.folder} points at a missing commit; run `qa index` to rebuild it")
        try:
            commit = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexCorruptError(f"index commit {path} is unreadable ({e}); run `qa index` to rebuild it") from None
        if not isinstance(commit, dict) or not isinstance(commit.get("format_version"), int):
            raise IndexCorruptError(f"index in {self.folder} has an unknown format; run `qa index` to rebuild it")
        if commit["format_version"] != FORMAT_VERSION:
            raise IndexMismatchError(
                f"index was written by another version of qa (index format {commit['format_version']}, now {FORMAT_VERSION}); run `qa index` to rebuild it"
            )
        try:
            if {"generation", "settings", "dimension", "built_at", "segments", "skipped"} - commit.keys():
                raise KeyError("fields")
            for entry in commit["segments"]:
                folder = self.folder / entry["name"]
                for file, written in entry["files"].items():
                    if not isinstance(written["crc32"], int):
                        raise TypeError("checksum")
                    if not (folder / file).is_file() or (folder / file).stat().st_size != written["size"]:
                        raise IndexCorruptError(f"index segment {entry['name']} is truncated or missing ({file}); run `qa index` to rebuild it")
                deleted = entry["deleted"]
                if len(set(deleted)) != len(deleted) or not all(isinstance(j, int) and 0 <= j < entry["documents"] for j in deleted):
                    raise IndexCorruptError(f"the deletions of index segment {entry['name']} do not match it; run `qa index` to rebuild it")
        except (KeyError, TypeError, AttributeError):
            raise IndexCorruptError(f"index commit {path} is incomplete; run `qa index` to rebuild it") from None
        return name, commit

    def verify(self) -> None:
        """Every live segment's files against the checksums written with them: a byte changed in place keeps
        the size that `_read_current` checks, and the reader that trips on it would send the user to a
        `qa index` that found nothing to do."""
        _, commit = self._read_current()
        for entry in commit["segments"]:
            if entry["name"] in self._verified:
                continue
            for file, written in entry["files"].items():
                try:
                    same = segment.checksum(self.folder / entry["name"] / file) == written["crc32"]
                except OSError as e:
                    raise IndexCorruptError(f"index segment {entry['name']} cannot be read ({e}); run `qa index` to rebuild it") from None
                if not same:
                    raise IndexCorruptError(f"index segment {entry['name']} is damaged ({file} is not as written); run `qa index` to rebuild it")
            self._verified.add(entry["name"])

    def _documents(self, entry: dict) -> list[dict]:
        loaded = self._loaded.get(entry["name"])
        if loaded is not None:
            return loaded.documents
        try:
            documents = json.loads((self.folder / entry["name"] / "documents.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexCorruptError(f"index segment {entry['name']} cannot be read ({e}); run `qa index` to rebuild it") from None
        if len(documents) != entry["documents"]:
            raise IndexCorruptError(f"the deletions of index segment {entry['name']} do not match it; run `qa index` to rebuild it")
        return documents

    def _segment(self, entry: dict, commit: dict) -> Segment:
        name = entry["name"]
        seg = self._loaded.get(name)
        if seg is None:
            try:
                seg = segment.load(self.folder / name)
            except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
                raise IndexCorruptError(f"index segment {name} cannot be read ({e}); run `qa index` to rebuild it") from None
        self._check_meta(entry, commit, seg.meta)
        return seg

    def _meta(self, entry: dict) -> dict:
        loaded = self._loaded.get(entry["name"])
        if loaded is not None:
            return loaded.meta
        try:
            return json.loads((self.folder / entry["name"] / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexCorruptError(f"index segment {entry['name']} cannot be read ({e}); run `qa index` to rebuild it") from None

    @staticmethod
    def _check_meta(entry: dict, commit: dict, meta: dict) -> None:
        """A segment written for this commit: same model and settings, the counts the commit expects."""
        name = entry["name"]
        if not isinstance(meta, dict) or meta.get("settings") != commit["settings"] or meta.get("dimension") != commit["dimension"]:
            raise IndexCorruptError(f"index segment {name} was built with another model or settings; run `qa index` to rebuild it")
        if (meta.get("documents"), meta.get(UNITS), meta.get(CHUNKS)) != (entry["documents"], entry[UNITS], entry[CHUNKS]):
            raise IndexCorruptError(f"the deletions of index segment {name} do not match it; run `qa index` to rebuild it")

    def _status(self, name: str, commit: dict, documents: list[list[dict]]) -> IndexStatus:
        live, rows, deleted_rows = [], 0, 0
        for entry, docs in zip(commit["segments"], documents):
            gone = set(entry["deleted"])
            rows += entry[CHUNKS]
            for j, d in enumerate(docs):
                if j in gone:
                    deleted_rows += d[CHUNKS]
                else:
                    live.append(DocumentStatus(d["source"], d["sha256"], d["size"], d["mtime_ns"], d[UNITS], d[CHUNKS]))
        live.sort(key=lambda d: d.source)
        if any(a.source == b.source for a, b in zip(live, live[1:])):
            raise IndexCorruptError(f"the deletions of the index in {self.folder} do not match its segments (a file is live twice); run `qa index` to rebuild it")
        return IndexStatus(
            commit=name,
            format_version=commit["format_version"],
            settings=commit["settings"],
            dimension=commit["dimension"],
            built_at=commit["built_at"],
            documents=tuple(live),
            skipped=tuple(SkippedFile(**s) for s in commit["skipped"]),
            details={"segments": len(commit["segments"]), "deleted_share": round(deleted_rows / rows, 4) if rows else 0.0},
        )

    # -- writing --------------------------------------------------------------------------------------------

    def update(self, key: dict, changes: Changes) -> IndexStatus:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        before = _read_pointer(self.folder)
        previous = None if changes.rebuild or before is None else self._read_current()
        commit = previous[1] if previous else {"generation": 0, "dimension": 0, "segments": []}
        if previous and commit["settings"] != key:
            raise mismatch(commit["settings"], key)
        entries = [dict(e, deleted=list(e["deleted"])) for e in commit["segments"]]
        documents = {e["name"]: self._documents(e) for e in entries}
        replaced = set(changes.removed) | {x.document.source for x in changes.upserts}
        for entry in entries:
            gone = set(entry["deleted"])
            for j, d in enumerate(documents[entry["name"]]):
                if d["source"] in replaced and j not in gone:
                    entry["deleted"].append(j)
                    entry[f"deleted_{UNITS}"] += d[UNITS]
                    entry[f"deleted_{CHUNKS}"] += d[CHUNKS]
        dimension = changes.upserts[0].chunk_vectors.shape[1] if changes.upserts else commit["dimension"]
        written: list[Path] = []
        try:
            if changes.upserts:
                entries.append(self._write(written, lambda folder: segment.build(folder, key, changes.upserts)))
            entries = self._merged(key, dimension, entries, commit, written)
            new = {
                "format_version": FORMAT_VERSION,
                "generation": commit["generation"] + 1,
                "settings": key,
                "dimension": int(dimension),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "segments": entries,
                "skipped": [vars(s) for s in changes.skipped],
            }
            name = self._commit(new, written)
        except (OSError, RuntimeError) as e:  # disk full: faiss reports a failed write as RuntimeError
            for path in written:
                _remove(path)
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[-1]
            raise QAError(f"could not write the index in {self.folder} ({reason}); the previous index is unchanged") from None
        self._remove_unreferenced(keep={name, before or ""})
        return self._status(name, new, [self._documents(e) for e in entries])

    def _write(self, written: list[Path], writer) -> dict:
        """Write a segment through `writer(folder) -> its files' sizes and checksums` under a temporary name,
        then give it its own (and count it verified: its checksums were just read from what was written)."""
        tmp = self.folder / f"tmp-{uuid.uuid4().hex[:12]}"
        written.append(tmp)
        files = writer(tmp)
        meta = json.loads((tmp / "meta.json").read_text(encoding="utf-8"))
        final = self.folder / f"seg-{uuid.uuid4().hex[:12]}"
        tmp.rename(final)
        written.append(final)
        self._verified.add(final.name)
        return {"name": final.name, "documents": meta["documents"], UNITS: meta[UNITS], CHUNKS: meta[CHUNKS],
                f"deleted_{UNITS}": 0, f"deleted_{CHUNKS}": 0, "deleted": [], "files": files}

    def _merged(self, key: dict, dimension: int, entries: list[dict], commit: dict, written: list[Path]) -> list[dict]:
        """`entries` after the merges the policy asks for: segments with many deleted rows, and the smallest
        ones when there are too many. Only the merged segments are read and written."""
        share = lambda e: e[f"deleted_{UNITS}"] / e[UNITS] if e[UNITS] else 1.0  # noqa: E731
        pick = {i for i, e in enumerate(entries) if share(e) > self.max_deleted_share}
        rest = sorted((i for i in range(len(entries)) if i not in pick), key=lambda i: entries[i][UNITS] - entries[i][f"deleted_{UNITS}"])
        if len(rest) + bool(pick) > self.max_segments:
            pick |= set(rest[: len(rest) + 1 - self.max_segments // 2])  # these and `pick` become one segment
        if not pick:
            return entries
        merging = [entries[i] for i in sorted(pick)]
        kept = [e for i, e in enumerate(entries) if i not in pick]
        parts = []
        with self._loading:
            for e in merging:
                seg = self._segment(e, dict(commit, settings=key, dimension=dimension))
                self._loaded[seg.name] = seg
                parts.append((seg, np.setdiff1d(np.arange(e["documents"]), e["deleted"]).astype(np.int64)))
        if any(len(keep) for _, keep in parts):
            kept.append(self._write(written, lambda folder: segment.merge(folder, key, dimension, parts)))
        return kept

    def _commit(self, commit: dict, written: list[Path]) -> str:
        name = f"commit-{commit['generation']:06d}-{uuid.uuid4().hex[:6]}.json"
        tmp = self.folder / f"tmp-{uuid.uuid4().hex[:12]}.json"
        written.append(tmp)
        tmp.write_text(json.dumps(commit, ensure_ascii=False), encoding="utf-8")
        segment.fsync(tmp)
        tmp.rename(self.folder / name)
        written.append(self.folder / name)
        pointer = self.folder / "CURRENT.tmp"
        written.append(pointer)
        pointer.write_text(name + "\n")
        segment.fsync(pointer)
        os.replace(pointer, self.folder / "CURRENT")
        written.clear()  # committed: from here on nothing of it may be removed
        segment.fsync(self.folder)
        return name

    def _remove_leftovers(self) -> None:
        """What builds killed before their commit left behind."""
        for path in self.folder.glob("tmp-*"):
            _remove(path)

    def _remove_unreferenced(self, keep: set[str]) -> None:
        """Commits other than `keep`, segments none of them names, and folders of the old format."""
        names = set()
        for commit in keep:
            try:
                names |= {e["name"] for e in json.loads((self.folder / commit).read_text(encoding="utf-8"))["segments"]}
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for path in [*self.folder.glob("commit-*"), *self.folder.glob("seg-*")]:
            if path.name not in keep and path.name not in names:
                _remove(path)
        for path in self.folder.glob("build-*"):  # index format 2, which no reader of this version opens
            _remove(path)
        with self._loading:
            self._loaded = {n: s for n, s in self._loaded.items() if n in names}
        self._verified &= names


class FolderSnapshot(Snapshot):
    """Live rows of a commit's segments, numbered in order of (source, position): the ids do not depend on how
    the rows are spread over segments, so an updated index answers exactly like a fresh build of the same files."""

    def __init__(self, status: IndexStatus, segments: list[Segment], deleted: list[set[int]]):
        self.status = status
        self._segments = segments
        live = sorted((seg.documents[j]["source"], p, j) for p, seg in enumerate(segments) for j in range(len(seg.documents)) if j not in deleted[p])
        if len({source for source, _, _ in live}) != len(live):
            raise IndexCorruptError("the deletions of the index do not match its segments (a file is live twice); run `qa index` to rebuild it")
        self._documents = []
        for source, p, j in live:
            meta = segments[p].documents[j]
            self._documents.append(Document(source, segments[p].texts[j], meta["sha256"], tuple(meta["page_starts"])))
        self._sources = [d.source for d in self._documents]
        self._starts, self._ids, self._rows, self._part_of, self._local, self._bm25 = {}, {}, {}, {}, {}, {}
        for level in LEVELS:
            counts = np.array([segments[p].starts[level][j + 1] - segments[p].starts[level][j] for _, p, j in live], dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            ids = [np.full(len(seg.rows[level]), -1, dtype=np.int64) for seg in segments]
            for n, (_, p, j) in enumerate(live):
                lo = segments[p].starts[level][j]
                ids[p][lo : lo + counts[n]] = np.arange(starts[n], starts[n + 1])
            size = int(starts[-1])
            part_of, local = np.zeros(size, dtype=np.int32), np.zeros(size, dtype=np.int64)
            for p, m in enumerate(ids):
                alive = np.flatnonzero(m >= 0)
                part_of[m[alive]], local[m[alive]] = p, alive
            self._starts[level], self._ids[level], self._part_of[level], self._local[level] = starts, ids, part_of, local
            small, large = self._pooled(level)
            parts = [(segments[p].postings[level], ids[p]) for p in large]
            if small:
                pool_ids, places = small
                merged = Postings.take([(segments[p].postings[level], place) for p, place in places], len(pool_ids))
                parts.append((merged, pool_ids))
            self._bm25[level] = LiveBm25([x for x, _ in parts], [m for _, m in parts], size)
        doc_of = [np.full(len(seg.documents), -1, dtype=np.int64) for seg in segments]
        for n, (_, p, j) in enumerate(live):
            doc_of[p][j] = n
        self._searchers = {level: self._dense_searchers(level) for level in LEVELS}
        for level in LEVELS:
            rows = np.zeros(len(self._part_of[level]), dtype=_ROWS[level])
            for p, seg in enumerate(segments):
                alive = np.flatnonzero(self._ids[level][p] >= 0)
                taken = seg.rows[level][alive].copy()
                taken["document"] = doc_of[p][taken["document"]]
                if level == CHUNKS:
                    taken["first"] = self._ids[UNITS][p][taken["first"]]
                    taken["last"] = self._ids[UNITS][p][taken["last"] - 1] + 1
                rows[self._ids[level][p][alive]] = taken
            self._rows[level] = rows

    def document(self, d: int) -> Document:
        return self._documents[d]

    def size(self, level: str) -> int:
        return len(self._part_of[level])

    def rows(self, level: str, ids) -> np.ndarray:
        return self._rows[level][np.asarray(ids, dtype=np.int64)]

    def vectors(self, level: str, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.status.dimension), dtype=np.float32)
        part_of, local = self._part_of[level][ids], self._local[level][ids]
        for p in np.unique(part_of).tolist():
            at = part_of == p
            out[at] = self._segments[p].vectors(level)[local[at]]
        return out

    def unit_tokens(self, ids: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64)
        part_of, local = self._part_of[UNITS][ids].tolist(), self._local[UNITS][ids].tolist()
        return [self._segments[p].unit_tokens(u) for p, u in zip(part_of, local)]

    def _pooled(self, level: str) -> tuple[tuple[np.ndarray, list[tuple[int, np.ndarray]]] | None, list[int]]:
        """The small flat segments, searched as one: (snapshot ids of their live rows, ascending, and for each such
        segment its rows' places among them, -1 for a deleted row), or None; and the other segments."""
        import faiss

        small = [p for p, seg in enumerate(self._segments) if isinstance(seg.index[level], faiss.IndexFlat) and seg.index[level].ntotal <= POOL_ROWS]
        large = [p for p in range(len(self._segments)) if p not in small]
        if not small:
            return None, large
        ids = self._ids[level]
        pool_ids = np.sort(np.concatenate([ids[p][ids[p] >= 0] for p in small]))
        places = [(p, np.where(ids[p] >= 0, np.searchsorted(pool_ids, ids[p]), -1)) for p in small]
        return (pool_ids, places), large

    def _dense_searchers(self, level: str) -> list[tuple[object, np.ndarray, segment.Allowed | None]]:
        """(FAISS index, snapshot id of each of its rows, rows allowed) to search: each large or graph segment on
        its own (its deleted rows filtered out), and one flat index of the live rows of all the small ones, in
        snapshot order, so ties fall as in a single segment."""
        import faiss

        small, large = self._pooled(level)
        searchers = []
        for p in large:
            ids = self._ids[level][p]
            searchers.append((self._segments[p].index[level], ids, None if (ids >= 0).all() else segment.Allowed(ids >= 0)))
        if small:
            pool_ids, places = small
            vectors = np.zeros((len(pool_ids), self.status.dimension), dtype=np.float32)
            for p, place in places:
                vectors[place[place >= 0]] = self._segments[p].vectors(level)[place >= 0]
            pool = faiss.IndexFlatIP(self.status.dimension)
            pool.add(vectors)
            searchers.append((pool, pool_ids, None))
        return searchers

    def _of_sources(self, level: str, sources: Collection[str]) -> np.ndarray:
        """Whether each row of the level belongs to one of `sources`."""
        wanted = set(sources)
        return np.repeat(np.array([s in wanted for s in self._sources], dtype=bool), np.diff(self._starts[level]))

    def search_dense(self, level: str, vector: np.ndarray, k: int, sources: Collection[str] | None = None) -> Hits:
        keep = None if sources is None else self._of_sources(level, sources)
        found, scores = [], []
        for index, ids, allowed in self._searchers[level]:
            if keep is not None:
                allowed = segment.Allowed((ids >= 0) & keep[np.maximum(ids, 0)])
            rows, s = segment.search(index, vector, k, allowed)
            found.append(ids[rows])
            scores.append(s)
        found, scores = np.concatenate(found or [np.zeros(0, np.int64)]), np.concatenate(scores or [np.zeros(0, np.float32)])
        order = np.lexsort((found, -scores))[:k]
        return Hits(found[order], scores[order])

    def search_lexical(self, level: str, weights: Mapping[str, float], k: int, sources: Collection[str] | None = None) -> Hits:
        scores = self._bm25[level].scores(dict(weights))
        if sources is not None:
            scores *= self._of_sources(level, sources)
        top = top_positive(scores, k)
        return Hits(top, scores[top])

    def idf(self, level: str, terms: Collection[str]) -> dict[str, float]:
        return self._bm25[level].idf(terms)

    def terms(self, level: str, ids) -> list[frozenset[str]]:
        return self._bm25[level].terms(ids)

    def documents_holding(self, terms: Collection[str], documents) -> dict[str, set[int]]:
        docs = np.asarray(documents, dtype=np.int64)
        first, last = self._starts[CHUNKS][docs], self._starts[CHUNKS][docs + 1]
        holding = {}
        for t in terms:
            held = np.zeros(len(docs), dtype=bool)
            for postings in self._bm25[CHUNKS].postings(t):  # ascending: a binary search per document
                held |= np.searchsorted(postings, first) < np.searchsorted(postings, last)
            holding[t] = set(docs[held].tolist())
        return holding

    def containing_chunks(self, units) -> list[list[int]]:
        chunks = self._rows[CHUNKS]
        firsts, lasts = chunks["first"], chunks["last"]
        out = []
        for s in np.asarray(units, dtype=np.int64).tolist():
            c = int(np.searchsorted(firsts, s, side="right")) - 1
            found = []
            while c >= 0 and lasts[c] > s:
                if firsts[c] <= s:
                    found.append(c)
                c -= 1
            out.append(found)
        return out


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k highest scores, best first, a tie going to the lower id (the interface's contract), however
    many rows share the k-th score: argpartition alone picks among those in no defined order."""
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    candidates = np.flatnonzero(scores >= kth)
    return candidates[np.argsort(-scores[candidates], kind="stable")[:k]]


#: Scores sampled to guess a floor for the top-k of a long score array (see `top_positive`).
_SAMPLE = 32_768


def top_positive(scores: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k highest positive scores, best first; exact, without sorting or even listing every hit.

    The k-th best of an evenly spaced sample can only be lower than the k-th best of the whole array, so every
    score at or above it is a candidate: about len(scores) * k / _SAMPLE of them instead of all the hits.
    """
    stride = len(scores) // _SAMPLE
    if stride > 1 and k > 0:
        sample = scores[::stride]
        floor = max(float(np.partition(sample, len(sample) - k)[len(sample) - k]), np.finfo(np.float32).tiny)
        hits = np.flatnonzero(scores >= floor)
    else:
        hits = np.flatnonzero(scores)
    return hits[_top(scores[hits], k)]


def _read_pointer(folder: Path) -> str | None:
    try:
        return (folder / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None


def _old_format(build: Path) -> object:
    try:
        return json.loads((build / "manifest.json").read_text(encoding="utf-8")).get("format_version", "unknown")
    except (OSError, ValueError, AttributeError):
        return "unknown"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
