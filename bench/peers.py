"""qa beside two real peers, txtai's hybrid search and Haystack's BM25 + embedding RRF, on the same questions.

    .venv/bin/python bench/peers.py                        # seeds, SQuAD-300, and eval/dev when present
    .venv/bin/python bench/peers.py --sets seeds,dev --dev ../a/eval/dev ../b/eval/dev   # two halves, merged

Runs in qa's venv. The peers run in their own venv (bench/peers_venv.py, created on first use, ~2 min) as a
worker process (bench/peers_worker.py) that gets the very text qa reads (qa.documents) and returns its top
passages; they are scored here with qa's own rule (qa.evaluation `_hit`: right source, a gold answer inside,
case and quote style ignored), so a peer's 200-word passage and qa's quotation are judged alike, and the
words column shows what each one had to show to win. qa itself runs as `qa eval --json` on the same files;
its quotation length comes from asking the same questions through the library on the same index.

Peers never abstain: their abstain is 0 and false_abstain 0. They have no chat state, so a follow-up is
searched as the last earlier question followed by the follow-up. Sets: seeds (eval/seeds_dev.jsonl over
seeds/), squad (the 300-question sample `qa eval --limit 300` draws from shared/eval/squad-*.json) and dev
(eval/dev/docs with eval/dev/questions/*.jsonl; several --dev folders are merged into one corpus).
Prints a table, then one JSON line per set and method.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

from corpus import shared_dir  # noqa: E402
import peers_venv  # noqa: E402
from qa.evaluation import Question, Scores, _hit, load_jsonl, load_squad, sample, table  # noqa: E402

SQUAD_LIMIT = 300
TOP_K = 3


@dataclass(frozen=True)
class Corpus:
    """One question set over one folder of documents, and the `qa eval` arguments that score the same."""

    name: str
    seeds: Path
    questions: list[Question]
    eval_args: list[str]


@dataclass(frozen=True)
class Passage:
    """A peer's retrieved passage, shaped as qa's scorer reads a citation."""

    source: str
    quote: str


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)



def _merge_dev(folders: list[Path], docs: Path) -> tuple[Path, list[Path]]:
    """One docs folder from several dev corpora (the halves written on separate branches), and their question files."""
    docs.mkdir(parents=True, exist_ok=True)
    files = []
    for folder in folders:
        if not (folder / "docs").is_dir():
            continue
        for doc in sorted((folder / "docs").iterdir()):
            if (docs / doc.name).exists():
                raise SystemExit(f"peers.py: {doc.name} is in two dev corpora; give each document once")
            shutil.copyfile(doc, docs / doc.name)
        files += sorted((folder / "questions").glob("*.jsonl"))
    return docs, files


def corpora(names: list[str], dev: list[Path], squad: Path, work: Path) -> list[Corpus]:
    out = []
    for name in names:
        if name == "seeds":
            files = [ROOT / "eval" / "seeds_dev.jsonl"]
            out.append(Corpus(name, ROOT / "seeds", load_jsonl(files[0]), [*map(str, files), "--seeds", str(ROOT / "seeds")]))
        elif name == "squad":
            files = sorted(squad.glob("squad-*.json")) if squad else []
            if not files:
                log(f"squad: no squad-*.json in {squad}; skipped (give --squad)")
                continue
            questions = sample(load_squad(files, work / "squad-seeds"), SQUAD_LIMIT)
            out.append(Corpus(name, work / "squad-seeds", questions, [*map(str, files), "--limit", str(SQUAD_LIMIT)]))
        elif name == "dev":
            docs, files = _merge_dev(dev, work / "dev-docs")
            if not files:
                log(f"dev: no docs/ and questions/*.jsonl in {', '.join(map(str, dev))}; skipped (give --dev)")
                continue
            questions = [q for f in files for q in load_jsonl(f)]
            out.append(Corpus(name, docs, questions, [*map(str, files), "--seeds", str(docs)]))
        else:
            raise SystemExit(f"peers.py: unknown set {name!r}; choose from seeds, squad, dev")
    return out


def _env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def run_qa(corpus: Corpus, work: Path) -> dict:
    """qa's own `qa eval --json` row, plus its mean words in the first quotation, from the same index."""
    from qa import Settings
    from qa.assistant import Assistant

    index = work / f"index-{corpus.name}"
    args = corpus.eval_args if corpus.name == "squad" else [*corpus.eval_args, "--index", str(index)]
    done = subprocess.run([sys.executable, "-m", "qa", "eval", "--json", *args], capture_output=True, text=True, env=_env(), cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"peers.py: qa eval failed: {done.stderr.strip()[-400:]}")
    row = next(r for r in map(json.loads, done.stdout.split("\n")[:-1]) if r["method"] == "qa")  # not a per-shape row
    assistant = Assistant(Settings.from_env(seeds_dir=corpus.seeds, index_dir=index), warn=lambda _: None)
    assistant.index()  # a no-op where `qa eval` built this index; the SQuAD one it built in a temporary folder
    words, hits = [], 0
    for q in corpus.questions:
        answer = assistant.ask(q.q, q.history)
        if answer.citations and not q.unanswerable:  # as for the peers: answerable questions only
            words.append(len(answer.citations[0].quote.split()))
            hits += _hit(answer.citations[0], q)
    row["words@1"] = round(float(statistics.mean(words)), 1) if words else 0.0
    answerable = sum(not q.unanswerable for q in corpus.questions)
    if answerable and abs(hits / answerable - row["hit@1"]) > 0.002:
        log(f"{corpus.name}: qa eval's hit@1 {row['hit@1']} differs from this pass's {hits / answerable:.3f}")
    return row


def run_peers(python: Path, corpus: Corpus, work: Path) -> list[dict]:
    """Hand the documents (as qa reads them) and the queries to the peers' worker; score what it returns."""
    from qa import Settings
    from qa.documents import load_documents

    documents = load_documents(corpus.seeds, Settings().max_file_bytes, lambda m: log(f"{corpus.name}: {m}"))
    texts = {d.source: d.text for d in documents}
    queries = [" ".join([*q.history[-1:], q.q]) for q in corpus.questions]
    job = work / f"job-{corpus.name}.json"
    job.write_text(json.dumps({"documents": [{"source": d.source, "text": d.text} for d in documents], "queries": queries, "k": TOP_K}))
    with open(work / f"peers-{corpus.name}.log", "w") as err:
        done = subprocess.run([str(python), str(HERE / "peers_worker.py"), str(job)], stdout=subprocess.PIPE, stderr=err, text=True, env=_env(), cwd=ROOT)
    if done.returncode:
        tail = (work / f"peers-{corpus.name}.log").read_text().strip().splitlines()[-3:]
        raise SystemExit(f"peers.py: the peers worker failed on {corpus.name}: {' | '.join(tail)}")
    rows = []
    for line in done.stdout.splitlines():
        if not line.startswith("{"):
            continue
        out = json.loads(line)
        rows.append(score(out, corpus.questions, texts))
    return rows


def score(out: dict, questions: list[Question], texts: dict[str, str]) -> dict:
    scores, words = Scores(out["method"]), []
    for q, result in zip(questions, out["results"], strict=True):
        top = [Passage(p["source"], p["text"]) for p in result["top"]]
        scores.questions += 1
        scores.ms.append(result["ms"])
        scores.non_verbatim += sum(p.quote not in texts.get(p.source, "") for p in top)
        if q.unanswerable:
            continue  # a peer always answers: nothing abstained
        scores.answerable += 1
        scores.hit1 += bool(top) and _hit(top[0], q)
        scores.hit3 += any(_hit(p, q) for p in top)
        scores.source1 += bool(top) and (q.source is None or top[0].source == q.source)
        if top:
            words.append(len(top[0].quote.split()))
    row = scores.row()
    row["words@1"] = round(float(statistics.mean(words)), 1) if words else 0.0
    row["index_s"] = out["index_s"]
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="seeds,squad,dev", help="comma-separated: seeds, squad, dev (default all)")
    p.add_argument("--dev", type=Path, nargs="+", default=[ROOT / "eval" / "dev"], help="dev corpus folders (docs/, questions/), merged")
    p.add_argument("--squad", type=Path, default=shared_dir() / "eval", help="folder of squad-*.json (default shared/eval)")
    args = p.parse_args()
    started = time.perf_counter()
    python = peers_venv.ensure(log)
    rows = []
    with tempfile.TemporaryDirectory(prefix="qa-peers-") as tmp:
        work = Path(tmp)
        for corpus in corpora(args.sets.split(","), args.dev, args.squad, work):
            log(f"{corpus.name}: {len(corpus.questions)} questions; qa eval")
            rows.append({"set": corpus.name, **run_qa(corpus, work)})
            log(f"{corpus.name}: txtai and Haystack")
            rows += [{"set": corpus.name, **r} for r in run_peers(python, corpus, work)]
    columns = ("set", "method", "questions", "hit@1", "hit@3", "source@1", "abstain", "false_abstain", "words@1", "non_verbatim", "ms_per_question")
    print(table([{c: r.get(c) for c in columns} for r in rows]))
    for r in rows:
        print(json.dumps(r))
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
