"""Reading the seeds folder is forgiving: bad files are reported and skipped, never fatal."""

import os

import pytest

from qa.documents import content_hashes, load_documents
from qa.errors import CorpusError
from conftest import write_corpus


def test_reads_txt_and_md_recursively_with_relative_sources(tmp_path):
    write_corpus(tmp_path, {"a.txt": "Alpha.", "sub/b.md": "Beta.", "c.csv": "x,y"})
    notes = []
    docs = load_documents(tmp_path, 10_000, notes.append)
    assert [d.source for d in docs] == ["a.txt", "sub/b.md"]
    assert notes == ["skipped c.csv: only .txt, .md, .html, .htm, .pdf, .docx files are indexed"]


def test_bad_files_are_skipped_with_one_line_each(tmp_path):
    write_corpus(
        tmp_path,
        {"good.txt": "Fine text.", "empty.txt": "  \n", "binary.txt": b"\x00\x01\x02abc", "latin1.txt": "caf\xe9".encode("latin-1"), "big.txt": "x" * 500},
    )
    os.symlink(tmp_path, tmp_path / "loop")  # a directory symlink loop is not followed
    notes = []
    docs = load_documents(tmp_path, 100, notes.append)
    assert [d.source for d in docs] == ["good.txt"]
    text = "\n".join(notes)
    for name, reason in [("empty.txt", "empty"), ("binary.txt", "binary"), ("latin1.txt", "not UTF-8"), ("big.txt", "limit")]:
        assert f"skipped {name}" in text and reason in text


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="no readable"):
        load_documents(tmp_path, 100, print)
    with pytest.raises(CorpusError, match="does not exist"):
        load_documents(tmp_path / "nope", 100, print)


def test_content_hashes_follow_the_bytes(tmp_path):
    write_corpus(tmp_path, {"a.txt": "one"})
    before = content_hashes(tmp_path)
    (tmp_path / "a.txt").write_text("two")
    assert content_hashes(tmp_path)["a.txt"] != before["a.txt"]


def _pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (no writer library needed)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_html_gives_its_visible_text_only(tmp_path):
    html = "<html><head><title>T</title><style>p{}</style></head><body><h1>Owls</h1><p>Owls hunt at <b>night</b>.</p><script>alert(1)</script></body></html>"
    write_corpus(tmp_path, {"owls.html": html})
    [doc] = load_documents(tmp_path, 10_000, print)
    assert doc.text == "# Owls\nOwls hunt at night."
    assert "alert" not in doc.text and "p{}" not in doc.text


def test_html_structure_reads_as_markdown(tmp_path):
    """Headings, list items, table rows and quoted posts keep their shape, so a row is read with its cells."""
    html = (
        "<h2>Fees</h2><ul><li>Open <i>daily</i></li></ul>"
        "<table><thead><tr><th>Plan</th><th>Monthly</th></tr></thead><tbody><tr><td>Adult</td><td>$42</td></tr></tbody></table>"
        "<blockquote><p>ken wrote:</p><p>It reboots.</p></blockquote><p>Try another cable.</p>"
    )
    write_corpus(tmp_path, {"fees.html": html})
    [doc] = load_documents(tmp_path, 10_000, print)
    assert doc.text.splitlines() == [
        "## Fees", "- Open daily", "| Plan | Monthly |", "| Adult | $42 |", "> ken wrote:", "> It reboots.", "Try another cable.",
    ]


def test_pdf_text_layer_with_pages(tmp_path):
    write_corpus(tmp_path, {"owls.pdf": _pdf(["Owls hunt at night.", "Barn owls eat mice."]), "broken.pdf": b"%PDF-1.4 garbage"})
    notes = []
    [doc] = load_documents(tmp_path, 10_000, notes.append)
    assert "skipped broken.pdf" in notes[0]
    at = doc.text.index("Barn owls")
    assert doc.page_of(at) == 2 and doc.page_of(0) == 1


def test_a_link_to_a_file_outside_the_folder_is_skipped_and_its_text_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    seeds = write_corpus(tmp_path / "seeds", {"good.txt": "Fine text.", "sub/inside.txt": "Owls hunt at night."})
    os.symlink(secret, seeds / "passwd.txt")
    os.symlink(seeds / "sub" / "inside.txt", seeds / "alias.txt")
    os.symlink(tmp_path / "gone.txt", seeds / "broken.txt")
    notes = []
    docs = load_documents(seeds, 10_000, notes.append)
    assert [(d.source, d.text) for d in docs] == [
        ("alias.txt", "Owls hunt at night."), ("good.txt", "Fine text."), ("sub/inside.txt", "Owls hunt at night.")
    ]
    text = "\n".join(notes)
    assert f"skipped passwd.txt: a link to {secret}, outside the seeds folder" in text
    assert "skipped broken.txt: a broken link" in text
    assert all("root:x" not in d.text for d in docs)
    assert content_hashes(seeds, 10_000)["passwd.txt"] == ""


def _load_in_child(seeds, max_bytes: int) -> tuple[list[str], list[str], list[str]]:
    """load_documents and content_hashes in a child process that is killed if it hangs (a FIFO read blocks forever)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys; from pathlib import Path; from qa.documents import load_documents, content_hashes\n"
        "notes = []; docs = load_documents(Path(sys.argv[1]), int(sys.argv[2]), notes.append)\n"
        "print(json.dumps([[d.source for d in docs], notes, sorted(content_hashes(Path(sys.argv[1]), int(sys.argv[2])).items())]))"
    )
    # 1 GB of address space: reading /dev/zero to the end fails here instead of eating the machine's memory
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
    out = subprocess.run([sys.executable, "-c", limit + code, str(seeds), str(max_bytes)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_named_pipe_a_device_link_and_an_oversized_file_are_skipped_without_hanging(tmp_path):
    seeds = write_corpus(tmp_path, {"good.txt": "Fine text.", "big.txt": "x" * 5_000})
    os.mkfifo(seeds / "x.txt")
    os.symlink("/dev/zero", seeds / "zero.txt")
    os.symlink(seeds / "x.txt", seeds / "pipe-link.txt")
    sources, notes, hashes = _load_in_child(seeds, 1_000)
    assert sources == ["good.txt"]
    text = "\n".join(notes)
    assert "skipped x.txt: a named pipe, not a regular file" in text
    assert "skipped pipe-link.txt: a named pipe, not a regular file" in text
    assert "skipped zero.txt: a link to /dev/zero, outside the seeds folder" in text
    assert "skipped big.txt: 5,000 bytes is over the 1,000 bytes limit" in text
    assert dict(hashes)["x.txt"] == dict(hashes)["big.txt"] == ""



def test_an_index_with_skipped_files_is_up_to_date_until_they_change(tmp_path, embedder):
    """Staleness reads the folder with the limit the index was built with, so an unchanged skipped file (too
    big for this limit, yet under the default) does not make the index look stale."""
    from conftest import make_assistant

    seeds = {"good.txt": "Owls hunt at night.", "big.txt": "Barn owls eat mice. " * 10, "bin.txt": b"\x00\x01"}
    assistant = make_assistant(tmp_path, embedder, seeds, max_file_bytes=100)
    assistant.index()
    assert not assistant.staleness()
    (tmp_path / "seeds" / "big.txt").write_text("Barn owls eat mice.")
    assert assistant.staleness().changed == ("big.txt",)


def test_one_file_is_read_as_the_index_reads_it_and_refused_with_a_reason(tmp_path):
    from qa.documents import read_document

    (tmp_path / "fees.html").write_text("<h2>Fees</h2><p>Late return: $2 a day.</p>", encoding="utf-8")
    doc = read_document(tmp_path, "fees.html", 10_000)
    assert doc.source == "fees.html" and "## Fees" in doc.text and "Late return: $2 a day." in doc.text
    (tmp_path / "big.txt").write_text("x" * 200, encoding="utf-8")
    with pytest.raises(ValueError, match="limit"):
        read_document(tmp_path, "big.txt", 100)
