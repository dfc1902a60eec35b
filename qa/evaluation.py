"""Metrics over question files: the dev JSONL format and SQuAD JSON (each paragraph one document).

A question is a hit@k when one of the first k citations comes from the right file and contains a gold
answer (case and quote style ignored). Baselines answer from the same index with a single signal, so the
gain of the full answerer is measured in the same run.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .assistant import Assistant
from .errors import QAError
from .types import Citation

BASELINES = ("bm25", "dense", "chunks")


@dataclass(frozen=True)
class Question:
    q: str
    answers: tuple[str, ...]
    source: str | None = None
    history: tuple[str, ...] = ()
    unanswerable: bool = False


@dataclass
class Scores:
    method: str
    questions: int = 0
    answerable: int = 0
    hit1: int = 0
    hit3: int = 0
    source1: int = 0
    abstained_unanswerable: int = 0
    false_abstain: int = 0
    non_verbatim: int = 0
    ms: list[float] = field(default_factory=list)

    def row(self) -> dict:
        a = max(self.answerable, 1)
        u = self.questions - self.answerable
        return {
            "method": self.method,
            "questions": self.questions,
            "hit@1": round(self.hit1 / a, 3),
            "hit@3": round(self.hit3 / a, 3),
            "source@1": round(self.source1 / a, 3),
            "abstain": round(self.abstained_unanswerable / u, 3) if u else None,
            "false_abstain": round(self.false_abstain / a, 3),
            "non_verbatim": self.non_verbatim,
            "ms_per_question": round(statistics.mean(self.ms), 1) if self.ms else 0.0,
        }


def load_jsonl(path: Path) -> list[Question]:
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                Question(row["q"], tuple(row.get("answers", [])), row.get("source"), tuple(row.get("history", [])), bool(row.get("unanswerable")))
            )
        except (ValueError, KeyError, TypeError) as e:
            raise QAError(f"{path}:{n}: not a question line ({e}); expected {{\"q\": ..., \"answers\": [...]}}") from None
    return questions


def load_squad(paths: list[Path], seeds: Path) -> list[Question]:
    """Write every paragraph of the SQuAD files into `seeds` as its own document; return their questions."""
    questions = []
    for path in paths:
        try:
            articles = json.loads(path.read_text(encoding="utf-8"))["data"]
        except (OSError, ValueError, KeyError) as e:
            raise QAError(f"{path} is not a SQuAD JSON file ({e})") from None
        for article in articles:
            title = re.sub(r"\W+", "_", article["title"]).strip("_")
            for i, paragraph in enumerate(article["paragraphs"]):
                source = f"{title}/{i:03d}.txt"
                (seeds / title).mkdir(parents=True, exist_ok=True)
                (seeds / source).write_text(paragraph["context"], encoding="utf-8")
                for qa in paragraph["qas"]:
                    impossible = bool(qa.get("is_impossible"))
                    answers = tuple(a["text"] for a in qa["answers"]) if not impossible else ()
                    questions.append(Question(qa["question"], answers, source, (), impossible))
    return questions


def sample(questions: list[Question], limit: int | None) -> list[Question]:
    """A fixed sample (seeded), so figures from different runs are of the same questions."""
    if not limit or limit >= len(questions):
        return questions
    return sorted(random.Random(0).sample(questions, limit), key=questions.index)


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").replace("“", '"').replace("”", '"').split())


def _hit(citation: Citation, question: Question) -> bool:
    if question.source and citation.source != question.source:
        return False
    quote = _norm(citation.quote)
    return any(_norm(a) in quote for a in question.answers)


def evaluate(assistant: Assistant, questions: list[Question], method: str = "qa") -> Scores:
    assistant.status()
    assistant.embedder.encode_query(["warm-up"])  # time answers, not the one-off model and index load
    scores = Scores(method)
    texts: dict[str, str] = {}
    for question in questions:
        started = time.perf_counter()
        if method == "qa":
            answer = assistant.ask(question.q, question.history)
        else:
            answer = assistant.baseline(method, question.q)
        scores.ms.append((time.perf_counter() - started) * 1000)
        scores.questions += 1
        for c in answer.citations:
            if c.source not in texts:
                texts[c.source] = (assistant.settings.seeds_dir / c.source).read_bytes().decode("utf-8")
            scores.non_verbatim += texts[c.source][c.start : c.end] != c.quote
        if question.unanswerable:
            scores.abstained_unanswerable += not answer.answered
            continue
        scores.answerable += 1
        if not answer.answered:
            scores.false_abstain += 1
            continue
        cites = answer.citations
        scores.hit1 += bool(cites) and _hit(cites[0], question)
        scores.hit3 += any(_hit(c, question) for c in cites[:3])
        scores.source1 += bool(cites) and (question.source is None or cites[0].source == question.source)
    return scores


def table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [[("-" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
