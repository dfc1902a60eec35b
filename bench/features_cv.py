"""How good the answerer's scoring function is, held out: refit it by cross-validation and drop each feature.

Every SQuAD paragraph becomes a document (as in `qa eval`); for every answerable question the retriever's
candidates get their FEATURES rows and a label (right file, holds a gold answer). Then:
  - the shipped Weights, ranking only (no abstention), on all questions;
  - a listwise refit (softmax over each question's candidates, L2) scored by 5-fold cross-validation with
    whole paragraphs held out, so no test question's document was seen in the fit;
  - the same refit without each feature in turn (ablation).
The ranking figures are hit@1 / hit@3 / source@1 over all answerable questions, as `qa eval` counts them.

    .venv/bin/python bench/features_cv.py                  # ../shared/eval/squad-*.json, ~1 min on 2 cores
    .venv/bin/python bench/features_cv.py --no-ablation
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from corpus import shared_dir

FOLDS = 5


def candidate_rows(files: list[Path], work: Path) -> list[dict]:
    """One dict per answerable question: features X, labels y (holds an answer), src (right file), its paragraph."""
    from qa.assistant import Assistant
    from qa.config import Settings
    from qa.evaluation import _norm, load_squad
    from qa.lexical import tokenize
    from qa.retrieval import Query
    from qa.store import UNITS

    questions = [q for q in load_squad(files, work / "seeds") if not q.unanswerable]
    assistant = Assistant(Settings(seeds_dir=work / "seeds", index_dir=work / "index"), warn=lambda m: None)
    assistant.index()
    live = assistant.live()
    vectors = assistant.embedder.encode_query([q.q for q in questions])
    rows = []
    for q, vector in zip(questions, vectors):
        query = Query(vector, tokenize(q.q), [])
        candidates = live.retriever.search(query)
        found = live.snapshot.rows(UNITS, candidates.sentences)
        docs = [live.snapshot.document(int(d)) for d in found["document"]]
        src = np.array([d.source == q.source for d in docs])
        texts = [_norm(d.text[r["start"] : r["end"]]) for d, r in zip(docs, found)]
        y = src & np.array([any(_norm(g) in t for g in q.answers) for t in texts], dtype=bool)
        rows.append({"X": live.extractor.features(q.q, query, candidates), "y": y, "src": src, "paragraph": q.source})
    return rows


def ranking(rows: list[dict], weights: np.ndarray, columns: list[int]) -> np.ndarray:
    """Counts of hit@1, hit@3, source@1 when candidates are ranked by X[:, columns] @ weights."""
    counts = np.zeros(3)
    for r in rows:
        if not len(r["y"]):
            continue
        order = np.argsort(-(r["X"][:, columns] @ weights), kind="stable")
        counts += [r["y"][order[0]], r["y"][order[:3]].any(), r["src"][order[0]]]
    return counts


def listwise_fit(rows: list[dict], columns: list[int], l2: float = 1e-3) -> np.ndarray:
    """Weights maximising the mean log-probability of the answer-holding candidates under a softmax per question."""
    import torch

    data = [(torch.tensor(r["X"][:, columns]), torch.tensor(r["y"])) for r in rows if r["y"].any()]
    w = torch.zeros(len(columns), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        nll = sum(torch.logsumexp(x @ w, 0) - torch.logsumexp((x @ w)[y], 0) for x, y in data) / len(data)
        total = nll + l2 * (w**2).sum()
        total.backward()
        return total

    optimiser.step(loss)
    return w.detach().numpy()


def cross_validated(rows: list[dict], columns: list[int]) -> np.ndarray:
    paragraphs = sorted({r["paragraph"] for r in rows})
    fold = {p: i % FOLDS for i, p in enumerate(np.random.default_rng(0).permutation(paragraphs))}
    counts = np.zeros(3)
    for f in range(FOLDS):
        weights = listwise_fit([r for r in rows if fold[r["paragraph"]] != f], columns)
        counts += ranking([r for r in rows if fold[r["paragraph"]] == f], weights, columns)
    return counts


def main() -> None:
    from qa.answering import FEATURES, Weights

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="SQuAD JSON files (default: shared/eval/squad-*.json)")
    parser.add_argument("--no-ablation", action="store_true")
    args = parser.parse_args()
    files = args.files or sorted((shared_dir() / "eval").glob("squad-*.json"))
    with tempfile.TemporaryDirectory(prefix="qa-cv-") as tmp:
        rows = candidate_rows(files, Path(tmp))
    n, every = len(rows), list(range(len(FEATURES)))

    def line(label: str, counts: np.ndarray) -> None:
        h1, h3, s1 = counts / n
        print(f"{label:<34} {h1:.3f}   {h3:.3f}   {s1:.3f}", flush=True)

    print(f"{n} answerable questions, {FOLDS}-fold cross-validation by paragraph\n{'':<34} hit@1   hit@3   source@1")
    line("shipped weights (all questions)", ranking(rows, Weights().vector(), every))
    line("listwise refit, held out", cross_validated(rows, every))
    if not args.no_ablation:
        for k, name in enumerate(FEATURES):
            line(f"  without {name}", cross_validated(rows, [c for c in every if c != k]))
    print("refit on all:", dict(zip(FEATURES, listwise_fit(rows, every).round(2).tolist())))


if __name__ == "__main__":
    main()
