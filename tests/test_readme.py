"""The documentation's promises: README.md's Python blocks run as written, and every public
function's docstring carries an ``Examples`` section (which ``--doctest-modules`` runs)."""

import inspect
import pathlib
import re

import pytest

import jaxdiv
from jaxdiv import estimators, losses

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "index.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for page in PAGES:
        for i, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8"))):
            yield pytest.param(code, id=f"{page.relative_to(ROOT)}[{i}]")


@pytest.mark.parametrize("code", list(_blocks()))
def test_python_blocks_run(code, capsys):
    exec(compile(code, "<readme>", "exec"), {"__name__": "readme"})
    # A block whose printed lines carry the expected value in a comment must print it.
    for line, printed in zip(
        [ln for ln in code.splitlines() if ln.startswith("print(")],
        capsys.readouterr().out.splitlines(),
        strict=True,
    ):
        expected = re.search(r"#.*?: (\S.*)$", line) or re.search(r"#\s*(\[.*\]|[-\d.]+)$", line)
        if expected:
            assert printed == expected[1], (line, printed)


def test_pages_have_python_blocks():
    assert len(list(_blocks())) >= 2


def _public_functions():
    for module in (jaxdiv, losses, estimators):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield pytest.param(obj, id=f"{module.__name__}.{name}")


@pytest.mark.parametrize("fn", list(_public_functions()))
def test_public_function_has_examples(fn):
    doc = inspect.getdoc(fn)
    assert "\nExamples:\n" in doc and ">>> " in doc.split("\nExamples:\n")[-1], (
        f"{fn.__module__}.{fn.__qualname__}: add an 'Examples:' section of >>> lines with their "
        "outputs at the end of the docstring")
