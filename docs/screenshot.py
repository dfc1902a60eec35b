"""docs/chat.png: the chat in headless Chromium after a visitor added documents, asked, and opened a source.

Run from the repository root: `python docs/screenshot.py` (needs /usr/bin/chromium and playwright). It copies
seeds/ to a temporary folder, so the repository's own seeds and index are not touched.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HARBOUR = (
    "# Vigo harbour rules\n\n"
    "Visitors may moor at the marina pontoons for up to three nights.\n"
    "The harbour of Vigo closes its gates at 22:00 every night, and opens them again at 06:30.\n"
    "Boats arriving after closing time wait at the outer buoy until the gates open.\n"
)
QUESTION = "How many nights may visitors moor at the marina pontoons?"


def main(out: Path = ROOT / "docs" / "chat.png") -> None:
    from playwright.sync_api import expect, sync_playwright

    from qa import Assistant, Settings, web

    with tempfile.TemporaryDirectory(prefix="qa-shot-") as tmp:
        tmp = Path(tmp)
        shutil.copytree(ROOT / "seeds", tmp / "seeds")
        (tmp / "uploads").mkdir()
        (tmp / "uploads" / "harbour-rules.md").write_text(HARBOUR, encoding="utf-8")
        (tmp / "uploads" / "scan.txt").write_bytes(b"\x00\x01 a scanned image saved as .txt")
        assistant = Assistant(Settings(seeds_dir=tmp / "seeds", index_dir=tmp / "index"))
        assistant.index()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app = web.build_app(assistant)
        url, _ = web.launch(app, port=port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(url)
                page.set_input_files("#upload input[type=file]", [str(tmp / "uploads" / n) for n in ("harbour-rules.md", "scan.txt")])
                expect(page.locator("#status")).to_contain_text("1 added", timeout=120_000)
                page.fill("#question textarea", QUESTION)
                page.press("#question textarea", "Enter")
                page.wait_for_selector("#chat a.qa-open", timeout=120_000)
                link = page.locator("#chat a.qa-open").first.get_attribute("href")
                # the source view, as the citation's link opens it, on the same page as the upload and the answer
                page.goto(url.rstrip("/") + "/" + link)
                page.wait_for_selector("#qa-quote")
                page.set_input_files("#upload input[type=file]", [str(tmp / "uploads" / "scan.txt")])
                expect(page.locator("#status")).to_contain_text("Not added", timeout=120_000)
                page.fill("#question textarea", QUESTION)
                page.press("#question textarea", "Enter")
                page.wait_for_selector("#chat .qa-answer", timeout=120_000)
                page.evaluate("document.querySelector('#qa-quote').scrollIntoView({block: 'center'})")
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            app.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
