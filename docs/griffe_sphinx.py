"""Docstrings written for Sphinx, rendered by mkdocstrings: a Griffe extension.

The docstrings of lcr-larq use Google-style sections (``Args:``, ``Example:``)
and reStructuredText's inline markup: double-backquoted literals, which
Markdown reads as code spans already, and Sphinx's cross-reference roles
(``:class:``, ``:func:``, ``:meth:``, ``:attr:``, ``:mod:``, ``:data:``),
which Markdown does not know. This extension rewrites each docstring before
mkdocstrings parses it:

* ``:func:`attach_lcr``` becomes the autorefs link ``[`attach_lcr`][attach_lcr]``,
  which the Python handler's scoped cross-references resolve from where the
  docstring stands (``scoped_crossrefs: true`` in mkdocs.yml), so an
  unresolved name fails ``mkdocs build --strict``; ``~a.b.C`` shows ``C``, and
  ``:meth:`title <a.b.C.d>``` (which may run over two lines) shows ``title``;
  the domain ``:py:`` may precede the role;
* a role naming something outside the project (``matplotlib.figure.Figure``)
  or a private name (``_extras``) becomes a code span: no page documents it;
* ``Example:`` sections are read as ``Examples:`` (as Sphinx' napoleon
  does), ``Example (what it shows):`` too, its words the section's first
  line, and doctests outside such a section become code blocks;
* a constant documented by ``#:`` comments (Sphinx autodoc's way) gets them
  as its docstring;
* a package's own docstring is rewritten too (Griffe announces the top-level
  package of a load as a package, not as an object);
* a ``.. math::`` directive becomes a code block of its formula, and a
  paragraph ending in ``::`` (reStructuredText's literal block) ends in ``:``.

mkdocs.yml loads it with ``extensions: [docs/griffe_sphinx.py]``.
"""

from __future__ import annotations

import re

import griffe

#: The packages whose objects the API pages document.
PROJECT_ROOTS = ("lcr_larq", "models")

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|data|obj|exc):`(~?)(?:([^`<]+?)\s*<([\w.]+)>|([\w.]+))`"
)
MATH = re.compile(
    r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n\n(?P<body>(?:(?P=indent)[ \t]+.*\n?|\n)+)",
    re.MULTILINE,
)
LITERAL_MARKER = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)
EXAMPLE_HEADER = re.compile(r"^([ \t]*)Example:[ \t]*$", re.MULTILINE)
#: ``Example (what it shows):``, the words in parentheses over one line or more.
CAPTIONED_EXAMPLE = re.compile(
    r"^(?P<indent>[ \t]*)Examples? \((?P<caption>[^\n]*(?:\n(?P=indent)\S[^\n]*)*?)\):[ \t]*$",
    re.MULTILINE,
)


def _documented(target: str) -> bool:
    """Whether ``target`` is a name the API pages can hold: the project's own
    (or unqualified, resolved where the docstring stands) and not private."""
    if target.rsplit(".", 1)[-1].startswith("_"):
        return False
    return "." not in target or target.split(".", 1)[0] in PROJECT_ROOTS


def _role(match: re.Match) -> str:
    short, title, titled_target, plain_target = match.groups()
    target = titled_target or plain_target
    if title:
        shown = " ".join(title.split())
    else:
        shown = target.rsplit(".", 1)[-1] if short else target
    if not _documented(target):
        return f"`{shown}`"
    return f"[`{shown}`][{target}]"


def _math(match: re.Match) -> str:
    indent = match["indent"]
    body = "\n".join(line.strip() for line in match["body"].strip("\n").splitlines())
    return f"{indent}```text\n{body}\n{indent}```\n\n"


def _captioned_example(match: re.Match) -> str:
    indent, caption = match["indent"], " ".join(match["caption"].split())
    return f"{indent}Examples:\n{indent}    {caption[:1].upper()}{caption[1:]}:\n"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def fence_doctests(text: str) -> str:
    """Puts doctests that stand outside an ``Examples:`` section (where Markdown
    would read ``>>>`` as quotes) into ``pycon`` code blocks.

    Example:
        >>> fence_doctests("Text.\\n\\n>>> 1 + 1\\n2").splitlines()
        ['Text.', '', '```pycon', '>>> 1 + 1', '2', '```']
    """
    lines, out = text.split("\n"), []
    examples_indent = None  # the indent of the Examples: header we are under
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip() and examples_indent is not None and _indent(line) <= examples_indent:
            examples_indent = None
        if line.strip() == "Examples:":
            examples_indent = _indent(line)
        starts_doctest = (line.lstrip().startswith(">>>") and _indent(line) < 4
                          and examples_indent is None and (not out or not out[-1].strip()))
        if not starts_doctest:
            out.append(line)
            index += 1
            continue
        indent = " " * _indent(line)
        block = []
        while index < len(lines) and lines[index].strip():
            block.append(lines[index][len(indent):])
            index += 1
        out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
    return "\n".join(out)


def markdown_docstring(text: str) -> str:
    """``text`` (a docstring with Sphinx roles) as the Markdown mkdocstrings renders.

    Example:
        >>> markdown_docstring("Uses :func:`~lcr_larq.graph.attach_lcr` and :class:`Figure`.")
        'Uses [`attach_lcr`][lcr_larq.graph.attach_lcr] and [`Figure`][Figure].'
        >>> markdown_docstring("A :class:`matplotlib.figure.Figure`, see :func:`_extras`::")
        'A `matplotlib.figure.Figure`, see `_extras`:'
        >>> markdown_docstring("Of :py:meth:`Dataset.epochs\\n<lcr_larq.data.Dataset.epochs>`.")
        'Of [`Dataset.epochs`][lcr_larq.data.Dataset.epochs].'
        >>> markdown_docstring("Example (a linear\\nmodel):\\n    >>> 1\\n    1").splitlines()
        ['Examples:', '    A linear model:', '', '    >>> 1', '    1']
    """
    text = CAPTIONED_EXAMPLE.sub(_captioned_example, text)
    text = EXAMPLE_HEADER.sub(r"\1Examples:", text)
    text = fence_doctests(MATH.sub(_math, text))
    text = ROLE.sub(_role, text)
    return LITERAL_MARKER.sub(r"\1:", text)


def comment_docstring(lines: list[str], lineno: int) -> str | None:
    """The ``#:`` comment of the assignment on line ``lineno`` (1-based) of
    ``lines``: the ``#:`` lines just above it, or one at its end.

    Example:
        >>> comment_docstring(["#: The most", "#: characters.", "LIMIT = 100"], 3)
        'The most\\ncharacters.'
        >>> comment_docstring(["LIMIT = 100  #: The most characters."], 1)
        'The most characters.'
    """
    above = []
    index = lineno - 2
    while index >= 0 and lines[index].lstrip().startswith("#:"):
        above.insert(0, lines[index].lstrip()[2:].strip())
        index -= 1
    if above:
        return "\n".join(above)
    _, marker, trailing = lines[lineno - 1].partition("  #: ")
    return trailing.strip() if marker else None


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring with :func:`markdown_docstring` once its
    module is loaded (before mkdocstrings parses it); gives constants their
    ``#:`` comments as docstrings."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self.on_object(obj=pkg)

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None and obj.is_attribute and obj.lineno:
            text = comment_docstring(obj.lines_collection[obj.filepath], obj.lineno)
            if text:
                obj.docstring = griffe.Docstring(text, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
