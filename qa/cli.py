"""qa index / ask / eval / serve: a thin shell over Assistant. Heavy libraries load only when a command needs them."""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from .config import Settings
from .errors import QAError


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    return Settings.from_env(seeds_dir=getattr(args, "seeds", None), index_dir=getattr(args, "index", None), **extra)


def _progress_bar(desc: str):
    """A tqdm bar fed by Assistant.index's progress(done, total) calls."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="text", file=sys.stderr, disable=None)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def _build(assistant, quiet: bool = False):
    bar, update = _progress_bar("embedding")
    try:
        report = assistant.index(None if quiet else update)
    finally:
        bar.close()
    return report


def cmd_index(args: argparse.Namespace) -> int:
    from .assistant import Assistant

    assistant = Assistant(_settings(args))
    if args.watch:
        return _watch(assistant)
    report = _build(assistant, quiet=args.json)
    if args.json:
        print(json.dumps({k: getattr(report, k) for k in ("files", "added", "changed", "removed", "unchanged", "chunks_embedded", "seconds")}))
    else:
        print(report.summary(detail=True))
    return 0


def _watch(assistant) -> int:
    import threading

    print(f"watching {assistant.settings.seeds_dir} (Ctrl-C to stop)", file=sys.stderr)

    def report(r) -> None:
        print(f"rebuilt: {r.files} files, {r.added} added, {r.changed} changed, {r.removed} removed, {r.seconds:.1f} s", flush=True)

    assistant.watch(report, threading.Event())
    return 0


#: C0 controls but tab (ESC among them), DEL, C1 controls, and the bidi embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(text: str) -> str:
    r"""Document text made safe for a terminal: ESC, ^A or U+202E escaped as \x1b, \x01, \u202e, so a
    document cannot recolour, move or reorder what qa prints. JSON output stays verbatim.

    >>> _shown("\x1b[31mred\u202e")
    '\\x1b[31mred\\u202e'
    """
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def _print_answer(answer) -> None:
    if answer.answered:
        for n, c in enumerate(answer.citations, 1):
            print(f"[{n}] “{_shown(c.quote)}”\n    — {_shown(c.source)}, line {c.line} (score {c.score:.2f})")
        print(f"confidence {answer.confidence:.2f}")
    else:
        print(f"{_shown(answer.answer)} (confidence {answer.confidence:.2f})")
        if answer.passages:
            print("Closest passages:")
            for p in answer.passages:
                snippet = " ".join(p.text.split())
                print(f"  - {_shown(p.source)}, line {p.line}: {_shown(snippet[:240])}{'…' if len(snippet) > 240 else ''}")


def _text(value: object, name: str, argv: bool = False) -> str:
    """`value` as a question text, or a QAError naming `name`: a lone surrogate ("\\ud800" in JSON, or a
    non-UTF-8 byte such as \\xff in argv, which Python reads as U+DCFF) cannot be encoded for the model."""
    if not isinstance(value, str):
        raise QAError(f"{name} must be a string (got {type(value).__name__})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        code = ord(value[e.start])
        what = f"byte 0x{code - 0xDC00:02x} is not UTF-8" if argv and 0xDC80 <= code <= 0xDCFF else f"U+{code:04X} is a lone surrogate"
        raise QAError(f"{name} is not valid text: {what} (character {e.start + 1})") from None
    return value


def cmd_ask(args: argparse.Namespace) -> int:
    from .assistant import Assistant

    assistant = Assistant(_settings(args, top_k=args.k))
    if args.jsonl and args.question:
        raise QAError("give the question as an argument or use --jsonl, not both")
    if not args.jsonl:
        assistant.check_question(_text(args.question or "", "the question", argv=True))
    if args.rebuild:
        _build(assistant, quiet=True)
    sources = [_text(s, "--source", argv=True) for s in args.source] if args.source else None
    assistant.check_sources(sources)
    stale = assistant.staleness()
    if stale:
        assistant.warn(f"seeds/ changed since the index was built ({stale.describe()}); run `qa index` or pass --rebuild")
    if args.jsonl:
        return _ask_jsonl(assistant, sources)
    answer = assistant.ask(args.question, (), sources)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
    else:
        _print_answer(answer)
    return 0


def _ask_jsonl(assistant, sources: list[str] | None = None) -> int:
    """One JSON object in, one out, per line; a bad line gets {"error": ...} and the stream goes on.

    stdin is read as bytes and decoded line by line, so one line that is not UTF-8 costs only that line."""
    for n, raw in enumerate(sys.stdin.buffer, 1):
        if not raw.strip():
            continue
        try:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise QAError(f"line {n} is not UTF-8 (byte {e.start + 1}); send UTF-8 text") from None
            row = json.loads(line)
            if not isinstance(row, dict):
                raise QAError('each line must be a JSON object like {"question": "..."}')
            history = row.get("history") or []
            if not isinstance(history, list):
                raise QAError("history must be a list of earlier questions")
            question = _text(row.get("question", ""), "question")
            history = [_text(h, f"history[{i}]") for i, h in enumerate(history)]
            out = assistant.ask(question, history, sources).to_dict()
        except ValueError as e:
            out = {"error": f"not JSON: {e}"}
        except QAError as e:
            out = {"error": str(e)}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from . import evaluation
    from .assistant import Assistant

    files = [Path(f) for f in args.files]
    for f in files:
        if not f.is_file():
            raise QAError(f"{f} does not exist")
    methods = ["qa"] + (list(evaluation.BASELINES) if args.baseline == "all" else [args.baseline] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        if all(f.suffix == ".json" for f in files):
            seeds, index = Path(tmp) / "seeds", Path(tmp) / "index"
            questions = evaluation.load_squad(files, seeds)
            assistant = Assistant(_settings(args).with_(seeds_dir=seeds, index_dir=index))
            _build(assistant, quiet=True)
        elif all(f.suffix == ".jsonl" for f in files):
            questions = [q for f in files for q in evaluation.load_jsonl(f)]
            assistant = Assistant(_settings(args))
            _build(assistant, quiet=True)  # incremental: a no-op when the index is up to date
        else:
            raise QAError("give either .jsonl question files or SQuAD .json files, not a mix")
        questions = evaluation.sample(questions, args.limit)
        scores = [evaluation.evaluate(assistant, questions, m) for m in methods]
        rows = [s.row() for s in scores] + [r for s in scores for r in s.shape_rows()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(evaluation.table(rows))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .web import read_users, serve

    users = read_users(args.auth, args.auth_file)
    serve(
        _settings(args), host=args.host, port=args.port, share=args.share, watch=args.watch,
        allowed_hosts=args.allowed_host, users=users, mcp=args.mcp,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qa", description="Ask questions of a folder of documents; get verbatim, cited quotations.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seeds", type=Path, help="folder of .txt/.md documents (default: seeds)")
        sp.add_argument("--index", help="index folder, or a postgresql:// URL (default: index)")

    sp = sub.add_parser("index", help="build or update the index from the seeds folder")
    common(sp)
    sp.add_argument("--json", action="store_true", help="print the build report as one JSON object")
    sp.add_argument("--watch", action="store_true", help="stay running and rebuild whenever seeds/ changes")
    sp.set_defaults(run=cmd_index)

    sp = sub.add_parser("ask", help="answer a question from the indexed documents")
    common(sp)
    sp.add_argument("question", nargs="?", help="the question (quote it)")
    sp.add_argument("-k", type=int, default=None, help="citations and passages to show (default 3)")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.add_argument("--jsonl", action="store_true", help='read {"question", "history"} lines on stdin, answer each')
    sp.add_argument("--rebuild", action="store_true", help="bring the index up to date first")
    sp.add_argument("--source", action="append", metavar="FILE", help="search only this indexed file (as `qa index --json` names it); repeatable")
    sp.set_defaults(run=cmd_ask)

    sp = sub.add_parser("eval", help="score answers against a question file (dev JSONL or SQuAD JSON)")
    common(sp)
    sp.add_argument("files", nargs="+", help="seeds_dev.jsonl-style files, or SQuAD .json files (one corpus)")
    sp.add_argument("--baseline", choices=["bm25", "dense", "chunks", "all"], help="also score a simple design, same run")
    sp.add_argument("--limit", type=int, help="a fixed random sample of this many questions")
    sp.add_argument("--json", action="store_true", help="one JSON line per method")
    sp.set_defaults(run=cmd_eval)

    sp = sub.add_parser("serve", help="start the web chat (builds the index if missing or stale)")
    common(sp)
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; any other needs --auth)")
    sp.add_argument("--port", type=int, default=7860)
    sp.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME",
        help="a name the server is reached by (Host header), besides loopback and --host; repeatable",
    )
    sp.add_argument("--share", action="store_true", help="ask Gradio for a public share link (needs --auth)")
    sp.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD", help="a login for the page and API; repeatable")
    sp.add_argument("--auth-file", type=Path, metavar="FILE", help="logins, one user:password per line")
    sp.add_argument("--watch", action="store_true", help="rebuild when seeds/ changes")
    sp.add_argument("--mcp", action="store_true", help="also serve /ask as an MCP tool at /gradio_api/mcp/ for AI assistants")
    sp.set_defaults(run=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except QAError as e:
        print(f"qa: {_shown(str(e))}", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, permissions on the index folder: the previous index is untouched
        print(f"qa: {e.strerror or e}{f': {_shown(str(e.filename))}' if e.filename else ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
