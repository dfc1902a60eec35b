"""Extractor: candidate units -> the quoted evidence window, its answer phrase, a confidence, or an abstention.

The quoted evidence is a window of 1..WINDOW_UNITS consecutive units (sentences or lines) of one passage, one
verbatim span: the line that repeats the question's words and the next one that answers it are quoted together.
Each window is scored by a linear function of evidence that needs no model call (FEATURES): its units', its
passage's and its neighbours' cosine to the question (vectors from the index); the idf-weighted share of the
question's terms found in it, around it, in the heading or table header it sits under, in a line's label ("Heat-up
time: ...", a table row's first cell), in its document and its file name; the share of the question's adjacent term
pairs it holds ("accepted solution"); the best cosine in its file and the fused rank of its passage; whether it
holds the kind of thing the question asks for (a number for "how many", a date or clock time for "when", a name for
"who", a phone number or an email address, a sum of money for a fee, a time of day for "what time"), near the
question's words, or an acronym's expansion; whether it says anything beyond the question; its size in words,
whether it is a quoted older message (`> `), an update, one that states the new value beside the old ("8:15am, not
9:30am"), how well a later update in its document matches the question (it may replace this one), whether it states
a value its document says was replaced ("£178, not £165"), the share of the numbers and codes the question names
("version 4.2.5", "E4", not its sums, times or dates) that neither it, its heading, the lines beside it in its
section nor its file's path holds, a structure line, whether it ends asking (a question from the floor, "parents
asked whether...": the reply after it answers); for a follow-up, whether it is in the previous answer's document;
and a token match, each of the question's words meeting its closest word piece in the window (the index keeps each
unit's word pieces' vectors); and, the same for every window of a question, the share of its terms (and its
history's, at their weight) that no candidate's document holds ("Tokyo").
Gradient-boosted trees (RankingTrees), fitted on what that weighted sum leaves wrong, re-rank its best windows:
they add what a sum cannot hold, how a window's size, cosines and term shares combine.
Whether to answer at all is a second, logistic model (Answerability) over the best window's score, its lead over
the runner-up and its evidence: the confidence; below Settings.min_confidence the assistant abstains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from .embedding import token_directions
from .errors import QAError
from .lexical import term_spans, tokenize
from .retrieval import Candidates, Query
from .store import CHUNKS, UNITS, Snapshot
from .types import KINDS, Citation, Passage

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|"
    "eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|dozen|"
    "half|once|twice"
)
_NUMBER = re.compile(
    rf"\b\d{{1,2}}:\d\d\b"
    rf"|(?:[$€£]\s?)?\d(?:[\d,.]*\d)?[½¼¾]?(?:\s?(?:%|percent|million|billion|thousand))?"
    rf"|\b(?:(?:{_NUMBER_WORDS})[\s-]?)+\b",
    re.IGNORECASE,
)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTH_ABBREVIATIONS = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DATE = re.compile(
    rf"\b\d{{1,2}}(?::\d\d)?\s?(?:[ap]\.m\.|[ap]m\b)|\b\d{{1,2}}:\d\d\b"
    rf"|\b(?:(?:(?:{_DAYS}),?\s+)?(?:\d{{1,2}}\s+)?(?:{_MONTHS}|(?:{_MONTH_ABBREVIATIONS})\.?)(?:\s+\d{{1,2}})?(?:,?\s+\d{{4}})?"
    rf"|\d{{4}}-\d{{2}}-\d{{2}}"
    rf"|(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)(?:\s+and\s+\d{{1,2}}(?:st|nd|rd|th))?\s+centur(?:y|ies)"
    rf"|(?:1[0-9]|20)\d{{2}}s?"
    rf"|{_DAYS})\b"
)
_DAY_ABBREVIATIONS = "Mon|Tue|Tues|Wed|Thu|Thur|Thurs|Fri|Sat|Sun"
#: A month or a day, as a name never is: "Sun 10 Mar" points at no one.
_CALENDAR = re.compile(rf"^(?:{_MONTHS}|{_DAYS}|{_MONTH_ABBREVIATIONS}|{_DAY_ABBREVIATIONS})\.?$")
_FULL_CALENDAR = re.compile(rf"^(?:{_MONTHS}|{_DAYS})$")
#: The pronoun "I" ("I've", "I'd"), capitalised as a name is and never one.
_FIRST_PERSON = re.compile(r"^I(?:[’'](?:m|ve|d|ll))?$")
_NAME = re.compile(r"\b[A-Z][\w’'.-]*(?:\s+(?:of|de|du|la|van|von|the|al|bin)?\s*[A-Z][\w’'.-]*)*")
#: A phone number: groups of digits, seven at least ("07700 900774", "555-123-4567", "(0161) 496 0000"), so that
#: a year and an hour ("Sep 2024 16:22") are not one (a date written all in digits still can be).
_PHONE = re.compile(r"(?<![\w-])(?=(?:[\s.()+-]{0,2}\d){7})(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)\s?)?\d{2,5}(?:[\s.-]\d{2,6}){1,3}(?![\w-])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: A sum of money: "£180.00", "$2 a day" ("$2"), "20 pounds", "free of charge".
_MONEY = re.compile(
    r"[$€£¥]\s?\d(?:[\d,.]*\d)?|\b\d(?:[\d,.]*\d)?\s?(?:pounds|dollars|euros|pence|cents|USD|GBP|EUR)\b"
    r"|\bfree of charge\b|\b(?:is|are|for|be|go) free\b|\bno (?:extra |additional )?(?:cost|charge)\b",
    re.IGNORECASE,
)
#: A time of day: "9:45", "7.30pm", "10 a.m.", "midnight".
_CLOCK = re.compile(
    r"(?<![$€£¥\d.,])\b\d{1,2}[:.]\d\d(?!\d)(?:\s?[ap]\.?m\b\.?)?|\b\d{1,2}\s?(?:[ap]\.m\.|[ap]m\b)|\b(?:noon|midday|midnight)\b",
    re.IGNORECASE,
)
_PATTERNS = {"money": _MONEY, "clock": _CLOCK, "number": _NUMBER, "date": _DATE, "name": _NAME, "phone": _PHONE, "email": _EMAIL}

#: Nouns whose value is an amount: "What is the late fee?", "What does it cost?".
_AMOUNTS = "cost|costs|price|prices|fee|fees|fare|fares|charge|charges|rate|rates|fine|fines|deposit|salary|budget|total|balance|allowance"
#: A question about money: the number it wants is a sum, and a window without one does not answer it.
_ASKS_MONEY = re.compile(
    rf"\b({_AMOUNTS}|cheaper|expensive|pay|pays|paid|spend|spent|reimbursed|refund|refunded)\b", re.IGNORECASE
)
#: A question about a time of day ("What time does it open?", "the opening hours"): a date does not answer it.
_ASKS_CLOCK = re.compile(
    r"\b(?:what|which) times?\b(?! of)|\bwhat hours\b|\b(?:opening|closing|office|business|visiting) (?:hours|times)\b",
    re.IGNORECASE,
)
#: Asked kinds narrower than their pattern: (the question asks it, within this asked kind or any (None), what
#: answers it). "Who pays?" is no money question; "the opening hours" asks a time whatever kind it is read as.
_EXACT = ((_ASKS_MONEY, "number", "money"), (_ASKS_CLOCK, None, "clock"))
_ASKS_NUMBER = re.compile(
    r"\b(how (many|much|old|long|far|large|big|tall|often|high|heavy|fast|wide|deep)"
    r"|what (percentage|percent|age|number|amount|proportion|share|fraction)"
    rf"|(what|which)(['’]s|\s+(is|are|was|were|will be))\s+(the\s+|an?\s+)?(\w+\s+)?({_AMOUNTS})"
    r"|what (does|do|did|will|would) (\w+\s+){1,3}cost)\b",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(
    r"\b(when|(what|which) (year|date|day|month|century|decade|era|time)|how (late|early|soon))\b", re.IGNORECASE
)
#: A phone number or an email address is asked for by name ("her mobile number", "what email address"), not
#: when the word only qualifies something else ("the email migration", "over the phone", "if I phone you").
_OWNER = r"(?:\w+['’]s|her|his|their|your|its|contact|support|office|direct)"
_ASKS_PHONE = re.compile(
    rf"\b(?:phone|telephone|mobile|cell|fax) numbers?\b|\bnumber to (?:call|ring|phone)\b|\b{_OWNER} (?:phone|telephone|mobile)\W*$",
    re.IGNORECASE,
)
_ASKS_EMAIL = re.compile(
    rf"\be-?mail address(?:es)?\b|\bhow (?:can|do|should|could|would) (?:i|we|you) e-?mail\b|\b{_OWNER} e-?mail\W*$", re.IGNORECASE
)
#: Nouns after "what"/"which" whose answer is a proper name: "Which team ...", "What city ...".
_NAMED_THINGS = (
    "city|cities|country|countries|state|states|nation|team|teams|club|company|companies|firm|person|people|player|"
    "players|man|woman|king|queen|leader|president|ruler|emperor|group|band|organization|organisation|university|"
    "school|college|stadium|venue|network|channel|station|newspaper|river|island|mountain|region|province|county|"
    "town|village|capital|continent|language|tribe|dynasty|family|duke|pope|author|writer|artist|singer|performer|"
    "coach|quarterback|kicker|brand|"
    # the people and bodies of everyday files: "Which councillors voted against it?", "Which agency ...?"
    "councillor|councillors|councilor|councilors|director|directors|member|members|officer|officers|manager|"
    "managers|chair|chairs|speaker|speakers|engineer|engineers|moderator|moderators|contractor|contractors|vendor|"
    "vendors|supplier|suppliers|provider|providers|agency|agencies|department|departments|committee|committees|"
    "fisherman|fishermen|resident|residents|tenant|tenants|user|users|doctor|doctors|teacher|teachers|staff"
)
_ASKS_NAME = re.compile(rf"\b(who|whom|whose|where|(what|which)(\s+\w+){{0,2}}\s+({_NAMED_THINGS}))\b", re.IGNORECASE)
#: Words right after "what"/"which" that name the kind of answer rather than its subject ("What year ...").
_KIND_WORDS = re.compile(
    rf"\b(?:what|which)\s+(?:\w+\s+){{0,2}}?({_NAMED_THINGS}|year|years|date|day|month|century|decade|era|name|"
    rf"number|amount|percentage|kind|type|sort|time|color|colour)\b",
    re.IGNORECASE,
)
#: "What did they build?", "What is she building?": the answer is the object that follows the verb.
_ASKS_OBJECT = re.compile(
    r"^\s*(?:[Ww]hat|[Ww]hich)(?:\s+\w+)?\s+(?:(?:do|does|did|will|would|can|could|should|may|might)\s+.+\s+([a-z]+)"
    r"|(?:is|are|was|were)\s+.+\s+([a-z]+ing)|(?:has|have|had)\s+.+\s+([a-z]+(?:ed|en)))\W*$"
)
#: "How many <unit>": the answer is the number before the unit.
_UNIT = re.compile(r"\bhow (?:many|much)\s+([a-z]+)", re.IGNORECASE)
_WORD = re.compile(r"\w+(?:[.,'’]\w+)*")
#: Where a phrase ends: punctuation that closes a clause.
_CLAUSE_END = re.compile(r"[,;:.!?()\[\]\"“”—–]|\s-\s")
#: A kind word ("year", "team") counts this much of its idf: it names the answer's kind, not the subject.
KIND_WORD_WEIGHT = 0.3


@dataclass(frozen=True)
class Weights:
    """The ranking function of an evidence window: a weighted sum of FEATURES.

    Fitted by bench/quality_cv.py on the development corpus (eval/dev, realistic files), the seed questions and
    a SQuAD sample together: a listwise fit over each question's windows, then a penalty on the words beyond LONG_WORDS
    that keeps the mean first quotation short on every corpus (chosen again once the RankingTrees are fitted on
    top), judged on documents held out of the fit. No question or document is special-cased.
    """

    sentence_dense: float = 0.77
    window_dense: float = 6.03
    chunk_dense: float = 1.22
    neighbour_dense: float = 0.14
    sentence_terms: float = -0.29
    context_terms: float = 4.10
    heading_terms: float = 2.62
    document_terms: float = 2.68
    next_terms: float = -4.64
    answer_kind: float = 1.30
    kind_missing: float = -1.05
    kind_near: float = 0.80
    novelty: float = 2.04
    words: float = -1.10
    long_words: float = -3.93
    echo: float = -2.23
    quoted: float = -0.23
    structure: float = -0.13
    definition: float = 4.84
    update: float = -0.41
    previous_document: float = 2.16
    repeats_previous: float = 0.35
    rare_term: float = 0.39
    asking: float = -3.85
    exact_kind: float = 0.88
    exact_missing: float = -0.88  # exact_kind's complement when one is asked: nothing for ranking, a signal to Answerability
    label_terms: float = 5.93
    update_match: float = 1.06
    corrects: float = 0.55
    passage_rank: float = 0.35
    document_dense: float = 5.43
    title_terms: float = 5.33
    phrases: float = 0.12
    token_match: float = 8.15
    unmentioned: float = 0.00  # the same for every window of a question: nothing for ranking, a signal to Answerability
    heading: float = 0.51
    overruled: float = -0.67
    stale: float = -1.01
    figures_missing: float = -1.22

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in FEATURES])


#: The evidence about one candidate window, in the order of `Extractor.features` columns.
FEATURES = tuple(f.name for f in fields(Weights))
#: A window's `words` feature is its word count over this (at most 1), so a per-word penalty is a weight on it.
WORDS_SCALE = 100
#: `long_words` counts the words beyond this many (same scale): the size penalty bites on long windows only, so
#: the short lines of real files are not starved to keep Wikipedia's long sentences short.
LONG_WORDS = 30


@dataclass(frozen=True)
class Answerability:
    """Whether to answer at all: the probability that the best window holds the answer, a logistic model over
    its ranking score, its margin over the runner-up, whether the question asks for a kind of answer, and its
    FEATURES row (an unanswerable question's best window never does).
    confidence = 1 / (1 + exp(-(weights . ANSWERABILITY row + bias))); the assistant abstains below
    Settings.min_confidence. Fitted by bench/quality_cv.py, the bias placed so that 0.5 abstains on a
    chosen small share of the answerable questions of the fitted documents.
    """

    weights: tuple[float, ...] = (0.04787, 0.1614, -0.0743, 0.3296, 0.5103, -0.2134, 0.1753, -0.002088, 0.2237, 0.1502, 0.08049, 0.162, -0.08282, 0.1573, 0.04202, -0.07569, 0.05635, 0.2489, 0.7987, -0.06031, 0.03293, 0.7408, -0.002765, 0.2193, 0.1048, 0.1137, -0.1314, -0.2496, -1.046, 0.5689, 0.03507, -0.0829, 0.1728, 0.5585, 0.02735, 0.02887, 0.7956, -0.4797, -0.5379, -0.2753, -0.3346, -0.3654)
    bias: float = -1.886

    def confidence(self, rows: np.ndarray) -> np.ndarray:
        w = np.asarray(self.weights, dtype=np.float64)
        if not len(w):
            return np.ones(len(rows))
        return 1.0 / (1.0 + np.exp(-(rows @ w + self.bias)))


#: The trees re-rank the linear score's best this many windows (nearly every answer is among them; the README
#: has the share): an answer costs a fixed few thousand tree walks however many windows compete.
TREE_WINDOWS = 32


def tree_candidates(linear: np.ndarray) -> np.ndarray:
    """Indexes of the windows the trees re-rank: the best TREE_WINDOWS by the linear score."""
    return np.argsort(-linear, kind="stable")[:TREE_WINDOWS]


def reranked(linear: np.ndarray, top: np.ndarray, boost: np.ndarray) -> np.ndarray:
    """The linear scores plus the trees' `boost` of the windows `top`; every other window gets the smallest boost,
    so it stays below them all, in its linear order."""
    if not len(top):
        return linear
    out = linear + boost.min()
    out[top] = linear[top] + boost
    return out


class RankingTrees:
    """LightGBM trees that bench/quality_cv.py fitted by lambdarank on each question's tree_candidates, starting
    from the weighted sum's score (before its size penalty was chosen again with them): their output is added to
    the Weights' score. Read from RANKING_TREES, checked to read the FEATURES columns in their order."""

    def __init__(self, path: Path):
        try:
            import lightgbm
        except (ImportError, OSError) as e:  # OSError: its native library (libgomp) cannot load
            raise QAError(f"cannot load LightGBM, which ranks the answers: {e}; reinstall qa") from None
        try:
            text = path.read_text(encoding="utf-8")
            # LightGBM's parser aborts the process on some cut files: a whole file ends its trees with this line
            if "\nend of trees\n" not in text:
                raise ValueError("it is cut short")
            self.booster = lightgbm.Booster(model_str=text)
        except (OSError, ValueError, lightgbm.basic.LightGBMError) as e:
            raise QAError(f"cannot read the ranking trees {path}: {e}; reinstall qa") from None
        if self.booster.feature_name() != list(FEATURES):
            raise QAError(f"the ranking trees in {path} read other features than this qa computes; refit them with bench/quality_cv.py --save-trees")

    def predict(self, features: np.ndarray) -> np.ndarray:
        # one thread: a question's few dozen windows cost less than waking a pool
        return self.booster.predict(features, num_threads=1) if len(features) else np.zeros(0)

    def rescore(self, linear: np.ndarray, features: np.ndarray) -> np.ndarray:
        top = tree_candidates(linear)
        return reranked(linear, top, self.predict(features[top]))


#: The shipped trees, in LightGBM's text format.
RANKING_TREES = Path(__file__).with_name("ranking_trees.txt")


@lru_cache(maxsize=1)
def ranking_trees() -> RankingTrees:
    return RankingTrees(RANKING_TREES)


#: The columns an `Answerability` model reads, FEATURES after the first three.
ANSWERABILITY = ("score", "margin", "asks_kind", *FEATURES)


def answerability_rows(raw: np.ndarray, features: np.ndarray, taken: list[int], asks_kind: bool) -> np.ndarray:
    """ANSWERABILITY rows for the kept windows `taken` (indexes into raw/features, best first); the margin is
    the best window's lead over the runner-up, the same for every row."""
    margin = raw[taken[0]] - raw[taken[1]] if len(taken) > 1 else 0.0
    head = np.array([[raw[i], margin, float(asks_kind)] for i in taken])
    return np.hstack([head, features[taken]])


#: Units a window spans at most: a topic line and its detail, a question from the floor and its reply.
WINDOW_UNITS = 3
#: "what does PSB stand for", "what is the PSB": the acronym asked about.
_ASKS_EXPANSION = re.compile(r"\b[Ww]hat (?:does|do|is|are|was)(?: the| an| a)? ([A-Z][A-Z0-9&]{1,9}s?)\b")
#: Words that mark the current version of something said before: a correction, an update, a move.
_UPDATE = re.compile(
    r"\b(?:update[ds]?|correct(?:ed|ion)|revised|now|moved|postponed|rescheduled|changed|instead|no longer|"
    r"replac(?:es|ed)|supersed(?:es|ed)|latest|current(?:ly)?|amended|revert(?:s|ed)?|edit(?:ed)?|as of|effective)\b",
    re.IGNORECASE,
)
_QUOTED_LINE = re.compile(r"\s*>")
#: A number too plain to be a stated value: a lone digit (a list's "1.") or a year from 1900 to 2099.
_PLAIN_NUMBER = re.compile(r"\d|(?:19|20)\d\d")


def _value_spans(text: str) -> list[tuple[int, int, str]]:
    """Where each value stated in `text` is, and the value: each number, date, clock time, sum of money or phone
    number as written (spaces folded, case ignored), a match inside a wider one not counted again: "now 8:15am, not
    9:30am" -> "8:15am" and "9:30am", never also "15"."""
    matches = sorted((m.start(), -m.end(), m.group()) for p in (_NUMBER, _DATE, _MONEY, _PHONE) for m in p.finditer(text))
    found, reach = [], -1
    for start, negative_end, phrase in matches:
        if -negative_end <= reach:
            continue  # inside a wider match already read
        reach = -negative_end
        value = " ".join(phrase.split()).strip(" .,").lower()
        if any(c.isdigit() for c in value) and not _PLAIN_NUMBER.fullmatch(value):
            found.append((start, -negative_end, value))
    return found


def _values(text: str) -> set[str]:
    """The distinct values stated in `text` (see _value_spans)."""
    return {value for _, _, value in _value_spans(text)}


#: Words right before a value that say it is the old one: "£178, not £165", "instead of 1.5 kg", "up from 203",
#: "moved from 16 October"; a bare "from" only as "from 12 June to 19 June" on a line that says it updates
#: something ("open from 9am to 5pm" is a range, "from 1 March the fee is" a start).
_RETRACTS = re.compile(
    r"\b(?:not|instead of|rather than|previously|formerly|originally|replacing"
    r"|(?:up|down|moved|changed|reduced|increased|raised|cut|extended|shortened) from|(from))\s+(?:(?:the|a|an)\s+)?$",
    re.IGNORECASE,
)
_TO = re.compile(r"\s+to\s")


def _line_value_spans(text: str) -> Iterator[tuple[int, str, int, int, str]]:
    """_value_spans line by line: (the line's offset in `text`, the line, the value's start and end in it, the
    value)."""
    offset = 0
    for line in text.split("\n"):
        for start, end, value in _value_spans(line):
            yield offset, line, start, end, value
        offset += len(line) + 1


@dataclass(frozen=True)
class Retractions:
    """The values a document says were replaced, and where it says so: a statement elsewhere that still gives
    one is stale; the correction itself, which gives it in that position, is not."""

    starts: frozenset[int]  # offsets of the replaced values where the document names them as replaced
    values: frozenset[str]


def retractions(text: str) -> Retractions:
    """What `text` says was replaced, read line by line, each line's update words looked up once.

    >>> sorted(retractions("Update: the fee is £12, not £8; the fair moved from 12 June to 19 June.").values)
    ['12 june', '£8']
    >>> sorted(retractions("Open from 9am to 5pm.").values), sorted(retractions("Update: from 1 March it is £5.").values)
    ([], [])
    """
    starts, values = set(), set()
    updates: dict[int, bool] = {}
    for offset, line, start, end, value in _line_value_spans(text):
        m = _RETRACTS.search(line, max(0, start - 24), start)
        if not m:
            continue
        if m.group(1):  # a bare "from": only "from X to Y" on a line that says it updates something
            if not _TO.match(line, end):
                continue
            if offset not in updates:
                updates[offset] = _UPDATE.search(line) is not None
            if not updates[offset]:
                continue
        starts.add(offset + start)
        values.add(value)
    return Retractions(frozenset(starts), frozenset(values))


#: A unit that asks rather than tells: "...pay more as well?", "Several parents asked whether the route changes".
_ASKING = re.compile(
    r"\?[\W_]*$|\b(?:asked|asks|asking|wondered|wonders|wanted to know)\b(?:\s+\S+){0,4}?\s+"
    r"(?:whether|if|when|why|how|what|who|where|which)\b",
    re.IGNORECASE,
)
_STRUCTURE_KINDS = frozenset({"line", "table_row", "list_item"})


def asked_kind(question: str) -> str:
    """'number', 'date', 'name', 'phone', 'email' or '' — what kind of words the answer should contain.

    >>> asked_kind("When did the Normans arrive?"), asked_kind("Which team won?"), asked_kind("Why?")
    ('date', 'name', '')
    >>> asked_kind("What's her phone number?"), asked_kind("What time does it open?")
    ('phone', 'date')
    """
    if _ASKS_EMAIL.search(question):
        return "email"
    if _ASKS_PHONE.search(question):
        return "phone"
    if _ASKS_NUMBER.search(question):
        return "number"
    if _ASKS_DATE.search(question):
        return "date"
    if _ASKS_NAME.search(question):
        return "name"
    return ""


def exact_kind(question: str, kind: str) -> str | None:
    """'money' or 'clock' when the question, asking for `kind`, wants a sum of money or a time of day.

    >>> exact_kind("What are the opening hours?", ""), exact_kind("Who pays for it?", "name")
    ('clock', None)
    """
    return next((name for asks, of, name in _EXACT if of in (kind, None) and asks.search(question)), None)


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text)}


def kind_spans(sentence: str, kind: str, question: str) -> list[tuple[int, int]]:
    """Spans in `sentence` of the asked kind that the question does not already say, in order.

    >>> kind_spans("Then Jackson elected Chokwe Lumumba.", "name", "Who did Jackson elect?")
    [(21, 35)]
    """
    return list(_kind_spans(sentence, kind, _words(question)))


def _kind_spans(sentence: str, kind: str, asked: set[str]) -> Iterator[tuple[int, int]]:
    """`kind_spans` one at a time, so that asking whether there is one stops at the first."""
    for start, end, words, never in _kind_matches(sentence, kind):
        # subtle: a name sharing a word with the question is its subject, not its answer ("Who did Denver
        # beat?" is not answered by "Denver Broncos")
        if not (words <= asked or never or (kind == "name" and words & asked)):
            yield start, end


@lru_cache(maxsize=1 << 16)
def _kind_matches(sentence: str, kind: str) -> tuple[tuple[int, int, frozenset[str], bool], ...]:
    """Every trimmed match of the kind's pattern with its words, whatever the question (the same units are read
    by question after question); the flag marks a match that never answers: for a name, a month or a day, or a
    lone word starting the sentence (every sentence starts with a capital)."""
    pattern = _PATTERNS.get(kind)
    if pattern is None:
        return ()
    found = []
    for m in pattern.finditer(sentence):
        start, end = _trim(sentence, m.start(), m.end(), kind)
        phrase = sentence[start:end]
        words = frozenset(_words(phrase))
        if kind == "phone" and sum(c.isdigit() for c in phrase) < 7:
            continue  # the pattern's look-ahead counted digits beyond the match ("207.55 (3.2%")
        if words:
            never = kind == "name" and bool(_CALENDAR.match(phrase) or (start == 0 and len(words) == 1))
            never = never or (kind == "number" and _enumerator(sentence, start, end))
            found.append((start, end, words, never))
    return tuple(found)


#: What may come before a line's own numbering: indentation, a bullet, a quote mark.
_LINE_START = re.compile(r"[\s>*•-]*")
#: A list's numbering ends with "." or ")" and a blank: "5. Press", "2) Fill".
_NUMBERING = re.compile(r"[.)](?:\s|$)")


def _enumerator(sentence: str, start: int, end: int) -> bool:
    """Whether a number is the line's numbering ("5. Press Hot Water", "2) Fill the tank"), not a value.

    >>> _enumerator("5. Press Hot Water.", 0, 1), _enumerator("1.8 Litres of water", 0, 3), _enumerator("2019. It opened", 0, 4)
    (True, False, False)
    """
    return _LINE_START.match(sentence).end() == start and sentence[start:end].isdigit() and end - start <= 3 and _NUMBERING.match(sentence, end) is not None


def _trim(sentence: str, start: int, end: int, kind: str) -> tuple[int, int]:
    """A match without surrounding blanks and punctuation, a possessive 's, or a capitalised stop word that
    only starts the sentence ("Then Anderson" -> "Anderson")."""
    keep = "$€£(+" if kind == "phone" else "$€£"
    while start < end and not sentence[start].isalnum() and sentence[start] not in keep:
        start += 1
    while end > start and not sentence[end - 1].isalnum() and sentence[end - 1] != "%":
        end -= 1
    if kind == "name":
        if sentence[start:end].endswith(("'s", "’s")):
            end -= 2
        first = _WORD.match(sentence, start)
        if start == 0 and first and first.end() < end and not tokenize(first.group()):
            start = first.end()
            while sentence[start].isspace():
                start += 1
    return start, end


def answer_phrase(sentence: str, question: str) -> tuple[int, int] | None:
    """Offsets inside `sentence` of the words that answer `question`, or None when unsure.

    Measured on SQuAD, a guess is right about three times in four; None is the answer to anything less
    clear-cut: a number or date question gets the one span of that kind the question does not already say
    (or, among several, the one next to the question's words; for "how many X", the one before X); a name
    question the one name; "What did/is <subject> <verb>?" the words after that verb up to the end of the clause.

    >>> answer_phrase("He was 34 years old.", "How old was he?")
    (7, 9)
    >>> s = "Mayor Chow is building thousands of new homes, and more."
    >>> s[slice(*answer_phrase(s, "What is she building?"))]
    'thousands of new homes'
    """
    kind = asked_kind(question)
    if not kind:
        return _object_phrase(sentence, question, _word_terms(sentence))
    spans = kind_spans(sentence, kind, question)
    if len(spans) == 1:
        return spans[0]
    if kind == "name" or not spans:
        return None
    words = _word_terms(sentence)
    unit = _UNIT.search(question)
    if kind == "number" and unit:
        before = [sp for sp in spans if _followed_by(sp, words, tokenize(unit.group(1)), reach=2)]
        if len(before) == 1:
            return before[0]
    asked = set(tokenize(question))
    matched = [i for i, (_, _, t) in enumerate(words) if t and t[0] in asked]
    distance = [_word_distance(span, words, matched) for span in spans]
    if min(distance) <= 1 and distance.count(min(distance)) == 1:
        return spans[distance.index(min(distance))]
    return None


def _word_terms(sentence: str) -> list[tuple[int, int, list[str]]]:
    """Every word with its BM25 term ([] for a stop word), from one tokenizer run over the sentence."""
    terms = {start: t for start, _, t in term_spans(sentence)}
    return [(m.start(), m.end(), [terms[m.start()]] if m.start() in terms else []) for m in _WORD.finditer(sentence)]


def _object_phrase(sentence: str, question: str, words) -> tuple[int, int] | None:
    """For a short "What did/is <subject> <verb>?": the words after that verb in the sentence, to the clause end."""
    m = _ASKS_OBJECT.match(question)
    if not m or len(question.split()) > 8:
        return None
    verb = tokenize(next(g for g in m.groups() if g))
    at = [i for i, (_, _, t) in enumerate(words) if verb and t == verb]
    if len(at) != 1:
        return None
    start = words[at[0]][1]
    boundary = _CLAUSE_END.search(sentence, start)
    end = boundary.start() if boundary else len(sentence)
    inside = [w for w in words if start <= w[0] and w[1] <= end]
    asked = set(tokenize(question))
    if not inside or len(inside) > 12 or all(not t or t[0] in asked for _, _, t in inside):
        return None
    return inside[0][0], inside[-1][1]


def _followed_by(span: tuple[int, int], words, term: list[str], reach: int) -> bool:
    """Whether `term` is among the `reach` words after the span: "seven times" for "how many times"."""
    after = [t for ws, _, t in words if ws >= span[1]][:reach]
    return bool(term) and term in after


def _word_distance(span: tuple[int, int], words, matched: list[int]) -> int:
    """Words between a span and the nearest question word outside it."""
    inside = [i for i, (ws, we, _) in enumerate(words) if ws < span[1] and we > span[0]]
    outside = [j for j in matched if j not in inside]
    if not inside or not outside:
        return len(words)
    return min(abs(i - j) for i in inside for j in outside)


#: Values a document may write in another format than the question ("9:30" and "9.30", "£45" and "£45.00",
#: "2 June" and "2025-06-02"): the answer kinds read them; they name nothing.
_FORMATTED = (_MONEY, _CLOCK, _DATE, _PHONE)


def question_figures(question: str) -> frozenset[str]:
    """The question's terms that name a thing by a number or code ("version 4.2.5", "error E4", "item 7"), not the
    sums, clock times, dates and phone numbers in it.

    >>> sorted(question_figures("Does error E4 in version 4.2.5 cost £45 at 9:30 on 2 June 2025?"))
    ['4.2.5', 'e4']
    """
    formatted = [m.span() for pattern in _FORMATTED for m in pattern.finditer(question)]
    return frozenset(
        t for a, b, t in term_spans(question) if any(ch.isdigit() for ch in t) and not any(s < b and a < e for s, e in formatted)
    )


def question_weights(question: str, idf: dict[str, float]) -> dict[str, float]:
    """Idf of each question term, the words that only name the answer's kind damped.

    >>> question_weights("What year was it founded?", {"year": 2.0, "found": 2.0})
    {'year': 0.6, 'found': 2.0}
    """
    kind_words = set(tokenize(" ".join(m.group(1) for m in _KIND_WORDS.finditer(question))))
    return {t: w * (KIND_WORD_WEIGHT if t in kind_words else 1.0) for t, w in idf.items()}


def _coverage(terms: dict[str, float], present) -> float:
    """Share of the terms' weight that is present: {'a': 3, 'b': 1} in {'a'} -> 0.75."""
    total = sum(terms.values())
    return sum(w for t, w in terms.items() if t in present) / total if total else 0.0


@dataclass(frozen=True)
class Scored:
    """An evidence window: units `sentence`..`last`-1 of one document (one unit when `last` is None), inside
    passage `chunk`, with its score in [0, 1]."""

    sentence: int
    chunk: int
    score: float
    last: int | None = None

    @property
    def end(self) -> int:
        return self.sentence + 1 if self.last is None else self.last


@dataclass(frozen=True)
class _Unit:
    """What scoring needs of one stored unit, whatever the question: read once, then cached."""

    document: int
    start: int
    end: int
    kind: str
    terms: frozenset[str]
    context_terms: frozenset[str]
    context: str
    quoted: bool
    empty: bool  # no letter or digit: a drawn rule, a table's |---| line
    asking: bool  # it asks a question (or reports one) rather than answers
    header: bool  # a table's header row: the context of the rows below it, never an answer alone
    label_terms: frozenset[str]  # of its label: "Heat-up time" in "Heat-up time: 40 s", a table row's first cell
    pairs: frozenset[tuple[str, str]]  # its adjacent indexed terms: ("accept", "solut") in "Accepted solution"


@dataclass(frozen=True)
class _Facts:
    """What scoring needs of one window whatever the question: its size, and what kind of text it is."""

    words: int  # at most WORDS_SCALE
    quoted: float  # share of its units inside a quoted older message
    structure: bool
    update: bool
    corrects: bool  # an update stating two values (the new and, most often, the old)
    values: tuple[tuple[int, str], ...]  # (offset in its document, value) of each value it states


@dataclass(frozen=True)
class Window:
    """A candidate window while scoring: units first..last-1 within passage `chunk`."""

    first: int
    last: int
    chunk: int


#: A label is short: at most LABEL_WORDS words before a colon, or a table row's first cell.
LABEL_WORDS = 5
_LABEL = re.compile(r"[\s>*•-]*([^:\n|]{2,60}?):[*_]*\s+\S|\|\s*([^|\n]{1,60}?)\s*\|")


def _blank(text: str) -> bool:
    """No letter or digit: a drawn rule, a table's |---| line."""
    return not any(ch.isalnum() for ch in text)


#: Terms that make a question a question ("when", "does"): never part of a phrase a document repeats.
_QUESTION_TERMS = frozenset(tokenize("what when where who whom whose which why how do does did can could would should"))


def _pairs(terms: list[str]) -> frozenset[tuple[str, str]]:
    """Adjacent indexed terms (stop words are not indexed): what a phrase of the question ("accepted solution")
    shares with a text."""
    return frozenset(zip(terms, terms[1:]))


def _label(unit: str) -> str:
    """What a line names before its value: "Heat-up time" in "Heat-up time: approx. 40 seconds", "Water tank" in
    "| Water tank | 1.8 L |"; "" for a line that is not a label and its value.

    >>> _label("**Policy owner:** People Operations"), _label("| Water tank | 1.8 L |"), _label("It rained.")
    ('Policy owner', 'Water tank', '')
    >>> _label("The council agreed on three things last night: the budget")
    ''
    """
    m = _LABEL.match(unit)
    label = (m.group(1) or m.group(2) or "") if m else ""
    return label if len(label.split()) <= LABEL_WORDS else ""


def expansion(sentence: str, acronym: str) -> tuple[int, int] | None:
    """Offsets of the words an acronym stands for, written "the Plant Safety Board (PSB)" or "PSB (Plant Safety
    Board)"; None when the sentence does not spell it out.

    >>> s = "Ask the Plant Safety Board (PSB) first."
    >>> s[slice(*expansion(s, "PSB"))]
    'Plant Safety Board'
    """
    bare = acronym.rstrip("s")
    m = re.search(rf"\(\s*{re.escape(bare)}s?\s*\)", sentence)
    if m:
        # walk back over the words before "(PSB)" until their capitals spell it: Plant Safety Board
        words = list(re.finditer(r"[\w&'’-]+", sentence[: m.start()]))
        capitals = 0
        for k in range(len(words) - 1, -1, -1):
            capitals += words[k].group()[0].isupper()
            if capitals == len(bare):
                return (words[k].start(), words[-1].end()) if k < len(words) - 1 else None
    m = re.search(rf"\b{re.escape(bare)}s?\s*\(([^)]{{3,80}})\)", sentence)
    if m:
        return m.start(1), m.end(1)
    return None


class Extractor:
    """Chooses evidence windows among a retriever's candidate units."""

    def __init__(self, snapshot: Snapshot, weights: Weights = Weights(), answerability: Answerability = Answerability()):
        self.snapshot = snapshot
        self.weights = weights
        self.answerability = answerability
        self.trees = ranking_trees()
        self._units: dict[int, _Unit] = {}
        self._facts_of: dict[tuple[int, int], _Facts] = {}
        self._spans_of: dict[int, list] = {}
        self._title_of: dict[int, frozenset[str]] = {}
        self._path_of: dict[int, frozenset[str]] = {}
        self._holds_of: dict[tuple[int, str], bool] = {}
        self._retractions_of: dict[int, Retractions] = {}

    def _sentence_text(self, s: int) -> str:
        u = self.unit(s)
        return self.snapshot.document(u.document).text[u.start : u.end]

    def unit(self, u: int) -> _Unit:
        """Unit u's record, terms and context, fetched once (a window's neighbours are the next window's units)."""
        found = self._units.get(u)
        if found is None:
            row = self.snapshot.rows(UNITS, [u])[0]
            doc, start, end = int(row["document"]), int(row["start"]), int(row["end"])
            text = self.snapshot.document(doc).text
            context = text[int(row["context_start"]) : int(row["context_end"])]
            line_start = text.rfind("\n", 0, start) + 1
            kind = KINDS[int(row["kind"])]
            header = False
            if kind == "table_row" and u + 1 < self.snapshot.size(UNITS):
                # subtle: only a row above a |---| rule is a header; an HTML table's first row may be data
                below = self.snapshot.rows(UNITS, [u + 1])[0]
                rule = text[int(below["start"]) : int(below["end"])]
                header = int(below["document"]) == doc and KINDS[int(below["kind"])] == "table_row" and _blank(rule)
            found = _Unit(
                doc, start, end, kind, frozenset(self.snapshot.terms(UNITS, [u])[0]),
                frozenset(tokenize(context)), context,
                bool(_QUOTED_LINE.match(text, line_start)), _blank(text[start:end]),
                _ASKING.search(text[start:end]) is not None, header,
                frozenset(tokenize(_label(text[start:end]))) if kind in _STRUCTURE_KINDS else frozenset(),
                _pairs([t for _, _, t in self._spans_of.setdefault(u, term_spans(text[start:end]))]),
            )
            self._units[u] = found
        return found

    def _window_text(self, first: int, last: int) -> str:
        a, b = self.unit(first), self.unit(last - 1)
        return self.snapshot.document(a.document).text[a.start : b.end]

    def _facts(self, first: int, last: int) -> _Facts:
        """Window first..last-1's question-independent facts, computed once per snapshot (windows recur)."""
        found = self._facts_of.get((first, last))
        if found is None:
            units = [self.unit(u) for u in range(first, last)]
            text = self._window_text(first, last)
            update = _UPDATE.search(text) is not None
            found = _Facts(
                min(len(text.split()), WORDS_SCALE), sum(u.quoted for u in units) / len(units),
                any(u.kind in _STRUCTURE_KINDS for u in units), update, update and len(_values(text)) > 1,
                tuple((units[0].start + offset + start, value) for offset, _, start, _, value in _line_value_spans(text)),
            )
            self._facts_of[(first, last)] = found
        return found

    def _retractions(self, d: int) -> Retractions:
        """What document d says was replaced, read once per snapshot."""
        if d not in self._retractions_of:
            self._retractions_of[d] = retractions(self.snapshot.document(d).text)
        return self._retractions_of[d]

    def _stale(self, facts: _Facts, d: int) -> bool:
        """Whether a window states, other than where its document names it as replaced, a value it replaced."""
        if not facts.values:
            return False
        replaced = self._retractions(d)
        return any(value in replaced.values and at not in replaced.starts for at, value in facts.values)

    def _title(self, d: int) -> frozenset[str]:
        """The terms of document d's file name: people name files after what they hold."""
        if d not in self._title_of:
            stem = self.snapshot.document(d).source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            self._title_of[d] = frozenset(tokenize(re.sub(r"[\W_]+", " ", stem)))
        return self._title_of[d]

    def _path(self, d: int) -> frozenset[str]:
        """The terms of document d's source path, its folders' names too: "Super_Bowl_50/003.txt" is about
        Super Bowl 50 though its paragraphs say "the game"."""
        if d not in self._path_of:
            folders, _, name = self.snapshot.document(d).source.rpartition("/")
            self._path_of[d] = frozenset(tokenize(re.sub(r"[/_\s-]+", " ", f"{folders} {name.rsplit('.', 1)[0]}")))
        return self._path_of[d]

    def _holds(self, u: int, kind: str) -> bool:
        """Whether unit u holds a span of `kind` (a sum of money, a time of day), whatever the question: read once
        per snapshot."""
        if (u, kind) not in self._holds_of:
            self._holds_of[(u, kind)] = bool(_kind_matches(self._sentence_text(u), kind))
        return self._holds_of[(u, kind)]

    def _term_spans(self, u: int) -> list:
        if u not in self._spans_of:
            self._spans_of[u] = term_spans(self._sentence_text(u))
        return self._spans_of[u]

    def windows(self, candidates: Candidates) -> list[Window]:
        """Every run of 1..WINDOW_UNITS units that starts at a candidate and stays inside its passage, without a
        table's header row (the context of its rows, never their answer) or an empty line in it. A heading is
        a window alone ("## 4.2.1 — 21 October 2024" says when 4.2.1 came out), never part of a longer one."""
        seen, out = set(), []
        lasts = self.snapshot.rows(CHUNKS, candidates.chunks)["last"].tolist()
        for s, c, chunk_last in zip(candidates.sentences.tolist(), candidates.chunks.tolist(), lasts):
            for last in range(s + 1, min(s + WINDOW_UNITS, chunk_last) + 1):
                u = self.unit(last - 1)
                if u.empty or u.header or (u.kind == "heading" and last > s + 1):
                    break
                if (s, last) not in seen:
                    seen.add((s, last))
                    out.append(Window(s, last, c))
                if u.kind == "heading":
                    break
        return out

    def features(
        self, question: str, query: Query, candidates: Candidates, previous: Scored | None = None
    ) -> tuple[list[Window], np.ndarray]:
        """The candidate windows and one row of FEATURES for each, every value in [0, 1] (cosines in [-1, 1]).

        subtle: the question's terms are bits of a mask, so a window's coverage of them is an OR of its units'
        masks and one table look-up, and every vector the windows need is fetched and scored in one product.
        """
        windows = self.windows(candidates) if len(candidates.sentences) else []
        out = np.zeros((len(windows), len(FEATURES)), dtype=np.float64)
        if not windows:
            return windows, out
        col = {name: i for i, name in enumerate(FEATURES)}
        snap = self.snapshot
        weights = question_weights(question, snap.idf(UNITS, query.terms))
        weights.update({t: query.history_weight * w for t, w in snap.idf(UNITS, query.history_terms).items() if t not in weights})
        bit = {t: 1 << k for k, t in enumerate(weights)}
        total = sum(weights.values())
        covered: dict[int, float] = {}

        def coverage(mask: int) -> float:
            if mask not in covered:
                covered[mask] = sum(w for t, w in weights.items() if mask & bit[t]) / total if total else 0.0
            return covered[mask]

        rare = {max(weights, key=weights.get)} if weights else set()
        asked_pairs = _pairs([t for t in query.terms if t not in _QUESTION_TERMS])
        of_document = snap.rows(UNITS, candidates.sentences)["document"]
        docs = np.unique(of_document)
        holding = snap.documents_holding(list(weights), docs)
        document_terms = {d: _coverage(weights, {t for t, held in holding.items() if d in held}) for d in docs.tolist()}
        out[:, col["unmentioned"]] = _coverage(weights, {t for t, held in holding.items() if not held and t not in _QUESTION_TERMS})
        document_dense = {d: float(candidates.sentence_dense[of_document == d].max()) for d in docs.tolist()}
        title_terms = {d: _coverage(weights, self._title(d)) for d in docs.tolist()}
        chunk_dense = dict(zip(candidates.chunks.tolist(), candidates.chunk_dense.tolist()))
        chunk_rank = dict(zip(candidates.chunks.tolist(), candidates.chunk_rank.tolist()))
        n_units = snap.size(UNITS)
        need = sorted({u for w in windows for u in range(max(w.first - 1, 0), min(w.last + 1, n_units))})
        at = {u: i for i, u in enumerate(need)}
        vectors = np.vstack([snap.vectors(UNITS, np.array(need, dtype=np.int64)), np.zeros((1, len(query.vector)), np.float32)])
        cosines = vectors @ query.vector
        rows = np.full((len(windows), WINDOW_UNITS), len(need), dtype=np.int64)
        for i, w in enumerate(windows):
            rows[i, : w.last - w.first] = [at[u] for u in range(w.first, w.last)]
        window_vectors = vectors[rows].sum(axis=1)
        window_vectors /= np.maximum(np.linalg.norm(window_vectors, axis=1), 1e-6)[:, None]
        out[:, col["sentence_dense"]] = np.where(rows < len(need), cosines[rows], -np.inf).max(axis=1)
        out[:, col["window_dense"]] = window_vectors @ query.vector
        if query.tokens is not None and len(query.tokens):
            out[:, col["token_match"]] = self._token_match(query.tokens, windows)

        kind = asked_kind(question)
        exact = exact_kind(question, kind)
        asked = _words(question)
        acronym = _ASKS_EXPANSION.search(question)
        kind_of: dict[int, tuple[bool, bool]] = {}

        def kind_in(u: int) -> tuple[bool, bool]:
            """(holds a span of the asked kind, one near the question's words) for unit u."""
            if u not in kind_of:
                text = self._sentence_text(u)
                found = next(_kind_spans(text, kind, asked), None) is not None
                near = found and _kind_near(_kind_spans(text, kind, asked), self._term_spans(u), weights)
                kind_of[u] = (found, bool(near))
            return kind_of[u]

        previous_document = self.unit(previous.sentence).document if previous is not None else None
        unit_of = {u: self.unit(u) for u in need}
        mask_of = {u: sum(b for t, b in bit.items() if t in unit_of[u].terms) for u in need}
        label_mask_of = {u: sum(b for t, b in bit.items() if t in unit_of[u].label_terms) for u in need if unit_of[u].label_terms}
        rare_bits = sum(bit[t] for t in rare)
        # the question's own numbers and codes ("version 4.2.5", "E4", "item 7"): a window that lacks them, with its
        # heading, the lines beside it in its section and its file's path, is about another one however much else it
        # shares
        asked_figures = question_figures(question)
        figures = {t: w for t, w in weights.items() if t in asked_figures}
        figure_bits = sum(bit[t] for t in figures)
        named_bits = {d: sum(bit[t] for t in figures if t in self._path(d)) for d in docs.tolist()}
        documents = []
        for i, w in enumerate(windows):
            units = [unit_of[u] for u in range(w.first, w.last)]
            facts = self._facts(w.first, w.last)
            doc = units[0].document
            documents.append(doc)
            near = [n for n in (w.first - 1, w.last) if n in unit_of and unit_of[n].document == doc]
            own = units[0].terms if len(units) == 1 else frozenset().union(*(u.terms for u in units))
            own_mask = 0
            for u in range(w.first, w.last):
                own_mask |= mask_of[u]
            context_mask = sum(b for t, b in bit.items() if t in units[0].context_terms)
            around_mask = own_mask | context_mask
            for n in near:
                around_mask |= mask_of[n]
            asked_in = bin(own_mask).count("1")  # the question's terms it holds
            row = out[i]
            row[col["chunk_dense"]] = chunk_dense.get(w.chunk, 0.0)
            row[col["neighbour_dense"]] = max((float(cosines[at[n]]) for n in near), default=0.0)
            row[col["sentence_terms"]] = coverage(own_mask)
            row[col["context_terms"]] = coverage(around_mask)
            row[col["heading_terms"]] = coverage(context_mask)
            row[col["document_terms"]] = document_terms.get(doc, 0.0)
            row[col["document_dense"]] = document_dense.get(doc, 0.0)
            row[col["title_terms"]] = title_terms.get(doc, 0.0)
            row[col["passage_rank"]] = 1.0 / (1.0 + chunk_rank.get(w.chunk, len(candidates.ranked_chunks)))
            row[col["next_terms"]] = coverage(mask_of[w.last]) if w.last in near else 0.0
            row[col["novelty"]] = min(len(own) - asked_in, 3) / 3
            row[col["echo"]] = asked_in / len(own) if own else 0.0
            row[col["quoted"]] = facts.quoted
            row[col["structure"]] = facts.structure
            row[col["heading"]] = units[0].kind == "heading"
            row[col["rare_term"]] = bool(rare_bits & around_mask)
            missing = 0
            if figure_bits:
                figures_held = own_mask | context_mask | named_bits[doc]
                for n in near:
                    if unit_of[n].kind != "heading" and unit_of[n].context == units[0].context:
                        figures_held |= mask_of[n]
                missing = figure_bits & ~figures_held
            if missing:
                row[col["figures_missing"]] = sum(v for t, v in figures.items() if bit[t] & missing) / sum(figures.values())
            row[col["asking"]] = units[-1].asking
            row[col["label_terms"]] = coverage(label_mask_of.get(w.first, 0))
            if asked_pairs:
                held = units[0].pairs if len(units) == 1 else frozenset().union(*(u.pairs for u in units))
                row[col["phrases"]] = len(asked_pairs & held) / len(asked_pairs)
            if previous is not None:
                row[col["previous_document"]] = doc == previous_document
                row[col["repeats_previous"]] = w.first < previous.end and previous.sentence < w.last
            row[col["words"]] = facts.words / WORDS_SCALE
            row[col["long_words"]] = max(facts.words - LONG_WORDS, 0) / WORDS_SCALE
            if acronym:
                row[col["definition"]] = expansion(self._window_text(w.first, w.last), acronym.group(1)) is not None
            row[col["update"]] = facts.update
            row[col["update_match"]] = facts.update * row[col["sentence_terms"]]
            row[col["corrects"]] = facts.corrects
            row[col["stale"]] = self._stale(facts, doc)
            if kind:
                found = [kind_in(u) for u in range(w.first, w.last)]
                row[col["answer_kind"]] = any(f for f, _ in found)
                row[col["kind_missing"]] = not row[col["answer_kind"]] and kind != "name"
                row[col["kind_near"]] = any(n for _, n in found)
            if exact:
                row[col["exact_kind"]] = any(self._holds(u, exact) for u in range(w.first, w.last))
                row[col["exact_missing"]] = not row[col["exact_kind"]]
        self._overruled(windows, documents, out, col)
        return windows, out

    @staticmethod
    def _overruled(windows: list[Window], documents: list[int], out: np.ndarray, col: dict[str, int]) -> None:
        """Each window's `overruled`: how well the best candidate update further down its document (a correction,
        a move) matches the question, so the statement it replaces can lose to it ("Update: check-out is now
        10:30" below "Check-out by: 10:00"). An update more quoted than the window overrules nothing: in a reply
        written above the message it quotes, the text below is the older."""
        updates: dict[int, list[tuple[int, float, float]]] = {}
        for i, w in enumerate(windows):
            if out[i, col["update_match"]] > 0:
                updates.setdefault(documents[i], []).append((w.first, float(out[i, col["update_match"]]), float(out[i, col["quoted"]])))
        for i, w in enumerate(windows):
            quoted = out[i, col["quoted"]]
            later = (m for first, m, q in updates.get(documents[i], ()) if first >= w.last and q <= quoted)
            out[i, col["overruled"]] = max(later, default=0.0)

    def _token_match(self, question_tokens: np.ndarray, windows: list[Window]) -> np.ndarray:
        """Each window's late-interaction match (ColBERT's MaxSim, zero-shot): every content word piece of the
        question takes its best cosine among the window's units' pieces, and the window scores their mean.
        Finer than one pooled vector: "which bin goes out on Tuesday" meets "bin" and "Tuesday" each where they
        are, not an average of the line."""
        units = sorted({u for w in windows for u in range(w.first, w.last)})
        stored = self.snapshot.unit_tokens(units)
        asked = token_directions(question_tokens)
        counts = np.array([len(t) for t in stored], dtype=np.int64)
        best = np.full((len(units) + 1, len(asked)), -np.inf)  # the last row pads windows shorter than WINDOW_UNITS
        best[:-1] = 0.0
        held = np.flatnonzero(counts)
        if len(held):
            rows = np.concatenate([stored[i] for i in held]).astype(np.float32)
            # subtle: cosines as products over the rows' norms, not of normalised copies: a third of the time
            cosines = (asked @ rows.T) / np.maximum(np.sqrt(np.einsum("ij,ij->i", rows, rows)), 1e-12)
            best[held] = np.maximum.reduceat(cosines, np.concatenate([[0], np.cumsum(counts[held])[:-1]]), axis=1).T
        at = {u: i for i, u in enumerate(units)}
        spans = np.full((len(windows), WINDOW_UNITS), len(units), dtype=np.int64)
        for i, w in enumerate(windows):
            spans[i, : w.last - w.first] = range(at[w.first], at[w.first] + w.last - w.first)
        return best[spans].max(axis=1).mean(axis=1)

    def score(
        self, question: str, query: Query, candidates: Candidates, keep: int | None = None, previous: Scored | None = None
    ) -> list[Scored]:
        """The best `keep` windows (all, when None) that do not overlap, best first, each with its confidence in
        [0, 1]; the first one's is the answer's."""
        windows, features = self.features(question, query, candidates, previous)
        if not windows:
            return []
        raw = self.trees.rescore(features @ self.weights.vector(), features)
        taken = self.ranked(windows, raw, keep)
        confidence = self.answerability.confidence(answerability_rows(raw, features, taken, bool(asked_kind(question))))
        confidence = np.minimum.accumulate(confidence)  # the list reads best first: no later window claims more
        return [Scored(windows[i].first, windows[i].chunk, float(c), windows[i].last) for i, c in zip(taken, confidence)]

    @staticmethod
    def ranked(windows: list[Window], raw: np.ndarray, keep: int | None = None) -> list[int]:
        """Indexes of windows by raw score, best first, each one kept only when it shares no unit with a better one."""
        taken: list[int] = []
        used: set[int] = set()
        for i in np.argsort(-raw, kind="stable").tolist():
            win = windows[i]
            span = set(range(win.first, win.last))
            if span & used:
                continue
            used |= span
            taken.append(i)
            if keep is not None and len(taken) == keep:
                break
        return taken

    def phrase(self, question: str, scored: Scored) -> tuple[int, int] | None:
        """File offsets of the answer phrase inside a window: an acronym's expansion, else the first unit's
        phrase of the asked kind."""
        acronym = _ASKS_EXPANSION.search(question)
        for u in range(scored.sentence, scored.end):
            text = self._sentence_text(u)
            start = self.unit(u).start
            found = expansion(text, acronym.group(1)) if acronym else answer_phrase(text, question)
            if found:
                return start + found[0], start + found[1]
        return None

    def citation(self, question: str, scored: Scored) -> Citation:
        first = self.unit(scored.sentence)
        start, end = first.start, self.unit(scored.end - 1).end
        document = self.snapshot.document(first.document)
        quote = document.text[start:end]
        chunk = self.snapshot.rows(CHUNKS, [scored.chunk])[0]
        c_start, c_end = int(chunk["start"]), int(chunk["end"])
        return Citation(
            source=document.source,
            quote=quote,
            start=start,
            end=end,
            line=line_of(document.text, start),
            score=round(scored.score, 4),
            answer_span=self.phrase(question, scored),
            page=document.page_of(start),
            context_start=c_start,
            context_end=c_end,
            context=document.text[c_start:c_end],
            heading=self.unit(scored.sentence).context,
        )

    def window_vector(self, scored: Scored) -> np.ndarray:
        """A window's unit vector, the normalised sum of its units' stored vectors (no model call)."""
        summed = self.snapshot.vectors(UNITS, np.arange(scored.sentence, scored.end)).sum(axis=0)
        return summed / max(float(np.linalg.norm(summed)), 1e-6)

    def names(self, citation: Citation) -> list[str]:
        """What a follow-up can point at in an answer: its marked phrase, else the names it holds (at most 3).

        A name is read within one line and one sentence; a month or a day is none; a lone capitalised word that
        starts a sentence counts only when the quote names nothing else: "Ines Baptiste chairs it. The board meets
        in May." points at Ines Baptiste alone.

        >>> Extractor.names(None, Citation("a.txt", "The chair is Ines Baptiste.", 0, 27, 1, 1.0))
        ['Ines Baptiste']
        """
        if citation.answer_span:
            a, b = citation.answer_span
            return [citation.quote[a - citation.start : b - citation.start]]
        quote, found, starting = citation.quote, [], []
        for piece in re.finditer(r"[^\n.!?]+(?:[.!?](?=\S)[^\n.!?]*)*", quote):  # "v2.1" and "St.Ives" stay whole
            text = piece.group()
            for m in _NAME.finditer(text):
                a, b = _trim(text, m.start(), m.end(), "name")
                at_start = not text[:a].strip(" \t>*•-\"“(")
                while (first := _WORD.match(text, a)) and first.end() < b and _leads_no_name(first.group()):
                    a = first.end() + len(text[first.end() : b]) - len(text[first.end() : b].lstrip())  # "The Board", "Mar Folk"
                phrase = text[a:b]
                if not phrase or _never_a_name(phrase) or (" " not in phrase and text[b : b + 1] == ":"):  # "Re:", "Mobile:"
                    continue
                (starting if at_start and len(phrase.split()) == 1 else found).append(phrase)
        names = list(dict.fromkeys(found or starting))
        return names[:3]

    def passages(self, candidates: Candidates, count: int) -> list[Passage]:
        """The best retrieved chunks, shown as the closest passages."""
        out = []
        rows = self.snapshot.rows(CHUNKS, candidates.ranked_chunks[:count])
        for rank, (doc, start, end) in enumerate(zip(rows["document"].tolist(), rows["start"].tolist(), rows["end"].tolist())):
            document = self.snapshot.document(doc)
            out.append(
                Passage(document.source, start, end, line_of(document.text, start), document.text[start:end], round(1.0 / (1 + rank), 4))
            )
        return out


def _never_a_name(phrase: str) -> bool:
    """A capitalised word or phrase that names no one: a stop word ("The"), a month or a day, the pronoun "I"."""
    return not tokenize(phrase) or bool(_CALENDAR.match(phrase) or _FIRST_PERSON.match(phrase))


def _leads_no_name(word: str) -> bool:
    """A word that starts no name it leads: a stop word or an abbreviated date ("Mar Tidewrack Folk" in "Sun 10
    Mar Tidewrack Folk"), though a full day may ("Sunday Papers")."""
    return _never_a_name(word) and not _FULL_CALENDAR.match(word)


def _kind_near(spans: Iterable[tuple[int, int]], terms, weights: dict[str, float], reach: int = 4) -> float:
    """1 when a span of the asked kind sits within `reach` indexed words of a question term."""
    matched = [i for i, (_, _, t) in enumerate(terms) if t in weights]
    for a, b in spans:
        at = [i for i, (ws, we, _) in enumerate(terms) if ws < b and we > a]
        if at and any(min(abs(i - j) for j in at) <= reach for i in matched if i not in at):
            return 1.0
    return 0.0


def line_of(text: str, offset: int) -> int:
    """1-based line number of a character offset."""
    return text.count("\n", 0, offset) + 1
