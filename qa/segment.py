"""Segment: one immutable folder of index rows, the documents one build added or several segments merged.

Files of `seg-<id>/`:
    meta.json                   format version, settings key, dimension, counts (a segment of another model is refused)
    documents.json              per document: source, sha256, size, mtime_ns, page_starts, units, chunks
    texts.json                  each document's text, which citations quote
    units.npy, chunks.npy       UNIT_ROW / CHUNK_ROW records; `document` and a chunk's first/last count within the segment
    units.faiss, chunks.faiss   the rows' vectors: flat inner product while small, HNSW beyond FLAT_LIMIT
    unit-tokens.npy             every unit's token vectors (int8), one after another, memory-mapped when read...
    unit-token-starts.npy       ...unit i's are rows starts[i]:starts[i+1]
    lex-units/, lex-chunks/     the rows' Postings (raw term frequencies)
Documents are stored in order of source, so a segment's rows map to snapshot ids in ascending order.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .lexical import Postings, tokenize
from .store import CHUNKS, FORMAT_VERSION, LEVELS, UNITS
from .types import CHUNK_ROW, KINDS, UNIT_ROW, IndexedDocument

#: Above this many vectors a flat scan gives way to HNSW: a flat scan of 5*10^4 takes about as long as one
#: HNSW search (see `ef_search`), and grows linearly beyond.
FLAT_LIMIT = 50_000
#: Candidates kept while linking each new vector into the HNSW graph: a slower build than 80 that lifts recall
#: at every efSearch (bench/ measures both).
EF_CONSTRUCTION = 200
_ROWS = {UNITS: UNIT_ROW, CHUNKS: CHUNK_ROW}
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
_TOKEN_FILES = ("unit-tokens.npy", "unit-token-starts.npy")


def ef_search(vectors: int) -> int:
    """Candidates an HNSW search keeps, by index size: recall@10 >= 0.99 against the exact scan (bench/ measures it)."""
    return 384 if vectors <= 300_000 else 768


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


@dataclass
class Segment:
    """A loaded segment. `starts[level][j]` is the first row of document j (one more entry than documents)."""

    name: str
    meta: dict
    documents: list[dict]
    texts: list[str]
    rows: dict[str, np.ndarray]
    index: dict[str, object]
    postings: dict[str, Postings]
    starts: dict[str, np.ndarray]
    tokens: np.ndarray  # (tokens, dimension) int8, memory-mapped
    token_starts: np.ndarray  # one more entry than units

    def vectors(self, level: str) -> np.ndarray:
        return vectors_of(self.index[level])

    def unit_tokens(self, unit: int) -> np.ndarray:
        return self.tokens[self.token_starts[unit] : self.token_starts[unit + 1]]


class Allowed:
    """The rows a search may return, as the bitmap FAISS filters with (kept alive beside its selector)."""

    def __init__(self, mask: np.ndarray):
        import faiss

        self.count = int(mask.sum())
        self._bits = np.packbits(mask, bitorder="little")
        self.selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(self._bits))


def search(index, vector: np.ndarray, k: int, allowed: Allowed | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `index` nearest `vector` (among `allowed`, when given): (rows, scores), best first."""
    import faiss

    k = min(k, index.ntotal if allowed is None else allowed.count)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    params = None
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(efSearch=ef_search(index.ntotal))
        if allowed is not None:
            params.sel = allowed.selector
    elif allowed is not None:
        params = faiss.SearchParameters(sel=allowed.selector)
    scores, ids = index.search(np.ascontiguousarray(vector[None, :], dtype=np.float32), k, params=params)
    found = ids[0] >= 0
    return ids[0][found], scores[0][found]


def build(folder: Path, key: dict, docs: list[IndexedDocument]) -> dict[str, dict]:
    """Write the segment of `docs` (stored in order of source) into the new folder `folder`; returns its files' sizes and checksums."""
    docs = sorted(docs, key=lambda x: x.document.source)
    units, chunks, unit_vectors, chunk_vectors, unit_texts, chunk_texts, tokens = [], [], [], [], [], [], []
    base = 0
    for j, x in enumerate(docs):
        text = x.document.text
        units += [(j, u.start, u.end, _KIND_CODE[u.kind], u.context_start, u.context_end) for u in x.units]
        chunks += [(j, c.start, c.end, base + c.first, base + c.last) for c in x.chunks]
        unit_texts += [text[u.start : u.end] for u in x.units]
        chunk_texts += [text[c.start : c.end] for c in x.chunks]
        unit_vectors.append(x.unit_vectors)
        chunk_vectors.append(x.chunk_vectors)
        tokens += _checked_tokens(x, int(x.chunk_vectors.shape[1]))
        base += len(x.units)
    dimension = int(docs[0].chunk_vectors.shape[1])
    counts = np.array([len(t) for t in tokens], dtype=np.int64)
    return write(
        folder,
        key,
        dimension,
        documents=[_document_meta(x) for x in docs],
        texts=[x.document.text for x in docs],
        rows={UNITS: np.array(units, dtype=UNIT_ROW), CHUNKS: np.array(chunks, dtype=CHUNK_ROW)},
        vectors={UNITS: _stack(unit_vectors, dimension), CHUNKS: _stack(chunk_vectors, dimension)},
        postings={UNITS: Postings.build([tokenize(t) for t in unit_texts]), CHUNKS: Postings.build([tokenize(t) for t in chunk_texts])},
        tokens=_saved(np.concatenate([np.zeros((0, dimension), np.int8), *tokens]), np.concatenate([[0], np.cumsum(counts)])),
    )


def merge(folder: Path, key: dict, dimension: int, parts: list[tuple[Segment, np.ndarray]]) -> dict[str, dict]:
    """Write into `folder` one segment of the documents `keep` (local numbers) of each part, in order of source;
    vectors and term counts are copied, nothing is embedded or tokenized again. Returns its files' sizes and checksums."""
    picked = sorted(((seg.documents[j]["source"], p, j) for p, (seg, keep) in enumerate(parts) for j in keep.tolist()))
    new_rows = {level: [np.full(len(seg.rows[level]), -1, dtype=np.int64) for seg, _ in parts] for level in LEVELS}
    new_doc = [np.full(len(seg.documents), -1, dtype=np.int64) for seg, _ in parts]
    base = {level: 0 for level in LEVELS}
    for n, (_, p, j) in enumerate(picked):
        seg = parts[p][0]
        new_doc[p][j] = n
        for level in LEVELS:
            lo, hi = seg.starts[level][j], seg.starts[level][j + 1]
            new_rows[level][p][lo:hi] = base[level] + np.arange(hi - lo)
            base[level] += hi - lo
    rows, vectors = {}, {}
    for level in LEVELS:
        rows[level] = np.zeros(base[level], dtype=_ROWS[level])
        vectors[level] = np.zeros((base[level], dimension), dtype=np.float32)
        for p, (seg, _) in enumerate(parts):
            kept = np.flatnonzero(new_rows[level][p] >= 0)
            target = new_rows[level][p][kept]
            taken = seg.rows[level][kept].copy()
            taken["document"] = new_doc[p][taken["document"]]
            if level == CHUNKS:
                unit_rows = new_rows[UNITS][p]
                taken["first"] = unit_rows[taken["first"]]
                taken["last"] = unit_rows[taken["last"] - 1] + 1
            rows[level][target] = taken
            vectors[level][target] = seg.vectors(level)[kept]
    counts = np.zeros(base[UNITS], dtype=np.int64)
    for p, (seg, _) in enumerate(parts):
        kept = np.flatnonzero(new_rows[UNITS][p] >= 0)
        counts[new_rows[UNITS][p][kept]] = np.diff(seg.token_starts)[kept]
    token_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def copy_tokens(tokens_path: Path, starts_path: Path) -> None:
        """Each kept document's token rows, one contiguous block, from the parts' memory-mapped files straight
        into the new file: a merge never holds the token rows (2-3x the unit vectors) in memory. Written, not
        mapped: a full disk is then an OSError (the usual `qa:` line), where a write through a mapping is a
        SIGBUS that kills the process."""
        shape = (int(token_starts[-1]), dimension)
        with tokens_path.open("wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int8)), "fortran_order": False, "shape": shape})
            copied = 0
            for _, p, j in picked:
                seg = parts[p][0]
                lo, hi = seg.token_starts[seg.starts[UNITS][j]], seg.token_starts[seg.starts[UNITS][j + 1]]
                f.write(np.ascontiguousarray(seg.tokens[lo:hi]).tobytes())
                copied += hi - lo
        if copied != shape[0]:
            raise ValueError(f"merged {copied} token rows where the units have {shape[0]}")
        np.save(starts_path, token_starts)

    return write(
        folder,
        key,
        dimension,
        documents=[parts[p][0].documents[j] for _, p, j in picked],
        texts=[parts[p][0].texts[j] for _, p, j in picked],
        rows=rows,
        vectors=vectors,
        postings={level: Postings.take([(seg.postings[level], new_rows[level][p]) for p, (seg, _) in enumerate(parts)], base[level]) for level in LEVELS},
        tokens=copy_tokens,
    )


def _saved(tokens: np.ndarray, starts: np.ndarray):
    """The `tokens` writer of `write` for rows already in memory (a build's, which it just embedded)."""

    def save(tokens_path: Path, starts_path: Path) -> None:
        np.save(tokens_path, tokens)
        np.save(starts_path, starts)

    return save


def _checked_tokens(x: IndexedDocument, dimension: int) -> list[np.ndarray]:
    """A document's token vectors, refused unless there is one int8 (tokens, dimension) array per unit."""
    tokens = x.unit_tokens
    if len(tokens) != len(x.units) or any(t.dtype != np.int8 or t.ndim != 2 or t.shape[1] != dimension for t in tokens):
        raise ValueError(f"{x.document.source}: token vectors are not one int8 array of width {dimension} per unit")
    return tokens


def write(folder: Path, key: dict, dimension: int, documents, texts, rows, vectors, postings, tokens) -> dict[str, dict]:
    """Write a segment's files into the new folder `folder`, each fsynced; `tokens(tokens_path, starts_path)`
    writes the two token files (from memory for a build, streamed for a merge). Returns each file's size and
    CRC-32, which the commit keeps."""
    import faiss

    folder.mkdir()
    meta = {
        "format_version": FORMAT_VERSION,
        "settings": key,
        "dimension": dimension,
        "documents": len(documents),
        UNITS: len(rows[UNITS]),
        CHUNKS: len(rows[CHUNKS]),
    }
    files = [folder / "documents.json", folder / "texts.json", folder / "meta.json"]
    files[0].write_text(json.dumps(documents, ensure_ascii=False), encoding="utf-8")
    files[1].write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    for level in LEVELS:
        np.save(folder / f"{level}.npy", rows[level])
        faiss.write_index(vector_index(vectors[level]), str(folder / f"{level}.faiss"))
        files += [folder / f"{level}.npy", folder / f"{level}.faiss", *postings[level].save(folder / f"lex-{level}")]
    tokens(*(folder / name for name in _TOKEN_FILES))
    files += [folder / name for name in _TOKEN_FILES]
    files[2].write_text(json.dumps(meta), encoding="utf-8")
    for path in files:
        fsync(path)
    for sub in (folder / "lex-units", folder / "lex-chunks", folder):
        fsync(sub)
    return {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "crc32": checksum(p)} for p in files}


def checksum(path: Path) -> int:
    """CRC-32 of a file's bytes, read in blocks: what a segment's file held when written, checked before a build
    (Lucene keeps one in every file's footer for the same reason: a flipped byte keeps the size)."""
    crc = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def load(folder: Path) -> Segment:
    """Read a segment; raises OSError or ValueError when a file is missing, damaged or inconsistent."""
    import faiss

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
    texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
    rows, index, postings, starts = {}, {}, {}, {}
    for level in LEVELS:
        rows[level] = np.load(folder / f"{level}.npy")
        index[level] = faiss.read_index(str(folder / f"{level}.faiss"))  # already of its own class (IndexFlatIP, IndexHNSWFlat)
        postings[level] = Postings.load(folder / f"lex-{level}")
        counts = np.array([d[level] for d in documents], dtype=np.int64)
        starts[level] = np.concatenate([[0], np.cumsum(counts)])
        n = len(rows[level])
        if rows[level].dtype != _ROWS[level] or not (n == index[level].ntotal == postings[level].texts == starts[level][-1]):
            raise ValueError(f"{level} records, vectors and terms of different lengths")
        if index[level].d != meta["dimension"]:
            raise ValueError(f"{level} vectors of dimension {index[level].d}, not {meta['dimension']}")
    if len(texts) != len(documents) or meta["documents"] != len(documents):
        raise ValueError("documents and texts of different lengths")
    tokens, token_starts = (np.load(folder / name, mmap_mode="r") for name in _TOKEN_FILES)
    token_starts = np.asarray(token_starts, dtype=np.int64)
    if tokens.dtype != np.int8 or tokens.ndim != 2 or tokens.shape[1] != meta["dimension"]:
        raise ValueError(f"token vectors of type {tokens.dtype} and shape {tokens.shape}")
    if len(token_starts) != len(rows[UNITS]) + 1 or token_starts[0] != 0 or token_starts[-1] != len(tokens) or (np.diff(token_starts) < 0).any():
        raise ValueError("token vectors that do not match the units")
    return Segment(folder.name, meta, documents, texts, rows, index, postings, starts, tokens, token_starts)


def _document_meta(x: IndexedDocument) -> dict:
    d = x.document
    return {"source": d.source, "sha256": d.sha256, "size": x.size, "mtime_ns": x.mtime_ns,
            "page_starts": list(d.page_starts), UNITS: len(x.units), CHUNKS: len(x.chunks)}


def _stack(vectors: list[np.ndarray], dimension: int) -> np.ndarray:
    return np.concatenate(vectors).astype(np.float32) if vectors else np.zeros((0, dimension), dtype=np.float32)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
