"""An AI assistant consults qa over MCP, as a desktop assistant would: the official `mcp` client over streamable
HTTP lists the tools, reads what `ask` returns, calls it and gets a verbatim quote with its source, behind the
server's login."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import asyncio
import base64
import json
import socket

import pytest

from conftest import TOY, make_assistant

from qa.web import MCP_PATH

pytestmark = pytest.mark.server

LOGIN = ("ana", "s3cret")


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder):
    """`qa serve --mcp --auth ana:s3cret` over the toy corpus, in this process: (assistant, MCP URL)."""
    from qa import web

    assistant = make_assistant(tmp_path_factory.mktemp("mcp"), embedder)
    assistant.index()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = web.build_app(assistant, mcp=True)
    url, _ = web.launch(app, port=port, users=[LOGIN])
    yield assistant, url.rstrip("/") + web.MCP_PATH + "/"
    app.close()


def session(url: str, headers: dict | None, work):
    """Run `work(session)` in an MCP client session over streamable HTTP; returns what it returns."""
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            async with streamable_http_client(url, http_client=http) as (read, write, _):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    return await work(s)

    return asyncio.run(run())


async def list_tools(s):
    return (await s.list_tools()).tools


def test_the_tool_says_what_it_returns(served):
    tools = session(served[1], basic(*LOGIN), list_tools)
    assert [t.name for t in tools] == ["ask"]
    ask = tools[0]
    for words in ("verbatim", "`answered` (true or false)", "`confidence`", "`source`", "`line`", "`start` and `end` character offsets"):
        assert words in ask.description
    assert ask.inputSchema["required"] == ["question"] and ask.inputSchema["properties"]["question"]["type"] == "string"
    assert "follow-up" in ask.inputSchema["properties"]["history"]["description"]


def test_an_assistant_asks_and_gets_a_verbatim_quote_with_its_source(served):
    assistant, url = served

    async def work(s):
        first = await s.call_tool("ask", {"question": "How many eggs does the queen lay a day?"})
        empty = await s.call_tool("ask", {"question": "   "})
        return first, empty

    result, empty = session(url, basic(*LOGIN), work)
    assert not result.isError
    answer = json.loads(result.content[0].text)  # JSON text, as an assistant reads and quotes it
    assert answer["answered"] and answer["confidence"] >= assistant.settings.min_confidence
    cite = answer["citations"][0]
    text = (assistant.settings.seeds_dir / cite["source"]).read_text(encoding="utf-8")
    assert cite["source"] == "notes/bees.md" and "1,500 eggs" in cite["quote"]
    assert text[cite["start"] : cite["end"]] == cite["quote"] and cite["line"] == 3
    assert empty.isError and "the question is empty" in empty.content[0].text


@pytest.mark.parametrize("headers", [None, basic("ana", "wrong"), basic("", ""), {"Authorization": "Bearer s3cret"}])
def test_the_mcp_endpoint_sits_behind_the_same_login(served, headers):
    import httpx

    url = served[1]
    response = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers or {})
    assert response.status_code == 401 and "Basic" in response.headers["www-authenticate"]
    with pytest.raises(Exception):  # the client's own error (an ExceptionGroup around the 401)
        session(url, headers, list_tools)


def test_without_a_login_the_api_ask_is_refused_as_the_page_is(served):
    import httpx

    root = served[1].removesuffix(MCP_PATH + "/")
    for path in ("/gradio_api/call/ask", "/gradio_api/run/ask"):
        response = httpx.post(root + path, json={"data": ["How high is Mount Etna?", None, None]})
        assert response.status_code == 401, (path, response.text)


def test_mcp_and_api_questions_share_the_page_s_concurrency_limit(tmp_path, embedder):
    """With one answer at a time (ask_concurrency=1), MCP calls (outside gradio's queue) and API calls (inside
    it) asked together are all answered, never two at once."""
    import threading
    import time

    from gradio_client import Client

    from qa import web

    assistant = make_assistant(tmp_path, embedder, ask_concurrency=1)
    assistant.index()
    lock, running, most = threading.Lock(), [0], [0]
    real_ask = assistant.ask

    def watched_ask(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)  # widen each answer so that calls let through together would overlap
            return real_ask(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    assistant.ask = watched_ask
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = web.build_app(assistant, mcp=True)
    url, _ = web.launch(app, port=port, users=[LOGIN])
    try:
        api_answers = []

        def api_user() -> None:
            client = Client(url, auth=LOGIN, verbose=False)
            api_answers.append(client.predict("How high is Mount Etna?", None, None, api_name="/ask"))

        users = [threading.Thread(target=api_user) for _ in range(2)]
        for u in users:
            u.start()

        async def work(s):
            import asyncio as aio

            return await aio.gather(*(s.call_tool("ask", {"question": "How many eggs does the queen lay a day?"}) for _ in range(4)))

        results = session(url.rstrip("/") + web.MCP_PATH + "/", basic(*LOGIN), work)
        for u in users:
            u.join(timeout=120)
    finally:
        app.close()
    assert [json.loads(r.content[0].text)["answered"] for r in results] == [True] * 4
    assert len(api_answers) == 2 and all(a["answered"] and "3,357" in a["answer"] for a in api_answers)
    assert most[0] == 1
