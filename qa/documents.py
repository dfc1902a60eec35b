"""Seeds folder -> Documents. Forgiving: a file that cannot be read is reported and skipped, never fatal."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .errors import CorpusError
from .types import Document

#: Formats read as plain text; HTML, PDF and Word have their text extracted. Others are skipped with a note.
TEXT_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")

Warn = Callable[[str], None]


def seed_files(folder: Path, warn: Warn) -> Iterator[Path]:
    """Every file name under `folder`, sorted, hidden entries skipped; directory symlinks not followed (no loops)."""
    for root, dirs, names in os.walk(folder, onerror=lambda e: warn(f"skipped {e.filename}: {e.strerror}")):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(root) / name


@dataclass(frozen=True)
class _Seed:
    """One text-suffixed file of the seeds folder: its bytes, or (data None) the reason it was not read."""

    source: str
    suffix: str
    data: bytes | None
    reason: str = ""

    @property
    def sha256(self) -> str:
        """What the index compares with to be stale; "" for a file not read, so it counts as changed once readable."""
        return "" if self.data is None else hashlib.sha256(self.data).hexdigest()


_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket",
          stat.S_IFDIR: "a directory"}


def _not_regular(mode: int) -> str:
    kind = _KINDS.get(stat.S_IFMT(mode))
    return f"{kind + ', ' if kind else ''}not a regular file; only regular files are read"


def _read_bytes(root: Path, path: Path, max_bytes: int) -> bytes:
    """The bytes of one seeds file; ValueError says why it is not read.

    Only regular files are opened: a file link must resolve inside `root` (else /etc/passwd could be quoted to
    a chat user), a named pipe or device is refused before opening, the open never blocks or follows a link
    swapped in since the check, and at most `max_bytes + 1` bytes are read, so a file that grows is refused too.
    """
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        try:
            real = Path(os.path.realpath(path, strict=True))
        except OSError as e:
            raise ValueError(f"a broken link ({e.strerror or e})") from None
        if not real.is_relative_to(root):
            raise ValueError(f"a link to {real}, outside the seeds folder; only links to files inside it are read")
        path, info = real, os.lstat(real)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(_not_regular(info.st_mode))
    _check_size(info.st_size, max_bytes)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(_not_regular(info.st_mode))
        _check_size(info.st_size, max_bytes)
        parts, left = [], max_bytes + 1
        while left and (part := os.read(fd, min(left, 1 << 20))):
            parts.append(part)
            left -= len(part)
    finally:
        os.close(fd)
    data = b"".join(parts)
    _check_size(len(data), max_bytes)
    return data


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        shown, limit = _bytes(size), _bytes(max_bytes)
        if shown == limit:  # 20,000,001 bytes over 20 MB must not read "20 MB is over the 20 MB limit"
            shown, limit = f"{size:,} bytes", f"{max_bytes:,} bytes"
        raise ValueError(f"{shown} is over the {limit} limit (QA_MAX_FILE_BYTES)")


def _bytes(n: int) -> str:
    """A size as people read it: 5000 -> '5,000 bytes', 48_213 -> '48.2 kB', 20_000_000 -> '20 MB'."""
    if n < 10_000:
        return f"{n:,} bytes"
    value, unit = (n / 1e6, "MB") if n >= 1_000_000 else (n / 1e3, "kB")
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _seeds(folder: Path, max_bytes: int, warn: Warn, unread: frozenset[str] = frozenset()) -> Iterator[_Seed]:
    """Every text-suffixed file under `folder` but the `unread` sources, read by `_read_bytes`: the one way qa
    reads the seeds folder."""
    root = folder.resolve()
    for path in seed_files(folder, warn):
        source = path.relative_to(folder).as_posix()
        suffix = path.suffix.lower()
        if suffix not in TEXT_SUFFIXES:
            warn(f"skipped {source}: only {', '.join(TEXT_SUFFIXES)} files are indexed")
            continue
        if source in unread:
            continue
        try:
            yield _Seed(source, suffix, _read_bytes(root, path, max_bytes))
        except ValueError as e:
            yield _Seed(source, suffix, None, str(e))
        except OSError as e:
            yield _Seed(source, suffix, None, e.strerror or str(e))


def _document(seed: _Seed, data: bytes) -> Document:
    """Decode one file's bytes; raise ValueError with the reason it cannot be indexed."""
    suffix = seed.suffix
    pages: tuple[int, ...] = ()
    if suffix == ".pdf":
        text, pages = _pdf_text(data)
    elif suffix == ".docx":
        text = _docx_text(data)
    else:
        if b"\x00" in data[:8192]:
            raise ValueError("binary file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"not UTF-8 (byte {e.start}); save it as UTF-8 to include it") from None
        if suffix in (".html", ".htm"):
            text = _html_text(text)
    if not text.strip():
        raise ValueError("no text in it" if suffix in (".pdf", ".docx") else "empty file")
    return Document(source=seed.source, text=text, sha256=seed.sha256, page_starts=pages)


def read_document(folder: Path, source: str, max_bytes: int) -> Document:
    """One seeds file read as the index reads it (what citations point into); ValueError says why it cannot be."""
    path = folder / source
    seed = _Seed(source, path.suffix.lower(), _read_bytes(folder.resolve(), path, max_bytes))
    return _document(seed, seed.data)


_HTML_BLOCKS = ["p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "section",
                "article", "header", "footer", "nav", "aside", "main", "title", "dd", "dt", "figure", "figcaption",
                "caption", "table", "ul", "ol", "dl"]


def _html_text(html: str) -> str:
    r"""The visible text of a page, one line per block, its structure kept the way Markdown writes it: a heading
    as "## Fees", a list item as "- ...", a table row as "| Adult | $42 |", quoted text as "> ...". Citations
    point into this text, not the markup, and the chunker reads one structure for .md and .html alike.

    >>> _html_text("<h2>Fees</h2><table><tr><th>Plan</th><th>Price</th></tr><tr><td>Adult</td><td>$42</td></tr></table>")
    '## Fees\n| Plan | Price |\n| Adult | $42 |'
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    for row in soup("tr"):
        cells = [" ".join(cell.get_text(" ").split()) for cell in row(["th", "td"])]
        row.replace_with(soup.new_tag("tr", string="| " + " | ".join(cells) + " |"))
    for level in range(1, 7):
        for heading in soup(f"h{level}"):
            heading.insert(0, "#" * level + " ")
    for item in soup("li"):
        item.insert(0, "- ")
    for block in soup(_HTML_BLOCKS):
        block.insert_before("\n")
        block.insert_after("\n")
    for quote in reversed(soup("blockquote")):  # innermost first, so a quote inside a quote reads "> > "
        lines = [" ".join(line.split()) for line in quote.get_text().splitlines()]
        quote.replace_with("\n" + "\n".join("> " + line for line in lines if line) + "\n")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    return "\n".join(line for line in lines if line)


def _pdf_text(data: bytes) -> tuple[str, tuple[int, ...]]:
    """The text layer, pages joined by blank lines, with the offset where each page starts."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        texts = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"unreadable PDF ({e})") from None
    starts, parts, offset = [], [], 0
    for t in texts:
        starts.append(offset)
        parts.append(t.strip())
        offset += len(parts[-1]) + 2
    return "\n\n".join(parts), tuple(starts)


def _docx_text(data: bytes) -> str:
    """A Word file's paragraphs, one per line (python-docx reads the XML inside the zip; no macro runs)."""
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (ValueError, KeyError, zipfile.BadZipFile, docx.opc.exceptions.PackageNotFoundError) as e:
        raise ValueError(f"unreadable Word file ({e})") from None
    return "\n".join(p.text for p in document.paragraphs)


def load_documents(
    folder: Path,
    max_bytes: int,
    warn: Warn,
    skipped: dict[str, str] | None = None,
    unread: frozenset[str] = frozenset(),
    reported: Mapping[str, str] | None = None,
) -> list[Document]:
    """All readable `.txt`/`.md`/`.html`/`.pdf`/`.docx` files under `folder`, with `source` relative to it, but
    the `unread` sources (indexed documents an update knows to be unchanged), which are neither read nor reported.

    Text files that cannot be indexed are reported through `warn` (unless `reported`, the skips an index already
    holds, has the same source and hash: a refused file is reported once) and, if given, recorded in `skipped`
    (source -> `content_hashes` value) so that an unchanged bad file does not make the index look stale.

    >>> load_documents(Path("seeds"), 20_000_000, print)[0].source
    '000_5abd526e33e5c8b9.txt'
    """
    if not folder.is_dir():
        raise CorpusError(f"seeds folder {folder} does not exist; create it and put .txt or .md files in it")
    documents = []
    for seed in _seeds(folder, max_bytes, warn, unread):
        reason = seed.reason
        if seed.data is not None:
            try:
                documents.append(_document(seed, seed.data))
                continue
            except ValueError as e:
                reason = str(e)
        if (reported or {}).get(seed.source) != seed.sha256:
            warn(f"skipped {seed.source}: {reason}")
        if skipped is not None:
            skipped[seed.source] = seed.sha256
    if not documents and not unread:
        raise CorpusError(f"no readable .txt, .md, .html, .pdf or .docx files in {folder}; add some and run `qa index`")
    return documents


def content_hashes(folder: Path, max_bytes: int = Settings.max_file_bytes) -> dict[str, str]:
    """sha256 of every indexable-looking file's bytes ("" if not read), keyed by source: what the index is
    compared with to be stale. `max_bytes` must be the limit the index was built with."""
    if not folder.is_dir():
        return {}
    return {seed.source: seed.sha256 for seed in _seeds(folder, max_bytes, lambda _: None)}


def file_sha256(folder: Path, source: str, max_bytes: int) -> str:
    """sha256 of one seeds file read as the index reads it (`content_hashes`'s value for it): "" when it is not
    read, so a pipe, a device or a link out of the folder is never opened to tell whether it changed."""
    try:
        return hashlib.sha256(_read_bytes(folder.resolve(), folder / source, max_bytes)).hexdigest()
    except (ValueError, OSError):
        return ""


# -- adding files from the page: safe names, never outside the folder, never over a file -------------------------

#: Longest file name written, in UTF-8 bytes (file systems allow 255; room is left for a " (12)" suffix).
NAME_BYTES = 160
#: Characters dropped from a name: controls, bidi overrides and isolates, zero-width and other invisible format
#: marks (a "\u202e" can make "evil\u202etxt.exe" read as "evilexe.txt"), and path or shell-hostile marks.
_NOT_IN_NAMES = re.compile(r'[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff/\\:*?"<>|]')


def safe_name(name: str) -> str:
    r"""A file name that is safe to create in the seeds folder: no path parts, not hidden, no invisible or
    control characters, NFC-normalised, at most NAME_BYTES long with its suffix kept; ValueError if nothing is left.

    >>> safe_name("../../etc/..hidden\u202egpj.txt")
    'hiddengpj.txt'
    """
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = " ".join(_NOT_IN_NAMES.sub("", name).split()).lstrip(". ").rstrip(". ")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        raise ValueError("no usable file name")
    suffix = "." + suffix.lower()
    while len((stem + suffix).encode("utf-8")) > NAME_BYTES:
        stem = stem[:-1]
    return stem.rstrip(". ") + suffix


@dataclass(frozen=True)
class Refused:
    """An uploaded file that was not added, and why, in words for the page."""

    name: str
    reason: str

    def to_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason}


def check_upload(name: str, path: Path, max_bytes: int) -> tuple[str, bytes]:
    """(safe name, bytes) of an uploaded file that can be indexed; ValueError says why not.

    The size is checked from the file's length before it is read, and at most `max_bytes + 1` bytes are read;
    the bytes must decode the way the index reads them (not binary, UTF-8, a readable PDF or Word file).
    """
    safe = safe_name(name)
    suffix = Path(safe).suffix
    if suffix not in TEXT_SUFFIXES:
        raise ValueError(f"only {', '.join(TEXT_SUFFIXES)} files can be added")
    try:
        data = _read_bytes(Path(path).parent.resolve(), Path(path), max_bytes)
    except OSError as e:
        raise ValueError(f"unreadable ({e.strerror or e})") from None
    _document(_Seed(safe, suffix, data), data)
    return safe, data


def add_file(folder: Path, name: str, data: bytes) -> str:
    """Write `data` as a new file directly in `folder` under `name` (already `safe_name`d), or "name (2).txt"
    and so on if taken; returns the name used.

    Written as a hidden temporary file, then hard-linked to its name, which fails rather than replace anything
    that exists there (a file or a link); no link is followed or created, and a reader never sees half a file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    temp = f".upload-{os.getpid()}-{hashlib.sha256(data).hexdigest()[:16]}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        stem, suffix = os.path.splitext(name)
        for n in range(1, 1000):
            candidate = name if n == 1 else f"{stem} ({n}){suffix}"
            try:
                os.link(temp, candidate, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                return candidate
            except FileExistsError:
                continue
        raise ValueError(f"{name} and 998 numbered copies of it exist already")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        os.close(dir_fd)


def trash_file(folder: Path, source: str) -> Path:
    """Move seeds file `source` into `.trash/` beside `folder` (same relative path, "name (2).txt" if taken);
    returns where it went. A link is moved as the link; nothing is replaced or deleted."""
    parts = Path(source).parts
    if not parts or Path(source).is_absolute() or any(p in ("..", ".") or p.startswith(".") for p in parts):
        raise ValueError(f"{source!r} is not a file of the seeds folder")
    path = folder / source
    trash = folder.parent / ".trash" / Path(source).parent
    trash.mkdir(parents=True, exist_ok=True)
    stem, suffix = os.path.splitext(path.name)
    for n in range(1, 1000):
        target = trash / (path.name if n == 1 else f"{stem} ({n}){suffix}")
        try:
            os.link(path, target, follow_symlinks=False)  # fails, rather than replaces, when the name is taken
        except FileExistsError:
            continue
        os.unlink(path)
        return target
    raise ValueError(f"{path.name} and 998 numbered copies of it are in the trash already")
