"""BM25 beside its scores: postings, per-text terms and scoring agree with each other and survive a save."""

import numpy as np

from qa.lexical import Bm25, tokenize

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
