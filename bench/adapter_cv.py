"""Would a query-side linear adapter, fitted on dev questions, lift dense ranking on documents it never saw?

A probe for the next scorer change, not part of qa: every dev document is split into qa's units, every
answerable dev question (follow-ups left out) is embedded with the packaged MiniLM, and its gold units are the
units of its own document that hold a gold answer. The adapter maps a question vector q to q + qW (W d × d,
from zero, L2 penalty `--l2`), fitted by softmax over the units of each question's document. The documents are
held out in 8 groups: W is fitted on 7 and the 8th group's questions are ranked with it. Printed: dense-only
hit@1 within the question's document, without the adapter, held out and in-sample.

    .venv/bin/python bench/adapter_cv.py --l2 0.01 0.1     # ~5 minutes on 2 busy cores
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from qa.chunking import Chunker
from qa.documents import read_document
from qa.embedding import model_path
from qa.evaluation import _norm

ROOT = Path(__file__).resolve().parent.parent
GROUPS = 8
EPOCHS = 8
SCALE = 20.0  # softmax temperature over cosines


def corpus(dev: Path):
    """Units of every document (text, document number) and answerable questions (text, document, gold units)."""
    chunker = Chunker(200, 1)
    units: list[str] = []
    owner: list[int] = []
    questions: list[tuple[str, int, list[int]]] = []
    for d, path in enumerate(sorted((dev / "docs").iterdir())):
        texts = [u.text for u in chunker.sentences(read_document(dev / "docs", path.name, 10**7).text)]
        first = len(units)
        units += texts
        owner += [d] * len(texts)
        for line in (dev / "questions" / f"{path.stem}.jsonl").read_text().splitlines():
            q = json.loads(line)
            if q["unanswerable"] or q["history"]:
                continue
            gold = [first + i for i, t in enumerate(texts) if any(_norm(a) in _norm(t) for a in q["answers"])]
            if gold:
                questions.append((q["q"], d, gold))
    return units, np.array(owner), questions


def fit(Q, U, items, l2: float) -> np.ndarray:
    W = torch.zeros(Q.shape[1], Q.shape[1], requires_grad=True)
    optimiser = torch.optim.Adam([W], lr=1e-3)
    Qt, Ut = torch.tensor(Q), torch.tensor(U)
    for epoch in range(EPOCHS):
        order = np.random.RandomState(epoch).permutation(len(items))
        for b in range(0, len(order), 64):
            batch = order[b : b + 64]
            loss = 0.0
            for k in batch:
                i, candidates, gold = items[k]
                q = Qt[i] + Qt[i] @ W
                log_p = torch.log_softmax((Ut[candidates] @ q) * SCALE, 0)
                loss = loss - torch.logsumexp(log_p[torch.tensor(gold)], 0)
            loss = loss / len(batch) + l2 * (W**2).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return W.detach().numpy()


def hit1(Q, U, items, W) -> float:
    return float(np.mean([gold[np.argmax(U[c] @ (Q[i] + Q[i] @ W))] for i, c, gold in items]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=ROOT / "eval/dev")
    parser.add_argument("--l2", type=float, nargs="+", default=[0.01])
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    units, owner, questions = corpus(args.dev)
    model = SentenceTransformer(model_path(""), device="cpu")
    U = model.encode(units, batch_size=64, normalize_embeddings=True)
    Q = model.encode([q for q, _, _ in questions], batch_size=64, normalize_embeddings=True)
    items = []
    for i, (_, d, gold) in enumerate(questions):
        candidates = np.flatnonzero(owner == d)
        items.append((i, candidates, np.isin(candidates, gold)))
    group = [questions[i][1] % GROUPS for i, _, _ in items]
    print(f"{owner.max() + 1} documents, {len(units)} units, {len(items)} answerable questions")
    print(f"dense hit@1 within the question's document, no adapter: {hit1(Q, U, items, np.zeros((Q.shape[1], Q.shape[1]))):.3f}")
    for l2 in args.l2:
        held, count = 0.0, 0
        for g in range(GROUPS):
            train = [it for it, gi in zip(items, group) if gi != g]
            test = [it for it, gi in zip(items, group) if gi == g]
            held += hit1(Q, U, test, fit(Q, U, train, l2)) * len(test)
            count += len(test)
        print(f"l2 {l2}: held out {held / count:.3f}, in-sample {hit1(Q, U, items, fit(Q, U, items, l2)):.3f}")


if __name__ == "__main__":
    main()
