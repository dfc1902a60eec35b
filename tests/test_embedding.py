"""Another model folder is honoured as its config says: its query and document prompts, on both backends."""

import json
import shutil
import threading
import time

import numpy as np
import pytest

from qa.embedding import Embedder, SharedCalls, model_path, onnx_path


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_model_with_prompts_gets_them_on_questions_and_documents(tmp_path, backend):
    folder = tmp_path / "prompted"
    shutil.copytree(model_path(""), folder)
    config = folder / "config_sentence_transformers.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), prompts={"query": "query: ", "document": "passage: "})))
    if backend == "onnx":
        (folder / "onnx").mkdir()
        shutil.copy(onnx_path(""), folder / "onnx" / "model.onnx")
    prompted, plain = Embedder(str(folder), backend=backend), Embedder(backend=backend)
    question, passage = "How high is Mount Etna?", "Mount Etna is about 3,357 metres high."
    assert np.allclose(prompted.encode_query([question]), plain.encode_query(["query: " + question]), atol=1e-5)
    assert np.allclose(prompted.encode([passage]), plain.encode(["passage: " + passage]), atol=1e-5)
    assert not np.allclose(prompted.encode([passage]), plain.encode([passage]), atol=1e-3)
    assert prompted.word_pieces([passage]) == plain.word_pieces(["passage: " + passage])


def _in_threads(fn, args: list) -> list:
    """fn(arg) for every arg, each in its own thread; results (or raised errors) in order."""
    out: list = [None] * len(args)

    def run(i: int) -> None:
        try:
            out[i] = fn(args[i])
        except Exception as e:  # noqa: BLE001 — the test inspects it
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_questions_that_arrive_while_the_model_is_busy_share_its_next_call(embedder):
    busy, free = threading.Event(), threading.Event()

    def encode(texts: list[str]) -> np.ndarray:
        if not busy.is_set():  # the first call holds the model until every other question is waiting
            busy.set()
            free.wait(30)
        return embedder.encode_query(texts)

    shared = SharedCalls(encode)
    questions = [["How high is Etna?"], ["Who is the mayor?", "an earlier question"], ["How many bees?"], ["When?"]]
    first = threading.Thread(target=lambda: shared(["warm"]))
    first.start()
    busy.wait(30)
    results: list = []
    waiting = threading.Thread(target=lambda: results.extend(_in_threads(shared, questions)))
    waiting.start()
    while len(shared._waiting) < len(questions) and waiting.is_alive():
        time.sleep(0.01)
    free.set()
    first.join(30)
    waiting.join(30)
    assert shared.calls == 2  # the held call, then one for all four
    for texts, got in zip(questions, results):
        assert got.shape == (len(texts), embedder.dimension)
        assert np.allclose(got, embedder.encode_query(texts), atol=1e-5)  # padding in a batch changes nothing


def test_a_failed_model_call_raises_in_its_caller_and_the_next_call_works():
    def encode(texts: list[str]) -> np.ndarray:
        if "bad" in texts:
            raise RuntimeError("model failed")
        return np.ones((len(texts), 2), dtype=np.float32)

    shared = SharedCalls(encode)
    with pytest.raises(RuntimeError, match="model failed"):
        shared(["bad", "x"])
    assert shared(["fine"]).shape == (1, 2)


def test_traced_questions_get_the_same_vectors_as_sentence_transformers(embedder):
    model = embedder._model
    questions = ["Who?", "How high is Mount Etna, the volcano on the east coast of Sicily?", "word " * 400]  # padded, truncated
    traced = embedder.encode_query(questions)
    assert model._graph, "the packaged MiniLM traces"
    assert np.allclose(traced, model._eager_query(questions), atol=1e-5)
    assert np.allclose(np.linalg.norm(traced, axis=1), 1.0, atol=1e-5)


def test_a_model_that_cannot_be_traced_answers_eagerly(monkeypatch):
    import torch

    def fail(*args, **kwargs):
        raise RuntimeError("not traceable")

    monkeypatch.setattr(torch.jit, "trace", fail)
    fresh = Embedder()
    vectors = fresh.encode_query(["How high is Mount Etna?"])
    assert fresh._model._graph is False
    assert np.allclose(vectors, fresh._model._eager_query(["How high is Mount Etna?"]), atol=1e-6)
