"""BM25 beside its scores: postings, per-text terms and scoring agree with each other and survive a save."""

import numpy as np
import pytest

from qa.lexical import Bm25, tokenize
from qa.retrieval import _top_positive

TEXTS = ["Honey bees live in colonies.", "The queen lays eggs.", "", "Bees dance; the queen rests.", "Etna erupts."]


def test_postings_terms_and_scores_agree_and_survive_a_save(tmp_path):
    tokens = [tokenize(t) for t in TEXTS]
    built = Bm25.build(tokens)
    built.save(tmp_path)
    for bm25 in (built, Bm25.load(tmp_path)):
        ids = bm25.term_ids(["bee", "queen", "volcano"])
        assert ids["volcano"] < 0 and len(set(ids.values())) == 3
        for term in ("bee", "queen", "etna"):
            holders = [i for i, t in enumerate(tokens) if term in t]
            assert bm25.postings(term).tolist() == holders  # ascending: documents_holding binary-searches them
            assert np.flatnonzero(bm25.scores([term])).tolist() == holders
        assert bm25.postings("volcano").size == 0 and not bm25.scores(["volcano"]).any()
        assert [bm25.terms_of(i) == {bm25.term_ids([t])[t] for t in toks} for i, toks in enumerate(tokens)] == [True] * len(TEXTS)
        both = bm25.scores(["queen"], weight=0.5, into=bm25.scores(["bee"]))
        assert np.allclose(both, bm25.scores(["bee"]) + 0.5 * bm25.scores(["queen"]))


@pytest.mark.parametrize("n, hits, k", [(10, 3, 5), (200_000, 150_000, 50), (200_000, 20, 50), (300_000, 0, 50), (100_000, 99_999, 1)])
def test_top_positive_scores_are_found_exactly_on_long_arrays(n, hits, k):
    rng = np.random.default_rng(n + hits)
    scores = np.zeros(n, dtype=np.float32)
    scores[rng.choice(n, hits, replace=False)] = rng.integers(1, 400, hits).astype(np.float32) / 7  # many ties
    top = _top_positive(scores, k)
    expected = np.sort(scores[scores > 0])[::-1][:k]
    assert np.array_equal(scores[top], expected) and len(set(top.tolist())) == len(top)
