"""The Gradio chat and its /ask API: a thin shell over Assistant.

Every piece of document text reaches the page through `html.escape`, and the Chatbot renders our HTML without
Markdown or LaTeX, so a document holding `<script>`, `<img onerror=...>` or `[a](link)` shows as plain text.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path

import gradio as gr

from .config import Settings
from .documents import TEXT_SUFFIXES
from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, QAError, SettingsError
from .types import Answer, Citation, IndexReport, Passage

#: Calls waiting in gradio's queue, and questions waiting for a turn to be answered, before more are refused.
QUEUE_SIZE = 64
#: Characters of an over-long question echoed back in the chat.
ECHO_CHARS = 300
#: Sessions whose state gradio keeps (a raw API call is a session of its own); the oldest goes first. Each
#: holds at most one request's inputs (Settings.max_request_bytes), so the two bound the server's memory.
SESSIONS = 1000
#: Seconds an uploaded file may stay in gradio's temp folder: the app keeps no upload (and the rest go at exit).
UPLOAD_SECONDS = 600
#: A login, as gradio's auth takes it: (user, password).
User = tuple[str, str]
#: Where gradio serves the app's API as MCP tools (streamable HTTP; SSE below it).
MCP_PATH = "/gradio_api/mcp"
#: Multipart framing allowed around an upload on top of the file size limit.
UPLOAD_FRAMING = 64 * 1024

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
.qa-doc-text { white-space: pre-wrap; font-size: .92em; padding: .6em .8em; border-radius: 6px; max-height: 40vh;
  overflow-y: auto; background: var(--background-fill-secondary); }
.qa-doc-text mark { background: #fde68a; color: #1f2937; }
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
    link = f'<a class="qa-open" href="{escape(source_link(c))}" target="_blank">open the document</a>'
    source = f'<div class="qa-source">[{n}] <code>{escape(c.source)}</code>, {where} · {link}</div>'
    return f'<div class="qa-cite"><blockquote>“{quote}”</blockquote>{source}{passage}</div>'


def source_link(c: Citation) -> str:
    """The page's URL (relative) that opens `c`'s document at the quote: '?doc=volcano.txt&start=60&end=93&answer=75-80'."""
    from urllib.parse import urlencode

    query = {"doc": c.source, "start": c.start, "end": c.end}
    if c.answer_span:
        query["answer"] = f"{c.answer_span[0]}-{c.answer_span[1]}"
    return "?" + urlencode(query)


def source_html(assistant, query: dict) -> str:
    """The document view a source link opens: the whole text, escaped, the quote marked and its answer in bold."""
    source = query.get("doc")
    if not source:
        return ""
    try:
        document = assistant.document(source)
        start, end = int(query.get("start", 0)), int(query.get("end", 0))
        a, _, b = query.get("answer", "").partition("-")
        span = (int(a), int(b)) if a and b else None
    except QAError as e:
        return f'<div class="qa-doc"><p class="qa-warn">{escape(_sentence(str(e)))}</p></div>'
    except ValueError:
        return '<div class="qa-doc"><p class="qa-warn">The link\'s offsets are not numbers.</p></div>'
    text = document.text
    if not 0 <= start <= end <= len(text) or (span and not start <= span[0] <= span[1] <= end):
        return f'<div class="qa-doc"><p class="qa-warn">The link points outside {escape(source)} ({len(text):,} characters).</p></div>'
    body = f'{escape(text[:start])}<mark id="qa-quote">{_marked(text[start:end], start, span)}</mark>{escape(text[end:])}'
    return f'<div class="qa-doc"><div class="qa-label"><code>{escape(source)}</code></div><div class="qa-doc-text">{body}</div></div>'


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


def documents_choice(assistant, chosen: list[str] | None):
    """The picker's choices: the indexed documents, keeping those still chosen."""
    names = _indexed(assistant)
    return gr.Dropdown(choices=names, value=[c for c in chosen or [] if c in names])


def removal_choice(assistant):
    """The remove box's choices: the indexed documents, none chosen."""
    return gr.Dropdown(choices=_indexed(assistant), value=None)


def _indexed(assistant) -> list[str]:
    try:
        return sorted(d.source for d in assistant.status().index.documents)
    except QAError:
        return []


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


def feedback_record(answer: Answer, history: Sequence[str]) -> dict:
    """What `feedback.jsonl` keeps of an answer: the question, the chat's earlier questions, what was shown.

    The line is also a question for `qa eval` (its `q`, `answers`, `source`, `unanswerable`): a good answer's
    answer phrase (or quote) from its first citation is what a later index must still find.
    """
    first = answer.citations[0] if answer.answered and answer.citations else None
    gold = []
    if first:
        a, b = first.answer_span or (first.start, first.end)
        gold = [first.quote[a - first.start : b - first.start]]
    return {
        "question": answer.question,
        "history": list(history),
        "answered": answer.answered,
        "citations": [c.to_dict() for c in answer.citations],
        "q": answer.question,
        "answers": gold,
        "source": first.source if first else None,
        "unanswerable": not answer.answered,
    }


class Feedback:
    """feedback.jsonl beside the index: one JSON line per thumbs up or down, appended whole with one write."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def append(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


# -- the app ---------------------------------------------------------------------------------------------------


def refused(message: str) -> gr.Error:
    """A caller's mistake: one line in the server log (no traceback) and the message in the API's answer."""
    print(f"qa: /ask refused: {message}", file=sys.stderr, flush=True)
    return gr.Error(message, print_exception=False)


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words: 3 -> 'a number', {} -> 'an object'."""
    kinds = {bool: "true or false", int: "a number", float: "a number", dict: "an object", list: "a list", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _check_text(name: str, text: str) -> None:
    """Refuse a string that is not text: a lone UTF-16 surrogate (JSON "\\ud800") has no UTF-8 form to answer in."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise refused(f"{name} holds a lone surrogate (U+{ord(text[e.start]):04X}) at character {e.start}, which is not text") from None


class Turns:
    """At most `size` questions answered at once, whichever way they came (the page, the /ask API, MCP), and at
    most `waiting` waiting for a turn; one more is refused with a message rather than queued without bound.

    Why: with --mcp, /ask runs outside gradio's queue (see build_app), so the queue's concurrency limit does not
    hold it; this one does, for every path.
    """

    def __init__(self, size: int, waiting: int):
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._waiting = 0
        self.size, self.max_waiting = size, waiting

    @contextlib.contextmanager
    def turn(self):
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise QAError(f"the server is busy ({self.size} questions being answered, {self._waiting} waiting); ask again in a moment")
            self._waiting += 1
        try:
            self._slots.acquire()
        finally:
            with self._lock:
                self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


class CheckedBlocks(gr.Blocks):
    """gr.Blocks whose events may check their raw arguments before gradio keeps them.

    Why: gradio stores every input of a call in the session's state before the function runs, so a question
    refused inside the function has already been kept, one copy per session. `checks[fn](inputs)` runs first
    and raises gr.Error to refuse the call.
    """

    def __init__(self, settings: Settings, mcp: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.mcp = mcp
        self.checks: dict = {}

    def validate_inputs(self, block_fn, inputs: list) -> None:
        check = self.checks.get(block_fn.fn)
        if check is not None:
            check(inputs)
        super().validate_inputs(block_fn, inputs)


def build_app(assistant, mcp: bool = False) -> CheckedBlocks:
    """The page (chat, examples, index panel with a Rebuild button) and the /ask API, over one Assistant.

    With `mcp`, /ask is also an MCP tool, and answered outside gradio's queue: gradio's MCP server calls a
    queued endpoint through a client of its own, which cannot log in when the server needs a login. Every
    answer, the page's included, takes a turn of one `Turns` (Settings.ask_concurrency), so the limit holds
    either way; the login is gradio's for the page and API and the Guard's for MCP.
    """
    try:
        sources = {d.source for d in assistant.status().index.documents}
    except QAError:
        sources = set()
    examples = example_questions(assistant.settings, sources)
    turns = assistant.settings.history_turns  # `asked` keeps only the questions a follow-up uses
    answering = Turns(assistant.settings.ask_concurrency, QUEUE_SIZE)

    def answer_in_turn(question: str, history: Sequence[str], sources: Sequence[str] | None) -> Answer:
        with answering.turn():
            return assistant.ask(question, history, sources)

    def replies(question: str, chat: list, asked: list[str], shown: dict, chosen: list[str] | None):
        """Echo the question at once, then answer it: yields (chat, asked, shown). `asked` holds this chat's
        last questions, raw, `shown` what each answer of the chat showed (for feedback), and `chosen` the
        documents picked to ask within (none picked: all)."""
        chat = list(chat or [])
        if question.strip():
            chat.append({"role": "user", "content": _question_html(question)})
        yield chat, asked, shown
        try:
            answer = answer_in_turn(question, asked, chosen or None)
        except QAError as e:
            chat.append({"role": "assistant", "content": f'<p class="qa-warn">{escape(_sentence(str(e)))}</p>'})
            yield chat, asked, shown
            return
        chat.append({"role": "assistant", "content": answer_html(answer)})
        shown = {**(shown or {}), str(len(chat) - 1): feedback_record(answer, asked)}
        yield chat, [*asked, answer.question][-turns:] if turns else [], shown

    def reply(question: str, chat: list, asked: list[str], shown: dict, chosen: list[str] | None = None):
        """Empty the question box once, with the echo, and never again: the next question, typed while this
        one is answered, stays in the box."""
        for n, outputs in enumerate(replies(question, chat, asked, shown, chosen)):
            yield "" if n == 0 else gr.skip(), *outputs

    def reply_to_example(chat: list, asked: list[str], shown: dict, chosen: list[str], evt: gr.SelectData):
        yield from replies(evt.value["text"], chat, asked, shown, chosen)

    index = assistant.settings.index_dir  # a folder, or a postgresql:// URL: then beside the seeds folder
    feedback = Feedback((index if isinstance(index, Path) else assistant.settings.seeds_dir).with_name("feedback.jsonl"))

    def judged(shown: dict, evt: gr.LikeData) -> None:
        record = (shown or {}).get(str(evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index))
        if record is not None and evt.liked in (True, False):
            feedback.append({**record, "verdict": "good" if evt.liked else "bad"})

    def rebuild(progress=gr.Progress()):
        def step(done: int, total: int) -> None:
            if total:
                progress((done, total), desc="Embedding", unit="texts")

        try:
            report = assistant.index(step)
        except QAError as e:
            raise gr.Error(str(e)) from None
        return index_html(assistant), f"<p>{escape(_sentence(report.summary()))}</p>"

    def add(files: list[str] | None, progress=gr.Progress()) -> tuple[IndexReport | None, list]:
        """Uploaded files (gradio's temp paths, named as the visitor's files) into seeds/ and the index."""

        def step(done: int, total: int) -> None:
            if total:
                progress((done, total), desc="Embedding the new documents", unit="texts")

        uploads = [(Path(f).name, Path(f)) for f in files or []]
        if not uploads:
            raise gr.Error("no files given", print_exception=False)
        try:
            return assistant.add_documents(uploads, step)
        except QAError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def add_on_page(files: list[str] | None, chosen_now: list[str], progress=gr.Progress()):
        report, refused = add(files, progress)
        lines = [f"<p>{escape(_sentence(report.summary()))}</p>"] if report else []
        lines += [f'<p class="qa-warn">Not added: <code>{escape(r.name)}</code>: {escape(r.reason)}</p>' for r in refused]
        return index_html(assistant), "".join(lines), documents_choice(assistant, chosen_now), None

    def add_documents(files: list[str]) -> dict:
        """Add files to the documents and update the index; returns what `qa index --json` prints, and `refused`:
        each file not added with its reason (too big, binary, not UTF-8, unreadable)."""
        report, refused = add(files)
        keys = ("files", "added", "changed", "removed", "unchanged", "chunks_embedded", "seconds")
        built = {k: getattr(report, k) for k in keys} if report else {}
        return {**built, "refused": [r.to_dict() for r in refused]}

    def ask_to_remove(source: str | None):
        if not source:
            raise gr.Error("choose a document to remove first", print_exception=False)
        return gr.Row(visible=True), f"<p>Remove <code>{escape(source)}</code> from the index? Its file goes to <code>.trash/</code>.</p>"

    def remove(source: str, chosen_now: list[str]):
        try:
            report = assistant.remove_document(source)
        except QAError as e:
            raise gr.Error(str(e), print_exception=False) from None
        note = f"<p>Removed {escape(source)}; {escape(report.summary())}.</p>"
        return index_html(assistant), note, documents_choice(assistant, chosen_now), gr.Row(visible=False), removal_choice(assistant)

    def open_source(request: gr.Request) -> str:
        return source_html(assistant, dict(request.query_params))

    def ask(question: str, history: list[str] | None = None, sources: list[str] | None = None, request: gr.Request | None = None) -> dict | str:
        """Answer a question from the local documents with verbatim, cited quotations, or say that they do not answer it.

        Quote each citation's `quote` word for word and cite its `source` and `line`. When `answered` is false the
        documents do not say: tell the user so; `passages` are then only the closest text, not an answer.

        Args:
            question: the question in plain words (at most 2,000 characters).
            history: earlier questions of the same conversation, oldest first, so that a follow-up such as "How old was he?" is understood; null for none.
            sources: document file names (as the index lists them) to search within, the others ignored; null for all.

        Returns:
            a JSON object, as `qa ask --json` prints it: `answered` (true or false), `answer` (the best quotation, or a sentence saying the documents do not answer), `confidence` (0 to 1), `citations` (each a `quote` copied verbatim from a document, its `source` file, `line`, `start` and `end` character offsets into that file, `answer_span` offsets of the words that answer, and `score`), and `passages` (the closest passages, each with `source`, `line` and `text`).
        """
        try:
            answer = answer_in_turn(question, history or [], sources).to_dict()
        except QAError as e:
            raise refused(str(e)) from None
        if request is not None and request.url.path.startswith(MCP_PATH):
            # gradio's MCP server sends str() of what a tool returns: for a dict, a Python literal, not JSON
            return json.dumps(answer, ensure_ascii=False)
        return answer

    def check_ask(inputs: list) -> None:
        """/ask's raw arguments, each checked once, before gradio keeps them: (question, history, sources), the
        last one optional, nothing more."""
        if len(inputs) not in (2, 3):
            raise refused(f"/ask takes 3 arguments, question, history (null for none) and sources (null for all; may be left out); got {len(inputs)}")
        if len(inputs) == 2:
            inputs.append(None)  # a caller from before sources existed: all documents (gradio wants every argument)
        question, history, sources = inputs
        if not isinstance(question, str):
            raise refused(f"question must be a string (got {_json_kind(question)})")
        if history is not None and not (isinstance(history, list) and all(isinstance(h, str) for h in history)):
            raise refused("history must be a list of earlier questions (strings), or null")
        if sources is not None and not (isinstance(sources, list) and all(isinstance(x, str) for x in sources)):
            raise refused("sources must be a list of document file names (strings), or null for all")
        for name, text in [
            ("question", question),
            *((f"history[{i}]", h) for i, h in enumerate(history or [])),
            *((f"sources[{i}]", x) for i, x in enumerate(sources or [])),
        ]:
            _check_text(name, text)
        try:
            assistant.check_question(question)
            assistant.check_sources(sources)
        except QAError as e:
            raise refused(str(e)) from None

    blocks = CheckedBlocks(
        assistant.settings, mcp, title="qa: ask your documents", analytics_enabled=False, delete_cache=(UPLOAD_SECONDS, UPLOAD_SECONDS)
    )
    with blocks as app:
        asked = gr.State([])
        shown = gr.State({})
        gr.HTML(
            "<h2 class='qa-title'>Ask your documents</h2>"
            "<p class='qa-intro'>Every answer is a sentence quoted word for word from the documents, with its "
            "file and line. When the documents don't say, you are told so.</p>"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                document_view = gr.HTML(elem_id="source-view")
                chat = gr.Chatbot(
                    height="68vh",
                    min_height=420,
                    render_markdown=False,
                    latex_delimiters=[],
                    allow_tags=False,
                    sanitize_html=True,
                    buttons=["copy", "copy_all"],
                    feedback_options=("Like", "Dislike"),
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
                with gr.Row():
                    chosen = gr.Dropdown(
                        choices=sorted(sources),
                        value=[],
                        multiselect=True,
                        label="Ask within (none chosen: all documents)",
                        elem_id="sources",
                        scale=4,
                    )
                    gr.ClearButton([box, chat, asked, shown], value="New chat", size="sm", scale=1)
            with gr.Column(scale=1, min_width=260):
                gr.HTML("<h3 class='qa-title'>Index</h3>")
                panel = gr.HTML(elem_id="index-panel")
                rebuild_button = gr.Button("Rebuild index", variant="secondary", size="sm")
                uploads = gr.File(
                    file_count="multiple",
                    file_types=list(TEXT_SUFFIXES),
                    label="Add documents (drop files here)",
                    elem_id="upload",
                    height=120,
                )
                with gr.Row():
                    doomed = gr.Dropdown(choices=sorted(sources), value=None, label="Remove a document", elem_id="remove", scale=3)
                    remove_button = gr.Button("Remove…", size="sm", scale=1, elem_id="remove-ask")
                with gr.Row(visible=False) as confirm_row:
                    confirm_text = gr.HTML()
                    confirm_button = gr.Button("Remove it", variant="stop", size="sm", elem_id="remove-confirm")
                    cancel_button = gr.Button("Keep it", size="sm", elem_id="remove-cancel")
                status = gr.HTML(elem_id="status")
                report = gr.JSON(visible=False)
                add_api = gr.Button(visible=False)

        # a question sent while the last is still being answered waits its turn ("always_last"), not dropped
        answered = box.submit(reply, [box, chat, asked, shown, chosen], [box, chat, asked, shown], api_visibility="private", trigger_mode="always_last")
        picked = chat.example_select(reply_to_example, [chat, asked, shown, chosen], [chat, asked, shown], api_visibility="private")
        chat.like(judged, shown, None, api_visibility="private")
        for event in (answered, picked):
            event.then(lambda: index_html(assistant), None, panel, api_visibility="private")
        chat.clear(lambda: ([], {}), None, [asked, shown], api_visibility="private")  # the chat's own trash icon

        def refreshed(chosen_now: list[str]):
            return index_html(assistant), documents_choice(assistant, chosen_now), removal_choice(assistant)

        opened = app.load(open_source, None, document_view, api_visibility="private")
        opened.then(None, js="() => document.querySelector('#qa-quote')?.scrollIntoView({block: 'center'})")
        app.load(refreshed, chosen, [panel, chosen, doomed], api_visibility="private")
        # every change of the index goes through one queue: a rebuild, an upload, a removal
        one_at_a_time = {"api_visibility": "private", "concurrency_limit": 1, "concurrency_id": "index"}
        rebuilt = rebuild_button.click(rebuild, None, [panel, status], **one_at_a_time)
        uploaded = uploads.upload(add_on_page, [uploads, chosen], [panel, status, chosen, uploads], **one_at_a_time)
        for changed in (rebuilt, uploaded):
            changed.then(refreshed, chosen, [panel, chosen, doomed], api_visibility="private")
        remove_button.click(ask_to_remove, doomed, [confirm_row, confirm_text], api_visibility="private")
        cancel_button.click(lambda: gr.Row(visible=False), None, confirm_row, api_visibility="private")
        confirm_button.click(remove, [doomed, chosen], [panel, status, chosen, confirm_row, doomed], **one_at_a_time)
        # undocumented: a named endpoint for API clients, not an MCP tool (that is /ask alone)
        add_api.click(add_documents, uploads, report, api_name="add_documents", api_visibility="undocumented", concurrency_limit=1, concurrency_id="index")
        gr.api(ask, api_name="ask", queue=not mcp)
        app.checks[ask] = check_ask
    return app


# -- the server: who may call it, with what ---------------------------------------------------------------


_HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*", re.I)


def bind_address(host: str) -> str:
    """`--host` as gradio binds it: an IP address or a host name, IPv6 in brackets; anything else is refused.

    >>> bind_address("::1"), bind_address("127.0.0.1"), bind_address("qa.lan")
    ('[::1]', '127.0.0.1', 'qa.lan')
    """
    try:
        ip = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        if not _HOST_NAME.fullmatch(host):
            raise SettingsError(f"--host {host!r} is not an IP address or a host name") from None
        return host.lower()
    return f"[{ip}]" if ip.version == 6 else str(ip)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name, or an address with or without IPv6 brackets) means this machine only."""
    host = host.lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    """The name in a Host header, without the port: '[::1]:7860' -> '::1', 'Example.org:80' -> 'example.org'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware in front of every route (the page, gradio's API and uploads, the MCP server).

    DNS rebinding: a page on a foreign site whose name resolves to this machine sends its own name in `Host`,
    so a Host that is neither a loopback name or address nor one of `hosts` is refused. A body larger than
    `max_body` (`max_upload` on gradio's upload route) is refused from its Content-Length, before a byte of it
    is read. Gradio's login does not cover its MCP server, so with `users` an MCP request needs one of their
    logins as HTTP Basic auth, which MCP clients send as a header.
    """

    def __init__(self, app, hosts: frozenset[str], max_body: int, max_upload: int, users: Sequence[User] = ()):
        self.app = app
        self.hosts = hosts
        self.max_body = max_body
        self.max_upload = max_upload
        self.logins = {f"{u}:{p}".encode() for u, p in users}

    async def __call__(self, scope, receive, send) -> None:
        refusal = self.refusal(scope) if scope["type"] in ("http", "websocket") else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        print(f"qa: refused {scope.get('method', 'a websocket')} {scope['path']}: {message}", file=sys.stderr, flush=True)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        from starlette.responses import PlainTextResponse

        challenge = {"WWW-Authenticate": 'Basic realm="qa"'} if status == 401 else None
        await PlainTextResponse(message, status_code=status, headers=challenge)(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        """(HTTP status, reason) for a request that must not reach the app, or None."""
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        host = _host_of(headers.get("host", ""))
        if host not in self.hosts and not is_loopback(host):
            names = ", ".join(sorted(self.hosts)) or "loopback names"
            return 400, f"unknown Host {host!r}; this server answers to {names} (add names with --allowed-host)"
        if self.logins and scope["path"].startswith(MCP_PATH) and not self._logged_in(headers.get("authorization", "")):
            return 401, "the MCP server needs a login: send the header Authorization: Basic base64(user:password)"
        length = headers.get("content-length")
        if length is None:  # no body, or a chunked one whose size is not known before it is read
            return (411, "a request body needs a Content-Length header") if "transfer-encoding" in headers else None
        if not length.isdigit():
            return 400, f"Content-Length {length!r} is not a number"
        upload = scope["path"].rstrip("/").endswith("/gradio_api/upload")
        limit, setting = (self.max_upload, "QA_MAX_FILE_BYTES") if upload else (self.max_body, "QA_MAX_REQUEST_BYTES")
        if int(length) > limit:
            return 413, f"the request is {int(length):,} bytes; the limit is {limit:,} ({setting})"
        return None

    def _logged_in(self, authorization: str) -> bool:
        import base64
        import binascii
        import hmac

        scheme, _, encoded = authorization.partition(" ")
        try:
            login = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        # compare with every login, in constant time, so the time taken does not tell how much matched
        return scheme.lower() == "basic" and any([hmac.compare_digest(login, known) for known in self.logins])


def read_users(pairs: Sequence[str] = (), file: Path | None = None) -> list[User]:
    """Logins from `--auth user:password` flags and an `--auth-file` of such lines (blank lines and # comments skipped)."""
    lines = [("--auth", p) for p in pairs]
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(f"cannot read --auth-file {file}: {getattr(e, 'strerror', None) or e}") from None
        lines += [(f"{file} line {n}", l.strip()) for n, l in enumerate(text.splitlines(), 1) if l.strip() and not l.lstrip().startswith("#")]
    users = []
    for where, line in lines:
        user, _, password = line.partition(":")
        if not user or not password:
            raise SettingsError(f"{where}: a login is user:password, both non-empty")
        users.append((user, password))
    return users


def check_exposure(host: str, share: bool, users: Sequence[User]) -> None:
    """Off this machine (a non-loopback --host, or a share link) the documents are readable only with a login."""
    if (share or not is_loopback(host)) and not users:
        where = "a share link" if share else f"--host {host}"
        raise SettingsError(f"{where} lets anyone who reaches it read the documents; add --auth user:password or --auth-file FILE")


async def _bad_named_call(request, error: TypeError):
    """Gradio's named-argument route (/gradio_api/call/v2/ask) reports an unknown or missing argument as a
    TypeError, which would be a 500 and a traceback; it is the caller's mistake, so a 400 and one log line."""
    if "/gradio_api/call/v2/" not in request.url.path:
        raise error
    from starlette.responses import JSONResponse

    print(f"qa: {request.url.path} refused: {error}", file=sys.stderr, flush=True)
    return JSONResponse({"error": str(error)}, status_code=400)


def launch(
    app: CheckedBlocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    allowed_hosts: Sequence[str] = (),
    users: Sequence[User] = (),
) -> tuple[str, str | None]:
    """Serve `app` in the background with the queue on; returns (local URL, share URL or None).

    The server answers to loopback names, to `host` itself and to `allowed_hosts` (the names people use to
    reach it on the network); a request for any other Host is refused. With `users`, every page and API call
    needs one of these logins (gradio's own login page and cookie); off loopback they are required. An app
    built with `mcp` serves /ask as an MCP tool at MCP_PATH, behind the same logins.
    """
    from starlette.middleware import Middleware

    s: Settings = app.settings
    bound = bind_address(host)
    check_exposure(host, share, users)
    hosts = frozenset({_host_of(bound), *(_host_of(bind_address(h)) for h in allowed_hosts)})
    limits = {"max_body": s.max_request_bytes, "max_upload": s.max_file_bytes + UPLOAD_FRAMING}
    guard = Middleware(Guard, hosts=hosts, users=users, **limits)
    theme = gr.themes.Soft(
        primary_hue="indigo",
        font=["ui-sans-serif", "system-ui", "sans-serif"],  # system fonts: the page fetches nothing from the web
        font_mono=["ui-monospace", "monospace"],
    )
    # gradio prints an MCP banner (and share-link notes) even when quiet; serve() says where things are
    with contextlib.redirect_stdout(io.StringIO()):
        _, url, share_url = app.queue(default_concurrency_limit=s.ask_concurrency, max_size=QUEUE_SIZE).launch(
            server_name=bound,
            server_port=port,
            share=share,
            prevent_thread_lock=True,
            quiet=True,
            ssr_mode=False,
            footer_links=["api", "settings"],
            css=CSS,
            theme=theme,
            app_kwargs={"middleware": [guard], "exception_handlers": {TypeError: _bad_named_call}},
            state_session_capacity=SESSIONS,
            max_file_size=s.max_file_bytes,  # gradio's own check, per file, as the upload streams in
            auth=list(users) or None,
            auth_message="Log in with a user:password given to qa serve --auth or --auth-file.",
            mcp_server=app.mcp,
        )
    return url, share_url


def _needs_build(assistant) -> tuple[str, bool]:
    """Why the index must be built before serving ('' when it is up to date), and whether an older one can serve."""
    try:
        stale = assistant.staleness()
    except (IndexMissingError, IndexCorruptError, IndexMismatchError) as e:
        return str(e).split(";")[0], False
    return (f"the documents changed ({stale.describe()})" if stale else ""), True


def _why(error: Exception) -> str:
    """'[Errno 28] No space left on device: ...' -> 'No space left on device: /path'."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + (f": {error.filename}" if error.filename else "")
    return str(error)


def build_first(assistant) -> None:
    """Bring the index up to date before serving. When that fails (a build error, a full disk) but an index was
    built before, serve that one and say so; with no index at all, the error stands."""
    reason, old_index = _needs_build(assistant)
    if not reason:
        return
    print(f"qa: building the index first: {reason}", file=sys.stderr)
    try:
        report = assistant.index(_print_progress)
    except (QAError, OSError) as e:  # the previous build is intact
        if not old_index:
            raise
        print(f"\nqa: the rebuild failed ({_why(e)}); serving the index built before", file=sys.stderr)
        return
    print(file=sys.stderr)
    print(f"qa: {report.summary()}")


def _print_progress(done: int, total: int) -> None:
    print(f"\rqa: embedding {done}/{total} texts", end="", file=sys.stderr, flush=True)


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    watch: bool = False,
    allowed_hosts: Sequence[str] = (),
    users: Sequence[User] = (),
    mcp: bool = False,
) -> None:
    """`qa serve`: bring the index up to date, then serve the chat (and with `mcp` the MCP tool) until Ctrl+C."""
    from .assistant import Assistant

    for name in (host, *allowed_hosts):
        bind_address(name)  # a mistyped address, a missing login or package fails now, not after the index is built
    check_exposure(host, share, users)
    if mcp:
        try:
            import mcp as _  # noqa: F401 — gradio's MCP server needs it
        except ImportError:
            raise SettingsError("--mcp needs the MCP package: pip install 'qa[mcp]'") from None
    assistant = Assistant(settings)
    build_first(assistant)
    if watch:

        def rebuilt(report: IndexReport) -> None:
            print(f"qa: seeds changed; {report.summary()}", flush=True)

        # never stopped: the daemon thread ends with the process
        threading.Thread(target=assistant.watch, args=(rebuilt, threading.Event()), name="qa-watch", daemon=True).start()
    app = build_app(assistant, mcp)
    url, share_url = launch(app, host, port, share, allowed_hosts, users)
    print(f"qa: chat at {url}" + (f" and {share_url}" if share_url else "") + (" (watching seeds/)" if watch else ""))
    if share and not share_url:
        print("qa: gradio could not make a share link (no connection to gradio.live?)", file=sys.stderr)
    if mcp:
        print(f"qa: MCP tool `ask` at {url.rstrip('/')}{MCP_PATH}/")
    if users:
        print(f"qa: {len(users)} login{'s' if len(users) > 1 else ''} required (listening on {host})", file=sys.stderr)
    print("qa: press Ctrl+C to stop", flush=True)
    app.block_thread()
