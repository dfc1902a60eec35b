"""`qa eval`'s figures: what counts as a hit, the marked phrase's SQuAD scores, and the breakdown per shape."""

import json

from qa.evaluation import Question, evaluate, load_jsonl, phrase_match


def test_phrase_match_scores_as_squad_does():
    assert phrase_match("the Denver Broncos", ("Denver Broncos", "Broncos")) == (1.0, 1.0)
    em, f1 = phrase_match("Denver", ("Denver Broncos",))
    assert em == 0.0 and round(f1, 3) == 0.667
    assert phrase_match("Carolina", ("Denver Broncos",)) == (0.0, 0.0)


def test_question_lines_keep_their_shape_and_history(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"q": "Who chairs it?", "answers": ["Ines"], "source": "a.txt", "shape": "line"},
        {"q": "Since when?", "answers": ["2019"], "source": "a.txt", "history": ["Who chairs it?"], "shape": "followup"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    first, second = load_jsonl(path)
    assert first.shape == "line" and second.history == ("Who chairs it?",) and second.shape == "followup"


def test_evaluate_reports_quote_length_and_each_shape(toy):
    questions = [
        Question("How many eggs does the queen lay a day?", ("1,500",), "notes/bees.md", shape="plain"),
        Question("How high is Mount Etna?", ("3,357 metres",), "volcano.txt", shape="plain"),
        Question("What does the tea shop charge for a scone?", (), None, unanswerable=True, shape="unanswerable"),
    ]
    scores = evaluate(toy, questions)
    row = scores.row()
    assert row["questions"] == 3 and row["hit@1"] == 1.0 and row["non_verbatim"] == 0
    assert 3 <= row["words"] <= 30
    shapes = {r["method"]: r for r in scores.shape_rows()}
    assert set(shapes) == {"qa:plain", "qa:unanswerable"}
    assert shapes["qa:plain"]["questions"] == 2 and shapes["qa:unanswerable"]["hit@1"] == 0.0
