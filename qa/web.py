"""The Gradio chat and its /ask API: a thin shell over Assistant.

Every piece of document text reaches the page through `html.escape`, and the Chatbot renders our HTML without
Markdown or LaTeX, so a document holding `<script>`, `<img onerror=...>` or `[a](link)` shows as plain text.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime
from html import escape

import gradio as gr

from .config import Settings
from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, QAError
from .types import Answer, Citation, IndexReport, Passage

#: Questions answered at the same time (per kind of event); the rest wait in the queue. Those that meet at the
#: model share one call (Embedder.encode_query), so more at once is cheaper per question: 20 users got 59
#: answers/s with 8, 80/s with 16, 72/s with 32 (20 s runs on seeds).
ASK_CONCURRENCY = 16
#: Characters of an over-long question echoed back in the chat.
ECHO_CHARS = 300

CSS = """
.qa-title { margin: 0; }
.qa-intro { margin: .2em 0 0; color: var(--body-text-color-subdued); }
.qa-answer { line-height: 1.5; }
.qa-answer blockquote { margin: 0 0 .25em; padding: .1em .8em; border-left: 3px solid var(--color-accent); font-size: 1.05em; }
.qa-cite + .qa-cite { margin-top: .9em; }
.qa-source { font-size: .88em; color: var(--body-text-color-subdued); margin-left: .9em; }
.qa-source code { font-size: .95em; }
.qa-answer details { margin: .3em 0 0 .9em; }
.qa-answer summary { cursor: pointer; font-size: .88em; color: var(--link-text-color); }
.qa-context { white-space: pre-wrap; font-size: .9em; margin-top: .3em; padding: .5em .7em; border-radius: 6px;
  background: var(--background-fill-secondary); max-height: 28em; overflow-y: auto; }
.qa-context mark { background: #fde68a; color: #1f2937; padding: 0 .1em; border-radius: 2px; }
.qa-meta { font-size: .8em; color: var(--body-text-color-subdued); margin-top: .6em; }
.qa-none { font-weight: 600; }
.qa-label { font-size: .88em; font-weight: 600; margin-top: .6em; color: var(--body-text-color-subdued); }
.qa-warn { color: #b45309; }
.qa-index table { width: 100%; font-size: .88em; border-collapse: collapse; border: none; }
.qa-index tr, .qa-index th, .qa-index td { border: none; border-bottom: 1px solid var(--border-color-primary); padding: .2em .3em;
  text-align: left; overflow-wrap: anywhere; background: none; }
.qa-index .n { text-align: right; white-space: nowrap; }
"""


# -- rendering: Answer -> HTML, every document string escaped ------------------------------------------------


def answer_html(answer: Answer) -> str:
    """An answer as quotations with numbered sources, or an honest 'no' with the closest passages."""
    if answer.answered:
        body = "".join(_citation_html(n, c) for n, c in enumerate(answer.citations, 1))
    else:
        closest = "".join(_passage_html(p) for p in answer.passages)
        body = f'<p class="qa-none">{escape(answer.answer)}</p>'
        if closest:
            body += f'<div class="qa-label">Closest passages (not an answer)</div>{closest}'
    return f'<div class="qa-answer">{body}<div class="qa-meta">confidence {answer.confidence:.2f}</div></div>'


def _citation_html(n: int, c: Citation) -> str:
    quote = _marked(c.quote, c.start, c.answer_span)
    passage = ""
    if c.context:
        a, b = c.start - c.context_start, c.end - c.context_start
        shown = f"{escape(c.context[:a])}<mark>{quote}</mark>{escape(c.context[b:])}"
        passage = f'<details><summary>Show the passage</summary><div class="qa-context">{shown}</div></details>'
    where = f"page {c.page}, line {c.line}" if c.page else f"line {c.line}"
    source = f'<div class="qa-source">[{n}] <code>{escape(c.source)}</code>, {where}</div>'
    return f'<div class="qa-cite"><blockquote>“{quote}”</blockquote>{source}{passage}</div>'


def _marked(text: str, offset: int, span: tuple[int, int] | None) -> str:
    """`text` (found at `offset` in its file) escaped, with the file span `span` in bold.

    >>> _marked("It is 3,357 metres high.", 100, (106, 111))
    'It is <b>3,357</b> metres high.'
    """
    if not span:
        return escape(text)
    a, b = max(span[0] - offset, 0), min(span[1] - offset, len(text))
    return f"{escape(text[:a])}<b>{escape(text[a:b])}</b>{escape(text[b:])}"


def _passage_html(p: Passage) -> str:
    preview = " ".join(p.text.split())
    preview = preview[:90] + ("…" if len(preview) > 90 else "")
    summary = f"<code>{escape(p.source)}</code>, line {p.line}: {escape(preview)}"
    return f'<details><summary>{summary}</summary><div class="qa-context">{escape(p.text)}</div></details>'


def _question_html(question: str) -> str:
    """The user's own words, escaped too; a pasted book is echoed in part."""
    if len(question) <= ECHO_CHARS:
        return escape(question)
    return f"{escape(question[:ECHO_CHARS])}… <i>({len(question):,} characters)</i>"


def index_html(assistant) -> str:
    """The side panel: what is indexed, how old the build is, and whether seeds/ has moved on since."""
    try:
        status = assistant.status()
    except QAError as e:
        return f'<div class="qa-index"><p class="qa-warn">{escape(str(e))}</p></div>'
    index, stale = status.index, status.stale
    rows = "".join(f'<tr><td>{escape(d.source)}</td><td class="n">{d.chunks}</td></tr>' for d in index.documents)
    html = (
        f"<p><b>{len(index.documents)} documents</b>, {index.chunks} chunks<br>built {_age(index.built_at)}</p>"
        f"<table><tr><th>document</th><th class='n'>chunks</th></tr>{rows}</table>"
    )
    if index.skipped:
        html += f'<p class="qa-warn">Not readable, skipped: {escape(", ".join(f.source for f in index.skipped))}</p>'
    if stale:
        html += f'<p class="qa-warn">The documents changed since this build ({escape(stale.describe())}). Rebuild to answer from them.</p>'
    return f'<div class="qa-index">{html}</div>'


def _age(built_at: str) -> str:
    """'2026-11-23T16:23:06+0000' -> '2026-11-23 16:23 (5 minutes ago)'."""
    try:
        built = datetime.strptime(built_at, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return escape(built_at or "at an unknown time")
    seconds = (datetime.now(built.tzinfo) - built).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{built:%Y-%m-%d %H:%M} ({n} {unit}{'s' if n > 1 else ''} ago)"
    return f"{built:%Y-%m-%d %H:%M} (just now)"


def _sentence(message: str) -> str:
    """A library message ('the question is empty; ...') as a sentence for the page."""
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def report_line(report: IndexReport) -> str:
    return (
        f"indexed {report.files} files, {report.chunks} chunks in {report.seconds:.1f} s "
        f"({report.added} added, {report.changed} changed, {report.removed} removed, {report.unchanged} unchanged)"
    )


def example_questions(settings: Settings, sources: set[str], limit: int = 4) -> list[str]:
    """A first visitor's examples: questions of `eval/seeds_dev.jsonl` beside the seeds folder, one per indexed file.

    Only rows whose `source` is in the index are used, so another corpus gets no examples rather than wrong ones;
    questions made up without knowing the documents would mostly be answered "the documents don't say".
    """
    path = settings.seeds_dir.parent / "eval" / "seeds_dev.jsonl"
    picked: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("source") in sources and isinstance(row.get("q"), str):
            picked.setdefault(row["source"], row["q"])
    return list(picked.values())[:limit]


# -- the app ---------------------------------------------------------------------------------------------------


def build_app(assistant) -> gr.Blocks:
    """The page (chat, examples, index panel with a Rebuild button) and the /ask API, over one Assistant."""
    try:
        sources = {d.source for d in assistant.status().index.documents}
    except QAError:
        sources = set()
    examples = example_questions(assistant.settings, sources)

    def reply(question: str, chat: list, asked: list[str]):
        """Echo the question at once, then answer it; `asked` holds this chat's earlier questions, raw."""
        chat = list(chat or [])
        if question.strip():
            chat.append({"role": "user", "content": _question_html(question)})
            yield "", chat, asked
        try:
            answer = assistant.ask(question, asked)
        except QAError as e:
            chat.append({"role": "assistant", "content": f'<p class="qa-warn">{escape(_sentence(str(e)))}</p>'})
            yield "", chat, asked
            return
        chat.append({"role": "assistant", "content": answer_html(answer)})
        yield "", chat, [*asked, answer.question]

    def reply_to_example(chat: list, asked: list[str], evt: gr.SelectData):
        yield from reply(evt.value["text"], chat, asked)

    def rebuild(progress=gr.Progress()):
        def step(done: int, total: int) -> None:
            if total:
                progress((done, total), desc="Embedding", unit="texts")

        try:
            report = assistant.index(step)
        except QAError as e:
            raise gr.Error(str(e)) from None
        return index_html(assistant), f"<p>{escape(_sentence(report_line(report)))}</p>"

    def ask(question: str, history: list[str] | None = None) -> dict:
        """Answer `question` from the documents; `history` is the chat's earlier questions. Same JSON as `qa ask --json`."""
        if history is not None and not (isinstance(history, list) and all(isinstance(h, str) for h in history)):
            raise gr.Error("history must be a list of earlier questions (strings)")
        try:
            return assistant.ask(question, history or []).to_dict()
        except QAError as e:
            raise gr.Error(str(e)) from None

    with gr.Blocks(title="qa: ask your documents", analytics_enabled=False) as app:
        asked = gr.State([])
        gr.HTML(
            "<h2 class='qa-title'>Ask your documents</h2>"
            "<p class='qa-intro'>Every answer is a sentence quoted word for word from the documents, with its "
            "file and line. When the documents don't say, you are told so.</p>"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chat = gr.Chatbot(
                    height="68vh",
                    min_height=420,
                    render_markdown=False,
                    latex_delimiters=[],
                    allow_tags=False,
                    sanitize_html=True,
                    buttons=["copy", "copy_all"],
                    feedback_options=None,
                    examples=[{"text": q} for q in examples] or None,
                    placeholder="Ask a question about the indexed documents." + (" Or pick one:" if examples else ""),
                    show_label=False,
                    elem_id="chat",
                )
                box = gr.Textbox(
                    placeholder="Ask a question… (follow-ups use the earlier questions of this chat)",
                    show_label=False,
                    submit_btn=True,
                    autofocus=True,
                    elem_id="question",
                )
                gr.ClearButton([box, chat, asked], value="New chat", size="sm")
            with gr.Column(scale=1, min_width=260):
                gr.HTML("<h3 class='qa-title'>Index</h3>")
                panel = gr.HTML(elem_id="index-panel")
                rebuild_button = gr.Button("Rebuild index", variant="secondary", size="sm")
                status = gr.HTML()

        answered = box.submit(reply, [box, chat, asked], [box, chat, asked], api_visibility="private")
        picked = chat.example_select(reply_to_example, [chat, asked], [box, chat, asked], api_visibility="private")
        for event in (answered, picked):
            event.then(lambda: index_html(assistant), None, panel, api_visibility="private")
        chat.clear(lambda: [], None, asked, api_visibility="private")  # the chat's own trash icon
        app.load(lambda: index_html(assistant), None, panel, api_visibility="private")
        rebuild_button.click(rebuild, None, [panel, status], api_visibility="private", concurrency_limit=1)
        gr.api(ask, api_name="ask")
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> tuple[str, str | None]:
    """Serve `app` in the background with the queue on; returns (local URL, share URL or None)."""
    theme = gr.themes.Soft(
        primary_hue="indigo",
        font=["ui-sans-serif", "system-ui", "sans-serif"],  # system fonts: the page fetches nothing from the web
        font_mono=["ui-monospace", "monospace"],
    )
    _, url, share_url = app.queue(default_concurrency_limit=ASK_CONCURRENCY, max_size=64).launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        footer_links=["api", "settings"],
        css=CSS,
        theme=theme,
    )
    return url, share_url


def _needs_build(assistant) -> str:
    """Why the index must be built before serving, or '' when it is up to date."""
    try:
        stale = assistant.staleness()
    except (IndexMissingError, IndexCorruptError, IndexMismatchError) as e:
        return str(e).split(";")[0]
    return f"the documents changed ({stale.describe()})" if stale else ""


def build_first(assistant) -> None:
    """Bring the index up to date before serving. When that fails (a full disk) but an index was built before,
    serve that one and say so; with no index at all, the error stands."""
    reason = _needs_build(assistant)
    if not reason:
        return
    print(f"qa: building the index first: {reason}", file=sys.stderr)
    try:
        report = assistant.index(_print_progress)
    except QAError as e:
        print(file=sys.stderr)
        try:
            assistant.status()
        except QAError:
            raise e from None
        print(f"qa: {e}; serving the index built before", file=sys.stderr)
        return
    print(file=sys.stderr)
    print(f"qa: {report_line(report)}")


def _print_progress(done: int, total: int) -> None:
    print(f"\rqa: embedding {done}/{total} texts", end="", file=sys.stderr, flush=True)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, share: bool = False, watch: bool = False) -> None:
    """`qa serve`: bring the index up to date, then serve the chat until Ctrl+C."""
    from .assistant import Assistant

    assistant = Assistant(settings)
    build_first(assistant)
    if watch:

        def rebuilt(report: IndexReport) -> None:
            print(f"qa: seeds changed; {report_line(report)}", flush=True)

        # never stopped: the daemon thread ends with the process
        threading.Thread(target=assistant.watch, args=(rebuilt, threading.Event()), name="qa-watch", daemon=True).start()
    app = build_app(assistant)
    url, share_url = launch(app, host, port, share)
    print(f"qa: chat at {url}" + (f" and {share_url}" if share_url else "") + (" (watching seeds/)" if watch else ""))
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"qa: listening on {host}: anyone who can reach this machine can read the documents", file=sys.stderr)
    print("qa: press Ctrl+C to stop", flush=True)
    app.block_thread()
