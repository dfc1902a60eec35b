"""The examples in qa's docstrings are part of its documentation: each must hold as written. They run from the
repository's root, where `seeds/` is (the package's own example, which builds an index, is marked to skip)."""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import qa

MODULES = ["qa", *sorted(f"qa.{m.name}" for m in pkgutil.iter_modules(qa.__path__) if m.name != "__main__")]
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_hold(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    results = doctest.testmod(importlib.import_module(name), report=False)
    assert results.failed == 0


def test_the_docstrings_have_examples_to_check(monkeypatch):
    monkeypatch.chdir(ROOT)
    attempted = sum(doctest.testmod(importlib.import_module(name), report=False).attempted for name in MODULES)
    assert attempted >= 28
