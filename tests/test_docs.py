"""The documentation says what the code does: the tables that restate the code, the
README's library example (run), and links and figures that exist.

``make docs`` builds the site with ``--strict`` (every link, anchor and API reference
resolved); these are the checks that need the code itself.
"""

import importlib.util
import os
import re

import pytest

import lcr_larq
from lcr_larq import cli
from models import MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_LINES = 200


def read(*path: str) -> str:
    return open(os.path.join(ROOT, *path), encoding="utf-8").read()


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after ``heading``."""
    after = text[text.index(heading):]
    lines = after[after.index("\n|"):].strip().splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[2:]  # past the header and its rule


def code_block(text: str, heading: str, language: str = "python") -> str:
    after = text[text.index(heading):]
    return after.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_minimum_input_sizes_table_is_the_registrys():
    rows = table_rows(read("docs", "training.md"), "### Minimum input sizes")
    documented = {name.strip("`"): (int(least), int(published), options == "yes")
                  for name, least, published, options in rows}
    assert documented == {name: (entry.min_input_size, entry.published_input_size,
                                 entry.resnet_options) for name, entry in MODELS.items()}


def test_the_readme_lists_every_command_once():
    rows = table_rows(read("README.md"), "## The commands")
    assert [row[0].strip("`") for row in rows] == [f"lcr-{name}" for name in (
        "train", "study", "tune", "evaluate", "diagnose", "plots", "export")]
    assert sorted(row[0].strip("`")[4:] for row in rows) == cli.commands()


def test_the_readme_is_short_and_every_link_works_in_the_repository():
    """The README, the changelog, the pages and the examples link to files that exist
    where they are read in the repository (the site build points the links to code and
    examples to their pages, docs/hooks.py)."""
    readme = read("README.md")
    assert len(readme.splitlines()) <= README_LINES
    examples = os.path.join(ROOT, "examples")
    for text, base in ((readme, ROOT), (read("CHANGELOG.md"), ROOT),
                       *((read("docs", page), os.path.join(ROOT, "docs"))
                         for page in os.listdir(os.path.join(ROOT, "docs"))
                         if page.endswith(".md")),
                       *((read("examples", name), examples) for name in os.listdir(examples)
                         if name.endswith((".md", ".py")))):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue  # the web
            assert os.path.exists(os.path.join(base, target)), target


def test_every_figure_shown_is_made_by_the_figures_script_and_every_one_made_is_shown():
    figures = os.path.join(ROOT, "docs", "figures")
    shown = set()
    for page in os.listdir(os.path.join(ROOT, "docs")):
        if page.endswith(".md"):
            shown |= set(re.findall(r"\(figures/([\w.-]+\.png)\)", read("docs", page)))
    script = read("docs", "figures.py")
    made = set(re.findall(r'"(\w+\.png)"', script))
    assert shown == made == set(os.listdir(figures))


@pytest.fixture
def library_example():
    """The README's library example, trained for 2 steps instead of 40 epochs."""
    readme = read("README.md")
    example = code_block(readme, "## The library")
    assert example == code_block(read("docs", "getting-started.md"), "## From Python")
    full = "epochs, steps = 40, data.steps_per_epoch"
    assert full in example
    return example.replace(full, "epochs, steps = 1, 2")


def test_the_readme_library_example_trains_strips_and_evaluates(library_example, capsys):
    namespace = {}
    exec(compile(library_example, "README.md", "exec"), namespace)
    bnn, model = namespace["bnn"], namespace["model"]
    assert any(isinstance(layer, lcr_larq.LipschitzRetention) for layer in model.layers)
    assert not any(isinstance(layer, lcr_larq.LipschitzRetention) for layer in bnn.layers)
    assert bnn.count_params() == namespace["build_model"](
        "resnet20", (16, 16, 1), 10).count_params()
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    accuracy = float(re.search(r"'accuracy': ([0-9.]+)", printed).group(1))
    assert 0.0 <= accuracy <= 1.0


FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def program_and_output(text: str) -> list[tuple[str, str | None]]:
    """A page's ``python`` blocks in order, each with the ``text`` block that
    follows it with nothing but blank lines between (what it prints, titled so on
    the site), or None."""
    fences = list(FENCE.finditer(text))
    steps = []
    for index, fence in enumerate(fences):
        if fence[1] != "python":
            continue
        after = fences[index + 1] if index + 1 < len(fences) else None
        shown = (after is not None and after[1] == "text"
                 and not text[fence.end():after.start()].strip())
        steps.append((fence[2], after[2] if shown else None))
    return steps


def test_the_own_model_page_builds_the_model_of_its_example():
    def model_code(text: str) -> str:
        start = text.index("BINARY = dict(")
        return text[start:text.index("\n\n\n", text.index("def residual_bnn", start))]

    assert model_code(read("docs", "own-model.md")) == model_code(
        read("examples", "own_model.py"))


def test_the_own_model_page_runs_and_prints_what_it_shows(capsys):
    """Every block of docs/own-model.md, in order in one namespace, trained for
    2 steps: each prints exactly the output block that follows it (or nothing)."""
    page = read("docs", "own-model.md")
    full = "epochs, steps = 20, data.steps_per_epoch"
    assert page.count(full) == 1
    steps = program_and_output(page.replace(full, "epochs, steps = 1, 2"))
    assert len(steps) >= 8 and sum(shown is not None for _, shown in steps) >= 7
    namespace: dict = {}
    for code, shown in steps:
        exec(compile(code, "docs/own-model.md", "exec"), namespace)
        assert capsys.readouterr().out.strip() == (shown or "").strip(), code
    assert 0.0 <= namespace["accuracy"] <= 1.0


def test_the_citation_the_bibtex_and_the_changelog_name_this_release():
    """CITATION.cff, the BibTeX of the docs and the changelog's dated heading name the
    version of the code; every release heading has its date."""
    cff = read("CITATION.cff")
    version = lcr_larq.__version__
    assert re.search(rf"^version: {re.escape(version)}$", cff, re.M)
    assert re.search(r"^license: Apache-2.0$", cff, re.M)
    assert "license = Apache-2.0" in read("setup.cfg")
    assert read("LICENSE").split()[:4] == ["Apache", "License", "Version", "2.0,"]
    bibtex = code_block(read("docs", "index.md"), "## Citing", "bibtex")
    assert f"version = {{{version}}}" in bibtex and "2207.06540" in bibtex
    changelog = read("CHANGELOG.md")
    released = re.search(r"^date-released: (\S+)$", cff, re.M)[1]
    assert f"\n## {version} — {released}\n" in changelog
    for heading in re.findall(r"^## (.+)$", changelog, re.M):
        assert heading == "Unreleased" or re.fullmatch(
            r"\d+\.\d+\.\d+ — \d{4}-\d{2}-\d{2}", heading), heading


def test_the_site_check_finds_raw_markup_outside_code_only():
    """docs/check_site.py, which fails ``make docs`` on a page that shows markup
    unrendered: each kind is found in the text and left alone in code."""
    spec = importlib.util.spec_from_file_location(
        "check_site", os.path.join(ROOT, "docs", "check_site.py"))
    check_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_site)
    raw = {  # what a page shows as text, and the same written as code
        "a Sphinx role": ("See :func:<code>attach_lcr</code>.", "See :func:`attach_lcr`."),
        "a reference link left as text": ("See [<code>find_blocks</code>][lcr_larq.graph].",
                                          "See [`find_blocks`][lcr_larq.graph]."),
        "a doctest outside a code block": ("Example:\n    &gt;&gt;&gt; 1 + 1", "&gt;&gt;&gt; 1"),
        "a reStructuredText directive": (".. note:: as text", ".. note:: as code"),
    }
    for what, (text, code) in raw.items():
        found = check_site.page_problems(f"<nav>:mod:`x`</nav><article><p>{text}</p></article>")
        assert [problem.split(":")[0] for problem in found] == [what], found
        in_code = f"<article><pre><code>{code}</code></pre><p><code>{code}</code></p></article>"
        assert check_site.page_problems(in_code) == []
