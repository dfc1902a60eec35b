"""How good the answer scorer is on documents it was not fitted on: leave one document out.

For every question of a corpus (the development corpus eval/dev: realistic files and their questions; the seed
documents with eval/seeds_dev.jsonl), the question is searched exactly as `Assistant.ask` does (follow-ups with
their history and the previous answer) and every candidate window gets its FEATURES row and a label: right file,
and it holds a gold answer. Then, for each document in turn, on the questions of all the OTHER documents:
  - the weights are fitted (softmax over each question's windows, L2), as bench/features_cv.py does;
  - a size penalty per extra unit is chosen: the smallest that keeps the mean first quotation under WORDS words
    there, among those with the best hit@1;
  - the abstention bias is chosen: the score threshold that abstains on the most unanswerable questions while
    abstaining on at most FALSE_ABSTAIN of the answerable ones;
and the held-out document's questions are scored with them. "in-sample" fits on every document and scores the
same questions. Figures as `qa eval` counts them (a false abstention is not a hit), per question shape too.

    .venv/bin/python bench/quality_cv.py                    # eval/dev and the seeds; a few minutes on 2 cores
    .venv/bin/python bench/quality_cv.py --print-weights    # also the weights fitted on everything, to ship
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The mean first quotation must stay under this many words (the target is 45; a margin for documents unseen).
WORDS = 40
#: At most this share of answerable questions may be abstained on when the bias is chosen.
FALSE_ABSTAIN = 0.03
PENALTIES = np.arange(0.0, 2.01, 0.1)


@dataclass
class Row:
    """One question: its windows' features, labels and lengths, and what it is."""

    document: str
    shape: str
    unanswerable: bool
    X: np.ndarray
    y: np.ndarray
    words: np.ndarray
    spans: list  # (first, last) per window, for dropping windows that overlap a better one


def corpus_rows(seeds: Path, question_files: list[Path], work: Path) -> list[Row]:
    from qa.assistant import Assistant
    from qa.config import Settings
    from qa.evaluation import _norm, load_jsonl

    questions = [q for f in question_files for q in load_jsonl(f)]
    assistant = Assistant(Settings(seeds_dir=seeds, index_dir=work), warn=lambda m: None)
    assistant.index()
    live = assistant.live()
    extractor = live.extractor
    rows = []
    for q in questions:
        history = list(q.history)[-assistant.settings.history_turns :]
        vectors = assistant.embedder.encode_query([q.q, *history])
        previous = assistant._previous_answer(live, history, vectors[1:]) if history else None
        query, _ = assistant._follow_up(live, q.q, vectors[0], history, vectors[1:], previous)
        windows, X = extractor.features(q.q, query, live.retriever.search(query), previous)
        texts = []
        for w in windows:
            first, last = extractor.unit(w.first), extractor.unit(w.last - 1)
            document = live.snapshot.document(first.document)
            texts.append((document.source, document.text[first.start : last.end]))
        y = np.array([src == q.source and any(_norm(a) in _norm(t) for a in q.answers) for src, t in texts], dtype=bool)
        words = np.array([len(t.split()) for _, t in texts], dtype=float)
        shape = q.shape or ("unanswerable" if q.unanswerable else "plain")
        rows.append(Row(q.source or "", shape, q.unanswerable, X, y, words, [(w.first, w.last) for w in windows]))
    return rows


def first_windows(row: Row, raw: np.ndarray, k: int = 3) -> list[int]:
    """Indexes of the best k windows that share no unit with a better one, as `Extractor.ranked` keeps them."""
    taken, used = [], set()
    for i in np.argsort(-raw, kind="stable").tolist():
        span = set(range(*row.spans[i]))
        if span & used:
            continue
        used |= span
        taken.append(i)
        if len(taken) == k:
            break
    return taken


def fit(rows: list[Row], l2: float = 1e-3) -> np.ndarray:
    """Weights maximising the mean log-probability of the answer-holding windows under a softmax per question."""
    import torch

    data = [(torch.tensor(r.X), torch.tensor(r.y)) for r in rows if not r.unanswerable and r.y.any()]
    w = torch.zeros(rows[0].X.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w], max_iter=300, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        nll = sum(torch.logsumexp(x @ w, 0) - torch.logsumexp((x @ w)[y], 0) for x, y in data) / len(data)
        total = nll + l2 * (w**2).sum()
        total.backward()
        return total

    optimiser.step(loss)
    return w.detach().numpy()


@dataclass
class Model:
    weights: np.ndarray
    bias: float


def outcomes(rows: list[Row], model: Model) -> list[dict]:
    """Per question: answered, hit@1, hit@3 and words of the first quotation, under the model."""
    out = []
    for r in rows:
        if not len(r.y):
            out.append({"answered": False, "hit1": False, "hit3": False, "words": None, "top": -np.inf})
            continue
        raw = r.X @ model.weights
        best = first_windows(r, raw)
        answered = raw[best[0]] >= model.bias
        out.append({
            "answered": bool(answered),
            "hit1": bool(answered and r.y[best[0]]),
            "hit3": bool(answered and r.y[best].any()),
            "words": float(r.words[best[0]]),
            "top": float(raw[best[0]]),
        })
    return out


def choose(rows: list[Row], extra: int) -> Model:
    """Fit the weights, then the size penalty and the abstention bias, on `rows` only."""
    weights = fit(rows)
    best = None
    for penalty in PENALTIES:
        w = weights.copy()
        w[extra] -= penalty
        got = outcomes(rows, Model(w, -np.inf))
        hit1 = np.mean([g["hit1"] for r, g in zip(rows, got) if not r.unanswerable])
        words = np.mean([g["words"] for g in got if g["words"] is not None])
        if words <= WORDS and (best is None or hit1 > best[0] + 1e-9):
            best = (hit1, w)
    w = best[1] if best else weights
    got = outcomes(rows, Model(w, -np.inf))
    answerable = sorted(g["top"] for r, g in zip(rows, got) if not r.unanswerable)
    # the highest threshold that abstains on at most FALSE_ABSTAIN of the answerable questions
    bias = answerable[int(FALSE_ABSTAIN * len(answerable))] if answerable else -np.inf
    return Model(w, bias - 1e-9)


def figures(rows: list[Row], got: list[dict]) -> dict:
    a = [g for r, g in zip(rows, got) if not r.unanswerable]
    u = [g for r, g in zip(rows, got) if r.unanswerable]
    words = [g["words"] for g in got if g["answered"] and g["words"] is not None]
    return {
        "n": len(rows),
        "hit@1": np.mean([g["hit1"] for g in a]) if a else None,
        "hit@3": np.mean([g["hit3"] for g in a]) if a else None,
        "words": np.mean(words) if words else None,
        "abstain": np.mean([not g["answered"] for g in u]) if u else None,
        "false_abstain": np.mean([not g["answered"] for g in a]) if a else None,
    }


def report(name: str, rows: list[Row], extra: int, shipped: Model) -> Model:
    documents = sorted({r.document for r in rows})
    held = [None] * len(rows)
    for d in documents:
        model = choose([r for r in rows if r.document != d], extra)
        test = [i for i, r in enumerate(rows) if r.document == d]
        for i, g in zip(test, outcomes([rows[i] for i in test], model)):
            held[i] = g
    everything = choose(rows, extra)
    inside = outcomes(rows, everything)
    today = outcomes(rows, shipped)
    print(f"\n{name}: {len(rows)} questions, {len(documents)} documents, leave one document out")
    print(f"{'':<26}{'n':>5}  {'held-out h@1 h@3 words abst f-abst':<38}{'in-sample h@1 h@3 words abst f-abst':<38}{'shipped h@1 h@3 words abst f-abst'}")
    groups = [("all", list(range(len(rows))))]
    by_shape = defaultdict(list)
    for i, r in enumerate(rows):
        by_shape[r.shape].append(i)
    groups += sorted(by_shape.items())

    def cells(f: dict) -> str:
        return " ".join("    -" if f[k] is None else f"{f[k]:5.3f}" if k != "words" else f"{f[k]:5.1f}" for k in ("hit@1", "hit@3", "words", "abstain", "false_abstain"))

    for label, idx in groups:
        rs = [rows[i] for i in idx]
        parts = [cells(figures(rs, [source[i] for i in idx])) for source in (held, inside, today)]
        print(f"{label:<26}{len(idx):>5}  {parts[0]:<38}{parts[1]:<38}{parts[2]}")
    return everything


def main() -> None:
    from qa.answering import FEATURES, Weights

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print-weights", action="store_true", help="print the weights fitted on every corpus together")
    parser.add_argument("--dev", type=Path, default=ROOT / "eval/dev", help="folder with docs/ and questions/*.jsonl")
    args = parser.parse_args()
    corpora = [("dev", args.dev / "docs", sorted((args.dev / "questions").glob("*.jsonl"))),
               ("seeds", ROOT / "seeds", [ROOT / "eval/seeds_dev.jsonl"])]
    extra = FEATURES.index("extra_units")
    shipped = Weights()
    shipped_model = Model(shipped.vector(), shipped.bias)
    every = []
    with tempfile.TemporaryDirectory(prefix="qa-quality-") as tmp:
        for name, seeds, files in corpora:
            if not files or not seeds.is_dir():
                print(f"{name}: no questions, skipped")
                continue
            rows = corpus_rows(seeds, files, Path(tmp) / name)
            for r in rows:
                r.document = f"{name}/{r.document}"
            every += rows
            report(name, rows, extra, shipped_model)
    if args.print_weights and every:
        model = choose(every, extra)
        got = outcomes(every, replace(model, bias=-np.inf))
        tops = np.array([g["top"] for g in got])
        hits = np.array([g["hit1"] for g in got])
        steepness = _steepness(tops, hits, model.bias)
        print("\nWeights(" + ", ".join(f"{n}={v:.2f}" for n, v in zip(FEATURES, model.weights)) + f", bias={model.bias:.2f}, steepness={steepness:.2f})")


def _steepness(tops: np.ndarray, hits: np.ndarray, bias: float) -> float:
    """The logistic slope, bias fixed, that best fits "the first quotation holds the answer" from the top score."""
    best, found = -np.inf, 1.0
    for s in np.arange(0.5, 10.01, 0.25):
        p = np.clip(1 / (1 + np.exp(-s * (tops - bias))), 1e-9, 1 - 1e-9)
        ll = np.sum(hits * np.log(p) + (1 - hits) * np.log(1 - p))
        if ll > best:
            best, found = ll, s
    return float(found)


if __name__ == "__main__":
    main()
