"""The examples in qa's docstrings are part of its documentation: each must hold as written."""

import doctest
import importlib
import pkgutil

import pytest

import qa

MODULES = sorted(m.name for m in pkgutil.iter_modules(qa.__path__) if m.name != "__main__")


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_hold(name):
    results = doctest.testmod(importlib.import_module(f"qa.{name}"), report=False)
    assert results.failed == 0


def test_the_docstrings_have_examples_to_check():
    attempted = sum(doctest.testmod(importlib.import_module(f"qa.{name}"), report=False).attempted for name in MODULES)
    assert attempted >= 25
