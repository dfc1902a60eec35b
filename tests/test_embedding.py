"""Another model folder is honoured as its config says: its query and document prompts, on both backends."""

import json
import shutil

import numpy as np
import pytest

from qa.embedding import Embedder, model_path, onnx_path


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
