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


def _while_the_model_is_held(encode, batches: list[list[str]]) -> tuple[SharedCalls, list]:
    """SharedCalls(encode) with its first call held until every one of `batches` (each asked from its own
    thread) is waiting; returns it and what each caller got back: vectors, or the error raised."""
    busy, free = threading.Event(), threading.Event()

    def held(texts: list[str]) -> np.ndarray:
        if not busy.is_set():
            busy.set()
            free.wait(30)
        return encode(texts)

    shared = SharedCalls(held)
    results: list = [None] * len(batches)

    def ask(i: int) -> None:
        try:
            results[i] = shared(batches[i])
        except Exception as e:  # noqa: BLE001 — the test inspects it
            results[i] = e

    first = threading.Thread(target=lambda: shared(["hold the model"]))
    first.start()
    assert busy.wait(30)
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(shared._waiting) < len(batches) and time.monotonic() < deadline:
        time.sleep(0.01)
    free.set()
    for t in [first, *threads]:
        t.join(30)
    assert not any(t.is_alive() for t in [first, *threads]), "a caller is still waiting"
    return shared, results


def test_questions_that_arrive_while_the_model_is_busy_share_its_next_call(embedder):
    questions = [["How high is Etna?"], ["Who is the mayor?", "an earlier question"], ["How many bees?"], ["When?"]]
    shared, results = _while_the_model_is_held(embedder.encode_query, questions)
    assert shared.calls == 2  # the held call, then one for all four
    for texts, got in zip(questions, results, strict=True):
        assert isinstance(got, np.ndarray) and got.shape == (len(texts), embedder.dimension)
        assert np.allclose(got, embedder.encode_query(texts), atol=1e-5)  # padding in a batch changes nothing


def test_a_failure_in_a_shared_call_reaches_only_the_caller_that_caused_it():
    def encode(texts: list[str]) -> np.ndarray:
        if "bad" in texts:
            raise RuntimeError("model failed on 'bad'")
        return np.ones((len(texts), 2), dtype=np.float32)

    shared, results = _while_the_model_is_held(encode, [["fine"], ["bad"], ["also", "fine"]])
    assert isinstance(results[1], RuntimeError) and "bad" in str(results[1])
    assert results[0].shape == (1, 2) and results[2].shape == (2, 2)
    assert shared(["fine again"]).shape == (1, 2)


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
