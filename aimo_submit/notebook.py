"""Build the thin Kaggle notebook from its plain-script template, and its kernel-metadata.json.

The template (``notebooks/submission_template.py``) is a normal Python file split into cells by
``# %%`` lines (``# %% [markdown]`` for markdown), so it can be read, diffed and linted like code;
everything above the first marker is a header for maintainers and stays out of the notebook.
The notebook holds no logic of its own: it installs wheels, finds the library and calls
``aimo_submit.runner.Submission``. ``python -m aimo_submit build-notebook`` rebuilds both files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from aimo_submit.competition import get_profile
from aimo_submit.manifest import ManifestError, ModelEntry, load_manifest, package_root

TEMPLATE = Path("notebooks/submission_template.py")
NOTEBOOK = Path("notebooks/aimo_submit.ipynb")
KERNEL_METADATA = Path("notebooks/kernel-metadata.json")
"""Paths relative to the repository root."""

USER_ENV = "KAGGLE_USERNAME"
"""The Kaggle CLI's own variable for the account name (only the name is read, never a key)."""
USER_PLACEHOLDER = "USERNAME"

KERNEL = {
    "slug": "aimo-submit",
    "title": "aimo-submit",
    "language": "python",
    "kernel_type": "notebook",
    "is_private": True,
    "enable_gpu": True,
    "enable_internet": False,
}
"""Fixed kernel settings. The slug must be the title lowercased with dashes (a Kaggle rule)."""
MACHINE_SHAPES = {"aimo2": "NvidiaL4", "aimo3": "NvidiaH100"}
"""``machine_shape`` per profile: ``NvidiaL4`` is Kaggle's 4x L4 shape (``NvidiaL4X1`` is one);
``NvidiaH100`` is the name public AIMO3 kernel-metadata files use (UNVERIFIED here: no Kaggle
access; check it on the first ``kaggle kernels push``)."""
LIB_DATASET = "aimo-submit-lib"
WHEELS_DATASET = "aimo-submit-wheels"

_MARKER = re.compile(r"^# %%(?P<rest>.*)$")
_DEFAULT_MODEL_LINE = re.compile(r'^DEFAULT_MODEL = "[^"]*"$', re.MULTILINE)
_DEFAULT_PROFILE_LINE = re.compile(r'^DEFAULT_PROFILE = "[^"]*"$', re.MULTILINE)


class NotebookError(ValueError):
    """The template cannot be turned into a notebook; the message says why."""


def split_cells(source: str) -> list[tuple[str, str]]:
    """``(kind, text)`` per ``# %%`` block; kind is ``code`` or ``markdown``.

    Markdown blocks lose the leading ``# `` of each line. A title after the marker
    (``# %% install wheels``) is kept as the code cell's first comment line.
    """
    cells: list[tuple[str, list[str]]] = []
    current: tuple[str, list[str]] | None = None
    for line in source.splitlines():
        m = _MARKER.match(line)
        if m:
            rest = m.group("rest").strip()
            if rest.startswith("[markdown]"):
                current = ("markdown", [])
            else:
                current = ("code", [f"# {rest}"] if rest else [])
            cells.append(current)
        elif current is not None:
            current[1].append(line)
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [_uncomment(line) for line in lines]
        text = "\n".join(lines).strip("\n")
        if text.strip():
            out.append((kind, text))
    if not out:
        raise NotebookError("the template has no '# %%' cells")
    return out


def _uncomment(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    if line.startswith("#"):
        return line[1:]
    if line.strip():
        raise NotebookError(f"markdown cell line is not a comment: {line!r}")
    return ""


def render_template(
    source: str, default_model: str | None = None, default_profile: str | None = None
) -> str:
    """The template text, with ``DEFAULT_MODEL = "..."`` and ``DEFAULT_PROFILE = "..."``
    replaced by those given."""
    for value, line, name in ((default_model, _DEFAULT_MODEL_LINE, "DEFAULT_MODEL"),
                              (default_profile, _DEFAULT_PROFILE_LINE, "DEFAULT_PROFILE")):
        if value is None:
            continue
        if not line.search(source):
            raise NotebookError(f'the template has no line {name} = "..." to set it in')
        source = line.sub(f"{name} = {json.dumps(value)}", source, 1)
    return source


def build_notebook(
    template: str | Path,
    out_ipynb: str | Path,
    *,
    default_model: str | None = None,
    profile: str = "aimo2",
) -> Path:
    """Write ``out_ipynb`` from ``template``; deterministic (cell ids by position), validated."""
    import nbformat

    source = render_template(Path(template).read_text(encoding="utf-8"), default_model,
                             get_profile(profile).name)
    nb = nbformat.v4.new_notebook()
    for i, (kind, text) in enumerate(split_cells(source)):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(text)
        cell["id"] = f"cell-{i}"
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "kaggle": {
            "accelerator": _lower_first(MACHINE_SHAPES.get(profile, "NvidiaL4")),
            "isGpuEnabled": True,
            "isInternetEnabled": False,
            "language": "python",
            "sourceType": "notebook",
        },
    }
    nbformat.validate(nb)
    out = Path(out_ipynb)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return out


def _lower_first(s: str) -> str:
    """Kaggle writes the shape as ``nvidiaL4`` inside notebooks, ``NvidiaL4`` in the metadata."""
    return s[:1].lower() + s[1:]


def kernel_metadata(
    username: str,
    model: ModelEntry,
    *,
    profile: str = "aimo2",
    code_file: str = NOTEBOOK.name,
    wheels: bool = True,
) -> dict[str, Any]:
    """kernel-metadata.json for ``kaggle kernels push``: GPU on, internet off, the competition,
    the library (and wheels) datasets and the model's weights attached."""
    prof = get_profile(profile)
    datasets = [f"{username}/{LIB_DATASET}"]
    if wheels:
        datasets.append(f"{username}/{WHEELS_DATASET}")
    models: list[str] = []
    handle = model.source.kaggle_handle(username)
    if model.source.kind == "kaggle_model" and handle:
        models.append(handle)
    elif model.source.kind == "kaggle_dataset" and handle:
        datasets.append(handle)
    return {
        "id": f"{username}/{KERNEL['slug']}",
        "title": KERNEL["title"],
        "code_file": code_file,
        "language": KERNEL["language"],
        "kernel_type": KERNEL["kernel_type"],
        "is_private": KERNEL["is_private"],
        "enable_gpu": KERNEL["enable_gpu"],
        "enable_internet": KERNEL["enable_internet"],
        "machine_shape": MACHINE_SHAPES.get(prof.name, "NvidiaL4"),
        "dataset_sources": datasets,
        "competition_sources": [prof.competition_slug],
        "kernel_sources": [],
        "model_sources": models,
    }


def write_json(path: str | Path, data: Any) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return p


def kaggle_username(explicit: str | None = None) -> str:
    """``explicit``, else ``$KAGGLE_USERNAME``, else the ``USERNAME`` placeholder."""
    name = explicit or os.environ.get(USER_ENV) or USER_PLACEHOLDER
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise NotebookError(f"{name!r} does not look like a Kaggle user name")
    return name


def main(argv: list[str] | None = None) -> int:
    """``python -m aimo_submit build-notebook``: template -> .ipynb + kernel-metadata.json."""
    root = package_root()
    ap = argparse.ArgumentParser(prog="python -m aimo_submit build-notebook",
                                 description="Build the thin Kaggle notebook from its template.")
    ap.add_argument("--template", type=Path, default=root / TEMPLATE)
    ap.add_argument("--out", type=Path, default=root / NOTEBOOK, help="the .ipynb to write")
    ap.add_argument("--metadata", type=Path, default=root / KERNEL_METADATA,
                    help="kernel-metadata.json to write (beside the notebook)")
    ap.add_argument("--kaggle-user", default=USER_PLACEHOLDER,
                    help=f"Kaggle user name (default {USER_PLACEHOLDER!r}: the committed file "
                    f"stays generic; 'make package' fills in ${USER_ENV})")
    ap.add_argument("--model", default=None,
                    help="default model of the notebook (default: the manifest's Kaggle default)")
    ap.add_argument("--profile", default="aimo2")
    ap.add_argument("--manifest", default=None, help="another weights manifest")
    args = ap.parse_args(argv)
    try:
        user = kaggle_username(args.kaggle_user)
        manifest = load_manifest(args.manifest)
        model = manifest.for_profile(get_profile(args.profile), args.model)
        nb = build_notebook(args.template, args.out, default_model=model.name,
                            profile=args.profile)
        code_file = os.path.relpath(nb, args.metadata.parent)
        meta = write_json(args.metadata, kernel_metadata(user, model, profile=args.profile,
                                                         code_file=code_file))
    except (NotebookError, ManifestError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {nb} ({model.name}) and {meta}")
    if user == USER_PLACEHOLDER:
        print(f"note: kernel-metadata.json says {USER_PLACEHOLDER!r}; 'make package' writes a "
              f"ready-to-push copy with your user name (--kaggle-user or ${USER_ENV})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
