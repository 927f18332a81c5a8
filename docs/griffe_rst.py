"""A griffe extension for the API reference: docstrings written for Sphinx render in mkdocs.

jaxdiv's docstrings are Google style with reStructuredText mathematics (``.. math::`` blocks and
``:math:`` roles, as in optax). mkdocstrings renders docstring text as Markdown, so before a
docstring is parsed this rewrites

- ``.. math:: formula`` (with its indented continuation lines) into a ``$$ ... $$`` block;
- ``:math:`x``` into ``\\(x\\)``;
- the cross-reference roles ``:func:``, ``:class:``, ``:meth:``, ``:mod:`` into code spans;
- an ``Args:`` entry naming several parameters (``x, y: point clouds``) into one entry per
  parameter with the same description, as griffe's Google parser wants,

which ``pymdownx.arithmatex`` hands to MathJax. RST's ````literal```` is already a Markdown code
span. Loaded from mkdocs.yml (``extensions: [docs/griffe_rst.py]``); not part of the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. math::\s*(?P<first>.*)$")
_MATH_ROLE = re.compile(r":math:`(?P<tex>[^`]+)`")
_XREF_ROLE = re.compile(r":(?:func|class|meth|mod|attr|obj|data|exc):`~?(?P<name>[^`]+)`")


def _width(line: str) -> int:
    return len(line) - len(line.lstrip())


_ARGS = {"Args:", "Arguments:", "Parameters:", "Params:", "Keyword Args:", "Keyword Arguments:"}
_SHARED_ENTRY = re.compile(r"^(?P<names>[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)+):(?P<rest>.*)$")


def _split_shared_entries(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        out.append(lines[i])
        if lines[i].strip() not in _ARGS:
            i += 1
            continue
        base, i = _width(lines[i]), i + 1
        while i < len(lines) and (not lines[i].strip() or _width(lines[i]) > base):
            entry, i = [lines[i]], i + 1
            while i < len(lines) and lines[i].strip() and _width(lines[i]) > _width(entry[0]):
                entry.append(lines[i])
                i += 1
            match = _SHARED_ENTRY.match(entry[0].strip())
            if match is None:
                out += entry
                continue
            indent = entry[0][: _width(entry[0])]
            for name in match["names"].split(","):
                out += [f"{indent}{name.strip()}:{match['rest']}", *entry[1:]]
    return out


def rst_to_markdown(text: str) -> str:
    """Rewrite the reStructuredText mathematics and roles of one docstring into Markdown."""
    lines, out, i = _split_shared_entries(text.splitlines()), [], 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        body = [match["first"].strip()] if match["first"].strip() else []
        i += 1
        # The directive's content: the following lines indented deeper (blank lines inside).
        while i < len(lines):
            if lines[i].strip() and _width(lines[i]) > len(indent):
                body.append(lines[i].strip())
            elif not lines[i].strip() and any(
                ln.strip() and _width(ln) > len(indent)
                for ln in lines[i + 1 : i + 2]
            ):
                pass  # a blank line inside the content
            else:
                break
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}$$", *(f"{indent}{ln}" for ln in body), f"{indent}$$"]
        if i < len(lines) and lines[i].strip():
            out.append("")
    text = "\n".join(out)
    text = _MATH_ROLE.sub(lambda m: rf"\({m['tex']}\)", text)
    return _XREF_ROLE.sub(lambda m: f"`{m['name']}`", text)


class RstMath(griffe.Extension):
    """Rewrite every docstring before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
