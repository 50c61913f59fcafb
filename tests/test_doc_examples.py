"""Every `>>>` example in the package's docstrings runs and prints what it says (the README's
Python blocks: tests/test_readme.py)."""

import doctest
import importlib
import pkgutil

import pytest

import glamor

MODULES = sorted(m.name for m in pkgutil.walk_packages(glamor.__path__, "glamor.") if not m.name.endswith("._C"))
WITH_EXAMPLES = []
for name in MODULES:
    module = importlib.import_module(name)
    if any(t.examples for t in doctest.DocTestFinder().find(module)):
        WITH_EXAMPLES.append(name)


def test_the_docstrings_hold_examples():
    assert {"glamor.agent", "glamor.interrupt", "glamor.vector", "glamor.model"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
