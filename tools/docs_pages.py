"""Pages the documentation site generates at build time (run by mkdocs-gen-files).

- ``reference/cli.md``: the ``opticam`` command's help, read from its argparse parser.
- ``reference/store-schema.md``: the Parquet store's columns, read from ``SCHEMA`` and the
  comments beside each column in ``opticam_widgets/dataset/store.py``.
- ``tutorials/*.ipynb``: the committed notebooks with a Binder link as their first cell and,
  where executed (see ``docs_notebooks.py``), their outputs.

Nothing here reaches the network. Run by ``mkdocs build``; also importable for the tests.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from docs_notebooks import tutorial_notebooks  # noqa: E402

#: Width of the help text on the CLI page (argparse reads $COLUMNS).
HELP_WIDTH = "96"


def cli_page() -> str:
    """The CLI reference: ``opticam --help`` and each subcommand's help, from the parser."""
    from opticam_widgets.cli.main import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        parser = build_parser()
        parts = ["# Command line: `opticam`", "",
                 "Generated at build time from the command's own argparse parser "
                 "(`opticam_widgets.cli.main.build_parser`), so it cannot drift from the code. "
                 "`python -m opticam_widgets` is the same command.", "",
                 "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in _subcommands(parser).items():
            parts += [f"## `opticam {name}`", "", "```text", sub.format_help().rstrip(), "```",
                      ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise RuntimeError("the opticam parser has no subcommands")


def schema_columns(source: str) -> dict[str, str]:
    """The comment written beside each column of ``SCHEMA`` in the store's source.

    Example:
        >>> schema_columns('SCHEMA = pa.schema([\\n    ("id", pa.string()),  # stable id\\n])')
        {'id': 'stable id'}
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    notes: dict[str, str] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SCHEMA"
                                                  for t in node.targets)):
            for elt in ast.walk(node.value):
                if isinstance(elt, ast.Tuple) and isinstance(elt.elts[0], ast.Constant):
                    line = lines[elt.lineno - 1]
                    match = re.search(r"#\s*(.*)$", line)
                    notes[elt.elts[0].value] = match.group(1).strip() if match else ""
    return notes


def schema_page() -> str:
    """The store-schema reference: every column, its Arrow type and its meaning."""
    from opticam_widgets.dataset.store import FORMAT_VERSION, ROWS_DIR, SCHEMA, SETTINGS_FILE

    notes = schema_columns((ROOT / "opticam_widgets" / "dataset" / "store.py").read_text())
    rows, previous = [], ""
    for field in SCHEMA:
        note = notes.get(field.name) or f"the same for this column as for `{previous}` above"
        rows.append(f"| `{field.name}` | `{field.type}` | {_cell(note)} |")
        if notes.get(field.name):
            previous = field.name
    return "\n".join([
        "# The Parquet store's schema", "",
        "Generated at build time from `opticam_widgets.dataset.SCHEMA` and the comment beside "
        "each column in its source. One row per (image, class explained); shards "
        f"`{ROWS_DIR}/part-NNNNN.parquet` (that folder holds Parquet files only) plus the "
        f"run's settings in `{SETTINGS_FILE}` beside it; store format version "
        f"{FORMAT_VERSION}. Any Parquet reader (pandas, DuckDB, Polars, Ray) reads "
        f"`out/{ROWS_DIR}` without this package: see "
        "[a dataset and the explorer](../how-to/dataset-and-explorer.md).", "",
        "| column | Arrow type | meaning |", "| --- | --- | --- |", *rows, "",
        "After these, a store measured with yardsticks (`explain_dataset(..., yardsticks=..., "
        "methods=...)`) has one `float` column per method and yardstick, named "
        "`<method>:<yardstick>` (`opticam:AD_mean`, `gradcam:deletion_black`, `finercam:ROAD`) "
        "and listed in its settings (`yardsticks.columns`); a value that could not be measured "
        "is null, never 0.", ""])


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main() -> None:
    """Write the generated pages into the build (mkdocs-gen-files' virtual files)."""
    import mkdocs_gen_files

    with mkdocs_gen_files.open("reference/cli.md", "w") as f:
        f.write(cli_page())
    with mkdocs_gen_files.open("reference/store-schema.md", "w") as f:
        f.write(schema_page())
    for name, text in tutorial_notebooks().items():
        with mkdocs_gen_files.open(f"tutorials/{name}", "w") as f:
            f.write(text)
    # the benchmark reports are included as they are: the plots they link sit beside them
    # (and beside the explanation page that includes the faithfulness report too)
    for png in sorted((ROOT / "benchmarks" / "results").glob("*.png")):
        for folder in ("reference/benchmarks", "explanation"):
            with mkdocs_gen_files.open(f"{folder}/{png.name}", "wb") as f:
                f.write(png.read_bytes())


if __name__ in ("__main__", "<run_path>"):
    main()
