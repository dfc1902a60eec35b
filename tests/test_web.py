"""The web app as a program sees it: /ask returns what `qa ask --json` prints, bad input is a clear error, and a
rebuild under way never breaks an answer. The rendering tests at the top need no model and no server."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import http.client
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import TOY, make_assistant, write_corpus
from qa.types import Answer, Citation, Passage

def start_server(tmp_path, *flags: str, files: dict | None = None, env: dict | None = None, preexec_fn=None) -> tuple[subprocess.Popen, str]:
    """`qa serve` over a tiny corpus in a subprocess, as a user starts it; returns the process and the chat's URL."""
    seeds = write_corpus(tmp_path / "seeds", files or {"volcano.txt": TOY["volcano.txt"]})
    command = [sys.executable, "-m", "qa", "serve", "--seeds", str(seeds), "--index", str(tmp_path / "index"), "--port", str(free_port()), *flags]
    log = open(tmp_path / "stderr.txt", "w")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=environment, preexec_fn=preexec_fn)
    watchdog = threading.Timer(300, server.kill)  # a hung server ends the test (readline gets EOF) instead of the suite
    watchdog.start()
    server.watchdog = watchdog
    for line in server.stdout:
        if " at http" in line:
            return server, line.split(" at ")[1].split()[0]
    stop_server(server)
    raise AssertionError((tmp_path / "stderr.txt").read_text())


def stop_server(server: subprocess.Popen) -> None:
    server.watchdog.cancel()
    server.terminate()
    server.wait(timeout=30)


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def call_ask(url: str, payload: str) -> str:
    """A raw call of /ask through gradio's REST route: its result event as text (or the refusal)."""
    status, text = raw(url, "POST", "/gradio_api/call/ask", payload)
    if status != 200:
        return f"{status} {text}"
    return raw(url, "GET", f"/gradio_api/call/ask/{json.loads(text)['event_id']}")[1]


#: Two men of whom "How old was he?" can be asked: only the chat's history says which one is meant.
PEOPLE = {
    "valencia.txt": "Carlos Ruiz became mayor of Valencia in 2015. He was 38 years old at the time.\n",
    "keeper.txt": "Tom Reed retired as the lighthouse keeper of Fastnet in 2001. He was 67 years old then.\n",
}
EVIL = 'Hi <script>window.__pwned=1</script> <img src=x onerror="alert(1)"> [click](https://example.com) & **bold**'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw(url: str, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None) -> tuple[int, str]:
    """One HTTP request as a hostile page or script would send it: (status, body text)."""
    address = url.split("//")[1].rstrip("/")
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=60)
    headers = {"Content-Type": "application/json", **(headers or {})}
    if "Host" in headers:
        connection.putrequest(method, path, skip_host=True)
        for k, v in headers.items():
            connection.putheader(k, v)
        data = body.encode() if isinstance(body, str) else body
        if data is not None:
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
    else:
        connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    text = response.read().decode("utf-8", "replace")
    connection.close()
    return response.status, text


# -- rendering: no model, no server ---------------------------------------------------------------------------


def test_answer_html_escapes_document_text_and_marks_the_quote():
    from qa.web import answer_html

    text = "Intro. " + EVIL + " The end."
    start = text.index("Hi")
    end = start + len(EVIL)
    span = (text.index("[click]"), text.index("[click]") + 7)
    c = Citation("a<b>.md", EVIL, start, end, line=1, score=0.9, answer_span=span, context_end=len(text), context=text)
    html = answer_html(Answer("q", True, EVIL, 0.9, [c]))
    assert "<script" not in html and "<img" not in html and "<b>.md" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html and "a&lt;b&gt;.md" in html
    assert "<mark>Hi &lt;script&gt;" in html and "<b>[click]</b>" in html and html.count("<mark>") == 1
    assert "Intro. <mark>" in html and "</mark> The end." in html


def test_no_answer_says_so_and_labels_the_closest_passages():
    from qa.web import answer_html

    passage = Passage("notes.txt", 0, len(EVIL), 4, EVIL, 0.3)
    html = answer_html(Answer("q", False, "The documents do not answer this question.", 0.2, [], [passage]))
    assert "The documents do not answer this question." in html
    assert "Closest passages (not an answer)" in html and "notes.txt</code>, line 4" in html
    assert "<script" not in html and "&lt;img src=x" in html


def test_examples_come_only_from_questions_about_indexed_files(tmp_path):
    from qa.config import Settings
    from qa.web import example_questions

    settings = Settings(seeds_dir=tmp_path / "seeds")
    assert example_questions(settings, {"a.txt"}) == []  # no question file: no examples
    (tmp_path / "eval").mkdir()
    rows = [{"q": "About a?", "source": "a.txt"}, {"q": "Again a?", "source": "a.txt"}, {"q": "Gone?", "source": "old.txt"}]
    (tmp_path / "eval" / "seeds_dev.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\nnot json\n")
    assert example_questions(settings, {"a.txt", "b.txt"}) == ["About a?"]


# -- the served app ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder):
    """The app over an indexed toy corpus on a free loopback port, and a client of its API."""
    from gradio_client import Client

    from qa import web

    assistant = make_assistant(tmp_path_factory.mktemp("web"), embedder, files={**TOY, **PEOPLE})
    assistant.index()
    app = web.build_app(assistant)
    url, share_url = web.launch(app, port=free_port())
    assert url.startswith("http://127.0.0.1:") and share_url is None
    yield assistant, Client(url, verbose=False)
    app.close()


@pytest.mark.server
def test_api_answers_exactly_like_the_cli(served):
    assistant, client = served
    question = "How many eggs does the queen lay a day?"
    api = client.predict(question, api_name="/ask")
    s = assistant.settings
    cli = subprocess.run(
        [sys.executable, "-m", "qa", "ask", "--json", "--seeds", str(s.seeds_dir), "--index", str(s.index_dir), question],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert cli.returncode == 0, cli.stderr
    assert api == json.loads(cli.stdout) == assistant.ask(question).to_dict()
    assert api["answered"] and "1,500" in api["answer"] and api["citations"][0]["source"] == "notes/bees.md"


@pytest.mark.server
def test_api_follow_up_uses_the_history(served):
    _, client = served
    answer = client.predict("How old was he?", ["When did Tom Reed retire?"], api_name="/ask")
    assert "67 years old" in answer["answer"] and answer["citations"][0]["source"] == "keeper.txt"
    other = client.predict("How old was he?", ["Who became mayor of Valencia?"], api_name="/ask")
    assert "38 years old" in other["answer"] and other["citations"][0]["source"] == "valencia.txt"


@pytest.mark.server
def test_api_asks_within_the_chosen_documents(served):
    _, client = served
    for source, words in [("valencia.txt", "38 years old"), ("keeper.txt", "67 years old")]:
        answer = client.predict("How old was he?", None, [source], api_name="/ask")
        assert words in answer["answer"] and {c["source"] for c in answer["citations"]} == {source}
    everywhere = client.predict("How high is Mount Etna?", None, None, api_name="/ask")
    assert everywhere["citations"][0]["source"] == "volcano.txt"


@pytest.mark.server
@pytest.mark.parametrize(
    "sources, words",
    [([], "no document chosen"), (["nope.txt"], "not an indexed document: nope.txt"), ("volcano.txt", "sources must be a list"), ([3], "sources must be a list")],
)
def test_api_refuses_a_bad_choice_of_documents(served, sources, words):
    from gradio_client.exceptions import AppError

    _, client = served
    with pytest.raises(AppError) as error:
        client.predict("How high is Mount Etna?", None, sources, api_name="/ask")
    assert words in str(error.value)


@pytest.mark.server
@pytest.mark.parametrize(
    "question, history, words",
    [("", None, "the question is empty"), ("y" * 100_000, None, "the limit is 2,000"), ("Why?", "not a list", "history must be a list")],
)
def test_api_bad_input_is_a_clear_error(served, question, history, words):
    from gradio_client.exceptions import AppError

    _, client = served
    with pytest.raises(AppError) as error:
        client.predict(question, history, api_name="/ask")
    assert words in str(error.value) and "Traceback" not in str(error.value)


@pytest.mark.server
@pytest.mark.parametrize(
    "host, allowed",
    [
        ("evil.example", False),
        ("evil.example:{port}", False),
        ("127.0.0.1.nip.io:{port}", False),
        ("localhost.evil.example", False),
        ("", False),
        ("localhost:{port}", True),
        ("127.0.0.1:{port}", True),
        ("127.0.0.2", True),
        ("[::1]:{port}", True),
    ],
)
def test_a_page_from_another_site_cannot_reach_the_loopback_server(served, host, allowed):
    """DNS rebinding: a foreign page whose name resolves to 127.0.0.1 sends its own name as Host and is refused."""
    _, client = served
    port = client.src.rstrip("/").rsplit(":", 1)[1]
    headers = {"Host": host.format(port=port)}
    page = raw(client.src, "GET", "/", headers=headers)
    api = raw(client.src, "POST", "/gradio_api/call/ask", json.dumps({"data": ["How high is Mount Etna?", None]}), headers)
    if allowed:
        assert page[0] == 200 and api[0] == 200 and "event_id" in api[1]
    else:
        assert page[0] == api[0] == 400 and "unknown Host" in api[1] and "Etna" not in page[1] + api[1]


@pytest.mark.server
def test_bound_to_all_interfaces_it_answers_only_the_configured_names(served):
    from qa import web

    app = web.build_app(served[0])
    url, _ = web.launch(app, host="0.0.0.0", port=free_port(), allowed_hosts=["qa.lan", "QA.example.org"], users=[("ana", "s3cret")])
    try:
        port = url.rstrip("/").rsplit(":", 1)[1]
        for host, status in [("qa.lan", 200), (f"qa.example.org:{port}", 200), (f"localhost:{port}", 200), ("evil.example", 400)]:
            assert raw(f"http://127.0.0.1:{port}", "GET", "/", headers={"Host": host})[0] == status, host
    finally:
        app.close()


@pytest.mark.server
@pytest.mark.parametrize(
    "args, words",
    [
        ((3, None), "question must be a string (got a number)"),
        (({"q": "Why?"}, None), "question must be a string (got an object)"),
        ((["Why?"], None), "question must be a string (got a list)"),
        (("Why?", ["When?", 3]), "history must be a list of earlier questions"),
        (("Why?", {"a": 1}), "history must be a list of earlier questions"),
    ],
)
def test_api_names_the_argument_that_is_wrong(served, args, words):
    """gradio_client's own calls (it cannot send a lone surrogate: the raw calls below do)."""
    from gradio_client.exceptions import AppError

    _, client = served
    with pytest.raises(AppError) as error:
        client.predict(*args, api_name="/ask")
    assert words in str(error.value)


@pytest.mark.server
def test_raw_calls_with_wrong_arguments_get_a_message_and_one_log_line(tmp_path):
    server, url = start_server(tmp_path)
    calls = [
        ('{"data": []}', "/ask takes 3 arguments, question, history (null for none) and sources (null for all; may be left out); got 0"),
        ('{"data": ["How high is Mount Etna?"]}', "got 1"),
        ('{"data": ["How high is Mount Etna?", null, null, "extra"]}', "got 4"),
        ('{"data": ["How high is Mount Etna?", null, "volcano.txt"]}', "sources must be a list of document file names"),
        ('{"data": ["How high is Mount Etna?", null, ["\\udc80"]]}', "sources[0] holds a lone surrogate (U+DC80)"),
        ('{"data": ["\\ud800", null]}', "question holds a lone surrogate (U+D800)"),
        ('{"data": ["How high?", ["\\udbff"]]}', "history[0] holds a lone surrogate (U+DBFF)"),
        ('{"data": [7, null]}', "question must be a string (got a number)"),
        ('{"data": ["  ", null]}', "the question is empty"),
    ]
    try:
        for payload, words in calls:
            result = call_ask(url, payload)
            assert result.startswith("event: error") and words in result and '"error": null' not in result, result
        named = [('{"question": "Why?", "bogus": 1}', "bogus"), ("{}", "question")]
        for payload, words in named:
            status, text = raw(url, "POST", "/gradio_api/call/v2/ask", payload)
            assert status == 400 and words in json.loads(text)["error"], text
        assert "3,357 metres" in call_ask(url, '{"data": ["How high is Mount Etna?", null]}')
    finally:
        stop_server(server)
    log = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if " refused: " in line]) == len(calls) + len(named), log


@pytest.mark.server
def test_a_rebuild_under_way_never_breaks_an_answer(served):
    """Questions keep coming while a file is added and indexed; each gets a whole answer, and the new file at once."""
    assistant, client = served
    write_corpus(assistant.settings.seeds_dir, {"lighthouse.txt": "The Tower of Hercules is a lighthouse in A Coruña. It was built by the Romans."})
    rebuild = threading.Thread(target=assistant.index)
    rebuild.start()
    asked = 0
    while rebuild.is_alive() or not asked:
        answer = client.predict("How many eggs does the queen lay a day?", api_name="/ask")
        assert "1,500" in answer["answer"] and answer["citations"][0]["source"] == "notes/bees.md"
        asked += 1
    rebuild.join()
    answer = client.predict("Who built the Tower of Hercules?", api_name="/ask")
    assert answer["answered"] and answer["citations"][0]["source"] == "lighthouse.txt"


@pytest.mark.server
def test_serve_builds_a_missing_index_listens_on_loopback_and_watches(tmp_path):
    """`qa serve --watch` as a user starts it: the index is built first, the chat answers, a new file is picked up."""
    from gradio_client import Client

    seeds = write_corpus(tmp_path / "seeds", {"volcano.txt": "Mount Etna is an active volcano on the east coast of Sicily."})
    command = [sys.executable, "-m", "qa", "serve", "--seeds", str(seeds), "--index", str(tmp_path / "index"), "--port", str(free_port()), "--watch"]
    log = open(tmp_path / "stderr.txt", "w+")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    watchdog = threading.Timer(120, server.kill)  # a hung server ends the test (readline gets EOF) instead of the suite
    watchdog.start()
    try:
        lines = [server.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("qa: indexed 1 file, "), (lines, log.seek(0), log.read())
        url = lines[1].split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and "watching" in lines[1]
        client = Client(url, verbose=False)
        assert client.predict("Where is Mount Etna?", api_name="/ask")["citations"][0]["source"] == "volcano.txt"
        write_corpus(seeds, {"lighthouse.txt": "The Tower of Hercules is a Roman lighthouse in A Coruña."})
        assert server.stdout.readline().startswith("qa: seeds changed; indexed 2 files")
        assert client.predict("Where is the Tower of Hercules?", api_name="/ask")["citations"][0]["source"] == "lighthouse.txt"
    finally:
        watchdog.cancel()
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.parametrize("host", ["127.0.0.1 ", " localhost", "bad_host!", "", "http://127.0.0.1", "127.0.0.1:7860"])
def test_a_mistyped_host_is_one_clear_line_before_anything_starts(tmp_path, host):
    command = [sys.executable, "-m", "qa", "serve", "--seeds", str(tmp_path), "--index", str(tmp_path / "index"), "--host", host]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"qa: --host {host!r} is not an IP address or a host name\n"


@pytest.mark.server
def test_serve_on_the_ipv6_loopback(tmp_path):
    from gradio_client import Client

    seeds = write_corpus(tmp_path / "seeds", {"volcano.txt": TOY["volcano.txt"]})
    command = [sys.executable, "-m", "qa", "serve", "--seeds", str(seeds), "--index", str(tmp_path / "index"), "--host", "::1", "--port", str(free_port())]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    watchdog = threading.Timer(120, server.kill)
    watchdog.start()
    try:
        lines = [server.stdout.readline() for _ in range(2)]
        url = lines[1].split(" at ")[1].split()[0]
        assert url.startswith("http://[::1]:"), lines
        assert Client(url, verbose=False).predict("How high is Mount Etna?", api_name="/ask")["citations"][0]["source"] == "volcano.txt"
    finally:
        watchdog.cancel()
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.server
def test_oversized_questions_leave_no_memory_behind(tmp_path):
    """200 rejected questions of 1-2 MB, each in its own session, must not stay in the server's memory."""
    server, url = start_server(tmp_path)
    try:
        assert "3,357 metres" in call_ask(url, json.dumps({"data": ["How high is Mount Etna?", None]}))
        for n in range(20):  # warm: gradio's first sessions and error paths allocate for good
            call_ask(url, json.dumps({"data": ["y" * 1_000_000, None]}))
        before = rss_mb(server.pid)
        for n in range(200):
            refused = call_ask(url, json.dumps({"data": [str(n) + "y" * (2_000_000 if n % 4 == 0 else 1_000_000), None]}))
            assert "the limit is" in refused, refused[:300]
        grown = rss_mb(server.pid) - before
        assert grown < 50, f"RSS grew by {grown:.0f} MB"
    finally:
        stop_server(server)


def multipart(name: str, content: bytes) -> tuple[bytes, dict]:
    boundary = "qa-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.server
def test_an_upload_over_the_file_size_limit_is_refused_and_leaves_nothing(tmp_path, embedder):
    """Gradio's upload route takes files without a login; the limit is the largest file the index reads."""
    from qa import web

    assistant = make_assistant(tmp_path, embedder, files={"volcano.txt": TOY["volcano.txt"]}, max_file_bytes=100_000)
    assistant.index()
    app = web.build_app(assistant)
    url, _ = web.launch(app, port=free_port())
    folder = Path(app.server_app.uploaded_file_dir)
    try:
        kept = set(folder.rglob("*")) if folder.exists() else set()
        for size in (100_001, 150_000, 5_000_000):
            body, headers = multipart("big.txt", b"x" * size)
            status, text = raw(url, "POST", "/gradio_api/upload", body, headers)
            assert status == 413, (size, status, text)
        left = (set(folder.rglob("*")) if folder.exists() else set()) - kept
        assert not [p for p in left if p.is_file()], left
        body, headers = multipart("small.txt", b"x" * 1_000)
        assert raw(url, "POST", "/gradio_api/upload", body, headers)[0] == 200
    finally:
        app.close()


def _disk_nearly_full() -> None:
    """In the server process: files stop growing past 16 KB (EFBIG), as on a full disk, without filling one."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))


@pytest.mark.server
@pytest.mark.parametrize(
    "change, limit, words",
    [
        ({"volcano.txt": b"\xff\xfe not UTF-8 \x81"}, None, "no readable"),
        ({"tower.txt": "The Tower of Hercules is a Roman lighthouse in A Coruna. " * 350}, _disk_nearly_full, "File too large"),
    ],
    ids=["build error", "disk full"],
)
def test_serve_answers_from_the_old_index_when_the_rebuild_at_start_fails(tmp_path, change, limit, words):
    volcano = {"volcano.txt": TOY["volcano.txt"]}
    index = [sys.executable, "-m", "qa", "index", "--seeds", str(write_corpus(tmp_path / "seeds", volcano)), "--index", str(tmp_path / "index")]
    subprocess.run(index, check=True, capture_output=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    server, url = start_server(tmp_path, files={**volcano, **change}, preexec_fn=limit)
    try:
        assert "3,357 metres" in call_ask(url, '{"data": ["How high is Mount Etna?", null]}')
    finally:
        stop_server(server)
    log = (tmp_path / "stderr.txt").read_text()
    failed = [line for line in log.splitlines() if "rebuild failed" in line]
    assert len(failed) == 1 and failed[0].startswith("qa: ") and words in failed[0] and "serving the index built before" in failed[0], log
    assert "Traceback" not in log


def test_the_terminal_shows_our_lines_not_library_chatter(tmp_path):
    """transformers' notes ("`loss_type=None` was set in the config but it is unrecognized...") read as faults."""
    seeds = write_corpus(tmp_path / "seeds", {"volcano.txt": TOY["volcano.txt"]})
    command = [sys.executable, "-m", "qa", "ask", "--rebuild", "--seeds", str(seeds), "--index", str(tmp_path / "index"), "How high is Mount Etna?"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 0 and "3,357 metres" in result.stdout
    assert "loss_type" not in result.stderr and "[transformers]" not in result.stderr, result.stderr
    assert all(line.startswith("qa: ") for line in result.stderr.splitlines()), result.stderr


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--host", "0.0.0.0"], "qa: --host 0.0.0.0 lets anyone who reaches it read the documents; add --auth user:password or --auth-file FILE"),
        (["--host", "::"], "qa: --host :: lets anyone"),
        (["--host", "192.168.1.20"], "qa: --host 192.168.1.20 lets anyone"),
        (["--share"], "qa: a share link lets anyone"),
        (["--host", "0.0.0.0", "--auth", "ana"], "qa: --auth: a login is user:password, both non-empty"),
        (["--host", "0.0.0.0", "--auth-file", "/nonexistent/logins"], "qa: cannot read --auth-file /nonexistent/logins"),
    ],
)
def test_off_loopback_serve_refuses_to_start_without_a_login(tmp_path, flags, words):
    command = [sys.executable, "-m", "qa", "serve", "--seeds", str(tmp_path), "--index", str(tmp_path / "index"), *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 1 and result.stderr.startswith(words) and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.server
def test_on_all_interfaces_the_page_and_api_need_a_login(tmp_path):
    from gradio_client import Client

    (tmp_path / "logins").write_text("# who may read the documents\nana:s3cret\n\nbo:pa:ss\n")
    server, url = start_server(tmp_path, "--host", "::", "--auth-file", str(tmp_path / "logins"))
    try:
        assert url.startswith("http://[::]:")
        local = "http://[::1]:" + url.rstrip("/").rsplit(":", 1)[1]  # asyncio binds :: to IPv6 only
        status, text = raw(local, "POST", "/gradio_api/call/ask", '{"data": ["How high is Mount Etna?", null]}')
        assert status == 401 and "3,357" not in text
        assert raw(local, "POST", "/gradio_api/upload", *multipart("x.txt", b"x"))[0] == 401
        with pytest.raises(Exception):
            Client(local, verbose=False, auth=("ana", "wrong"))
        for login in (("ana", "s3cret"), ("bo", "pa:ss")):
            answer = Client(local, verbose=False, auth=login).predict("How high is Mount Etna?", api_name="/ask")
            assert answer["citations"][0]["source"] == "volcano.txt"
    finally:
        stop_server(server)


@pytest.mark.server
def test_api_add_documents_returns_the_index_report_and_each_refusal(tmp_path, embedder):
    from gradio_client import Client, handle_file

    from qa import web

    assistant = make_assistant(tmp_path, embedder, files={"volcano.txt": TOY["volcano.txt"]})
    assistant.index()
    up = write_corpus(tmp_path / "up", {"lighthouse.txt": "The Tower of Hercules is a Roman lighthouse in A Coruña.\n", "blob.md": b"\x00\x01"})
    app = web.build_app(assistant)
    url, _ = web.launch(app, port=free_port())
    try:
        client = Client(url, verbose=False)
        result = client.predict([handle_file(str(up / "lighthouse.txt")), handle_file(str(up / "blob.md"))], api_name="/add_documents")
        assert {k: result[k] for k in ("files", "added", "changed", "removed", "unchanged")} == {"files": 2, "added": 1, "changed": 0, "removed": 0, "unchanged": 1}
        assert result.keys() == {"files", "added", "changed", "removed", "unchanged", "chunks_embedded", "seconds", "refused"}
        assert result["refused"] == [{"name": "blob.md", "reason": "binary file"}]
        answer = client.predict("Where is the Tower of Hercules?", None, ["lighthouse.txt"], api_name="/ask")
        assert "A Coruña" in answer["answer"] and answer["citations"][0]["source"] == "lighthouse.txt"
    finally:
        app.close()
