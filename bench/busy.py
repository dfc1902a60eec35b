"""The chat while the machine works: warm-answer p50/p95 quiet, during a 5,000-chunk build in the same process,
and beside an unrelated busy process, each beside the quiet figures of the same round.

    .venv/bin/python bench/busy.py              # 3 rounds of both variants, ~15 min on 2 cores
    .venv/bin/python bench/bench.py --load      # the same, from the main benchmark

Two variants, each condition in a fresh process:
  - "budgets": Settings as shipped: a question encodes on `query_threads`, a build's batches on their own
    thread at `build_nice`, Python's lock handed over every `build_switch_interval` during a build;
  - "no budgets": QA_QUERY_THREADS=0 QA_BUILD_NICE=0 QA_BUILD_SWITCH_INTERVAL=0.005: every encode on every core,
    the build at the chat's priority, Python's default hand-over (the behaviour before the budgets).
Conditions:
  - quiet: one user asking the seeds questions one after another (10 ms apart) for --seconds;
  - build: the same, while the `--watch` rebuild of `qa serve --watch` (Assistant.watch on its own thread, as
    serve starts it) indexes a folder of ~5,000 chunks moved into seeds/; answers are timed until the build
    ends or --build-seconds pass, and each is tagged with the build's step (splitting or embedding);
  - busy: the same, beside another Python process multiplying matrices with torch on every core.
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
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

from measure import percentile  # noqa: E402

#: The unrelated busy process: torch matrix products on every core, as a training or analysis job would be.
BUSY = "import torch\na = torch.randn(800, 800)\nwhile True:\n    a @ a\n"
VARIANTS = {"budgets": {}, "no budgets": {"QA_QUERY_THREADS": "0", "QA_BUILD_NICE": "0", "QA_BUILD_SWITCH_INTERVAL": "0.005"}}
CONDITIONS = ("quiet", "build", "busy")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the worker: one condition, in a process of its own ------------------------------------------------------


def _ask_until(assistant, questions: list[str], stop, phase=lambda: "", pause: float = 0.01) -> dict[str, list[float]]:
    """Ask the questions in turn until stop() says so; seconds per answer, by the phase each was asked in."""
    times: dict[str, list[float]] = {}
    i = 0
    while not stop():
        tag = phase()
        t = time.perf_counter()
        assistant.ask(questions[i % len(questions)])
        times.setdefault(tag, []).append(time.perf_counter() - t)
        i += 1
        time.sleep(pause)
    return times


def worker(a: dict) -> dict:
    from qa import Settings
    from qa.assistant import Assistant

    folder = Path(a["folder"])
    assistant = Assistant(Settings.from_env(seeds_dir=folder / "seeds", index_dir=folder / "index"), warn=lambda _: None)
    questions = json.loads(Path(a["questions"]).read_text())
    for q in questions * 2:  # warm: the model, its trace, the index
        assistant.ask(q)
    out: dict = {"query_threads": assistant.embedder.query_threads, "build_nice": assistant.embedder.build_nice}
    if a["condition"] == "quiet":
        end = time.perf_counter() + a["seconds"]
        out["times"] = _ask_until(assistant, questions, lambda: time.perf_counter() > end)
    elif a["condition"] == "busy":
        busy = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            time.sleep(2)  # its threads are up and multiplying
            end = time.perf_counter() + a["seconds"]
            out["times"] = _ask_until(assistant, questions, lambda: time.perf_counter() > end)
        finally:
            busy.kill()
            busy.wait()
    else:
        out.update(_during_build(assistant, questions, folder, a))
    return out


def _during_build(assistant, questions: list[str], folder: Path, a: dict) -> dict:
    """Answers while `qa serve --watch`'s rebuild indexes the staged corpus, moved into seeds/ at once."""
    step, built = ["splitting"], threading.Event()
    reports: list = []
    encode = assistant.embedder.encode

    def embedding(texts, batch_size=64, progress=None):
        step[0] = "embedding"
        return encode(texts, batch_size, progress)

    assistant.embedder.encode = embedding

    def rebuilt(report) -> None:
        reports.append(report)
        built.set()

    watching = threading.Thread(target=assistant.watch, args=(rebuilt, threading.Event(), 0.5), name="qa-watch", daemon=True)
    watching.start()
    time.sleep(1.5)  # its first look at seeds/ finds the index up to date
    started = time.perf_counter()
    os.rename(folder / "staged", folder / "seeds" / "big")
    end = started + a["build_seconds"]
    times = _ask_until(assistant, questions, lambda: built.is_set() or time.perf_counter() > end, lambda: step[0])
    out = {"times": times, "build_done": built.is_set(), "asked_for_s": round(time.perf_counter() - started, 1)}
    if reports:
        r = reports[0]
        out.update(build_s=r.seconds, chunks_embedded=r.chunks_embedded, texts_embedded=r.chunks_embedded + r.sentences_embedded)
    return out


# -- the parent: corpora, rounds, table ----------------------------------------------------------------------


def _run(args: list[str], env: dict, log_file: Path, timeout: float) -> dict:
    with open(log_file, "a") as err:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=ROOT, timeout=timeout)
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode or not lines:
        return {"error": f"exited {done.returncode}; see {log_file}"}
    return json.loads(lines[-1])


def _figures(times: dict[str, list[float]]) -> dict:
    every = [t for ts in times.values() for t in ts]
    out = {"answers": len(every), "p50_ms": round(1000 * percentile(every, 50), 1), "p95_ms": round(1000 * percentile(every, 95), 1)}
    if len(times) > 1 or "" not in times:
        out["by_step"] = {k: {"answers": len(v), "p50_ms": round(1000 * percentile(v, 50), 1), "p95_ms": round(1000 * percentile(v, 95), 1)} for k, v in times.items()}
    return out


def prepare(work: Path, chunks: int) -> tuple[Path, Path, Path]:
    """The chat's folder (seeds/ and its index), the ~`chunks` corpus to build, and the questions file."""
    import corpus

    chat = work / "chat"
    shutil.copytree(ROOT / "seeds", chat / "seeds")
    big = work / "big"
    log(f"corpus of ~{chunks} chunks: {corpus.make_corpus(big, chunks)}")
    questions = work / "questions.json"
    questions.write_text(json.dumps([q["q"] for q in corpus.questions(count=14)]))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "qa", "index", "--seeds", str(chat / "seeds"), "--index", str(chat / "index"), "--json"],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"busy.py: could not index the chat's seeds: {done.stderr.strip()[-300:]}")
    return chat, big, questions


def condition(work: Path, chat: Path, big: Path, questions: Path, variant: str, name: str, args) -> dict:
    run = work / f"run-{time.time_ns()}"
    shutil.copytree(chat, run)
    if name == "build":
        shutil.copytree(big, run / "staged")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), **VARIANTS[variant])
    job = {"folder": str(run), "questions": str(questions), "condition": name, "seconds": args.seconds, "build_seconds": args.build_seconds}
    out = _run([sys.executable, str(Path(__file__).resolve()), "worker", json.dumps(job)], env, work / "workers.log", args.build_seconds + 600)
    shutil.rmtree(run, ignore_errors=True)
    if "times" in out:
        out.update(_figures(out.pop("times")))
    return out


def table(rounds: list[dict]) -> str:
    lines = [
        "warm answer, ms (p50 / p95) and ratio to quiet in the same round",
        f"{'variant':<11} {'round':>5} | {'quiet p50/p95':>14} | {'during build p50/p95':>21} {'x quiet':>11} | {'beside busy p50/p95':>20} {'x quiet':>11}",
    ]
    for r in rounds:
        q = r["quiet"]
        cells = [f"{r['variant']:<11} {r['round']:>5} | {_pair(q):>14}"]
        for name in ("build", "busy"):
            c = r[name]
            ratio = f"{c['p50_ms'] / q['p50_ms']:.2f}/{c['p95_ms'] / q['p95_ms']:.2f}" if "p50_ms" in c and "p50_ms" in q else "-"
            width = 21 if name == "build" else 20
            cells.append(f"{_pair(c):>{width}} {ratio:>11}")
        lines.append(" | ".join(cells))
    lines.append("")
    lines.append("during build, by step (answers, p50/p95 ms); build: seconds taken or 'unfinished' at the window's end")
    for r in rounds:
        b = r["build"]
        steps = ", ".join(f"{k} {v['answers']} {v['p50_ms']:.0f}/{v['p95_ms']:.0f}" for k, v in b.get("by_step", {}).items())
        done = f"{b['build_s']:.0f} s, {b.get('texts_embedded', 0)} texts" if b.get("build_done") else f"unfinished after {b.get('asked_for_s', '?')} s"
        lines.append(f"{r['variant']:<11} {r['round']:>5} | {steps} | build {done}")
    return "\n".join(lines)


def _pair(c: dict) -> str:
    return f"{c['p50_ms']:.0f} / {c['p95_ms']:.0f}" if "p50_ms" in c else c.get("error", "-")[:20]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds of every variant and condition, interleaved")
    p.add_argument("--seconds", type=float, default=20, help="asking time of the quiet and busy conditions")
    p.add_argument("--build-seconds", type=float, default=90, help="longest asking time during the build")
    p.add_argument("--chunks", type=int, default=5000, help="size of the corpus built during the build condition")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated from: " + ", ".join(VARIANTS))
    p.add_argument("--work", type=Path, help="keep corpora and logs here (default: a temp folder, removed)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="qa-busy-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        chat, big, questions = prepare(work, args.chunks)
        rounds = []
        for n in range(1, args.rounds + 1):
            for variant in args.variants.split(","):
                row = {"variant": variant, "round": n}
                for name in CONDITIONS:
                    log(f"round {n}, {variant}: {name}")
                    row[name] = condition(work, chat, big, questions, variant, name, args)
                rounds.append(row)
        print(table(rounds))
        print(json.dumps({"busy": rounds}))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "worker":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        print(json.dumps(worker(json.loads(sys.argv[2]))), flush=True)
        os._exit(0)  # an unfinished build's thread is not waited for
    sys.exit(main())
