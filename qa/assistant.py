"""Assistant: the one place that knows the chain: documents -> units and chunks -> vectors -> store -> retrieval -> answer."""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .answering import Extractor, Scored
from .chunking import Chunker
from .config import Settings
from .documents import TEXT_SUFFIXES, Refused, add_file, check_upload, file_sha256, load_documents, seed_files, trash_file
from .embedding import Embedder, Encoded
from .errors import CorpusError, IndexCorruptError, IndexMismatchError, IndexMissingError, QAError, QuestionError
from .lexical import tokenize
from .retrieval import Query, Retriever
from .store import Snapshot, mismatch, open_store
from .types import Answer, Changes, Chunk, Document, IndexedDocument, IndexReport, IndexStatus, Sentence, SkippedFile, Staleness, Status

#: Called as progress(done, total) while texts are embedded.
Progress = Callable[[int, int], None]


def _stderr(message: str) -> None:
    print(f"qa: {message}", file=sys.stderr)


@dataclass
class _Live:
    """A snapshot of the index with the objects that search it; swapped whole when a new commit lands."""

    commit: str
    snapshot: Snapshot
    retriever: Retriever
    extractor: Extractor


def _embedded(text: str, unit: Sentence) -> str:
    """The text a unit's vector is computed from: a table row is read with its header row ("| Weight | 17.8 kg |"
    means little without "| Specification | Value |"), every other unit alone."""
    if unit.kind == "table_row" and unit.context_end > unit.context_start:
        return f"{text[unit.context_start : unit.context_end]}\n{unit.text}"
    return unit.text


def _scan(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file the document reader would consider, by source: the cheap look at seeds/."""
    stats = {}
    if not folder.is_dir():
        return stats
    for path in seed_files(folder, lambda _: None):
        if path.suffix.lower() in TEXT_SUFFIXES:
            try:
                st = path.stat()
            except OSError:
                continue
            stats[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return stats


_builds_running = 0
_builds_lock = threading.Lock()
_interval_before = 0.0


@contextlib.contextmanager
def _handover(interval: float):
    """While any build runs, Python's lock changes hands every `interval` seconds at most (sys.setswitchinterval),
    so a question's thread waits that long, not 5 ms, each time it takes the lock back from a build in Python."""
    global _builds_running, _interval_before
    with _builds_lock:
        if _builds_running == 0:
            _interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, _interval_before))
        _builds_running += 1
    try:
        yield
    finally:
        with _builds_lock:
            _builds_running -= 1
            if _builds_running == 0:
                sys.setswitchinterval(_interval_before)


class Assistant:
    """Index a seeds folder and answer questions from it with verbatim, cited quotations."""

    def __init__(self, settings: Settings | None = None, warn: Callable[[str], None] = _stderr):
        self.settings = settings or Settings()
        self.warn = warn
        self.embedder = Embedder.from_settings(self.settings)
        self.chunker = Chunker(self.settings.chunk_tokens, self.settings.chunk_overlap, self.settings.encoding)
        self.store = open_store(self.settings.index_dir)
        self._live: _Live | None = None
        self._loading = threading.Lock()
        #: sha256 of files whose size or mtime differ from the index's, by (source, size, mtime_ns): each is hashed once
        self._hashes: dict[tuple[str, int, int], str] = {}

    # -- building -----------------------------------------------------------------------------------------

    def index(self, progress: Progress | None = None) -> IndexReport:
        """Bring the index up to date with seeds/: only added and changed files are embedded and written."""
        started = time.perf_counter()
        s = self.settings
        with self.store.lock(), _handover(s.build_switch_interval):
            stats = _scan(s.seeds_dir)  # before reading: a file changed after this looks stale later, never fresh
            stored, reason = self._stored()
            # an update costs what changed: a document whose size and mtime are the indexed ones is not read again;
            # a skipped file is (a higher size limit or a newly installed reader may take it now), but not re-reported
            old = {d.source: d for d in stored.documents} if stored else {}
            kept = frozenset(src for src, st in stats.items() if src in old and (old[src].size, old[src].mtime_ns) == st)
            reported = {f.source: f.sha256 for f in stored.skipped} if stored else {}
            skipped: dict[str, str] = {}
            documents = load_documents(s.seeds_dir, s.max_file_bytes, self.warn, skipped, kept, reported)
            fresh = [d for d in documents if d.source not in old or old[d.source].sha256 != d.sha256]
            removed = sorted(set(old) - {d.source for d in documents} - kept)
            skipped_files = [SkippedFile(src, sha, *stats.get(src, (0, 0))) for src, sha in sorted(skipped.items())]
            upserts, units_embedded = self._embed(fresh, stats, progress)
            changes = Changes(upserts, removed, skipped_files, rebuild=stored is None)
            if changes.rebuild or upserts or removed or tuple(skipped_files) != stored.skipped:
                stored = self.store.update(s.index_key(), changes)
        added = sum(d.source not in old for d in fresh)
        return IndexReport(
            files=len(documents) + len(kept),
            added=added,
            changed=len(fresh) - added,
            removed=len(removed),
            unchanged=len(documents) + len(kept) - len(fresh),
            chunks=stored.chunks,
            chunks_embedded=sum(len(x.chunks) for x in upserts),
            sentences_embedded=units_embedded,
            seconds=round(time.perf_counter() - started, 2),
            full_rebuild=reason,
        )

    def _stored(self) -> tuple[IndexStatus | None, str]:
        """What the index holds, if it can be updated in place; else None and why everything is embedded again."""
        try:
            status = self.store.status()
            if status.settings != self.settings.index_key():
                raise mismatch(status.settings, self.settings.index_key())
            self.store.verify()
            return status, ""
        except IndexMissingError:
            return None, ""
        except IndexMismatchError as e:
            reason = str(e).split(";")[0].replace("index was built with", "settings changed:")
        except IndexCorruptError:
            reason = "the previous index is damaged"
        self.warn(f"full rebuild: {reason}")
        return None, reason

    def _embed(self, documents: list[Document], stats: dict, progress: Progress | None) -> tuple[list[IndexedDocument], int]:
        """Each document split and embedded, ready for the store; and how many units were embedded."""
        if not documents:
            return [], 0  # and the model is not even loaded
        splits = [self._split(d) for d in documents]
        chunk_texts = [c.text for units, chunks in splits for c in chunks]
        unit_texts = [_embedded(d.text, u) for d, (units, _) in zip(documents, splits) for u in units]
        total, done = len(chunk_texts) + len(unit_texts), 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        if progress:
            progress(0, total)
        chunk_vectors = self.embedder.encode(chunk_texts, self.settings.batch_size, step)
        units_encoded = self.embedder.encode_tokens(unit_texts, self.settings.batch_size, step)
        upserts, c_at, u_at = [], 0, 0
        for doc, (units, chunks) in zip(documents, splits):
            c_vecs, c_at = chunk_vectors[c_at : c_at + len(chunks)], c_at + len(chunks)
            u, u_at = units_encoded[u_at : u_at + len(units)], u_at + len(units)
            upserts.append(IndexedDocument(doc, *stats.get(doc.source, (0, 0)), units, chunks, u.vectors, c_vecs, u.tokens))
        return upserts, sum(len(units) for units, _ in splits)

    def _split(self, doc: Document) -> tuple[list[Sentence], list[Chunk]]:
        """Sentences and chunks of a document, re-packed tighter if a chunk overflows the model's window."""
        chunker = self.chunker
        for _ in range(4):
            sentences, chunks = chunker.split(doc.text)
            longest = max(self.embedder.word_pieces([c.text for c in chunks]), default=0)
            if longest <= self.embedder.window:
                return sentences, chunks
            # subtle: tiktoken and the model's word pieces disagree on rare words; shrink the budget in proportion
            budget = max(16, int(chunker.max_tokens * self.embedder.window / longest * 0.95))
            chunker = Chunker(budget, self.settings.chunk_overlap, self.settings.encoding)
        return sentences, chunks

    def add_documents(self, uploads: Sequence[tuple[str, Path]], progress: Progress | None = None) -> tuple[IndexReport | None, list[Refused]]:
        """Copy uploaded files (name as given, path of its bytes) into seeds/ under safe names and update the
        index; files that cannot be indexed are refused with their reason before anything is written."""
        s = self.settings
        if len(uploads) > s.max_upload_files:
            raise CorpusError(f"{len(uploads)} files at once; the limit is {s.max_upload_files} (QA_MAX_UPLOAD_FILES)")
        accepted, refused = [], []
        for name, path in uploads:
            try:
                accepted.append(check_upload(name, path, s.max_file_bytes))
            except ValueError as e:
                refused.append(Refused(Path(str(name)).name, str(e)))
        for safe, data in accepted:
            try:
                add_file(s.seeds_dir, safe, data)
            except (OSError, ValueError) as e:
                refused.append(Refused(safe, getattr(e, "strerror", None) or str(e)))
        return (self.index(progress) if len(refused) < len(uploads) else None), refused

    def remove_document(self, source: str) -> IndexReport:
        """Take an indexed document out of the index; its file goes to `.trash/` beside seeds/, not deleted."""
        if source not in {d.source for d in self.live().snapshot.status.documents}:
            raise QuestionError(f"not an indexed document: {source}; `qa index --json` lists the documents")
        try:
            trash_file(self.settings.seeds_dir, source)
        except (OSError, ValueError) as e:
            raise CorpusError(f"could not move {source} to the trash: {getattr(e, 'strerror', None) or e}") from None
        return self.index()

    def watch(self, on_build: Callable[[IndexReport], None], stop: threading.Event, interval: float = 2.0) -> None:
        """Rebuild whenever the files under seeds/ change, until `stop` is set; errors are reported, not raised."""
        seen = None
        while not stop.is_set():
            now = _scan(self.settings.seeds_dir)
            if now != seen:
                try:
                    if seen is not None or not self._up_to_date():
                        on_build(self.index())
                    seen = now
                except QAError as e:
                    self.warn(str(e))
                    seen = now  # retry only after the next change, not in a tight loop
            stop.wait(interval)

    def _up_to_date(self) -> bool:
        try:
            return not self.staleness()
        except QAError:
            return False

    # -- answering ----------------------------------------------------------------------------------------

    def live(self) -> _Live:
        """The snapshot questions are answered from, reopened when a build (here or in another process) commits.

        Questions that find the commit moved wait for one load and share it; the snapshot is named by the
        commit it actually read, so a commit landing during the load is picked up by the next question.
        """
        live = self._live
        if live is not None and live.commit == self.store.commit_id():
            return live
        with self._loading:
            live = self._live
            if live is None or live.commit != self.store.commit_id():
                s = self.settings
                snapshot = self.store.open(s.index_key())
                live = _Live(
                    snapshot.status.commit,
                    snapshot,
                    Retriever(snapshot, s.retrieval_depth, s.passages, s.direct_units),
                    Extractor(snapshot),
                )
                self._live = live
        return live

    def status(self) -> Status:
        """What the live index holds, and how seeds/ has changed since it was built."""
        return Status(self.live().snapshot.status, self.staleness())

    def staleness(self) -> Staleness:
        """Compare seeds/ with the files the live index was built from: by size and mtime, hashing only a file
        whose size or mtime moved (once per version of it)."""
        status = self.live().snapshot.status
        if not self.settings.seeds_dir.is_dir():
            return Staleness()  # a chat server beside a shared index that a `qa index` elsewhere keeps up to date
        known = {d.source: (d.sha256, d.size, d.mtime_ns) for d in status.documents}
        known.update({f.source: (f.sha256, f.size, f.mtime_ns) for f in status.skipped})
        now = _scan(self.settings.seeds_dir)
        changed = []
        for source in sorted(now.keys() & known.keys()):
            sha256, size, mtime_ns = known[source]
            if now[source] != (size, mtime_ns) and self._sha256(source, now[source]) != sha256:
                changed.append(source)
        return Staleness(
            added=tuple(sorted(set(now) - set(known))),
            changed=tuple(changed),
            removed=tuple(sorted(set(known) - set(now))),
        )

    def _sha256(self, source: str, stat: tuple[int, int]) -> str:
        key = (source, *stat)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(self.settings.seeds_dir, source, self.settings.max_file_bytes)
        return self._hashes[key]

    def check_question(self, question: str) -> str:
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("the question is empty; ask something about the documents")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question is {len(question):,} characters long; the limit is {self.settings.max_question_chars:,}"
            )
        return question.strip()

    def document(self, source: str) -> Document:
        """An indexed document's text as the index holds it: what citation offsets point into."""
        snapshot = self.live().snapshot
        for d in range(len(snapshot.status.documents)):
            if (document := snapshot.document(d)).source == source:
                return document
        raise QuestionError(f"not an indexed document: {source}; `qa index --json` lists the documents")

    def check_sources(self, sources: Sequence[str] | None) -> frozenset[str] | None:
        """`sources` as the files retrieval is restricted to (None: all), each one a document of the live index."""
        if sources is None:
            return None
        if not sources:
            raise QuestionError("no document chosen; choose at least one, or none to ask all of them")
        known = {d.source for d in self.live().snapshot.status.documents}
        unknown = sorted(set(sources) - known)
        if unknown:
            raise QuestionError(f"not an indexed document: {', '.join(unknown)}; `qa index --json` lists the documents")
        return frozenset(sources)

    def _history(self, history: Sequence[str]) -> list[str]:
        """The earlier questions that count: the last `history_turns` non-blank ones, each cut to the length limit."""
        s = self.settings
        return [h.strip()[: s.max_question_chars] for h in history if isinstance(h, str) and h.strip()][-s.history_turns :] if s.history_turns else []

    def _query(self, question: str, history: Sequence[str]) -> Query:
        s = self.settings
        history = self._history(history)
        vectors = self.embedder.encode_query([question, *history])
        vector = vectors[0] + (s.history_weight * vectors[1:].mean(axis=0) if history else 0.0)
        return Query(vector / np.linalg.norm(vector), tokenize(question), tokenize(" ".join(history)), s.history_weight)

    def ask(self, question: str, history: Sequence[str] = (), sources: Sequence[str] | None = None) -> Answer:
        """Answer from the documents, or say they don't; `history` holds earlier questions of the same chat, and
        `sources` (file names, None for all) restricts retrieval itself to those documents.

        A follow-up (a question that `refers_back`) is read against the previous answer: the last earlier question
        is answered again (from the same one model call, whose batch holds the history too), and that answer's
        words and vector join the follow-up's search ("Who chairs it?" -> "...Ines Baptiste...", then "How long
        has she served?"). A question that names its own subject is answered as if asked first.
        """
        question = self.check_question(question)
        chosen = self.check_sources(sources)
        live = self.live()
        query, rewritten, previous = self._search_for(live, question, history, chosen)
        candidates = live.retriever.search(query)
        top_k = self.settings.top_k
        scored = live.extractor.score(question, query, candidates, keep=top_k, previous=previous)
        passages = live.extractor.passages(candidates, top_k)
        if not scored or scored[0].score < self.settings.min_confidence:
            return Answer(question, False, _NO_ANSWER, scored[0].score if scored else 0.0, [], passages, rewritten)
        citations = [live.extractor.citation(question, x) for x in scored[:top_k]]
        return Answer(question, True, citations[0].quote, scored[0].score, citations, passages, rewritten)

    def _search_for(
        self, live: _Live, question: str, history: Sequence[str], sources: frozenset[str] | None
    ) -> tuple[Query, str, Scored | None]:
        """A question's search in its chat, the question as shown, and the previous answer it points at (if any)."""
        history = self._history(history) if refers_back(question) else []
        encoded = self.embedder.encode_query_tokens([question, *history])
        previous = self._previous_answer(live, history, encoded[1:], sources) if history else None
        query, rewritten = self._follow_up(live, question, encoded[:1], history, encoded.vectors[1:], previous, sources)
        return query, rewritten, previous

    def _previous_answer(
        self, live: _Live, history: list[str], encoded: Encoded, sources: frozenset[str] | None
    ) -> Scored | None:
        """The window that answered the last earlier question (asked with the ones before it), if one did."""
        *earlier, last = history
        vectors = encoded.vectors
        vector = vectors[-1] + (self.settings.history_weight * vectors[:-1].mean(axis=0) if earlier else 0.0)
        query = Query(
            vector / np.linalg.norm(vector), tokenize(last), tokenize(" ".join(earlier)), self.settings.history_weight, sources, encoded.tokens[-1]
        )
        best = live.extractor.score(last, query, live.retriever.search(query), keep=1)
        return best[0] if best and best[0].score >= self.settings.min_confidence else None

    def _follow_up(
        self,
        live: _Live,
        question: str,
        asked: Encoded,
        history: list[str],
        vectors: np.ndarray,
        previous: Scored | None,
        sources: frozenset[str] | None,
    ) -> tuple[Query, str]:
        """The search for a question in its chat: earlier questions and the previous answer's window add to the
        vector and to the (lower-weighted) history terms. Also the question as shown with what it points at."""
        weight = self.settings.history_weight
        vector = asked.vectors[0]
        if history:
            vector = vector + weight * vectors.mean(axis=0)
        history_text = " ".join(history)
        rewritten = question
        if previous is not None:
            vector = vector + weight * live.extractor.window_vector(previous)
            said = live.extractor.citation(history[-1], previous)
            pointed = live.extractor.names(said)
            history_text += " " + " ".join(pointed)
            if pointed:
                rewritten = f"{question} [{'; '.join(pointed)}]"
        query = Query(vector / np.linalg.norm(vector), tokenize(question), tokenize(history_text), weight, sources, asked.tokens[0])
        return query, rewritten

    def baseline(self, method: str, question: str) -> Answer:
        """The best three units by one signal alone ("bm25", "dense" or "chunks"), the baselines of `qa eval`."""
        question = self.check_question(question)
        live = self.live()
        query = self._query(question, ()) if method != "bm25" else Query(np.zeros(0, np.float32), tokenize(question), [])
        citations = [live.extractor.citation(question, Scored(u, c, 0.0)) for u, c in live.retriever.single_signal(method, query, 3)]
        return Answer(question, True, citations[0].quote if citations else "", 1.0, citations)


#: Words by which a question points at something said before it: "How long has she served?", "Where is it?".
_POINTERS = re.compile(
    r"\b(he|she|it|they|him|her|them|his|hers|its|their|theirs|this|that|these|those|there|then|one|ones|the same)\b"
    r"|^\s*(and|also|what about|how about)\b",
    re.IGNORECASE,
)


def refers_back(question: str) -> bool:
    """Whether a question points at the previous answer, so that answer should shape its search; a question that
    names its own subject ("What is the boiling point of nitrogen?") starts afresh, history or not.

    >>> refers_back("How long has she been on the board?"), refers_back("Who won the 2010 World Cup?")
    (True, False)
    """
    return bool(_POINTERS.search(question))


_NO_ANSWER = "The documents do not answer this question."

__all__ = ["Assistant", "QAError", "Staleness"]
