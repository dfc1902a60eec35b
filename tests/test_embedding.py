"""Another model folder is honoured as its config says: its query and document prompts, on both backends."""

import json
import shutil
import threading
import time

import numpy as np
import pytest

from qa.embedding import Embedder, SharedCalls, model_path, onnx_path, token_directions, token_rows


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
    # the prompt's own word pieces ("passage", ":") are in every text, so none of them is a content token
    assert len(prompted.encode_tokens([passage]).tokens[0]) == len(plain.encode_tokens([passage]).tokens[0]) > 0
    assert len(prompted.encode_query_tokens([question]).tokens[0]) == len(plain.encode_query_tokens([question]).tokens[0]) > 0


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_model_that_pools_without_its_prompt_gets_sentence_transformers_own_vectors(tmp_path, backend):
    """Pooling's `include_prompt: false` (instructor-style models): the prompt shapes every piece's vector but is
    left out of the mean; sentence-transformers' own encode is the reference."""
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "prompted"
    shutil.copytree(model_path(""), folder)
    config = folder / "config_sentence_transformers.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), prompts={"query": "Represent the question: ", "document": "passage: "})))
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps(dict(json.loads(pooling.read_text()), include_prompt=False)))
    if backend == "onnx":
        (folder / "onnx").mkdir()
        shutil.copy(onnx_path(""), folder / "onnx" / "model.onnx")
    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    ours = Embedder(str(folder), backend=backend)
    questions = ["How high is Mount Etna?", "Who?"]
    passages = ["Mount Etna is about 3,357 metres high.", "It erupts often."]
    want_q = reference.encode_query(questions, normalize_embeddings=True, convert_to_numpy=True)
    want_p = reference.encode_document(passages, normalize_embeddings=True, convert_to_numpy=True)
    # the packaged ONNX file has int8 weights: its vectors are the float model's to a cosine of about 0.9995,
    # where pooling the prompt too gives 0.85-0.98 on these texts
    floor = 0.99999 if backend == "torch" else 0.998
    for got, want in ((ours.encode_query(questions), want_q), (ours.encode(passages), want_p), (ours.encode_tokens(passages).vectors, want_p)):
        assert ((got * want).sum(axis=1) >= floor).all()
    pooled_prompt = Embedder(backend=backend).encode_query(["Represent the question: " + q for q in questions])
    assert ((pooled_prompt * want_q).sum(axis=1) < 0.99).all()


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


def test_token_vectors_are_the_content_word_pieces_of_the_same_model_call(embedder):
    texts = ["The mayor of Jackson was 34 years old.", "It is, of the.", "Heat-up time: approx. 40 seconds"]
    encoded = embedder.encode_tokens(texts)
    assert np.allclose(encoded.vectors, embedder.encode(texts), atol=1e-5)  # the same vectors as without tokens
    st = embedder._model.st
    kept = [["mayor", "jackson", "34", "years", "old"], [], ["heat", "up", "time", "approx", "40", "seconds"]]
    for text, tokens, pieces in zip(texts, encoded.tokens, kept, strict=True):
        assert tokens.dtype == np.int8 and tokens.shape == (len(pieces), embedder.dimension)
        # each row is the transformer's own output at that word piece (before pooling), rounded to int8
        ids = st.tokenizer(text)["input_ids"]
        at = [i for i, piece in enumerate(st.tokenizer.convert_ids_to_tokens(ids)) if piece in pieces]
        assert [st.tokenizer.convert_ids_to_tokens(ids)[i] for i in at] == pieces
        hidden = st.encode([text], output_value="token_embeddings")[0].numpy()[at]
        hidden /= np.linalg.norm(hidden, axis=1, keepdims=True)
        assert (np.sum(token_directions(tokens) * hidden, axis=1) > 0.999).all()
    asked = embedder.encode_query_tokens(texts[:1])  # MiniLM has no query prompt: a question's are the same
    assert np.sum(token_directions(asked.tokens[0]) * token_directions(encoded.tokens[0]), axis=1).min() > 0.999


def test_int8_token_rows_keep_each_vector_s_direction():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 384)).astype(np.float32)
    rows = token_rows(vectors)
    assert rows.dtype == np.int8 and np.abs(rows).max(axis=1).min() == 127
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.sum(token_directions(rows) * unit, axis=1).min() > 0.999
    assert token_rows(np.zeros((0, 384))).shape == (0, 384)


def test_the_onnx_backend_gives_the_torch_backend_s_token_vectors(embedder):
    texts = ["The queen lays about 1,500 eggs a day.", "| Water tank | 1.8 L |"]
    torch_tokens, onnx_tokens = embedder.encode_tokens(texts).tokens, Embedder(backend="onnx").encode_tokens(texts).tokens
    for a, b in zip(torch_tokens, onnx_tokens, strict=True):
        assert a.shape == b.shape and len(a)
        assert np.sum(token_directions(a) * token_directions(b), axis=1).mean() > 0.97  # an int8 export of the same model


def test_questions_that_share_a_model_call_each_get_their_own_token_vectors(embedder):
    questions = [["How high is Etna?"], ["Who is the mayor?", "an earlier question"], ["When?"]]
    shared, results = _while_the_model_is_held(embedder.encode_query_tokens, questions)
    assert shared.calls == 2
    for texts, got in zip(questions, results, strict=True):
        alone = embedder.encode_query_tokens(texts)
        assert len(got.tokens) == len(texts)
        for mine, solo in zip(got.tokens, alone.tokens, strict=True):
            assert mine.shape == solo.shape
            assert not len(mine) or np.sum(token_directions(mine) * token_directions(solo), axis=1).min() > 0.999
