"""Would a token-level match help the answerer? MaxSim over MiniLM's own token vectors, held out, on cached rows.

The answerer compares a question with a window through pooled vectors (one per unit) and shared terms. A
late-interaction score reads finer: each content word piece of the question (not a stop word, not
punctuation) takes its best cosine among the content word pieces of the window's units, and the score is
the mean of those (ColBERT's MaxSim, here zero-shot with the vectors MiniLM already computes before pooling:
the index would store them beside the unit vectors, and the question's come out of its one model call).
This script measures it before anything is built for it: it encodes each unit of the cached rows
(`bench/quality_cv.py --cache`) alone (indexing reads a table row with its header row; here the row is
alone), adds the score as one more column, and runs quality_cv's own held-out fit with and without it: the
learned match stacked (no question's document in its fit), then the weights one document at a time.

    .venv/bin/python bench/quality_cv.py --cache /tmp/rows        # the feature rows, once (~20 minutes)
    .venv/bin/python bench/token_match_cv.py --cache /tmp/rows     # ~25 minutes on 2 busy cores
    .venv/bin/python bench/token_match_cv.py --cache /tmp/rows --dims 64 --int8   # what a smaller index keeps
"""

from __future__ import annotations

import argparse
import pickle
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

import quality_cv as cv

CORPORA = ("dev", "seeds", "squad")
KEYS = ("hit@1", "hit@3", "src@1", "words", "abstain", "f-abst")


def load_rows(cache: str) -> list[cv.Row]:
    import __main__

    __main__.Row = cv.Row  # the pickles name the class as quality_cv's __main__ wrote it
    return [r for c in CORPORA for r in pickle.loads(Path(f"{cache}.{c}").read_bytes())]


class TokenVectors:
    """Content word pieces' vectors of texts, each text encoded alone (as the index encodes its units)."""

    def __init__(self):
        from bm25s.stopwords import STOPWORDS_EN
        from sentence_transformers import SentenceTransformer

        from qa.embedding import model_path

        self.model = SentenceTransformer(model_path(""), device="cpu", local_files_only=True)
        self.skip = set(STOPWORDS_EN) | set(self.model.tokenizer.all_special_tokens)

    def __call__(self, texts: list[str], batch: int = 64) -> dict[str, np.ndarray]:
        out = {}
        for lo in range(0, len(texts), batch):
            part = texts[lo : lo + batch]
            outputs = self.model.encode(part, output_value=None, batch_size=batch, show_progress_bar=False)
            for text, o in zip(part, outputs):
                n = int(o["attention_mask"].sum())
                pieces = self.model.tokenizer.convert_ids_to_tokens(o["input_ids"][:n].tolist())
                keep = np.array([p not in self.skip and re.search(r"\w", p) is not None for p in pieces])
                vectors = o["token_embeddings"][:n].float().numpy()
                vectors = vectors[keep] if keep.any() else vectors
                out[text] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return out


def principal_axes(vectors: dict[str, np.ndarray], fit_on: list[str], dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the first `dims` principal axes of the `fit_on` units' token vectors (SQuAD's, never dev's)."""
    sample = np.vstack([vectors[t] for t in fit_on])
    mean = sample.mean(0)
    return mean, np.linalg.svd(sample - mean, full_matrices=False)[2][:dims].T


def shrink(vectors: dict[str, np.ndarray], axes: tuple[np.ndarray, np.ndarray] | None, int8: bool) -> dict[str, np.ndarray]:
    """Token vectors as a smaller index would keep them: centred and projected on `axes`, and/or rounded to
    int8 with one scale per vector."""
    if axes is not None:
        mean, basis = axes
        vectors = {t: (v - mean) @ basis for t, v in vectors.items()}
        vectors = {t: v / np.linalg.norm(v, axis=1, keepdims=True) for t, v in vectors.items()}
    if int8:
        def rounded(v):
            scale = np.abs(v).max(1, keepdims=True) / 127
            return np.round(v / scale) * scale
        vectors = {t: rounded(v) for t, v in vectors.items()}
    return vectors


def token_match_columns(rows: list[cv.Row], dims: int, int8: bool) -> tuple[list[np.ndarray], dict]:
    """The token match of every row's windows, and what storing the units' tokens would take."""
    unit_text = {}
    for r in rows:
        for (a, b), (source, text) in zip(r.spans, r.texts):
            if b - a == 1:
                unit_text[(r.corpus, source, a)] = text

    def units_of(r, i):
        (a, b), (source, text) = r.spans[i], r.texts[i]
        units = [unit_text.get((r.corpus, source, u)) for u in range(a, b)]
        return units if all(units) else [text]  # a unit never seen alone: the window's own text

    units = sorted({u for r in rows for i in range(len(r.texts)) for u in units_of(r, i)}, key=len)
    questions = sorted({r.question for r in rows}, key=len)  # by length: batches of alike lengths pad little
    encode = TokenVectors()
    unit_vectors, question_vectors = encode(units), encode(questions)
    squad_units = sorted({t for (corpus, _, _), t in unit_text.items() if corpus == "squad"})
    axes = principal_axes(unit_vectors, squad_units, dims) if dims else None
    unit_vectors = shrink(unit_vectors, axes, int8)
    question_vectors = shrink(question_vectors, axes, False)  # a question's come fresh from the model, never stored
    columns = []
    for r in rows:
        q = question_vectors[r.question]
        best = {}
        column = np.zeros(len(r.texts))
        for i in range(len(r.texts)):
            per_unit = []
            for u in units_of(r, i):
                if u not in best:
                    best[u] = (q @ unit_vectors[u].T).max(1)
                per_unit.append(best[u])
            column[i] = np.max(per_unit, axis=0).mean()
        columns.append(column)
    dev_units = [t for (corpus, _, _), t in unit_text.items() if corpus == "dev"]
    tokens = float(np.mean([len(unit_vectors[t]) for t in dev_units]))
    d = unit_vectors[dev_units[0]].shape[1]
    per_token = d + 2 if int8 else 2 * d  # int8 with a float16 scale, or float16
    storage = {"dev units seen alone": len(dev_units), "content tokens per unit": round(tokens, 1),
               "bytes per unit": round(tokens * per_token)}
    return columns, storage


def figures_by_group(rows: list[cv.Row], got: list[dict]) -> dict[str, dict]:
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups[f"{r.corpus} all"].append(i)
        if r.corpus == "dev":
            groups[f"dev {r.shape}"].append(i)
    return {g: cv.figures([rows[i] for i in ix], [got[i] for i in ix]) for g, ix in sorted(groups.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="quality_cv.py's --cache prefix (<cache>.dev, .seeds, .squad)")
    parser.add_argument("--dims", type=int, default=0, help="keep this many principal axes of the token vectors")
    parser.add_argument("--int8", action="store_true", help="round the token vectors to int8")
    args = parser.parse_args()

    import qa.answering as answering

    rows = load_rows(args.cache)
    # the cached rows carry the shipped match, fitted on every document: held out reads a stacked one
    held_rows, inside_rows = cv.stacked(rows), cv.with_match(rows, cv.fit_match(rows))
    baseline = cv.held_out(held_rows)
    columns, storage = token_match_columns(rows, args.dims, args.int8)
    for some in (held_rows, inside_rows):
        for r, column in zip(some, columns):
            r.X = np.hstack([r.X, column[:, None]])
    answering.ANSWERABILITY = (*answering.ANSWERABILITY, "token_match")
    held = cv.held_out(held_rows)
    model = cv.choose(inside_rows)
    inside = cv.outcomes(inside_rows, model)
    print(f"token vectors: {args.dims or 'all'} dimensions, {'int8' if args.int8 else 'float16'}; {storage}")
    print(f"{'':<26}{'without, held out':<44}{'with token match, held out':<44}with, in-sample")
    print(f"{'':<26}" + ("".join(f"{k:>7}" for k in KEYS) + "  ") * 3)
    blocks = [figures_by_group(rows, got) for got in (baseline, held, inside)]
    for group in blocks[0]:
        cells = ["".join("     - " if b[group][k] is None else f"{b[group][k]:7.3f}" for k in KEYS) for b in blocks]
        print(f"{group:<26}" + "  ".join(cells))
    print("token_match ranking weight (fitted on everything):", round(float(model.weights[-1]), 2))


if __name__ == "__main__":
    main()
