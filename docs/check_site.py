"""What a reader of the built site must never see: markup that did not render.

``mkdocs build --strict`` fails on broken links and unresolved API references,
but a docstring can still reach the page as source text. This check reads the
main content of every HTML page of a built site (the ``<article>``, not the
navigation) with code blocks and code spans emptied, and reports:

* a Sphinx role, ``:func:`` or ``:class:`` … before a code span, or a role
  with its backquotes (``:mod:`x```);
* a Markdown reference link left as text, ``[text][target]``;
* a doctest prompt, ``>>>``, outside a code block (an example run together
  as prose);
* a reStructuredText directive, ``.. note::``, as text starting a line or a
  paragraph.

docs/hooks.py runs it after every build (``on_post_build``), so ``make docs``
fails on any of these; ``python docs/check_site.py SITE_DIR`` runs it alone.

Example:
    >>> page_problems('<article><p>Uses :func:<code>attach_lcr</code>.</p>'
    ...               '<pre><code>&gt;&gt;&gt; [x][y]</code></pre></article>')
    ['a Sphinx role: …<article><p>Uses :func:<code>attach_lcr</code>.</p><…']
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

#: What a page's main content must not hold, by what it is.
RAW_MARKUP = (
    ("a Sphinx role", re.compile(r":[a-z]+(?::[a-z]+)?:(?:<code\b|`)")),
    ("a reference link left as text", re.compile(r"\]\[[\w.:-]+\]")),
    ("a doctest outside a code block", re.compile(r"&gt;&gt;&gt;")),
    ("a reStructuredText directive", re.compile(r"(?m)(?:^|>)[ \t]*\.\. [\w-]+::")),
)
ARTICLE = re.compile(r"<article\b.*?</article>", re.S)
PRE = re.compile(r"(<pre\b[^>]*>)(.*?)(</pre>)", re.S)
CODE = re.compile(r"(<code\b[^>]*>)(.*?)(</code>)", re.S)
#: How much text around a finding the report shows, and the most findings it lists.
CONTEXT = 24
MOST = 30


def _blank(match: re.Match) -> str:
    """An element with its content blanked out, its length kept."""
    return match[1] + " " * len(match[2]) + match[3]


def page_problems(html: str) -> list[str]:
    """What ``html`` (one page) shows raw: one line per finding, with its context."""
    main = "".join(ARTICLE.findall(html)) or html
    # Code is shown as written: only the text around it is searched.
    searched = CODE.sub(_blank, PRE.sub(_blank, main))
    found = []
    for what, pattern in RAW_MARKUP:
        for match in pattern.finditer(searched):
            start = max(0, match.start() - CONTEXT)
            context = " ".join(main[start:match.end() + CONTEXT].split())
            found.append(f"{what}: …{context}…")
    return found


def problems(site: Path) -> list[str]:
    """Every finding of every page under ``site``, each naming its page."""
    return [f"{page.relative_to(site)}: {problem}"
            for page in sorted(site.rglob("*.html"))
            for problem in page_problems(page.read_text(encoding="utf-8"))]


def report(found: list[str]) -> str:
    """The findings as a message: how many, then at most :data:`MOST` of them."""
    shown = found[:MOST]
    more = len(found) - len(shown)
    places = f"{len(found)} place" + ("s" if len(found) != 1 else "")
    return "\n".join([f"the built site shows raw markup in {places}:", *shown]
                     + ([f"… and {more} more"] if more else []))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python docs/check_site.py SITE_DIR (a built site)", file=sys.stderr)
        return 2
    found = problems(Path(argv[0]))
    if found:
        print(report(found), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
