"""MkDocs hooks: the API reference pages and the changelog, made from the code.

Every module of ``lcr_larq`` and ``models`` (but ``_private`` ones) gets a page
``api/<module>.md`` holding mkdocstrings' ``::: <module>``, and the nav a
section per layer of the code (the core, the architectures, the tools, the
commands); ``api/index.md`` lists them with the first line of each module's
docstring. ``CHANGELOG.md`` at the top of the checkout is the page
``changelog.md``. Nothing of this is written to disk: a module added to the
code has its page at the next build.

mkdocs.yml loads it with ``hooks: [docs/hooks.py]``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

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


def on_config(config, **kwargs):
    """Adds the API section (one entry per module, by layer) to the nav."""
    sections = [{"Overview": f"{API_DIR}/index.md"}]
    for name, _ in LAYERS:
        sections.append({name: [{m: page(m)} for m in modules() if layer(m) == name]})
    config["nav"].append({API_SECTION: sections})
    return config


def on_files(files: Files, config, **kwargs) -> Files:
    """Adds the generated pages: one per module, the API index and the changelog."""
    for module in modules():
        files.append(File.generated(config, page(module), content=f"::: {module}\n"))
    files.append(File.generated(config, f"{API_DIR}/index.md", content=index_page()))
    # CHANGELOG.md links the pages from the top of the checkout (docs/x.md).
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").replace("](docs/", "](")
    files.append(File.generated(config, "changelog.md", content=changelog))
    return files
