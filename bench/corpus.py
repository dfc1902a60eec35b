"""A deterministic corpus of about N chunks, and questions that it answers, made from shared/ alone.

The corpus is the four seed documents, then the SQuAD paragraphs (one file each), then files of shuffled
recombinations of all their sentences, until the estimated chunk count reaches N. Same N, same files.

    >>> make_corpus(Path("/tmp/c"), 1000)   # 171 files, 166,360 tokens; `qa index` makes 1,164 chunks of them
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

#: tiktoken tokens per chunk of 200 with one sentence of overlap, measured on the seeds (4,764 tokens, 28 chunks).
TOKENS_PER_CHUNK = 170
#: Paragraphs per recombined file, sentences per paragraph.
PARAGRAPHS, SENTENCES = (8, 16), (3, 8)


def shared_dir() -> Path:
    """shared/ beside the clone (as CI lays it out), else /work/shared."""
    here = Path(__file__).resolve().parents[2] / "shared"
    return here if (here / "eval").is_dir() else Path("/work/shared")


def base_documents(shared: Path) -> list[tuple[str, str]]:
    """(file name, text) of the seeds and of every SQuAD paragraph, in a fixed order."""
    docs = [(f"seeds/{p.name}", p.read_text(encoding="utf-8")) for p in sorted((shared / "seeds").glob("*.txt"))]
    for path in sorted((shared / "eval").glob("squad-*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            title = re.sub(r"\W+", "_", article["title"]).strip("_")
            docs += [(f"squad/{title}-{i:03d}.txt", p["context"]) for i, p in enumerate(article["paragraphs"])]
    return docs


def make_corpus(folder: Path, chunks: int, shared: Path | None = None, seed: int = 0) -> dict:
    """Write files into `folder` until they hold about `chunks` chunks; returns what was written."""
    from qa.chunking import Chunker

    shared = shared or shared_dir()
    chunker = Chunker(200, 1)
    folder.mkdir(parents=True, exist_ok=True)
    docs = base_documents(shared)
    pool = [s.text for _, text in docs for s in chunker.sentences(text)]
    rng = random.Random(seed)
    tokens = files = 0
    estimated = 0.0

    def write(name: str, text: str) -> None:
        nonlocal tokens, files, estimated
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        n = chunker.count_tokens([text])[0]
        tokens += n
        files += 1
        estimated += max(1.0, n / TOKENS_PER_CHUNK)

    for name, text in docs:
        if estimated >= chunks:
            break
        write(name, text)
    n = 0
    while estimated < chunks:
        paragraphs = [" ".join(rng.sample(pool, rng.randint(*SENTENCES))) for _ in range(rng.randint(*PARAGRAPHS))]
        write(f"mix/{n // 500:03d}/{n:05d}.txt", "\n\n".join(paragraphs) + "\n")
        n += 1
    return {"files": files, "tokens": tokens, "estimated_chunks": round(estimated), "sentence_pool": len(pool)}


def questions(shared: Path | None = None, count: int = 50, seed: int = 0) -> list[dict]:
    """Questions the corpus answers: every seeds_dev question, then a fixed sample of answerable SQuAD ones."""
    shared = shared or shared_dir()
    out = []
    for line in (shared / "eval" / "seeds_dev.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append({"q": row["q"], "history": row.get("history", [])})
    squad = []
    for path in sorted((shared / "eval").glob("squad-*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for p in article["paragraphs"]:
                squad += [{"q": qa["question"], "history": []} for qa in p["qas"] if not qa.get("is_impossible")]
    out += random.Random(seed).sample(squad, max(0, count - len(out)))
    return out[:count]
