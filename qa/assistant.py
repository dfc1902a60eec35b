"""Assistant: the one place that knows the chain — documents -> chunks -> vectors -> index -> retrieval -> answer."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .answering import Extractor, Scored
from .chunking import Chunker
from .config import Settings
from .documents import content_hashes, load_documents
from .embedding import Embedder
from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, QAError, QuestionError
from .lexical import Bm25, tokenize
from .retrieval import Query, Retriever
from .store import IndexData, IndexStore, vector_index
from .types import Answer, Chunk, Document, IndexReport, Sentence

#: Called as progress(done, total) while texts are embedded.
Progress = Callable[[int, int], None]


def _stderr(message: str) -> None:
    print(f"qa: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Staleness:
    """How seeds/ differs from what the live index was built from."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def describe(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in (("added", self.added), ("changed", self.changed), ("removed", self.removed)) if v]
        return ", ".join(parts)


@dataclass
class _Live:
    """A loaded index with the objects that search it; swapped whole when a rebuild lands."""

    build: str
    data: IndexData
    retriever: Retriever
    extractor: Extractor


class Assistant:
    """Index a seeds folder and answer questions from it with verbatim, cited quotations."""

    def __init__(self, settings: Settings | None = None, warn: Callable[[str], None] = _stderr):
        self.settings = settings or Settings()
        self.warn = warn
        self.embedder = Embedder(self.settings.model, backend=self.settings.backend)
        self.chunker = Chunker(self.settings.chunk_tokens, self.settings.chunk_overlap, self.settings.encoding)
        self.store = IndexStore(self.settings.index_dir)
        self._live: _Live | None = None
        self._swap = threading.Lock()

    # -- building -----------------------------------------------------------------------------------------

    def index(self, progress: Progress | None = None) -> IndexReport:
        """Bring the index up to date with seeds/: unchanged files keep their vectors, the rest are embedded."""
        started = time.perf_counter()
        s = self.settings
        with self.store.lock():
            skipped: dict[str, str] = {}
            documents = load_documents(s.seeds_dir, s.max_file_bytes, self.warn, skipped)
            previous, reason = self._previous()
            old = {d.source: i for i, d in enumerate(previous.documents)} if previous else {}

            parts: list[tuple[list[Sentence], list[Chunk], np.ndarray | None, np.ndarray | None]] = []
            fresh_texts: list[str] = []
            added = changed = 0
            for doc in documents:
                i = old.get(doc.source)
                if previous is not None and i is not None and previous.documents[i].sha256 == doc.sha256:
                    parts.append(_reuse(previous, i))
                    continue
                added += i is None
                changed += i is not None
                sentences, chunks = self._split(doc)
                parts.append((sentences, chunks, None, None))
                fresh_texts += [c.text for c in chunks] + [x.text for x in sentences]

            total = len(fresh_texts)
            done = 0

            def step(n: int) -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, total)

            if progress:
                progress(0, total)
            fresh = self.embedder.encode(fresh_texts, s.batch_size, step) if fresh_texts else None
            data, chunks_embedded, sentences_embedded = self._assemble(documents, parts, fresh)
            data.manifest = {
                "settings": s.index_key(),
                "dimension": int(data.chunk_index.d),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "files": {
                    d.source: {"sha256": d.sha256, "chunks": len(p[1]), "sentences": len(p[0])}
                    for d, p in zip(documents, parts)
                },
                "skipped": skipped,
                "counts": {"files": len(documents), "chunks": len(data.chunks), "sentences": len(data.sentences)},
            }
            self.store.save(data)
            self._activate(data)
        removed = len(set(old) - {d.source for d in documents})
        return IndexReport(
            files=len(documents),
            added=added,
            changed=changed,
            removed=removed,
            unchanged=len(documents) - added - changed,
            chunks=len(data.chunks),
            chunks_embedded=chunks_embedded,
            sentences_embedded=sentences_embedded,
            seconds=round(time.perf_counter() - started, 2),
            full_rebuild=reason,
        )

    def _previous(self) -> tuple[IndexData | None, str]:
        """The live index, if its vectors can be reused; else None and why everything is embedded again."""
        try:
            return self.store.load(self.settings.index_key()), ""
        except IndexMissingError:
            return None, ""
        except IndexMismatchError as e:
            reason = str(e).split(";")[0].replace("index was built with", "settings changed:")
        except IndexCorruptError:
            reason = "the previous index is damaged"
        self.warn(f"full rebuild: {reason}")
        return None, reason

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

    def _assemble(self, documents: list[Document], parts, fresh: np.ndarray | None) -> tuple[IndexData, int, int]:
        sentence_rows, chunk_rows, sentence_vecs, chunk_vecs = [], [], [], []
        cursor = chunks_embedded = sentences_embedded = 0
        for d, (sentences, chunks, s_vecs, c_vecs) in enumerate(parts):
            base = len(sentence_rows)
            sentence_rows += [(d, x.start, x.end) for x in sentences]
            chunk_rows += [(d, c.start, c.end, base + c.first, base + c.last) for c in chunks]
            if s_vecs is None:
                c_vecs = fresh[cursor : cursor + len(chunks)]
                s_vecs = fresh[cursor + len(chunks) : cursor + len(chunks) + len(sentences)]
                cursor += len(chunks) + len(sentences)
                chunks_embedded += len(chunks)
                sentences_embedded += len(sentences)
            sentence_vecs.append(s_vecs)
            chunk_vecs.append(c_vecs)
        sentence_texts = [documents[d].text[a:b] for d, a, b in sentence_rows]
        chunk_texts = [documents[d].text[a:b] for d, a, b, _, _ in chunk_rows]
        data = IndexData(
            manifest={},
            documents=documents,
            sentences=np.array(sentence_rows, dtype=np.int64).reshape(-1, 3),
            chunks=np.array(chunk_rows, dtype=np.int64).reshape(-1, 5),
            sentence_index=vector_index(np.concatenate(sentence_vecs)),
            chunk_index=vector_index(np.concatenate(chunk_vecs)),
            sentence_bm25=Bm25.build([tokenize(t) for t in sentence_texts]),
            chunk_bm25=Bm25.build([tokenize(t) for t in chunk_texts]),
        )
        return data, chunks_embedded, sentences_embedded

    def watch(self, on_build: Callable[[IndexReport], None], stop: threading.Event, interval: float = 2.0) -> None:
        """Rebuild whenever the files under seeds/ change, until `stop` is set; errors are reported, not raised."""
        seen = None
        while not stop.is_set():
            now = content_hashes(self.settings.seeds_dir)
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

    def _activate(self, data: IndexData) -> _Live:
        live = _Live(self.store.current().name, data, Retriever(data), Extractor(data))
        with self._swap:
            self._live = live
        return live

    def live(self) -> _Live:
        """The loaded index, reloaded when another process (or the page's button) has switched CURRENT."""
        live = self._live
        current = self.store.current().name
        if live is None or live.build != current:
            live = self._activate(self.store.load(self.settings.index_key()))
        return live

    def staleness(self) -> Staleness:
        """Compare seeds/ with the files the live index was built from (reads and hashes the files)."""
        manifest = self.live().data.manifest
        built = {k: v["sha256"] for k, v in manifest.get("files", {}).items()}
        built.update(manifest.get("skipped", {}))
        now = content_hashes(self.settings.seeds_dir)
        return Staleness(
            added=tuple(sorted(set(now) - set(built))),
            changed=tuple(sorted(k for k in now.keys() & built.keys() if now[k] != built[k])),
            removed=tuple(sorted(set(built) - set(now))),
        )

    def check_question(self, question: str) -> str:
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("the question is empty; ask something about the documents")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question is {len(question):,} characters long; the limit is {self.settings.max_question_chars:,}"
            )
        return question.strip()

    def ask(self, question: str, history: Sequence[str] = ()) -> Answer:
        """Answer from the documents, or say they don't; `history` holds earlier questions of the same chat.

        A follow-up is read against the previous answer: the last earlier question is answered again (from the
        same one model call, whose batch holds the history too), and that answer's words and vector join the
        follow-up's search ("Who chairs it?" -> "...Ines Baptiste...", then "How long has she served?").
        """
        question = self.check_question(question)
        turns, limit = self.settings.history_turns, self.settings.max_question_chars
        history = [h.strip()[:limit] for h in history if isinstance(h, str) and h.strip()][-turns:] if turns else []
        live = self.live()
        vectors = self.embedder.encode_query([question, *history])
        previous = self._previous_answer(live, history, vectors[1:]) if history else None
        query, rewritten = self._follow_up(live, question, vectors[0], history, vectors[1:], previous)
        candidates = live.retriever.search(query)
        top_k = self.settings.top_k
        scored = live.extractor.score(question, query, candidates, keep=top_k, previous=previous)
        passages = live.extractor.passages(candidates, top_k)
        if not scored or scored[0].score < self.settings.min_confidence:
            return Answer(question, False, _NO_ANSWER, scored[0].score if scored else 0.0, [], passages, rewritten)
        citations = [live.extractor.citation(question, x) for x in scored[:top_k]]
        return Answer(question, True, citations[0].quote, scored[0].score, citations, passages, rewritten)

    def _previous_answer(self, live: _Live, history: list[str], vectors: np.ndarray) -> Scored | None:
        """The window that answered the last earlier question (asked with the ones before it), if one did."""
        *earlier, last = history
        vector = vectors[-1] + (self.settings.history_weight * vectors[:-1].mean(axis=0) if earlier else 0.0)
        query = Query(vector / np.linalg.norm(vector), tokenize(last), tokenize(" ".join(earlier)))
        best = live.extractor.score(last, query, live.retriever.search(query), keep=1)
        return best[0] if best and best[0].score >= self.settings.min_confidence else None

    def _follow_up(
        self, live: _Live, question: str, vector: np.ndarray, history: list[str], vectors: np.ndarray, previous: Scored | None
    ) -> tuple[Query, str]:
        """The search for a question in its chat: earlier questions and the previous answer's window add to the
        vector and to the (lower-weighted) history terms. Also the question as shown with what it points at."""
        weight = self.settings.history_weight
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
        return Query(vector / np.linalg.norm(vector), tokenize(question), tokenize(history_text)), rewritten


def _reuse(previous: IndexData, doc: int):
    """A document's records and vectors from the previous build, renumbered to count from its first sentence."""
    text = previous.documents[doc].text
    # records are stored document by document, so each document's rows are one contiguous range
    s_rows = np.arange(*np.searchsorted(previous.sentences[:, 0], [doc, doc + 1]))
    c_rows = np.arange(*np.searchsorted(previous.chunks[:, 0], [doc, doc + 1]))
    base = int(s_rows[0]) if len(s_rows) else 0
    sentences = [Sentence(int(a), int(b), text[a:b]) for _, a, b in previous.sentences[s_rows]]
    chunks = [Chunk(int(a), int(b), text[a:b], int(f) - base, int(l) - base) for _, a, b, f, l in previous.chunks[c_rows]]
    return sentences, chunks, previous.sentence_vectors[s_rows].copy(), previous.chunk_vectors[c_rows].copy()


_NO_ANSWER = "The documents do not answer this question."

__all__ = ["Assistant", "QAError", "Staleness"]
