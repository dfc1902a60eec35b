"""The chat page in a real headless Chromium: a visitor asks, reads the quote and its source, opens the passage,
follows up, clicks an example, rebuilds the index; a document's own markup shows as text and never runs."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import socket
from pathlib import Path

import pytest

from conftest import TOY, make_assistant, write_corpus

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs /usr/bin/chromium (apt-get install chromium, or `make browser`)", allow_module_level=True)

pytestmark = pytest.mark.browser

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
EVIL = (
    "# Incident report\n\n"
    "The attacker wrote <script>window.__pwned=1</script> into the guestbook page.\n"
    'Next the attacker posted <img src=x onerror="window.__pwned=2"> as an avatar.\n'
    "A phishing message said [claim your prize](https://example.com/prize) in bold **letters**.\n"
)
#: Two men of whom "How old was he?" can be asked: only the chat's history says which one is meant.
PEOPLE = {
    "valencia.txt": "Carlos Ruiz became mayor of Valencia in 2015. He was 38 years old at the time.\n",
    "keeper.txt": "Tom Reed retired as the lighthouse keeper of Fastnet in 2001. He was 67 years old then.\n",
}
CORPUS = {**TOY, **PEOPLE, "incident.md": EVIL}
REPLY = "#chat .qa-answer, #chat .qa-warn"


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder):
    """The app over the toy corpus, PEOPLE and a hostile document, with one example question beside the seeds."""
    from qa import web

    tmp = tmp_path_factory.mktemp("browser")
    assistant = make_assistant(tmp, embedder, files=CORPUS)
    write_corpus(tmp / "eval", {"seeds_dev.jsonl": json.dumps({"q": "How high is Mount Etna?", "source": "volcano.txt"})})
    assistant.index()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = web.build_app(assistant)
    address, _ = web.launch(app, port=port)
    yield assistant, address
    app.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, served):
    url = served[1]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    page.wait_for_selector("#question textarea")
    yield page
    assert all(r.startswith(url) or r.startswith("data:") for r in requests), "the page fetched from the web"
    page.close()


def ask(page, question: str):
    """Type a question, press Enter, and return the reply once it is rendered."""
    before = page.locator(REPLY).count()
    page.fill("#question textarea", question)
    page.press("#question textarea", "Enter")
    page.wait_for_function(f"document.querySelectorAll({REPLY!r}).length > {before}", timeout=60_000)
    return page.locator(REPLY).last


def test_reply_shows_the_quote_its_source_and_the_passage_on_demand(page):
    reply = ask(page, "How many eggs does the queen lay a day?")
    assert "1,500 eggs" in reply.locator("blockquote").first.inner_text()
    assert "[1] notes/bees.md, line 3" in reply.inner_text()
    passage = reply.locator(".qa-context").first
    assert not passage.is_visible()
    reply.locator("summary").first.click()
    assert passage.is_visible() and "1,500 eggs" in passage.locator("mark").inner_text()
    assert "Honey bees live in colonies" in passage.inner_text()


def test_markup_in_documents_and_questions_shows_as_text_and_never_runs(page):
    ask(page, "What did the attacker write into the guestbook page?")
    ask(page, "What did the attacker post as an avatar? <img src=y onerror=window.__pwned=3>")
    ask(page, "What did the phishing message say?")
    for summary in page.locator("#chat summary").all():
        summary.click()
    text = page.locator("#chat").inner_text()
    assert "<script>window.__pwned=1</script>" in text
    assert '<img src=x onerror="window.__pwned=2">' in text and "<img src=y onerror=window.__pwned=3>" in text
    assert "[claim your prize](https://example.com/prize) in bold **letters**" in text
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#chat script, #chat img[src='x'], #chat img[src='y'], #chat a[href*='example.com']").count() == 0


def test_follow_up_and_bad_input_get_answers_in_the_chat(page, served):
    from playwright.sync_api import expect

    assert "The question is empty" in ask(page, "   ").inner_text()
    assert "the limit is 2,000" in ask(page, "why " * 25_000).inner_text()
    assert "(100,000 characters)" in page.locator("#chat").inner_text()
    ask(page, "When did Tom Reed retire?")
    assert "67 years old" in ask(page, "How old was he?").inner_text()
    ask(page, "Who became mayor of Valencia?")
    assert "38 years old" in ask(page, "How old was he?").inner_text()
    # A new chat forgets the mayor: the same question is answered as if asked first (today the keeper's line).
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(REPLY)).to_have_count(0)
    cold = served[0].ask("How old was he?").citations[0].quote
    assert cold in ask(page, "How old was he?").locator("blockquote").first.inner_text()


def test_a_question_sent_while_the_last_is_answered_is_kept_and_answered_next(page, served, monkeypatch):
    """A visitor types and sends the next question before the last answer arrives: it is neither wiped from
    the box by that answer nor dropped; it is answered after it."""
    import threading

    assistant, slow = served[0], "How many eggs does the queen lay a day?"
    entered, release, ask_now = threading.Event(), threading.Event(), served[0].ask

    def held(question, *args, **kwargs):
        if question == slow:  # the first question is held until the second has been sent
            entered.set()
            release.wait(60)
        return ask_now(question, *args, **kwargs)

    monkeypatch.setattr(assistant, "ask", held)
    box, before = "#question textarea", page.locator(REPLY).count()
    try:
        page.fill(box, slow)
        page.press(box, "Enter")
        assert entered.wait(60)
        page.wait_for_function(f"document.querySelector({box!r}).value === ''")  # the echo emptied the box
        page.fill(box, "When did Tom Reed retire?")
        page.press(box, "Enter")
        page.wait_for_timeout(300)  # the Enter reached a page still waiting for the first answer
    finally:
        release.set()
    page.wait_for_function(f"document.querySelectorAll({REPLY!r}).length >= {before + 2}", timeout=60_000)
    first, second = page.locator(REPLY).nth(before), page.locator(REPLY).nth(before + 1)
    assert "1,500 eggs" in first.inner_text() and "2001" in second.inner_text()
    assert page.input_value(box) == ""


def test_unanswerable_question_shows_closest_passages_not_an_answer(page):
    reply = ask(page, "What is the boiling point of liquid nitrogen?")
    assert "The documents do not answer this question." in reply.inner_text()
    assert "Closest passages (not an answer)" in reply.inner_text()


def test_example_question_then_the_rebuild_button_picks_up_a_new_file(page, served):
    from playwright.sync_api import expect

    page.fill("#question textarea", "A question not sent yet")
    page.get_by_text("How high is Mount Etna?").click()
    page.wait_for_selector(REPLY, timeout=60_000)
    assert "volcano.txt" in page.locator(REPLY).last.inner_text()
    assert page.input_value("#question textarea") == "A question not sent yet"  # an example leaves the box alone

    panel = page.locator("#index-panel")
    files = len(CORPUS)
    expect(panel).to_contain_text(f"{files} documents")
    write_corpus(served[0].settings.seeds_dir, {"lighthouse.txt": "The Tower of Hercules is a Roman lighthouse in A Coruña."})
    page.reload()
    expect(panel).to_contain_text("changed since this build (1 added)")
    page.get_by_role("button", name="Rebuild index").click()
    expect(page.get_by_text(f"Indexed {files + 1} files")).to_contain_text("1 added", timeout=60_000)
    expect(panel).to_contain_text("lighthouse.txt")
    expect(panel).not_to_contain_text("changed since")
    assert "lighthouse.txt" in ask(page, "Where is the Tower of Hercules?").inner_text()


def choose(page, *sources: str) -> None:
    """Pick documents in the 'Ask within' picker, as a visitor does: open it, click each name."""
    for source in sources:
        page.locator("#sources input").click()
        page.get_by_role("option", name=source, exact=True).click()
    page.keyboard.press("Escape")


def test_the_document_picker_limits_answers_to_the_chosen_files(page):
    choose(page, "valencia.txt")
    reply = ask(page, "How old was he?")
    assert "38 years old" in reply.locator("blockquote").first.inner_text()
    assert "keeper.txt" not in reply.inner_text() and "valencia.txt" in reply.inner_text()
    page.locator("#sources .token-remove, #sources [aria-label*='Remove']").first.click()
    choose(page, "keeper.txt")
    reply = ask(page, "How old was he?")
    assert "67 years old" in reply.locator("blockquote").first.inner_text()
    assert "valencia.txt" not in reply.inner_text()


def test_upload_shows_progress_answers_from_the_new_file_and_names_a_refused_one(page, served, tmp_path):
    from playwright.sync_api import expect

    up = write_corpus(tmp_path, {"harbour.md": "The harbour of Vigo closes its gates at 22:00 every night.\n", "blob.txt": b"\x00\x01\x02"})
    page.evaluate(
        """() => { window.__progress = [];
        new MutationObserver(() => { for (const e of document.querySelectorAll('.progress-text, .progress-level, .meta-text'))
            window.__progress.push(e.textContent); }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
    )
    page.set_input_files("#upload input[type=file]", [str(up / "harbour.md"), str(up / "blob.txt")])
    status = page.locator("#status")
    expect(status).to_contain_text("1 added", timeout=60_000)
    expect(status).to_contain_text("Not added: blob.txt: binary file")
    assert any("Embedding the new documents" in t for t in page.evaluate("window.__progress")), page.evaluate("window.__progress")
    expect(page.locator("#index-panel")).to_contain_text("harbour.md")
    reply = ask(page, "When does the harbour of Vigo close its gates?")
    assert "22:00" in reply.locator("blockquote").first.inner_text() and "harbour.md" in reply.inner_text()
    assert not (served[0].settings.seeds_dir / "blob.txt").exists()


def test_a_citation_opens_its_document_at_the_quote(page, browser, served):
    from playwright.sync_api import expect

    long = "Filler line about nothing in particular.\n" * 200 + "The archive of Simancas holds 80,000 bundles of papers.\n" + "More filler.\n" * 50
    write_corpus(served[0].settings.seeds_dir, {"archive.txt": long, "trap.md": "Bundles <script>window.__pwned=9</script> of papers.\n"})
    served[0].index()
    reply = ask(page, "How many bundles of papers does the archive of Simancas hold?")
    link = reply.locator("a.qa-open").first
    with page.context.expect_page() as opened:
        link.click()
    view = opened.value
    view.wait_for_selector("#qa-quote", timeout=60_000)
    quote = view.locator("#qa-quote")
    expect(quote).to_contain_text("The archive of Simancas holds 80,000 bundles of papers.")
    assert "80,000" in quote.locator("b").inner_text()
    assert view.locator("#source-view .qa-doc-text").inner_text().count("Filler line") == 200
    view.wait_for_function("() => { const r = document.querySelector('#qa-quote').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }")
    url = view.url
    assert "doc=archive.txt" in url and "start=" in url
    direct = browser.new_page()
    direct.goto(url.replace("archive.txt", "trap.md").split("&")[0] + "&start=0&end=7")
    direct.wait_for_selector("#qa-quote")
    assert direct.locator("#qa-quote").inner_text() == "Bundles" and "<script>window.__pwned=9</script>" in direct.locator("#source-view").inner_text()
    assert direct.evaluate("window.__pwned") is None
    direct.goto(url.split("&")[0] + "&start=0&end=999999")
    expect(direct.locator("#source-view")).to_contain_text("The link points outside archive.txt")
    direct.close()
    view.close()


def test_thumbs_up_and_down_append_the_answer_to_feedback_jsonl(page, served):
    feedback = served[0].settings.index_dir.with_name("feedback.jsonl")
    before = feedback.read_text().splitlines() if feedback.exists() else []
    ask(page, "How high is Mount Etna?")
    page.locator("#chat button[aria-label='Like']").last.click()
    ask(page, "What is the boiling point of liquid nitrogen?")
    page.locator("#chat button[aria-label='Dislike']").last.click()
    for _ in range(100):  # the server writes each line as its like event arrives
        lines = feedback.read_text().splitlines() if feedback.exists() else []
        if len(lines) >= len(before) + 2:
            break
        page.wait_for_timeout(100)
    good, bad = [json.loads(line) for line in lines[len(before) :]]
    assert good["verdict"] == "good" and good["question"] == "How high is Mount Etna?" and good["history"] == []
    assert good["citations"][0]["source"] == "volcano.txt" and "3,357" in good["citations"][0]["quote"] and "3,357" in good["answers"][0]
    assert bad["verdict"] == "bad" and not bad["answered"] and bad["history"] == ["How high is Mount Etna?"]


def test_removing_a_document_asks_first_then_moves_its_file_to_the_trash(page, served):
    from playwright.sync_api import expect

    seeds = served[0].settings.seeds_dir
    write_corpus(seeds, {"doomed.txt": "The ferry to Ons island leaves at 09:15 from the harbour.\n"})
    served[0].index()
    page.reload()
    page.wait_for_selector("#question textarea")
    assert "doomed.txt" in ask(page, "When does the ferry to Ons island leave?").inner_text()
    page.locator("#remove input").click()
    page.get_by_role("option", name="doomed.txt", exact=True).click()
    page.locator("#remove-ask").click()
    expect(page.get_by_text("Remove doomed.txt from the index?")).to_be_visible()
    page.locator("#remove-cancel").click()
    expect(page.locator("#remove-confirm")).to_be_hidden()
    assert (seeds / "doomed.txt").exists()
    page.locator("#remove-ask").click()
    page.locator("#remove-confirm").click()
    expect(page.locator("#status")).to_contain_text("Removed doomed.txt", timeout=60_000)
    expect(page.locator("#index-panel")).not_to_contain_text("doomed.txt")
    assert not (seeds / "doomed.txt").exists()
    assert (seeds.parent / ".trash" / "doomed.txt").read_text().startswith("The ferry to Ons island")
    assert "doomed.txt" not in ask(page, "When does the ferry to Ons island leave?").inner_text()
