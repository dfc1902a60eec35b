"""PgStore: the index in PostgreSQL with pgvector, for corpora past one process's memory and for several chat
servers sharing one index. `--index postgresql://user@host/db` (or `postgresql://user@/db?host=/run/postgresql`
for a Unix socket) picks it; psycopg is imported only then.

Tables (all `qa_*`, in the connection's schema):
    qa_manifest             one row: format version, settings, dimension, built_at, skipped files, commit id
    qa_documents            id, source, sha256, size, mtime_ns, unit and chunk counts, text, page_starts
    qa_units / qa_chunks    id, offsets, BM25 length, vector(d) under an HNSW index (inner product) once `merged`;
                            a unit's token vectors too (int8 rows, d bytes each, one after another in a bytea)
    qa_*_postings           (unit, term, tf, length): a question's postings, read by term, summed as bm25s does
    qa_*_terms              (term, df): document frequencies, kept with the postings by every update
    qa_stats                per level: rows and total BM25 length (N and the average length)
A row's id in the database is `document << 24 | position`, so a document's rows are one id range (deleted by
one range scan) and keep their ids while other files change. A snapshot numbers documents 0.. in order of
source and rows 0.. document after document, as the interface asks. Every `update` is one transaction, and a snapshot is one repeatable-read
transaction: readers see the old commit or the new one, never a mix. A build holds an advisory lock.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np

from .errors import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexMissingError, QAError
from .lexical import B, K1, tokenize
from .segment import ef_search
from .store import CHUNKS, UNITS, IndexStore, Snapshot, mismatch
from .types import CHUNK_ROW, KINDS, UNIT_ROW, Changes, DocumentStatus, Document, Hits, IndexedDocument, IndexStatus, SkippedFile

#: Format of the tables; a database holding another one is rebuilt by `qa index`, refused by readers.
FORMAT_VERSION = 3  # 3: units' token vectors
#: Position bits of a row id: a document holds up to 2^24 units (the 20 MB file limit stays far below).
POSITION_BITS = 24
#: Up to this many rows a dense search reads them all, exactly (as the folder store's flat index): about the time
#: of one HNSW search over 10^5 (bench/pg.py); HNSW beyond.
EXACT_LIMIT = 20_000
#: HNSW graph degree and build breadth (the folder store's M and EF_CONSTRUCTION).
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 200
#: Rows an update adds stay out of the HNSW graph (searched exactly, beside it) until this many of a level are
#: waiting, then join it in one statement: linking a row into a large graph is most of a small update's cost
#: and grows with the graph, while scanning this many rows costs a fraction of one HNSW search.
UNMERGED_LIMIT = 2_000
#: Seconds to wait for a server before saying it cannot be reached.
CONNECT_TIMEOUT = 10
#: A rebuild that must change the tables waits this long for readers' snapshots to let go of them.
DDL_LOCK_TIMEOUT = "5s"
#: Any 64-bit number, the same for every qa: the advisory lock a build holds in its database.
LOCK_KEY = int.from_bytes(b"qa-index", "big")
#: Document texts a snapshot keeps after reading them for a citation, and rows (offsets, terms) of each kind.
TEXT_CACHE, ROW_CACHE = 256, 200_000
#: A lookup missing at most READ_AHEAD_MISSES rows also reads the READ_AHEAD rows either side of each.
READ_AHEAD, READ_AHEAD_MISSES = 12, 4
#: Vectors a snapshot keeps (d = 384: 1.5 kB each), and units' token vectors (~10 int8 rows: ~4 kB a unit).
VECTOR_CACHE, TOKEN_CACHE = 20_000, 5_000
_TABLES = {UNITS: "qa_units", CHUNKS: "qa_chunks"}


class DatabaseError(QAError):
    """The PostgreSQL index cannot be used as configured."""


class DatabaseUnreachableError(DatabaseError):
    """No PostgreSQL server answers at the URL, or its database does not exist."""


class DatabaseLoginError(DatabaseError):
    """The server refused the user name or password."""


class VectorExtensionError(DatabaseError):
    """The database has no usable pgvector (`vector` extension, 0.8 or later)."""


class IndexChangedError(DatabaseError):
    """A snapshot's connection was lost and the index had moved on by the time it was back."""


def shown(url: str) -> str:
    """The URL with its password hidden, for messages: postgresql://qa:secret@db/x -> postgresql://qa:***@db/x."""
    return re.sub(r"(://[^:/@?]*):[^@/?]+@", r"\1:***@", url)


def _connection_error(url: str, error: Exception) -> DatabaseError:
    """A connection failure as one line a user can act on (libpq gives no SQLSTATE before a session exists)."""
    text = str(error)
    reason = text.splitlines()[0].split("FATAL:", 1)[-1].strip().removeprefix("connection failed: ")
    if re.search(r"password|authentication|role \".*\" does not exist|pg_hba\.conf", text):
        return DatabaseLoginError(
            f"PostgreSQL at {shown(url)} refused the login ({reason}); check the user and password in the URL"
            " (or PGPASSWORD, ~/.pgpass)"
        )
    if re.search(r"database \".*\" does not exist", text):
        return DatabaseUnreachableError(f"{reason} at {shown(url)}; create it (createdb) or fix the URL given to --index")
    return DatabaseUnreachableError(f"cannot reach PostgreSQL at {shown(url)} ({reason}); start the server or fix the --index URL")


def _psycopg():
    try:
        import pgvector.psycopg  # noqa: F401 - checked here too, so a missing one is this line, not a traceback later
        import psycopg
    except ImportError:
        raise DatabaseError("an index in PostgreSQL needs psycopg and pgvector: pip install 'qa[postgres]'") from None
    return psycopg


def connect(url: str, *, reader: bool = False):
    """A psycopg connection: autocommit for a build (its transactions are explicit blocks); for a reader, one
    read-only repeatable-read transaction from the first query on."""
    psycopg = _psycopg()
    try:
        conn = psycopg.connect(url, autocommit=not reader, connect_timeout=CONNECT_TIMEOUT, application_name="qa")
    except psycopg.ProgrammingError as e:
        raise DatabaseUnreachableError(f"--index {shown(url)} is not a PostgreSQL URL ({str(e).strip()})") from None
    except psycopg.OperationalError as e:
        raise _connection_error(url, e) from None
    if reader:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
    return conn


def _vector_types(conn, url: str, create: bool) -> None:
    """Register pgvector's types on `conn`, creating the extension first when `create` (a build); refuse a
    database where it is missing or older than 0.8 (iterative index scans)."""
    import psycopg
    from pgvector.psycopg import register_vector

    advice = "ask its administrator to run `CREATE EXTENSION vector;` in it (pgvector 0.8 or later)"
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if create and row is None:
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            reason = (e.diag.message_primary or str(e)).strip()
            raise VectorExtensionError(f"the database at {shown(url)} has no `vector` extension ({reason}); {advice}") from None
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row is None:
        raise VectorExtensionError(f"the database at {shown(url)} has no `vector` extension; {advice}")
    if tuple(int(x) for x in re.findall(r"\d+", row[0])[:2]) < (0, 8):
        raise VectorExtensionError(f"the database at {shown(url)} has pgvector {row[0]}; qa needs 0.8 or later: run `ALTER EXTENSION vector UPDATE;`")
    register_vector(conn)


def _schema(dimension: int) -> list[str]:
    statements = [
        """CREATE TABLE qa_manifest (
            id int PRIMARY KEY CHECK (id = 1), format_version int NOT NULL, settings jsonb NOT NULL,
            dimension int NOT NULL, built_at text NOT NULL, skipped jsonb NOT NULL, commit text NOT NULL)""",
        """CREATE TABLE qa_documents (
            id bigint PRIMARY KEY, source text NOT NULL UNIQUE, sha256 text NOT NULL, size bigint NOT NULL,
            mtime_ns bigint NOT NULL, units int NOT NULL, chunks int NOT NULL, text text NOT NULL,
            page_starts int[] NOT NULL)""",
        "CREATE SEQUENCE qa_document_ids",
        "CREATE TABLE qa_stats (level text PRIMARY KEY, texts bigint NOT NULL, length bigint NOT NULL)",
        f"INSERT INTO qa_stats VALUES ('{UNITS}', 0, 0), ('{CHUNKS}', 0, 0)",
        f"""CREATE TABLE qa_units (
            id bigint PRIMARY KEY, start int NOT NULL, "end" int NOT NULL, kind smallint NOT NULL,
            context_start int NOT NULL, context_end int NOT NULL, length int NOT NULL,
            embedding vector({dimension}) NOT NULL, merged boolean NOT NULL, tokens bytea NOT NULL)""",
        f"""CREATE TABLE qa_chunks (
            id bigint PRIMARY KEY, start int NOT NULL, "end" int NOT NULL, first bigint NOT NULL,
            last bigint NOT NULL, length int NOT NULL, embedding vector({dimension}) NOT NULL, merged boolean NOT NULL)""",
    ]
    for table in _TABLES.values():
        statements.append(
            f"""CREATE TABLE {table}_postings (
                unit bigint NOT NULL, term text NOT NULL, tf int NOT NULL, length int NOT NULL,
                PRIMARY KEY (unit, term))"""
        )
        statements.append(f"CREATE TABLE {table}_terms (term text PRIMARY KEY, df bigint NOT NULL)")
    return statements


def _search_indexes() -> list[str]:
    """Built after a first load's rows are in, which is much faster than growing them row by row."""
    statements = ["CREATE INDEX qa_chunks_first ON qa_chunks (first)"]
    for table in _TABLES.values():
        statements += [
            f"""CREATE INDEX {table}_embedding ON {table} USING hnsw (embedding vector_ip_ops)
                WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) WHERE merged""",
            f"CREATE INDEX {table}_unmerged ON {table} (id) WHERE NOT merged",
            # (term, unit): a term's postings in id order, so "does document d hold t" is one range probe
            f"CREATE INDEX {table}_postings_term ON {table}_postings (term, unit) INCLUDE (tf, length)",
        ]
    return statements


_ALL_TABLES = (
    "qa_manifest", "qa_documents", "qa_stats", "qa_units", "qa_chunks",
    "qa_units_postings", "qa_chunks_postings", "qa_units_terms", "qa_chunks_terms",
)


def _manifest(conn, url: str) -> tuple:
    """(format_version, settings, dimension, built_at, skipped, commit); refuse a missing index or one of
    another format, with the folder store's message. Asks nothing that could fail (inside a build's
    transaction an error would end it): every format keeps `format_version`, the other columns are read
    only when it matches."""
    missing = IndexMissingError(f"no index in {shown(url)}; run `qa index --index {shown(url)}` to build it")
    if conn.execute("SELECT to_regclass('qa_manifest')").fetchone()[0] is None:
        raise missing
    version = conn.execute("SELECT format_version FROM qa_manifest").fetchone()
    if version is None:
        raise missing
    if version[0] != FORMAT_VERSION:
        raise IndexMismatchError(
            f"index was written by another version of qa (index format {version[0]}, now {FORMAT_VERSION}); run `qa index` to rebuild it"
        )
    return conn.execute("SELECT format_version, settings, dimension, built_at, skipped, commit FROM qa_manifest").fetchone()


def _status(conn, url: str) -> tuple[IndexStatus, list[int]]:
    """The status, documents in order of source (as the folder store numbers them), and their ids."""
    version, settings, dimension, built_at, skipped, commit = _manifest(conn, url)
    rows = sorted(conn.execute("SELECT source, sha256, size, mtime_ns, units, chunks, id FROM qa_documents").fetchall())
    documents = tuple(DocumentStatus(*row[:6]) for row in rows)
    status = IndexStatus(
        commit=commit,
        format_version=version,
        settings=settings,
        dimension=dimension,
        built_at=built_at,
        documents=documents,
        skipped=tuple(SkippedFile(**s) for s in skipped),
        details={"store": "postgresql", "database": shown(url)},
    )
    return status, [row[6] for row in rows]


def _tsv(rows: Iterable[tuple]) -> str:
    """Rows as COPY text; every value here is a number or a BM25 term (word characters: no tab or backslash)."""
    return "".join("\t".join(map(str, row)) + "\n" for row in rows)


def _postings(unit: int, text: str) -> tuple[int, list[tuple]]:
    """BM25 length and (unit, term, tf, length) rows of one text. An empty text has length 1, as in bm25s
    (which indexes it as one empty token): N and the average length then match its."""
    tokens = tokenize(text)
    counts: dict[str, int] = {}
    for t in tokens:
        counts[t] = counts.get(t, 0) + 1
    length = max(len(tokens), 1)
    return length, [(unit, t, tf, length) for t, tf in counts.items()]


class PgStore(IndexStore):
    """The index in one PostgreSQL database (with pgvector), shared by every process that names its URL."""

    def __init__(self, url: str):
        self.url = url
        self._writer = None  # the build's connection while `lock()` is held
        self._control = None  # short queries (commit id, status), one at a time
        self._control_lock = threading.Lock()
        self._open: list[PgSnapshot] = []

    def __repr__(self) -> str:
        return f"PgStore({shown(self.url)!r})"

    @contextmanager
    def lock(self):
        """Holds the database's advisory lock on the build's connection; a second build refuses at once. The
        lock is the session's, so a killed build lets go of it with its connection."""
        conn = connect(self.url)
        try:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                raise DatabaseError(
                    f"{shown(self.url)} is a read-only replica; build the index on the primary (qa index --index <its URL>)"
                    " and let chat servers read the replica"
                )
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
                raise IndexBusyError(f"another `qa index` is building {shown(self.url)} right now; wait for it to finish")
            self._writer = conn
            try:
                yield self
            finally:
                if not conn.broken:  # at once: a closed session's locks go when its server process exits, a moment later
                    conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        finally:
            self._writer = None
            conn.close()

    def _query(self, fn):
        """Run fn(connection) on the control connection, reconnecting once if the server dropped it."""
        import psycopg

        with self._control_lock:
            for attempt in (0, 1):
                if self._control is None or self._control.closed:
                    self._control = connect(self.url)
                try:
                    return fn(self._control)
                except psycopg.OperationalError as e:
                    self._control.close()
                    if attempt:
                        raise _connection_error(self.url, e) from None

    def commit_id(self) -> str:
        """One query, asked before every question: no table means no index; other columns, another version."""
        import psycopg

        def read(conn) -> str:
            try:
                return conn.execute("SELECT commit FROM qa_manifest").fetchone()[0]
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn, TypeError):
                return _manifest(conn, self.url)[5]  # raises the error that says what is wrong

        return self._query(read)

    def status(self) -> IndexStatus:
        return self._query(lambda conn: _status(conn, self.url)[0])

    def open(self, key: dict) -> "PgSnapshot":
        snapshot = PgSnapshot(self.url, key)
        # keep the one it replaces open for questions still reading it; close the older ones
        self._open.append(snapshot)
        while len(self._open) > 2:
            self._open.pop(0).close()
        return snapshot

    def close(self) -> None:
        for snapshot in self._open:
            snapshot.close()
        self._open.clear()
        if self._control is not None:
            self._control.close()

    # -- writing ------------------------------------------------------------------------------------------

    def update(self, key: dict, changes: Changes) -> IndexStatus:
        """One transaction: make or clear the tables as needed, delete the removed and replaced files' rows,
        insert the new ones, write the manifest. Readers' snapshots go on seeing the commit they opened."""
        if self._writer is None:
            with self.lock():
                return self.update(key, changes)
        import psycopg

        conn = self._writer
        try:
            with conn.transaction():
                _vector_types(conn, self.url, create=True)
                fresh = self._prepare(key, changes)
                self._delete([*changes.removed, *(u.document.source for u in changes.upserts)])
                self._insert(changes.upserts, merged=fresh)
                if not fresh:
                    self._merge()
                if fresh:
                    for statement in _search_indexes():
                        conn.execute(statement)
                commit = uuid.uuid4().hex
                conn.execute(
                    "UPDATE qa_manifest SET settings = %s, built_at = %s, skipped = %s, commit = %s",
                    (json.dumps(key), time.strftime("%Y-%m-%dT%H:%M:%S%z"), json.dumps([asdict(s) for s in changes.skipped]), commit),
                )
        except psycopg.errors.LockNotAvailable:
            raise IndexBusyError(
                f"qa processes are reading {shown(self.url)} with other settings; stop them (qa serve), then run `qa index` again"
            ) from None
        except psycopg.errors.ReadOnlySqlTransaction:
            raise DatabaseError(f"{shown(self.url)} takes no writes (a read-only user or replica); build the index on the primary") from None
        except psycopg.errors.InsufficientPrivilege as e:
            raise DatabaseError(f"the database user cannot write the index in {shown(self.url)} ({e.diag.message_primary}); grant it CREATE on the schema") from None
        except psycopg.OperationalError as e:
            raise _connection_error(self.url, e) from None
        if fresh:
            for table in _ALL_TABLES:  # planner statistics, and the visibility map for index-only scans
                conn.execute(f"VACUUM (ANALYZE) {table}")
        return _status(conn, self.url)[0]

    def _prepare(self, key: dict, changes: Changes) -> bool:
        """Make the tables if there are none, or they are of another format or dimension (DDL, which waits
        DDL_LOCK_TIMEOUT for readers); empty them for a rebuild. True when they were made anew, without their
        search indexes yet."""
        conn = self._writer
        dimension = next((int(u.unit_vectors.shape[1]) for u in changes.upserts if len(u.unit_vectors)), None)
        try:
            stored = _manifest(conn, self.url)[2]
        except (IndexMissingError, IndexMismatchError):
            stored = None
        if stored is not None and dimension in (None, stored):
            if changes.rebuild:
                for table in _ALL_TABLES[1:]:
                    conn.execute(f"DELETE FROM {table}" if table != "qa_stats" else "UPDATE qa_stats SET texts = 0, length = 0")
            return False
        if dimension is None:
            raise IndexMissingError(f"no index in {shown(self.url)} and nothing to put in one; add documents and run `qa index`")
        conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        for table in _ALL_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("DROP SEQUENCE IF EXISTS qa_document_ids")
        for statement in _schema(dimension):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO qa_manifest VALUES (1, %s, %s, %s, '', '[]', '')",
            (FORMAT_VERSION, json.dumps(key), dimension),
        )
        return True

    def _delete(self, sources: list[str]) -> None:
        """The files' rows (each file one id range), their terms' document frequencies and the statistics, for
        all of a commit's removed and replaced files at once."""
        conn = self._writer
        ids = [n for (n,) in conn.execute("DELETE FROM qa_documents WHERE source = ANY(%s) RETURNING id", (sources,))]
        if not ids:
            return
        ranges = {"lo": [n << POSITION_BITS for n in ids], "hi": [(n + 1) << POSITION_BITS for n in ids]}
        r = "unnest(%(lo)s::bigint[], %(hi)s::bigint[]) r(lo, hi)"
        for level, table in _TABLES.items():
            texts, length = conn.execute(
                f"""WITH gone AS (DELETE FROM {table} t USING {r} WHERE t.id >= r.lo AND t.id < r.hi RETURNING t.length)
                    SELECT count(*), coalesce(sum(length), 0) FROM gone""",
                ranges,
            ).fetchone()
            conn.execute(
                f"""UPDATE {table}_terms d SET df = d.df - gone.n FROM (
                        SELECT term, count(*) AS n FROM {table}_postings p JOIN {r} ON p.unit >= r.lo AND p.unit < r.hi
                        GROUP BY term) gone
                    WHERE d.term = gone.term""",
                ranges,
            )
            conn.execute(f"DELETE FROM {table}_postings p USING {r} WHERE p.unit >= r.lo AND p.unit < r.hi", ranges)
            conn.execute("UPDATE qa_stats SET texts = texts - %s, length = length - %s WHERE level = %s", (texts, length, level))

    def _merge(self) -> None:
        """Link a level's unmerged rows into its HNSW graph once more than UNMERGED_LIMIT of them wait."""
        for table in _TABLES.values():
            waiting = self._writer.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE NOT merged LIMIT %s) w", (UNMERGED_LIMIT + 1,))
            if waiting.fetchone()[0] > UNMERGED_LIMIT:
                self._writer.execute(f"UPDATE {table} SET merged = true WHERE NOT merged")

    def _insert(self, upserts: list[IndexedDocument], merged: bool) -> None:
        """All new files' rows in one COPY per table (a first build of 10^4 files is then a few statements, not
        10^5), their terms' document frequencies added, the statistics moved. Rows go in `merged` (into the
        HNSW graph) for a first build, whose graph is built after them, or when a level gets many."""
        conn = self._writer
        if not upserts:
            return
        numbers = [n for (n,) in conn.execute("SELECT nextval('qa_document_ids') FROM generate_series(1, %s)", (len(upserts),))]
        with conn.cursor().copy("COPY qa_documents FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "text", "int8", "int8", "int4", "int4", "text", "int4[]"])
            for number, u in zip(numbers, upserts):
                d = u.document
                copy.write_row((number, d.source, d.sha256, u.size, u.mtime_ns, len(u.units), len(u.chunks), d.text, list(d.page_starts)))
        columns = {UNITS: 'id, start, "end", kind, context_start, context_end', CHUNKS: 'id, start, "end", first, last'}
        types = {UNITS: ["int8", "int4", "int4", "int2", "int4", "int4"], CHUNKS: ["int8", "int4", "int4", "int8", "int8"]}
        for level, table in _TABLES.items():
            postings, total, count = [], 0, 0
            # decided per level: a file has several units for each chunk
            into_graph = merged or sum(len(u.units if level == UNITS else u.chunks) for u in upserts) > UNMERGED_LIMIT
            tokens = ", tokens" if level == UNITS else ""
            with conn.cursor().copy(f"COPY {table} ({columns[level]}, length, embedding, merged{tokens}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([*types[level], "int4", "vector", "bool", *(["bytea"] if tokens else [])])
                for number, u in zip(numbers, upserts):
                    rows = _rows(level, number << POSITION_BITS, u)
                    extra = [(_token_bytes(t, u.unit_vectors.shape[1]),) for t in u.unit_tokens] if tokens else [()] * len(rows)
                    for row, text, vector, more in zip(rows, *_texts_and_vectors(level, u), extra, strict=True):
                        length, unit_postings = _postings(row[0], text)
                        total, count = total + length, count + 1
                        postings += unit_postings
                        copy.write_row((*row, length, np.asarray(vector, dtype=np.float32), into_graph, *more))
            with conn.cursor().copy(f"COPY {table}_postings (unit, term, tf, length) FROM STDIN") as copy:
                copy.write(_tsv(postings))
            df: dict[str, int] = {}
            for _, term, _, _ in postings:
                df[term] = df.get(term, 0) + 1
            conn.execute(
                f"""INSERT INTO {table}_terms SELECT * FROM unnest(%s::text[], %s::bigint[])
                    ON CONFLICT (term) DO UPDATE SET df = {table}_terms.df + excluded.df""",
                (list(df), list(df.values())),
            )
            conn.execute("UPDATE qa_stats SET texts = texts + %s, length = length + %s WHERE level = %s", (count, total, level))


def _rows(level: str, base: int, u: IndexedDocument) -> list[tuple]:
    """A file's unit or chunk rows with database ids: base (its document << 24) + position."""
    if level == UNITS:
        return [(base + i, x.start, x.end, KINDS.index(x.kind), x.context_start, x.context_end) for i, x in enumerate(u.units)]
    return [(base + i, c.start, c.end, base + c.first, base + c.last) for i, c in enumerate(u.chunks)]


def _token_bytes(tokens: np.ndarray, dimension: int) -> bytes:
    """A unit's int8 token rows as its bytea."""
    tokens = np.asarray(tokens)
    if tokens.dtype != np.int8 or tokens.ndim != 2 or tokens.shape[1] != dimension:
        raise ValueError(f"token vectors of type {tokens.dtype} and shape {tokens.shape}, not int8 rows of {dimension}")
    return tokens.tobytes()


def _texts_and_vectors(level: str, u: IndexedDocument) -> tuple[list[str], np.ndarray]:
    if level == UNITS:
        return [x.text for x in u.units], u.unit_vectors
    return [c.text for c in u.chunks], u.chunk_vectors


#: A posting as search_lexical packs it: unit, the term's place (from 1) in the question, tf, length; big-endian.
_POSTING = np.dtype([("unit", ">i8"), ("term", ">i4"), ("tf", ">i4"), ("length", ">i4")])


def _idf(n: int, df: int) -> float:
    """BM25 idf as bm25s's lucene variant: ln(1 + (N - df + 0.5) / (df + 0.5))."""
    return float(np.log(1 + (n - df + 0.5) / (df + 0.5)))


class PgSnapshot(Snapshot):
    """One commit of the database index: a read-only repeatable-read transaction, held while the snapshot
    is in use. Its documents are numbered 0.. in order of source, as the folder store numbers them (so ties
    break alike), and its rows 0.. document after document."""

    def __init__(self, url: str, key: dict):
        self.url = url
        self._lock = threading.Lock()
        self._texts: OrderedDict[int, Document] = OrderedDict()
        self._cache: dict[str, OrderedDict] = {}
        self._conn = connect(url, reader=True)
        try:
            self.status, ids = _status(self._conn, url)
            if self.status.settings != key:
                raise mismatch(self.status.settings, key)
            _vector_types(self._conn, url, create=False)
            self._stats = {level: (n, length) for level, n, length in self._conn.execute("SELECT level, texts, length FROM qa_stats")}
        except BaseException:
            self._conn.close()
            raise
        #: database id of each snapshot document, and the snapshot documents in order of database id
        self._doc_ids = np.array(ids, dtype=np.int64)
        self._by_id = np.argsort(self._doc_ids)
        self._offsets = {
            level: np.concatenate([[0], np.cumsum([getattr(d, level) for d in self.status.documents], dtype=np.int64)]).astype(np.int64)
            for level in (UNITS, CHUNKS)
        }

    def close(self) -> None:
        self._conn.close()

    # -- ids: the snapshot's 0.. numbers and the database's document << 24 | position -------------------------

    def _to_db(self, level: str, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        offsets = self._offsets[level]
        d = np.searchsorted(offsets, ids, side="right") - 1
        return (self._doc_ids[d] << POSITION_BITS) | (ids - offsets[d])

    def _local_documents(self, db_documents) -> np.ndarray:
        db_documents = np.asarray(db_documents, dtype=np.int64)
        return self._by_id[np.searchsorted(self._doc_ids[self._by_id], db_documents)]

    def _from_db(self, level: str, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        return self._offsets[level][self._local_documents(ids >> POSITION_BITS)] + (ids & ((1 << POSITION_BITS) - 1))

    def _docs_db(self, documents) -> list[int]:
        return self._doc_ids[np.asarray(documents, dtype=np.int64)].tolist()

    def _sources_db(self, sources: Collection[str] | None) -> list[int] | None:
        if sources is None:
            return None
        wanted = set(sources)
        return [int(self._doc_ids[d]) for d, s in enumerate(self.status.documents) if s.source in wanted]

    def _fetch(self, sql: str, params=(), local: str = "", reset: str = "", binary: bool = False) -> list[tuple]:
        """Rows of one query, after the transaction-local settings `local` (undone by `reset` after it). A lost
        connection (a restart, an idle-session timeout, a failover) is reopened once: a new transaction reads
        the same rows while the index is still at this snapshot's commit."""
        import psycopg

        with self._lock:
            for attempt in (0, 1):
                try:
                    if local:
                        self._conn.execute(local, params)
                    rows = self._conn.execute(sql, params, binary=binary).fetchall()
                    if reset:
                        self._conn.execute(reset)
                    return rows
                except psycopg.OperationalError as e:
                    if attempt:
                        raise _connection_error(self.url, e) from None
                    self._reopen()
        raise AssertionError("unreachable")

    def _reopen(self) -> None:
        self._conn.close()
        conn = connect(self.url, reader=True)
        try:
            if _status(conn, self.url)[0].commit != self.status.commit:
                raise IndexChangedError(f"the index in {shown(self.url)} changed while this question was answered; ask again")
            _vector_types(conn, self.url, create=False)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # -- the interface ------------------------------------------------------------------------------------

    def document(self, d: int) -> Document:
        with self._lock:
            cached = self._texts.get(d)
            if cached is not None:
                self._texts.move_to_end(d)
                return cached
        ((source, text, sha256, pages),) = self._fetch(
            "SELECT source, text, sha256, page_starts FROM qa_documents WHERE id = %s", (int(self._doc_ids[d]),)
        )
        document = Document(source, text, sha256, tuple(pages))
        with self._lock:
            self._texts[d] = document
            while len(self._texts) > TEXT_CACHE:
                self._texts.popitem(last=False)
        return document

    def size(self, level: str) -> int:
        return int(self._offsets[level][-1])

    def _cached(self, name: str, db: list, sql: str, limit: int = ROW_CACHE, ahead: bool = False) -> list:
        """The values of database ids `db`, from this snapshot's cache (its rows never change, up to `limit` of
        them kept) or one query for those not in it: `sql` selects (id, value) for ids = ANY(%s). With `ahead`,
        a few missing rows bring their READ_AHEAD neighbours of the same document along: answering reads a
        window's units one by one, each a round trip otherwise."""
        with self._lock:  # the hits are copied here: another thread may evict them before this one reads them
            cache = self._cache.setdefault(name, OrderedDict())
            hits = {i: cache[i] for i in db if i in cache}
        missing = [i for i in dict.fromkeys(db) if i not in hits]
        if ahead and 0 < len(missing) <= READ_AHEAD_MISSES:
            position = (1 << POSITION_BITS) - 1
            near = (range(i - min(READ_AHEAD, i & position), i + READ_AHEAD + 1) for i in missing)
            missing = list(dict.fromkeys(j for r in near for j in r if j not in hits and j not in cache))
        found = dict(self._fetch(sql, (missing,))) if missing else {}
        values = [hits[i] if i in hits else found.get(i) for i in db]  # None: the database has no row for it
        with self._lock:
            cache.update(found)
            while len(cache) > limit:
                cache.popitem(last=False)
        return values

    def rows(self, level: str, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(len(ids), dtype=UNIT_ROW if level == UNITS else CHUNK_ROW)
        if not len(ids):
            return out
        db = self._to_db(level, ids)
        columns = 'start, "end", kind, context_start, context_end' if level == UNITS else 'start, "end", first, last'
        sql = f"SELECT id, ARRAY[{columns}]::bigint[] FROM {_TABLES[level]} WHERE id = ANY(%s)"
        values = np.array(self._cached(f"rows {level}", db.tolist(), sql, ahead=True), dtype=np.int64)
        out["document"] = self._local_documents(db >> POSITION_BITS)
        out["start"], out["end"] = values[:, 0], values[:, 1]
        if level == UNITS:
            out["kind"], out["context_start"], out["context_end"] = values[:, 2], values[:, 3], values[:, 4]
        else:
            out["first"], out["last"] = self._from_db(UNITS, values[:, 2]), self._from_db(UNITS, values[:, 3] - 1) + 1
        return out

    def vectors(self, level: str, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Cached like rows: answering asks for the same units' vectors one window at a time."""
        db = self._to_db(level, ids)
        if not len(db):
            return np.zeros((0, self.status.dimension), dtype=np.float32)
        sql = f"SELECT id, embedding FROM {_TABLES[level]} WHERE id = ANY(%s)"
        found = self._cached(f"vectors {level}", db.tolist(), sql, VECTOR_CACHE, ahead=True)
        return np.stack([v.to_numpy() for v in found]).astype(np.float32, copy=False)

    def unit_tokens(self, ids: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        db = self._to_db(UNITS, ids)
        sql = "SELECT id, tokens FROM qa_units WHERE id = ANY(%s)"
        found = self._cached("tokens", db.tolist(), sql, TOKEN_CACHE, ahead=True)
        d = self.status.dimension
        if any(t is None or len(t) % d for t in found):
            raise IndexCorruptError(f"the token vectors in {shown(self.url)} do not match its units; run `qa index` to rebuild it")
        return [np.frombuffer(t, dtype=np.int8).reshape(-1, d) for t in found]

    def search_dense(self, level: str, vector: np.ndarray, k: int, sources: Collection[str] | None = None) -> Hits:
        """Exact while the rows searched are few (EXACT_LIMIT), HNSW beyond, with ef_search by size as the folder
        store, and iterative scans so that a filter by source, or rows deleted but not yet vacuumed, cannot
        leave the result short of k. Rows not yet merged into the graph (UNMERGED_LIMIT) are scanned beside it."""
        table, vector = _TABLES[level], np.asarray(vector, dtype=np.float32)
        docs = self._sources_db(sources)
        rows_searched = self.size(level) if docs is None else self._rows_of(level, docs)
        params = {"v": vector, "k": int(k), "docs": docs, "ef": str(ef_search(self.size(level)))}
        if rows_searched <= EXACT_LIMIT:
            where = ""
            if docs is not None:  # read only those documents' id ranges
                where = "JOIN unnest(%(lo)s::bigint[], %(hi)s::bigint[]) r(lo, hi) ON id >= r.lo AND id < r.hi"
                params |= {"lo": [d << POSITION_BITS for d in docs], "hi": [(d + 1) << POSITION_BITS for d in docs]}
            sql = f"""WITH scored AS MATERIALIZED (SELECT id, embedding <#> %(v)s AS distance FROM {table} {where})
                      SELECT id, (-distance)::float4 AS score FROM scored ORDER BY score DESC FETCH FIRST %(k)s ROWS WITH TIES"""
            return self._hits(level, self._fetch(sql, params), k)
        of_docs = "" if docs is None else f"AND (id >> {POSITION_BITS}) = ANY(%(docs)s)"
        rows = self._fetch(
            f"""(SELECT id, -(embedding <#> %(v)s) FROM {table} WHERE merged {of_docs} ORDER BY embedding <#> %(v)s LIMIT %(k)s)
                UNION ALL (SELECT id, -(embedding <#> %(v)s) FROM {table} WHERE NOT merged {of_docs} ORDER BY 2 DESC LIMIT %(k)s)""",
            params,
            # the planner may still prefer a full scan of a table that is small for its cost model: HNSW it is
            local="""SELECT set_config('hnsw.ef_search', %(ef)s, true), set_config('hnsw.iterative_scan', 'strict_order', true),
                            set_config('enable_seqscan', 'off', true)""",
            reset="SELECT set_config('enable_seqscan', 'on', true)",
        )
        return self._hits(level, rows, k)

    def _rows_of(self, level: str, docs: list[int]) -> int:
        d = self._local_documents(docs)
        offsets = self._offsets[level]
        return int((offsets[d + 1] - offsets[d]).sum())

    def _hits(self, level: str, rows: list[tuple], k: int) -> Hits:
        """The best k of (database id, score) rows, ties broken by the lower snapshot id, as the folder store."""
        ids = self._from_db(level, np.array([r[0] for r in rows], dtype=np.int64))
        scores = np.array([r[1] for r in rows], dtype=np.float32)
        order = np.lexsort((ids, -scores))[:k]
        return Hits(ids[order], scores[order])

    def search_lexical(self, level: str, weights: Mapping[str, float], k: int, sources: Collection[str] | None = None) -> Hits:
        """BM25 over the term postings: idf ln(1 + (N - df + 0.5) / (df + 0.5)) times
        tf / (tf + k1 (1 - b + b length / average length)), as bm25s computes it; best first, ties by id.

        The database reads the question's postings (one index range per term) and sends them packed in one
        bytea; they are summed per row here, in float64 as SQL would. Grouping them in SQL cost ~1 us a posting
        (rows through a hash aggregate), and a question of common terms has 10^5 postings at 10^5 chunks."""
        n, total = self._stats[level]
        docs = self._sources_db(sources)
        if not weights or not n or docs == []:
            return self._hits(level, [], k)
        terms = list(weights)
        df = self._df(level, terms)
        w = np.array([weights[t] * _idf(n, df[t]) if df[t] else 0.0 for t in terms], dtype=np.float64)
        of_docs = "" if docs is None else f"WHERE (t.unit >> {POSITION_BITS}) = ANY(%(docs)s)"
        ((packed,),) = self._fetch(
            f"""SELECT string_agg(int8send(t.unit) || int4send(q.i::int4) || int4send(t.tf) || int4send(t.length), ''::bytea)
                FROM unnest(%(terms)s::text[]) WITH ORDINALITY q(term, i) JOIN {_TABLES[level]}_postings t USING (term) {of_docs}""",
            {"terms": terms, "docs": docs},
            binary=True,
        )
        if not packed:
            return self._hits(level, [], k)
        postings = np.frombuffer(packed, dtype=_POSTING)
        units, row = np.unique(postings["unit"].astype(np.int64), return_inverse=True)
        term_w = w[postings["term"].astype(np.int64) - 1]
        tf = postings["tf"].astype(np.float64)
        scores = np.bincount(row, term_w * tf / (tf + K1 * (1 - B) + K1 * B / (total / n) * postings["length"]), len(units))
        kept = np.bincount(row, term_w, len(units)) > 0
        units, scores = units[kept], scores[kept].astype(np.float32)  # ranked as float4, the folder store's precision
        if len(scores) > k:  # every row tied with the k-th goes on, for _hits to break ties by id
            top = np.partition(scores, len(scores) - k)[len(scores) - k]
            units, scores = units[scores >= top], scores[scores >= top]
        return self._hits(level, list(zip(units.tolist(), scores.tolist())), k)

    def _df(self, level: str, terms: list[str]) -> dict[str, int]:
        """Document frequencies of `terms` at this snapshot (0 for a term no row holds), cached with it."""
        sql = f"SELECT q.term, coalesce(d.df, 0) FROM unnest(%s::text[]) q(term) LEFT JOIN {_TABLES[level]}_terms d USING (term)"
        return dict(zip(terms, self._cached(f"df {level}", terms, sql)))

    def idf(self, level: str, terms: Collection[str]) -> dict[str, float]:
        n = self._stats[level][0]
        return {t: _idf(n, df) for t, df in self._df(level, list(terms)).items()}

    def terms(self, level: str, ids: Sequence[int] | np.ndarray) -> list[frozenset[str]]:
        db = self._to_db(level, ids)
        sql = f"SELECT unit, array_agg(term) FROM {_TABLES[level]}_postings WHERE unit = ANY(%s) GROUP BY unit"
        return [frozenset(t or ()) for t in self._cached(f"terms {level}", db.tolist(), sql, ahead=True)]

    def documents_holding(self, terms: Collection[str], documents: Sequence[int] | np.ndarray) -> dict[str, set[int]]:
        documents = np.asarray(documents, dtype=np.int64)
        terms = list(terms)
        found = self._fetch(
            f"""SELECT q.term, d.id FROM unnest(%s::text[]) q(term), unnest(%s::bigint[]) d(id)
                WHERE EXISTS (SELECT 1 FROM qa_chunks_postings p WHERE p.term = q.term
                              AND p.unit >= d.id << {POSITION_BITS} AND p.unit < (d.id + 1) << {POSITION_BITS})""",
            (terms, self._docs_db(documents)),
        )
        holding: dict[str, set[int]] = {t: set() for t in terms}
        for term, doc in found:
            holding[term].add(int(self._local_documents([doc])[0]))
        return holding

    def containing_chunks(self, units: Sequence[int] | np.ndarray) -> list[list[int]]:
        """Chunks are runs of units in order, at most 8 of them overlapping one unit (Settings.chunk_overlap < 8):
        the last few chunks starting at or before the unit, in its document, that end after it."""
        db = self._to_db(UNITS, units)
        rows = self._fetch(
            f"""SELECT u.id, c.id FROM unnest(%s::bigint[]) u(id), LATERAL (
                    SELECT id, last FROM qa_chunks WHERE first <= u.id AND first >= (u.id >> {POSITION_BITS}) << {POSITION_BITS}
                    ORDER BY first DESC LIMIT 9) c
                WHERE c.last > u.id ORDER BY u.id, c.id DESC""",
            (db.tolist(),),
        )
        held: dict[int, list[int]] = {}
        for unit, chunk in rows:
            held.setdefault(unit, []).append(chunk)
        return [self._from_db(CHUNKS, held.get(u, [])).tolist() for u in db.tolist()]
