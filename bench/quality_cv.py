"""How good the answer scorer is on documents it was not fitted on: dev, seeds and SQuAD pooled, folds held out.

Every question of three corpora (eval/dev: realistic files, asked in DEV_GROUPS folders of about thirteen, each
indexed on its own; the seed documents with eval/seeds_dev.jsonl; the `qa eval --limit 300` sample of the SQuAD
files in ../shared/eval, 93 paragraphs in one index), and the questions of eval/offtopic.jsonl (general questions
no corpus answers, asked of each) is searched exactly as `Assistant.ask` does
(follow-ups with their history and the previous answer), and every candidate window gets its FEATURES row and a
label: right file, and it holds a gold answer. The folds are the dev and seed documents, and the SQuAD
paragraphs in FOLDS groups, dealt into --groups groups (all of a document's questions in one). For each group in
turn, on the questions of all the OTHER groups:
  - the ranking weights are fitted (softmax over each question's windows, L2);
  - a size penalty on the words beyond LONG_WORDS is chosen: among those that keep the mean first quotation under WORDS words on
    every corpus, the one with the best hit@1 averaged over the corpora;
  - gradient-boosted trees (LightGBM's lambdarank, TREE_ROUNDS rounds) are fitted on what that linear ranking
    leaves wrong: they start from its score and learn the interactions a weighted sum cannot hold; they favour
    longer windows, so the size penalty is chosen again, with them, the same way;
  - the answerability model is fitted (logistic: does the best window hold the answer) and its bias placed
    so that it abstains on at most FALSE_ABSTAIN of the answerable questions there;
and the held-out group's questions are scored with them. "in-sample" fits on everything and scores the same
questions; "shipped" is what qa/answering.py holds. Figures as `qa eval` counts them (a false abstention is not
a hit), per corpus and per question shape, then the abstention trade-off held out.

    .venv/bin/python bench/quality_cv.py                  # ~25 minutes on 2 busy cores
    .venv/bin/python bench/quality_cv.py --print-weights --save-trees qa/ranking_trees.txt  # also fit everything, to ship
    .venv/bin/python bench/quality_cv.py --tree-rounds 0  # the linear ranking alone, for comparison
    .venv/bin/python bench/quality_cv.py --cache /tmp/rows   # reuse the feature rows of an earlier run
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus import shared_dir

ROOT = Path(__file__).resolve().parents[1]
#: The mean first quotation must stay under this many words on every corpus (the target is 45).
WORDS = 44
#: At most this share of answerable questions may be abstained on when the answerability bias is placed.
FALSE_ABSTAIN = 0.04
#: Extra penalty per WORDS_SCALE words of a window beyond LONG_WORDS, searched in this range.
PENALTIES = np.arange(0.0, 6.01, 0.25)
#: SQuAD paragraphs are held out in this many groups.
FOLDS = 5
SQUAD_LIMIT = 300
#: Dev's documents are asked in this many folders of about thirteen, each its own index, as a test set is and as a
#: person's folder may be: the confidence of a window depends on how many documents compete with its own.
DEV_GROUPS = 16
#: Folds are held out in this many groups of documents: a fit of the trees takes about a minute.
GROUPS = 10
#: Boosting rounds of the trees fitted on the linear ranking's residual.
TREE_ROUNDS = 150
TREE_PARAMS = dict(
    objective="lambdarank", lambdarank_truncation_level=5, learning_rate=0.05, num_leaves=15, min_data_in_leaf=50,
    lambda_l2=1.0, feature_fraction=0.8, seed=0, deterministic=True, force_row_wise=True, num_threads=2, verbose=-1,
)


@dataclass
class Row:
    """One question: its windows' features, labels and lengths, and what it is."""

    corpus: str
    fold: str
    shape: str
    unanswerable: bool
    asks_kind: bool
    X: np.ndarray
    y: np.ndarray
    right_source: np.ndarray
    words: np.ndarray
    spans: list  # (first, last) per window, for dropping windows that overlap a better one
    question: str = ""
    texts: tuple = ()  # (source, quote) per window, for reading the misses
    answers: tuple = ()


def corpus_rows(corpus: str, seeds: Path, questions: list, work: Path, offtopic: list = ()) -> list[Row]:
    """Rows of the corpus's questions, then of the off-topic ones asked of the same index (corpus "<corpus> off-topic",
    held out in FOLDS groups of questions)."""
    from qa.answering import asked_kind
    from qa.assistant import Assistant
    from qa.config import Settings
    from qa.evaluation import _norm

    assistant = Assistant(Settings(seeds_dir=seeds, index_dir=work), warn=lambda m: None)
    assistant.index()
    live = assistant.live()
    extractor = live.extractor
    paragraphs = sorted({q.source or "" for q in questions})
    rows = []
    asked = [(q, corpus, None) for q in questions] + [(q, f"{corpus} off-topic", f"offtopic/{i % FOLDS}") for i, q in enumerate(offtopic)]
    for q, label, fold in asked:
        query, _, previous = assistant._search_for(live, q.q, q.history, None)
        windows, X = extractor.features(q.q, query, live.retriever.search(query), previous)
        texts = []
        for w in windows:
            first, last = extractor.unit(w.first), extractor.unit(w.last - 1)
            document = live.snapshot.document(first.document)
            texts.append((document.source, document.text[first.start : last.end]))
        source = np.array([src == q.source for src, _ in texts], dtype=bool)
        y = source & np.array([any(_norm(a) in _norm(t) for a in q.answers) for _, t in texts], dtype=bool)
        words = np.array([len(t.split()) for _, t in texts], dtype=float)
        shape = q.shape or ("unanswerable" if q.unanswerable else "plain")
        if fold is None:
            fold = f"{corpus}/{paragraphs.index(q.source) % FOLDS}" if corpus == "squad" else f"{corpus}/{q.source}"
        rows.append(Row(label, fold, shape, q.unanswerable, bool(asked_kind(q.q)), X, y, source, words, [(w.first, w.last) for w in windows],
                        q.q, tuple(texts), q.answers))
    return rows


def dev_groups(docs: Path, questions: list, groups: int, work: Path) -> list[tuple[Path, list]]:
    """The dev documents dealt into `groups` folders (by name, in turn), each with its own questions: folders of
    about thirteen files, near the size the test sets are asked of, beside the pooled corpus of SQuAD's 93 paragraphs."""
    names = sorted(p.name for p in docs.iterdir() if p.is_file())
    out = []
    for k in range(groups):
        folder = work / f"dev-docs-{k}"
        folder.mkdir(parents=True)
        mine = set(names[k::groups])
        for name in mine:
            (folder / name).write_bytes((docs / name).read_bytes())
        out.append((folder, [q for q in questions if q.source in mine]))
    return out


def all_rows(dev: Path, squad: list[Path], work: Path, cache: Path | None, groups: int = 0) -> list[Row]:
    """Every corpus's rows; with `cache`, each corpus's are read from (or written to) `cache`.<corpus> (dev's in
    `groups` folders, `cache`.dev-in-<groups>); with `groups`, dev's are asked of that many folders of its
    documents, each indexed on its own."""
    from qa.answering import FEATURES
    from qa.evaluation import load_jsonl, load_squad, sample

    offtopic = load_jsonl(ROOT / "eval/offtopic.jsonl")

    def rows(name: str, build) -> list[Row]:
        """Rows built by `build`, or read from `cache`.<name>."""
        path = cache.with_name(f"{cache.name}.{name}") if cache else None
        if path and path.exists():
            cached = pickle.loads(path.read_bytes())
            width = next((r.X.shape[1] for r in cached if len(r.X)), len(FEATURES))
            if width != len(FEATURES):
                raise SystemExit(f"quality_cv: {path} holds rows of {width} features, qa has {len(FEATURES)}: give --cache a new name")
            return cached
        found = build()
        if path:
            path.write_bytes(pickle.dumps(found))
        return found

    def asked(corpus: str, seeds, questions) -> list[Row]:
        return rows(corpus, lambda: corpus_rows(corpus, seeds(), questions(), work / corpus, offtopic))

    def dev_in_groups() -> list[Row]:
        """The off-topic questions are asked of the first folder only, so there are as many as without groups."""
        folders = dev_groups(dev / "docs", dev_questions(), groups, work)
        return [r for k, (folder, mine) in enumerate(folders) for r in corpus_rows("dev", folder, mine, work / f"dev-{k}", offtopic if k == 0 else ())]

    dev_questions = lambda: [q for f in sorted((dev / "questions").glob("*.jsonl")) for q in load_jsonl(f)]
    if groups:
        found = rows(f"dev-in-{groups}", dev_in_groups)
    else:
        found = asked("dev", lambda: dev / "docs", dev_questions)
    found += asked("seeds", lambda: ROOT / "seeds", lambda: load_jsonl(ROOT / "eval/seeds_dev.jsonl"))
    if squad:
        seeds = work / "squad-seeds"
        found += asked("squad", lambda: seeds, lambda: sample(load_squad(squad, seeds), SQUAD_LIMIT))
    return found


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


def fit_ranking(rows: list[Row], l2: float = 1e-4) -> np.ndarray:
    """Weights maximising the mean log-probability of the answer-holding windows under a softmax per question."""
    import torch

    data = [r for r in rows if not r.unanswerable and r.y.any()]
    width = max(len(r.y) for r in data)
    X = torch.zeros(len(data), width, rows[0].X.shape[1], dtype=torch.float64)
    valid = torch.zeros(len(data), width, dtype=torch.bool)
    good = torch.zeros(len(data), width, dtype=torch.bool)
    for i, r in enumerate(data):
        X[i, : len(r.y)] = torch.tensor(r.X)
        valid[i, : len(r.y)] = True
        good[i, : len(r.y)] = torch.tensor(r.y)
    w = torch.zeros(X.shape[2], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w], max_iter=300, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        s = X @ w
        nll = torch.logsumexp(s.masked_fill(~valid, -torch.inf), 1) - torch.logsumexp(s.masked_fill(~good, -torch.inf), 1)
        total = nll.mean() + l2 * (w**2).sum()
        total.backward()
        return total

    optimiser.step(loss)
    return w.detach().numpy()


def fit_trees(rows: list[Row], weights: np.ndarray, rounds: int):
    """A LightGBM booster fitted by lambdarank on each question's tree_candidates, starting from the linear score
    `weights` gives (the booster's own output is added to it); None for no rounds. Questions whose candidates hold
    no answer teach nothing and are left out."""
    import lightgbm

    from qa.answering import FEATURES, tree_candidates

    if not rounds:
        return None
    tops = [(r, tree_candidates(r.X @ weights)) for r in rows if not r.unanswerable and len(r.y)]
    tops = [(r, t) for r, t in tops if r.y[t].any()]
    if not tops:
        raise SystemExit("quality_cv: no question has an answer among its tree candidates; nothing to fit the trees on")
    X = np.vstack([r.X[t] for r, t in tops])
    labels = np.concatenate([r.y[t] for r, t in tops]).astype(int)
    dataset = lightgbm.Dataset(X, labels, group=[len(t) for _, t in tops], init_score=X @ weights, feature_name=list(FEATURES))
    return lightgbm.train(TREE_PARAMS, dataset, num_boost_round=rounds)


def fit_logistic(A: np.ndarray, labels: np.ndarray, l2: float = 0.1) -> tuple[np.ndarray, float]:
    """Logistic regression on standardised columns, returned in the raw columns' terms (weights, bias)."""
    import torch

    mean, std = A.mean(0), A.std(0) + 1e-9
    Z = torch.tensor((A - mean) / std)
    t = torch.tensor(labels, dtype=torch.float64)
    # classes weighted equally: the unanswerable questions are few
    weight = torch.where(t > 0, 0.5 / max(t.mean().item(), 1e-9), 0.5 / max(1 - t.mean().item(), 1e-9))
    w = torch.zeros(Z.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w], max_iter=300, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        logits = Z @ w[:-1] + w[-1]
        total = (weight * torch.nn.functional.binary_cross_entropy_with_logits(logits, t, reduction="none")).mean() + l2 * (w[:-1] ** 2).sum()
        total.backward()
        return total

    optimiser.step(loss)
    v = w.detach().numpy()
    weights = v[:-1] / std
    return weights, float(v[-1] - (mean * weights).sum())


@dataclass
class Model:
    weights: np.ndarray
    answer_weights: np.ndarray | None = None
    answer_bias: float = 0.0
    trees: object = None  # a lightgbm.Booster or qa's RankingTrees: its predict() is added to the linear score

    def scores(self, rows: list[Row]) -> list[np.ndarray]:
        """Each row's window scores, as `Extractor.score` computes them; the trees predict all rows' candidates in one call."""
        from qa.answering import reranked, tree_candidates

        linear = [r.X @ self.weights for r in rows]
        if self.trees is None:
            return linear
        tops = [tree_candidates(s) for s in linear]
        stacked = [r.X[t] for r, t in zip(rows, tops) if len(t)]
        boost = self.trees.predict(np.vstack(stacked)) if stacked else np.zeros(0)
        parts = np.split(boost, np.cumsum([len(t) for t in tops])[:-1])
        return [reranked(s, t, b) for s, t, b in zip(linear, tops, parts)]


def top_rows(rows: list[Row], model: Model) -> tuple[list[list[int]], np.ndarray]:
    """The kept windows per question and the ANSWERABILITY row of each question's best window."""
    from qa.answering import ANSWERABILITY, answerability_rows

    kept, A = [], np.zeros((len(rows), len(ANSWERABILITY)))
    for i, (r, raw) in enumerate(zip(rows, model.scores(rows))):
        if not len(r.y):
            kept.append([])
            continue
        kept.append(first_windows(r, raw))
        A[i] = answerability_rows(raw, r.X, kept[-1], r.asks_kind)[0]
    return kept, A


def outcomes(rows: list[Row], model: Model, shift: float = 0.0) -> list[dict]:
    """Per question: answered, hit@1, hit@3, source@1 and words of the first quotation, under the model."""
    kept, A = top_rows(rows, model)
    logit = A @ model.answer_weights + model.answer_bias + shift if model.answer_weights is not None else np.full(len(rows), np.inf)
    out = []
    for r, best, z in zip(rows, kept, logit):
        if not best:
            out.append({"answered": False, "hit1": False, "hit3": False, "source1": False, "words": None, "logit": -np.inf})
            continue
        answered = bool(z >= 0)
        out.append({
            "answered": answered,
            "hit1": bool(answered and r.y[best[0]]),
            "hit3": bool(answered and r.y[best].any()),
            "source1": bool(answered and r.right_source[best[0]]),
            "words": float(r.words[best[0]]),
            "logit": float(z),
        })
    return out


_RANKINGS: dict[tuple[frozenset, int], Model] = {}


def choose(rows: list[Row], false_abstain: float = FALSE_ABSTAIN, rounds: int = TREE_ROUNDS) -> Model:
    """Fit the ranking weights, the size penalty, the trees and the answerability model, on `rows` only."""
    key = (frozenset(r.fold for r in rows), rounds)
    if key not in _RANKINGS:
        w = penalise(rows, fit_ranking(rows))
        trees = fit_trees(rows, w, rounds)
        _RANKINGS[key] = Model(penalise(rows, w, trees) if trees else w, trees=trees)
    ranking = _RANKINGS[key]
    kept, A = top_rows(rows, ranking)
    # subtle: the label is "the best window holds the answer", not "answerable": an answerable question whose
    # best window misses looks like an unanswerable one, and abstaining on it costs no hit
    labels = np.array([not r.unanswerable and bool(k) and bool(r.y[k[0]]) for r, k in zip(rows, kept)], dtype=float)
    has = np.array([bool(k) for k in kept])
    aw, ab = fit_logistic(A[has], labels[has])
    return place(rows, Model(ranking.weights, aw, ab, ranking.trees), false_abstain)


def penalise(rows: list[Row], weights: np.ndarray, trees=None) -> np.ndarray:
    """`weights` with the size penalty added (to the linear score, beside `trees`) of the best mean hit@1 over
    corpora that keeps them all short."""
    from qa.answering import FEATURES

    column = FEATURES.index("long_words")
    corpora = sorted({r.corpus for r in rows if not r.unanswerable})
    best = None
    for penalty in PENALTIES:
        w = weights.copy()
        w[column] -= penalty
        got = outcomes(rows, Model(w, trees=trees))
        per = defaultdict(list)
        for r, g in zip(rows, got):
            per[r.corpus].append((r, g))
        short = all(np.mean([g["words"] for _, g in per[c] if g["words"] is not None]) <= WORDS for c in corpora)
        hit1 = np.mean([np.mean([g["hit1"] for r, g in per[c] if not r.unanswerable]) for c in corpora])
        if short and (best is None or hit1 > best[0] + 1e-9):
            best = (hit1, w)
    return best[1] if best else weights - np.eye(len(weights))[column] * PENALTIES[-1]


def place(rows: list[Row], model: Model, false_abstain: float) -> Model:
    """The answerability bias moved so that it abstains on at most `false_abstain` of the answerable questions."""
    got = outcomes(rows, model)
    logits = sorted(g["logit"] for r, g in zip(rows, got) if not r.unanswerable)
    at = logits[int(false_abstain * len(logits))]
    return Model(model.weights, model.answer_weights, model.answer_bias - at + 1e-9, model.trees)


def figures(rows: list[Row], got: list[dict]) -> dict:
    a = [g for r, g in zip(rows, got) if not r.unanswerable]
    u = [g for r, g in zip(rows, got) if r.unanswerable]
    words = [g["words"] for g in got if g["answered"] and g["words"] is not None]
    return {
        "hit@1": np.mean([g["hit1"] for g in a]) if a else None,
        "hit@3": np.mean([g["hit3"] for g in a]) if a else None,
        "src@1": np.mean([g["source1"] for g in a]) if a else None,
        "words": np.mean(words) if words else None,
        "abstain": np.mean([not g["answered"] for g in u]) if u else None,
        "f-abst": np.mean([not g["answered"] for g in a]) if a else None,
    }


def group(fold: str, groups: int) -> int:
    """The held-out group of a fold: by a hash of its name, so a group mixes corpora and kinds of file."""
    return zlib.crc32(fold.encode()) % groups


def held_out(rows: list[Row], groups: int, rounds: int, false_abstain: float = FALSE_ABSTAIN) -> list[dict]:
    held = [None] * len(rows)
    for held_group in sorted({group(r.fold, groups) for r in rows}):
        model = choose([r for r in rows if group(r.fold, groups) != held_group], false_abstain, rounds)
        test = [i for i, r in enumerate(rows) if group(r.fold, groups) == held_group]
        for i, got in zip(test, outcomes([rows[i] for i in test], model)):
            held[i] = got
    return held


def report(rows: list[Row], held: list[dict], inside: list[dict], shipped: list[dict]) -> None:
    keys = ("hit@1", "hit@3", "src@1", "words", "abstain", "f-abst")
    head = " ".join(f"{k:>6}" for k in keys)
    print(f"\n{'':<28}{'n':>4}  held-out {head}   in-sample {head}   shipped {head}")

    def cells(idx: list[int], got: list[dict]) -> str:
        f = figures([rows[i] for i in idx], [got[i] for i in idx])
        return " ".join("     -" if f[k] is None else f"{f[k]:6.1f}" if k == "words" else f"{f[k]:6.3f}" for k in keys)

    for corpus in sorted({r.corpus for r in rows}):
        groups = defaultdict(list)
        for i, r in enumerate(rows):
            if r.corpus == corpus:
                groups["all"].append(i)
                if corpus != "squad" or r.unanswerable:
                    groups[r.shape].append(i)
        for label in ["all", *sorted(k for k in groups if k != "all")]:
            idx = groups[label]
            print(f"{corpus + ' ' + label:<28}{len(idx):>4}           {cells(idx, held)}             {cells(idx, inside)}           {cells(idx, shipped)}")


def main() -> None:
    from qa.answering import ANSWERABILITY, FEATURES, Answerability, Weights, ranking_trees

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print-weights", action="store_true", help="print the models fitted on everything, to ship")
    parser.add_argument("--dev", type=Path, default=ROOT / "eval/dev", help="folder with docs/ and questions/*.jsonl")
    parser.add_argument("--squad", type=Path, nargs="*", default=sorted((shared_dir() / "eval").glob("squad-*.json")))
    parser.add_argument("--cache", type=Path, help="pickles of the feature rows (<cache>.<corpus>): read if they exist, else written")
    parser.add_argument("--dev-groups", type=int, default=DEV_GROUPS, help="ask dev's questions of this many folders of its documents, each its own index (0: all in one)")
    parser.add_argument("--groups", type=int, default=GROUPS, help="hold the folds out in this many groups")
    parser.add_argument("--tree-rounds", type=int, default=TREE_ROUNDS, help="boosting rounds of the trees (0: the linear ranking alone)")
    parser.add_argument("--save-trees", type=Path, help="write the trees fitted on everything here (LightGBM's text format), to ship")
    args = parser.parse_args()
    if args.groups < 2:
        parser.error("--groups must be at least 2: one group is held out while the others are fitted on")
    with tempfile.TemporaryDirectory(prefix="qa-quality-") as tmp:
        rows = all_rows(args.dev, args.squad, Path(tmp), args.cache, args.dev_groups)
    print(f"{len(rows)} questions: " + ", ".join(f"{c} {sum(r.corpus == c for r in rows)}" for c in sorted({r.corpus for r in rows}))
          + f"; {len({r.fold for r in rows})} folds held out in {args.groups} groups")
    every = choose(rows, rounds=args.tree_rounds)
    answerability = Answerability()
    shipped = Model(Weights().vector(), np.array(answerability.weights) if answerability.weights else None, answerability.bias, ranking_trees())
    report(rows, held_out(rows, args.groups, args.tree_rounds), outcomes(rows, every), outcomes(rows, shipped))
    print("\nabstention trade-off, held out (answerable abstained allowed when fitting -> unanswerable abstained, off-topic abstained, answerable abstained):")
    topical = [not r.corpus.endswith("off-topic") for r in rows]
    for share in (0.02, 0.05, 0.1, 0.2, 0.3):
        held = held_out(rows, args.groups, args.tree_rounds, share)
        f = figures([r for r, t in zip(rows, topical) if t], [g for g, t in zip(held, topical) if t])
        off = figures([r for r, t in zip(rows, topical) if not t], [g for g, t in zip(held, topical) if not t])
        print(f"  {share:4.2f} -> {f['abstain']:.3f} {off['abstain']:.3f} {f['f-abst']:.3f}")
    if args.print_weights:
        print("\nWeights(" + ", ".join(f"{n}={v:.2f}" for n, v in zip(FEATURES, every.weights)) + ")")
        print("Answerability((" + ", ".join(f"{v:.4g}" for v in every.answer_weights) + f"), {every.answer_bias:.4g})  # {ANSWERABILITY}")
    if args.save_trees and every.trees is not None:
        every.trees.save_model(str(args.save_trees))
        print(f"trees written to {args.save_trees}")


if __name__ == "__main__":
    main()
