"""The documentation says what the code does: the tables that restate the code, the
README's library example (run), and links and figures that exist.

``make docs`` builds the site with ``--strict`` (every link, anchor and API reference
resolved); these are the checks that need the code itself.
"""

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


def test_the_readme_is_short_and_its_links_exist():
    readme = read("README.md")
    assert len(readme.splitlines()) <= README_LINES
    for text, base in ((readme, ROOT), (read("CHANGELOG.md"), ROOT),
                       *((read("docs", page), os.path.join(ROOT, "docs"))
                         for page in os.listdir(os.path.join(ROOT, "docs"))
                         if page.endswith(".md"))):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("api/") or target == "changelog.md":
                continue  # the web, and the pages the docs build makes from the code
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
