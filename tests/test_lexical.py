"""BM25 from raw term counts: the scores bm25s gives one index, whatever the segments, deletions and merges."""

import numpy as np
import pytest

from qa.folder_store import top_positive as _top_positive
from qa.lexical import LiveBm25, Postings, tokenize

TEXTS = [
    "Honey bees live in colonies.", "The queen lays eggs, and the queen rests.", "", "Bees dance; the queen rests.",
    "Etna erupts.", "The", "Bees, bees and more bees: a colony of bees.", "Mount Etna is a volcano on Sicily.",
]
QUERIES = ["queen bees", "bees bees etna", "volcano", "rests", "colonies of dancing bees"]
#: Scores are float32 sums; bm25s rounds each posting's score to float32 before adding, qa rounds the term factor.
RELATIVE_BOUND = 1e-6


def _live(parts):
    """LiveBm25 over (Postings, snapshot ids) parts, as the snapshot builds it."""
    size = sum(int((ids >= 0).sum()) for _, ids in parts)
    return LiveBm25([p for p, _ in parts], [ids for _, ids in parts], size)


def _weights(query):
    weights = {}
    for t in tokenize(query):
        weights[t] = weights.get(t, 0.0) + 1.0
    return weights


def test_scores_and_idf_equal_bm25s_on_one_segment():
    import bm25s

    tokens = [tokenize(t) for t in TEXTS]
    reference = bm25s.BM25()  # the defaults qa used to index with: method "lucene", k1 1.5, b 0.75
    reference.index([t or [""] for t in tokens], show_progress=False)
    live = _live([(Postings.build(tokens), np.arange(len(TEXTS)))])
    for query in QUERIES:
        expected = reference.get_scores(tokenize(query))
        got = live.scores(_weights(query))
        assert np.allclose(got, expected, rtol=RELATIVE_BOUND, atol=0), query
        assert np.array_equal(got > 0, expected > 0)
    n, df = len(TEXTS), sum("queen" in t for t in tokens)
    assert live.idf(["queen", "unseen"]) == pytest.approx({"queen": np.log(1 + (n - df + 0.5) / (df + 0.5)), "unseen": np.log(1 + (n + 0.5) / 0.5)})


def test_segments_with_deletions_score_like_one_index_of_the_live_texts(tmp_path):
    tokens = [tokenize(t) for t in TEXTS]
    stale = [tokenize("queen queen bees of another version"), tokenize("etna etna etna")]
    # part one: texts 0-3 then two deleted texts; part two: texts 4-7 (snapshot ids follow the texts' order)
    one = Postings.build(tokens[:4] + stale)
    two = Postings.build(tokens[4:])
    one.save(tmp_path / "one")
    parts = [(Postings.load(tmp_path / "one"), np.array([0, 1, 2, 3, -1, -1])), (two, np.arange(4, 8))]
    spread, fresh = _live(parts), _live([(Postings.build(tokens), np.arange(len(TEXTS)))])
    merged = Postings.take([(parts[0][0], np.array([0, 1, 2, 3, -1, -1])), (two, np.arange(4, 8))], len(TEXTS))
    for live in (spread, _live([(merged, np.arange(len(TEXTS)))])):
        assert live.avgdl == fresh.avgdl
        for query in QUERIES:
            assert np.array_equal(live.scores(_weights(query)), fresh.scores(_weights(query))), query
            assert live.idf(tokenize(query)) == fresh.idf(tokenize(query))
        assert live.terms(range(len(TEXTS))) == [frozenset(t) for t in tokens]
        for term in ("bee", "queen", "etna"):
            holders = [i for i, t in enumerate(tokens) if term in t]
            assert sorted(np.concatenate(live.postings(term)).tolist()) == holders
            assert all(np.all(np.diff(p) > 0) for p in live.postings(term))  # ascending: documents_holding bisects them
        assert live.postings("volcanoes") == [] and not live.scores({"volcanoes": 1.0}).any()


@pytest.mark.parametrize("n, hits, k", [(10, 3, 5), (200_000, 150_000, 50), (200_000, 20, 50), (300_000, 0, 50), (100_000, 99_999, 1)])
def test_top_positive_scores_are_found_exactly_on_long_arrays(n, hits, k):
    rng = np.random.default_rng(n + hits)
    scores = np.zeros(n, dtype=np.float32)
    scores[rng.choice(n, hits, replace=False)] = rng.integers(1, 400, hits).astype(np.float32) / 7  # many ties
    top = _top_positive(scores, k)
    expected = np.sort(scores[scores > 0])[::-1][:k]
    assert np.array_equal(scores[top], expected) and len(set(top.tolist())) == len(top)
