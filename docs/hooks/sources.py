"""MkDocs hook: the README becomes the home page and the notebooks under notebooks/ become pages.

Both live outside ``docs/`` (the README at the repository root, the notebooks next to their
jupytext sources), so this hook adds them to the site's files before mkdocs-jupyter sees
them, and rewrites the README's repository-relative links to their places in the site.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
README_LINKS = {"](docs/": "](", "](notebooks/": "](notebooks/"}


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files: Files, config) -> Files:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for old, new in README_LINKS.items():
        readme = readme.replace(old, new)
    files.append(File.generated(config, "index.md", content=readme))
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(File(f"notebooks/{notebook.name}", str(ROOT), config["site_dir"],
                          config["use_directory_urls"]))
    return files
