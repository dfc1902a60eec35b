"""The command line as a script sees it: exit codes, one-line errors, JSON, and no network."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import TOY, write_corpus

ENV = dict(os.environ, HF_HUB_OFFLINE="1")


def qa(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa", *args], input=stdin, capture_output=True, text=True, env=ENV, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("qa: ") and words in lines[0], result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    seeds = write_corpus(tmp / "seeds", TOY)
    result = qa("index", "--seeds", str(seeds), "--index", str(tmp / "index"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"files", "added", "changed", "removed", "unchanged", "chunks_embedded", "seconds"} == report.keys()
    return seeds, tmp / "index"


def test_help_answers_at_once():
    started = time.perf_counter()
    result = qa("--help")
    assert result.returncode == 0 and "index" in result.stdout
    assert time.perf_counter() - started < 5
    probe = "import sys, qa.cli; qa.cli.parser(); print(sorted(m for m in ('torch', 'faiss', 'gradio', 'sentence_transformers') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV).stdout.strip() == "[]"


@pytest.mark.parametrize("question, words", [("", "empty"), ("   ", "empty"), ("y" * 100_000, "limit")])
def test_bad_question_is_one_line_and_non_zero(built, question, words):
    seeds, index = built
    assert_one_line_error(qa("ask", "--seeds", str(seeds), "--index", str(index), question), words)


def test_missing_index_and_empty_seeds(tmp_path):
    assert_one_line_error(qa("ask", "--index", str(tmp_path / "none"), "Why?"), "qa index")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(qa("index", "--seeds", str(tmp_path / "empty"), "--index", str(tmp_path / "i")), "no readable")
    assert not (tmp_path / "i" / "CURRENT").exists()


def test_corrupt_index_is_one_line(built, tmp_path):
    seeds, index = built
    broken = tmp_path / "index"
    subprocess.run(["cp", "-r", str(index), str(broken)], check=True)
    commit = broken / (broken / "CURRENT").read_text().strip()
    commit.write_text("{not json")
    assert_one_line_error(qa("ask", "--seeds", str(seeds), "--index", str(broken), "How high is Etna?"), "run `qa index`")


def test_ask_json_and_jsonl(built):
    seeds, index = built
    result = qa("ask", "--seeds", str(seeds), "--index", str(index), "--json", "How many eggs does the queen lay a day?")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    text = (seeds / answer["citations"][0]["source"]).read_text(encoding="utf-8")
    assert answer["answered"] and "1,500" in answer["answer"]
    for c in answer["citations"]:
        assert text[c["start"] : c["end"]] == c["quote"] or (seeds / c["source"]).read_text()[c["start"] : c["end"]] == c["quote"]
    lines = [
        {"question": "Who did Jackson elect as mayor in 2017?"},
        {"question": "How old was he?", "history": ["Who did Jackson elect as mayor in 2017?"]},
        {"question": ""},
        "not json",
    ]
    stdin = "\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n"
    result = qa("ask", "--seeds", str(seeds), "--index", str(index), "--jsonl", stdin=stdin)
    out = [json.loads(l) for l in result.stdout.splitlines()]
    assert result.returncode == 0 and len(out) == 4
    assert "34" in out[1]["answer"]
    assert "empty" in out[2]["error"] and "not JSON" in out[3]["error"]


def test_an_index_with_nothing_to_do_says_it_is_up_to_date(built):
    seeds, index = built
    result = qa("index", "--seeds", str(seeds), "--index", str(index))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the index is up to date (3 files, ") and "nothing changed" in result.stdout
    assert "MB" not in result.stdout + result.stderr


def test_stale_index_is_reported(built, tmp_path):
    seeds, index = built
    copy = tmp_path / "seeds"
    subprocess.run(["cp", "-r", str(seeds), str(copy)], check=True)
    (copy / "new.txt").write_text("A new file about lighthouses.")
    result = qa("ask", "--seeds", str(copy), "--index", str(index), "How high is Mount Etna?")
    assert result.returncode == 0 and "changed since the index was built (1 added)" in result.stderr


def test_kill_during_build_leaves_the_old_index_answering(built, tmp_path):
    seeds, index = built
    work = tmp_path / "index"
    subprocess.run(["cp", "-r", str(index), str(work)], check=True)
    live = (work / "CURRENT").read_text()
    big = write_corpus(tmp_path / "big", {f"f{i:03d}.txt": f"Paragraph {i} about topic {i}. " * 120 for i in range(60)})
    proc = subprocess.Popen([sys.executable, "-m", "qa", "index", "--seeds", str(big), "--index", str(work)], env=ENV, stderr=subprocess.PIPE)
    time.sleep(8)  # model loaded, embedding under way
    assert proc.poll() is None, "build finished before it could be killed; make the corpus bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    result = qa("ask", "--seeds", str(seeds), "--index", str(work), "--json", "How high is Mount Etna?")
    assert result.returncode == 0 and json.loads(result.stdout)["citations"][0]["source"] == "volcano.txt"
    assert (work / "CURRENT").read_text() == live


def test_nothing_is_fetched_from_the_network(tmp_path):
    """tiktoken's encoding and the model come from installed packages: with sockets refused, indexing still works."""
    seeds = write_corpus(tmp_path / "seeds", {"a.txt": "Offline text about rivers. Rivers flow to the sea."})
    script = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise OSError('network disabled in this test')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        "from qa.cli import main\n"
        f"sys.exit(main(['index', '--seeds', {str(seeds)!r}, '--index', {str(tmp_path / 'i')!r}]))\n"
    )
    env = {k: v for k, v in ENV.items() if k != "HF_HUB_OFFLINE"}  # even without the offline flag
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "indexed 1 file, 1 chunk in" in result.stdout


def test_text_that_is_not_utf8_is_one_error_and_the_stream_goes_on(built):
    """A lone surrogate or a raw \\xff byte costs one {"error"} line in --jsonl and one `qa:` line as an argument."""
    seeds, index = built
    stdin = b"\n".join([
        b'{"question": "\\ud800"}',
        b'{"question": "Who \xff?"}',
        b'{"question": "How old was he?", "history": ["\\udcff"]}',
        b'{"question": "How high is Mount Etna?"}',
    ]) + b"\n"
    result = subprocess.run([sys.executable, "-m", "qa", "ask", "--seeds", str(seeds), "--index", str(index), "--jsonl"],
                            input=stdin, capture_output=True, env=ENV, timeout=120)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
    out = [json.loads(l) for l in result.stdout.decode("utf-8").splitlines()]
    assert len(out) == 4
    assert "lone surrogate" in out[0]["error"] and "line 2 is not UTF-8" in out[1]["error"]
    assert "history[0]" in out[2]["error"] and out[3]["citations"][0]["source"] == "volcano.txt"
    result = subprocess.run([sys.executable, "-m", "qa", "ask", "--seeds", str(seeds), "--index", str(index), b"Who \xff?"],
                            capture_output=True, text=True, env=ENV, timeout=120)
    assert_one_line_error(result, "byte 0xff is not UTF-8")


def test_control_and_bidi_characters_from_documents_are_escaped_but_json_is_verbatim(tmp_path):
    sentence = "The \x1b[31mlighthouse\x1b[0m keeper\x01 lit the \u202eemal\u202c lamp at dusk every evening."
    seeds = write_corpus(tmp_path / "seeds", {"light.txt": sentence + "\n", "volcano.txt": TOY["volcano.txt"]})
    index = tmp_path / "index"
    assert qa("index", "--seeds", str(seeds), "--index", str(index)).returncode == 0
    question = "Who lit the lamp at dusk every evening?"
    shown = qa("ask", "--seeds", str(seeds), "--index", str(index), question)
    assert shown.returncode == 0, shown.stderr
    assert "\\x1b[31mlighthouse\\x1b[0m keeper\\x01 lit the \\u202eemal\\u202c lamp" in shown.stdout
    assert not any(ch in shown.stdout for ch in "\x1b\x01\u202e\u202c")
    raw = json.loads(qa("ask", "--seeds", str(seeds), "--index", str(index), "--json", question).stdout)
    [c] = [c for c in raw["citations"] if c["source"] == "light.txt"]
    assert c["quote"] == sentence == (seeds / "light.txt").read_text()[c["start"] : c["end"]]
