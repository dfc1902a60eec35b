"""Seeds folder -> Documents. Forgiving: a file that cannot be read is reported and skipped, never fatal."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import CorpusError
from .types import Document

#: Formats read as plain text; HTML and PDF have their text extracted. Others are skipped with a note.
TEXT_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf")

Warn = Callable[[str], None]


def _files(folder: Path, warn: Warn) -> Iterator[Path]:
    """Every regular file under `folder`, sorted, hidden entries skipped; directory symlinks not followed (no loops)."""
    for root, dirs, names in os.walk(folder, onerror=lambda e: warn(f"skipped {e.filename}: {e.strerror}")):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(root) / name


def read_document(path: Path, source: str, max_bytes: int) -> Document:
    """Read one file as UTF-8; raise ValueError with the reason it cannot be indexed."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit (QA_MAX_FILE_BYTES)")
    data = path.read_bytes()
    suffix = path.suffix.lower()
    pages: tuple[int, ...] = ()
    if suffix == ".pdf":
        text, pages = _pdf_text(data)
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
        raise ValueError("no text in it" if suffix == ".pdf" else "empty file")
    return Document(source=source, text=text, sha256=hashlib.sha256(data).hexdigest(), page_starts=pages)


_HTML_BLOCKS = ["p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "section",
                "article", "header", "footer", "nav", "aside", "main", "title", "dd", "dt", "figure", "figcaption",
                "caption", "table", "ul", "ol", "dl"]


def _html_text(html: str) -> str:
    """The visible text of a page, one line per block, its structure kept the way Markdown writes it: a heading
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


def _hash_or_blank(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def load_documents(folder: Path, max_bytes: int, warn: Warn, skipped: dict[str, str] | None = None) -> list[Document]:
    """All readable `.txt`/`.md`/`.html`/`.pdf` files under `folder`, with `source` relative to it.

    Text files that cannot be indexed are reported through `warn` and, if given, recorded in `skipped`
    (source -> sha256 of their bytes) so that an unchanged bad file does not make the index look stale.

    >>> load_documents(Path("seeds"), 20_000_000, print)[0].source
    '000_5abd526e33e5c8b9.txt'
    """
    if not folder.is_dir():
        raise CorpusError(f"seeds folder {folder} does not exist; create it and put .txt or .md files in it")
    documents = []
    for path in _files(folder, warn):
        source = path.relative_to(folder).as_posix()
        if path.suffix.lower() not in TEXT_SUFFIXES:
            warn(f"skipped {source}: only {', '.join(TEXT_SUFFIXES)} files are indexed")
            continue
        try:
            documents.append(read_document(path, source, max_bytes))
        except ValueError as e:
            warn(f"skipped {source}: {e}")
            if skipped is not None:
                skipped[source] = _hash_or_blank(path)
        except OSError as e:
            warn(f"skipped {source}: {e.strerror or e}")
    if not documents:
        raise CorpusError(f"no readable .txt, .md, .html or .pdf files in {folder}; add some and run `qa index`")
    return documents


def content_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every indexable-looking file's bytes, keyed by source: what the index is compared with to be stale."""
    hashes = {}
    if not folder.is_dir():
        return hashes
    for path in _files(folder, lambda _: None):
        if path.suffix.lower() in TEXT_SUFFIXES:
            try:
                hashes[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue
    return hashes
