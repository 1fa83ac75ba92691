"""MkDocs hooks: the API reference pages, the examples and the changelog, made
from the code; links that work in the repository and on the site; a check of
the built site.

Every module of ``lcr_larq`` and ``models`` (but ``_private`` ones) gets a page
``api/<module>.md`` holding mkdocstrings' ``::: <module>``, and the nav a
section per layer of the code (the core, the architectures, the tools, the
commands); ``api/index.md`` lists them with the first line of each module's
docstring. Every ``examples/*.py`` gets a page ``examples/<name>.md`` (its
docstring, then its code) in the nav's Examples section, whose overview is
``examples/README.md``. ``CHANGELOG.md`` at the top of the checkout is the page
``changelog.md``. Nothing of this is written to disk: a module or example
added has its page at the next build.

The hand-written pages link to these files where they are in the repository
(``../lcr_larq/graph.py#find_blocks``, ``../examples/own_model.py``,
``../CHANGELOG.md``), so the links work when the pages are read there; on the
site each link goes to the file's page (:func:`site_target`). After the build,
``docs/check_site.py`` fails it if a page shows raw markup (a Sphinx role, a
``[text][target]`` reference, a doctest outside a code block).

mkdocs.yml loads it with ``hooks: [docs/hooks.py]``.
"""

from __future__ import annotations

import ast
import importlib.util
import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lcr_larq", "models")
#: The layers of the code, top-down as import-linter checks them (setup.cfg),
#: each with the module prefixes it holds; the core holds the rest of lcr_larq.
LAYERS = (
    ("Commands", ("lcr_larq.cli",)),
    ("Tools", ("lcr_larq.training", "lcr_larq.evaluation", "lcr_larq.diagnostics",
               "lcr_larq.export", "lcr_larq.plots", "lcr_larq.experiments")),
    ("Architectures", ("models",)),
    ("Core", ("lcr_larq",)),
)
ROLE = re.compile(r":[a-z]+:`(~?)([\w.]+)`")
API_DIR = "api"
API_SECTION = "API reference"
EXAMPLES = ROOT / "examples"
EXAMPLES_SECTION = "Examples"
DOCS = ROOT / "docs"
#: A Markdown link's target: ``[text](target)`` or ``![alt](target)``.
LINK = re.compile(r"(\]\()([^)\s]+)(\))")
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)


def modules() -> list[str]:
    """The public modules of the packages, packages before their modules."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not any(part.startswith("_") for part in parts):
                found.append(".".join(parts))
    return sorted(found, key=lambda name: name.split("."))


def layer(module: str) -> str:
    """The layer of ``module``: the first whose prefixes hold it."""
    for name, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    raise ValueError(f"{module} is in no layer")


def summary(module: str) -> str:
    """The first paragraph of ``module``'s docstring, read without importing it,
    its Sphinx roles as code (``:class:`~a.B``` → ``B``)."""
    path = ROOT.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.strip().split("\n\n")[0].split())
    return ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", first)


def page(module: str) -> str:
    return f"{API_DIR}/{module}.md"


def index_page() -> str:
    lines = [
        "# API reference",
        "",
        "One page per module, made from its docstrings. The layers are listed from the "
        "top: a module imports only from the layers below it (checked by `make lint`). "
        "`import lcr_larq` gives every module of the core and the names a training script "
        "calls on its model (`attach_lcr`, `strip_lcr`, `schedules_for`, "
        "`recalibrate_batchnorm`, `LipschitzRetention`, …); the architectures are "
        "`from models import build_model`.",
    ]
    for name, _ in LAYERS:
        lines += ["", f"## {name}", ""]
        lines += [f"* [`{m}`]({m}.md) — {summary(m)}" for m in modules() if layer(m) == name]
    return "\n".join(lines) + "\n"


def examples() -> list[Path]:
    """The example programs, ``examples/*.py`` but ``_private`` ones, in the order
    of ``examples/README.md``'s links (the others after them)."""
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    order = {name: index for index, name in enumerate(re.findall(r"\]\((\w+\.py)\)", readme))}
    found = [p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")]
    return sorted(found, key=lambda p: (order.get(p.name, len(order)), p.name))


def example_title(path: Path) -> str:
    """The first line of an example's docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or path.stem
    return doc.partition("\n")[0]


def example_page(path: Path) -> str:
    """An example's page: the first line of its docstring as the title, the rest
    as text, then the code after the docstring."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    title, _, text = (ast.get_docstring(tree) or path.stem).partition("\n")
    code = source.splitlines()[tree.body[0].end_lineno:] if ast.get_docstring(tree) else [source]
    return (f"# {title}\n\n{text.strip()}\n\n`examples/{path.name}`:\n\n"
            f"```python\n" + "\n".join(code).strip("\n") + "\n```\n")


def site_target(path: Path) -> tuple[str, str] | None:
    """``(page, anchor prefix)``: where the site shows the checkout file ``path``
    (outside docs/) — a module's or package's API page, an example's page, the
    examples' overview, the changelog — or None where it shows none."""
    try:
        parts = path.relative_to(ROOT).parts
    except ValueError:
        return None
    if parts == ("CHANGELOG.md",):
        return "changelog.md", ""
    if parts[:1] == ("examples",):
        if parts[1:] in ((), ("README.md",)):
            return "examples/index.md", ""
        if len(parts) == 2 and path.suffix == ".py" and path in examples():
            return f"examples/{path.stem}.md", ""
        return None
    if path.suffix == ".py" or path.is_dir():
        names = list(Path(*parts).with_suffix("").parts) if parts else []
        if names[-1:] == ["__init__"]:
            names.pop()
        module = ".".join(names)
        if module in modules():
            return page(module), f"{module}."
    return None


def rewrite_links(markdown: str, source_dir: Path, page_uri: str) -> str:
    """``markdown``, written at ``source_dir`` of the checkout, as the site page
    ``page_uri`` links: a relative link into docs/ relative to the page, one to a
    file that the site shows elsewhere to that page (a fragment ``#name`` of a
    module becomes its object's anchor ``#module.name``). Code blocks, links to
    the web and links the site cannot show are left as they are (``--strict``
    reports the last)."""

    def link(match: re.Match) -> str:
        target = match[2]
        if "://" in target or target.startswith(("#", "/", "mailto:")):
            return match[0]
        path, _, fragment = target.partition("#")
        resolved = (source_dir / path).resolve()
        if resolved.is_relative_to(DOCS):
            new, prefix = resolved.relative_to(DOCS).as_posix(), ""
        else:
            found = site_target(resolved)
            if found is None:
                return match[0]
            new, prefix = found
        new = posixpath.relpath(new, posixpath.dirname(page_uri) or ".")
        if fragment:
            new += "#" + (fragment if fragment.startswith(prefix) else prefix + fragment)
        return f"{match[1]}{new}{match[3]}"

    pieces, last = [], 0
    for fence in FENCE.finditer(markdown):
        pieces += [LINK.sub(link, markdown[last:fence.start()]), fence[0]]
        last = fence.end()
    return "".join(pieces + [LINK.sub(link, markdown[last:])])


def on_config(config, **kwargs):
    """Fills the nav's Examples section (an overview, then a page per example) and
    adds the API section (one entry per module, by layer)."""
    for index, entry in enumerate(config["nav"]):
        if isinstance(entry, dict) and EXAMPLES_SECTION in entry:
            config["nav"][index] = {EXAMPLES_SECTION: [{"Overview": "examples/index.md"}] + [
                {example_title(p): f"examples/{p.stem}.md"} for p in examples()]}
    sections = [{"Overview": f"{API_DIR}/index.md"}]
    for name, _ in LAYERS:
        sections.append({name: [{m: page(m)} for m in modules() if layer(m) == name]})
    config["nav"].append({API_SECTION: sections})
    return config


def on_files(files: Files, config, **kwargs) -> Files:
    """Adds the generated pages: one per module, the API index, one per example
    with their overview, and the changelog."""
    for module in modules():
        files.append(File.generated(config, page(module), content=f"::: {module}\n"))
    files.append(File.generated(config, f"{API_DIR}/index.md", content=index_page()))
    generated = {"changelog.md": (ROOT, (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")),
                 "examples/index.md": (EXAMPLES, (EXAMPLES / "README.md").read_text("utf-8"))}
    for path in examples():
        generated[f"examples/{path.stem}.md"] = (EXAMPLES, example_page(path))
    for uri, (source_dir, content) in generated.items():
        content = rewrite_links(content, source_dir, uri)
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    """The hand-written pages' links to files outside docs/, to those files' pages."""
    source = page.file.abs_src_path
    if source is None or not Path(source).is_relative_to(DOCS):
        return markdown
    return rewrite_links(markdown, Path(source).parent, page.file.src_uri)


def on_post_build(config, **kwargs) -> None:
    """Fails the build where a page shows raw markup (docs/check_site.py)."""
    spec = importlib.util.spec_from_file_location("check_site", DOCS / "check_site.py")
    check_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_site)
    found = check_site.problems(Path(config["site_dir"]))
    if found:
        raise PluginError(f"docs/check_site.py: {check_site.report(found)}")
