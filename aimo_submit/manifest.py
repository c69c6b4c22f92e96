"""The weights manifest: which models exist, where their files are, and how to serve them.

``weights_manifest.json`` (next to the package, in the repo and in the Kaggle library dataset)
is the one place that knows a model's Kaggle handle, prompt styles, stop strings, engine
settings and file checksums. Parsing is strict, so a typo fails at load time with the entry and
the field named, not hours later on Kaggle. ``python -m aimo_submit manifest --help`` for the CLI.

The validator is hand-written on purpose, not pydantic or msgspec (which vLLM pulls in): the
notebook's preflight reads this file before any wheel is installed, so it may import only the
standard library, and every error must name the manifest entry and the dotted field in words a
person fixing the JSON understands. What vLLM accepts is not restated here: the vLLM schema is
``VLLMSettings`` itself (``engines/vllm_settings.settings_schema``) and its value checks run on
every vLLM entry.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import functools
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimo_submit.competition import CompetitionProfile
from aimo_submit.engines.vllm_settings import VLLMSettings, settings_schema

MANIFEST_FILENAME = "weights_manifest.json"
MANIFEST_ENV = "AIMO_MANIFEST"
"""Environment variable naming another manifest file (wins over the package's own)."""
KAGGLE_INPUT = Path("/kaggle/input")
SCHEMA_VERSION = 1

SOURCE_KINDS = ("package", "kaggle_model", "kaggle_dataset")
FORMATS = ("AWQ", "FP8", "MXFP4", "bf16", "fp16", "fp32")
ENGINES = ("transformers", "vllm")
MODEL_MARKER = "config.json"
"""A folder counts as a model folder when it holds this file (every HF checkpoint does)."""

_NONE = type(None)
ENGINE_SETTINGS: dict[str, dict[str, tuple[type, ...]]] = {
    # keyword arguments of aimo_submit.engines.transformers_engine.TransformersEngine
    "transformers": {
        "device": (str,),
        "dtype": (str,),
        "max_concurrent": (int,),
        "max_model_len": (int, _NONE),
        "threads": (int, _NONE),
    },
    # the fields of VLLMSettings (the one vLLM schema, engines/vllm_settings.py)
    "vllm": settings_schema(),
}
REQUIRED_ENGINE_SETTINGS: dict[str, tuple[str, ...]] = {
    "transformers": (),
    "vllm": (
        "tensor_parallel_size",
        "data_parallel_size",
        "quantization",
        "kv_cache_dtype",
        "max_model_len",
        "gpu_memory_utilization",
        "max_num_seqs",
        "enforce_eager",
    ),
}


class ManifestError(ValueError):
    """A manifest that cannot be read or used; the message says what and where."""


# ---------------------------------------------------------------------------------------------
# Strict parsing helpers
# ---------------------------------------------------------------------------------------------


def _where(entry: str | None, fld: str) -> str:
    return f"entry {entry!r}: field {fld!r}" if entry else f"field {fld!r}"


def _check_type(value: Any, types: tuple[type, ...], entry: str | None, fld: str) -> Any:
    """``value`` if it is one of ``types`` (bool is not an int, an int is a float)."""
    ok = False
    for t in types:
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        elif t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok, value = True, float(value)
        elif t not in (int, float) and isinstance(value, t):
            ok = True
        if ok:
            break
    if not ok:
        names = " or ".join("null" if t is _NONE else t.__name__ for t in types)
        raise ManifestError(
            f"{_where(entry, fld)} must be {names}, got {type(value).__name__} {value!r}"
        )
    return value


def _take(
    data: Mapping[str, Any],
    key: str,
    types: tuple[type, ...],
    entry: str | None,
    prefix: str = "",
    *,
    default: Any = dataclasses.MISSING,
) -> Any:
    fld = prefix + key
    if key not in data:
        if default is dataclasses.MISSING:
            raise ManifestError(f"{_where(entry, fld)} is missing")
        return default
    return _check_type(data[key], types, entry, fld)


def _no_unknown(data: Mapping[str, Any], known: set[str], entry: str | None, prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(
            f"{_where(entry, prefix + unknown[0])} is unknown"
            f" (unknown: {', '.join(unknown)}; known: {', '.join(sorted(known))})"
        )


def _choice(value: str, choices: Sequence[str], entry: str | None, fld: str) -> str:
    if value not in choices:
        raise ManifestError(f"{_where(entry, fld)} is {value!r}; expected one of {list(choices)}")
    return value


def _rel_path(value: str, entry: str | None, fld: str) -> str:
    """A relative POSIX path that stays inside its root (no ``..``, not absolute)."""
    p = Path(value)
    if not value or p.is_absolute() or ".." in p.parts or "\\" in value:
        raise ManifestError(f"{_where(entry, fld)} must be a relative path inside its root, got "
                            f"{value!r}")
    return p.as_posix()


# ---------------------------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """One expected file; ``size``/``sha256`` are None where they are not known yet."""

    path: str
    size: int | None = None
    sha256: str | None = None

    @classmethod
    def from_dict(cls, data: Any, entry: str, fld: str) -> FileRecord:
        _check_type(data, (dict,), entry, fld)
        _no_unknown(data, {"path", "size", "sha256"}, entry, fld + ".")
        path = _rel_path(_take(data, "path", (str,), entry, fld + "."), entry, fld + ".path")
        size = _take(data, "size", (int, _NONE), entry, fld + ".", default=None)
        if size is not None and size < 0:
            raise ManifestError(f"{_where(entry, fld + '.size')} must be >= 0, got {size}")
        digest = _take(data, "sha256", (str, _NONE), entry, fld + ".", default=None)
        if digest is not None:
            digest = digest.lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ManifestError(
                    f"{_where(entry, fld + '.sha256')} must be 64 hex digits, got {digest!r}"
                )
        return cls(path, size, digest)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Source:
    """Where the weights come from.

    ``path`` is relative to the package root (kind ``package``: the folder that holds
    ``aimo_submit/``) or to ``/kaggle/input`` (Kaggle kinds). ``handle`` is what
    kernel-metadata.json wants: ``owner/model/framework/variation/version`` for a model,
    ``owner/slug`` for a dataset.
    """

    kind: str
    path: str
    handle: str | None = None
    alt_paths: tuple[str, ...] = ()
    origin: str | None = None

    @classmethod
    def from_dict(cls, data: Any, entry: str) -> Source:
        _check_type(data, (dict,), entry, "source")
        _no_unknown(data, {"kind", "path", "handle", "alt_paths", "origin"}, entry, "source.")
        kind = _choice(_take(data, "kind", (str,), entry, "source."), SOURCE_KINDS, entry,
                       "source.kind")
        path = _rel_path(_take(data, "path", (str,), entry, "source."), entry, "source.path")
        handle = _take(data, "handle", (str, _NONE), entry, "source.", default=None)
        alt = _take(data, "alt_paths", (list,), entry, "source.", default=[])
        alt_paths = tuple(
            _rel_path(_check_type(a, (str,), entry, f"source.alt_paths[{i}]"), entry,
                      f"source.alt_paths[{i}]")
            for i, a in enumerate(alt)
        )
        origin = _take(data, "origin", (str, _NONE), entry, "source.", default=None)
        if kind == "package":
            if handle:
                raise ManifestError(f"{_where(entry, 'source.handle')} is not used by kind "
                                    "'package' (the weights ship inside the library)")
        else:
            if not handle:
                raise ManifestError(f"{_where(entry, 'source.handle')} is required for kind "
                                    f"{kind!r}")
            want = 5 if kind == "kaggle_model" else 2
            form = ("owner/model/framework/variation/version" if want == 5 else "owner/slug")
            if len(handle.split("/")) != want or not all(handle.split("/")):
                raise ManifestError(
                    f"{_where(entry, 'source.handle')} must look like {form}, got {handle!r}"
                )
        return cls(kind, path, handle, alt_paths, origin)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "path": self.path}
        if self.handle is not None:
            out["handle"] = self.handle
        if self.alt_paths:
            out["alt_paths"] = list(self.alt_paths)
        if self.origin is not None:
            out["origin"] = self.origin
        return out

    @property
    def on_kaggle(self) -> bool:
        return self.kind != "package"

    def kaggle_handle(self, username: str | None = None) -> str | None:
        """The handle with a literal ``USERNAME`` owner replaced (for your own uploads)."""
        if self.handle and username and self.handle.startswith("USERNAME/"):
            return username + self.handle[len("USERNAME") :]
        return self.handle


@dataclass(frozen=True)
class Sampling:
    """The sampling the model's authors recommend (advice; the policy decides)."""

    temperature: float
    top_p: float = 1.0
    min_p: float = 0.0

    @classmethod
    def from_dict(cls, data: Any, entry: str) -> Sampling:
        _check_type(data, (dict,), entry, "sampling")
        _no_unknown(data, {"temperature", "top_p", "min_p"}, entry, "sampling.")
        t = _take(data, "temperature", (float,), entry, "sampling.")
        top_p = _take(data, "top_p", (float,), entry, "sampling.", default=1.0)
        min_p = _take(data, "min_p", (float,), entry, "sampling.", default=0.0)
        if t < 0 or not 0 < top_p <= 1 or not 0 <= min_p < 1:
            raise ManifestError(f"{_where(entry, 'sampling')} out of range: temperature >= 0, "
                                f"0 < top_p <= 1, 0 <= min_p < 1 (got {t}, {top_p}, {min_p})")
        return cls(t, top_p, min_p)


_ENTRY_KEYS = {
    "name", "source", "format", "max_context", "prompt_styles", "stop", "engine",
    "engine_settings", "max_tokens", "sampling", "weights", "files", "verified", "note",
}


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest. The runner reads ``engine``, ``engine_settings``,
    ``prompt_style``, ``tir_prompt_style``, ``stop`` and ``max_tokens``."""

    name: str
    source: Source
    format: str
    max_context: int
    prompt_styles: Mapping[str, str]
    stop: tuple[str, ...]
    engine: str
    engine_settings: Mapping[str, Any]
    max_tokens: int
    sampling: Sampling
    files: tuple[FileRecord, ...] = ()
    weights: str = "*.safetensors"
    """Glob that at least one weight file must match (shard names are often unknown)."""
    verified: bool = False
    note: str = ""

    @property
    def prompt_style(self) -> str:
        return self.prompt_styles["plain"]

    @property
    def tir_prompt_style(self) -> str | None:
        return self.prompt_styles.get("tir")

    @property
    def prompt_format(self) -> str:
        """``chat`` or ``harmony`` (the same for both styles; checked when parsed)."""
        from aimo_submit.prompts import prompt_format

        return prompt_format(self.prompt_style)

    @classmethod
    def from_dict(cls, data: Any, index: int = 0) -> ModelEntry:
        """Parse one entry; every error names the entry and the field."""
        if not isinstance(data, dict):
            raise ManifestError(f"models[{index}] must be an object, got {type(data).__name__}")
        raw_name = data.get("name")
        if not isinstance(raw_name, str) or not raw_name.strip():
            raise ManifestError(f"models[{index}]: field 'name' is missing or not a string")
        name = raw_name
        _no_unknown(data, _ENTRY_KEYS, name, "")
        source = Source.from_dict(_take(data, "source", (dict,), name), name)
        fmt = _choice(_take(data, "format", (str,), name), FORMATS, name, "format")
        max_context = _take(data, "max_context", (int,), name)
        if max_context < 1:
            raise ManifestError(f"{_where(name, 'max_context')} must be >= 1")

        styles = _take(data, "prompt_styles", (dict,), name)
        _no_unknown(styles, {"plain", "tir"}, name, "prompt_styles.")
        prompt_styles = {"plain": _take(styles, "plain", (str,), name, "prompt_styles.")}
        tir = _take(styles, "tir", (str, _NONE), name, "prompt_styles.", default=None)
        if tir is not None:
            prompt_styles["tir"] = tir
        from aimo_submit.prompts import HARMONY, PROMPT_STYLES, prompt_format

        for key, style in prompt_styles.items():
            if style not in PROMPT_STYLES:
                raise ManifestError(f"{_where(name, 'prompt_styles.' + key)} names unknown prompt"
                                    f" style {style!r}; known: {sorted(PROMPT_STYLES)}")
        formats = {prompt_format(style) for style in prompt_styles.values()}
        if len(formats) > 1:
            raise ManifestError(f"{_where(name, 'prompt_styles')} mixes prompt formats "
                                f"{sorted(formats)}: a model speaks one")

        stop_raw = _take(data, "stop", (list,), name)
        stop = tuple(_check_type(s, (str,), name, f"stop[{i}]") for i, s in enumerate(stop_raw))
        if any(not s for s in stop):
            raise ManifestError(f"{_where(name, 'stop')} must not contain empty strings")

        engine = _choice(_take(data, "engine", (str,), name), ENGINES, name, "engine")
        settings = _parse_engine_settings(_take(data, "engine_settings", (dict,), name), engine,
                                          name)
        if (HARMONY in formats and engine == "vllm"
                and settings.get("sampling_extra", {}).get("skip_special_tokens") is not False):
            raise ManifestError(
                f"{_where(name, 'engine_settings.sampling_extra')} must set skip_special_tokens "
                "to false: the harmony parser reads the special tokens (<|channel|>, "
                "<|message|>, <|call|>, ...) in the generated text"
            )
        max_tokens = _take(data, "max_tokens", (int,), name)
        if not 1 <= max_tokens < max_context:
            raise ManifestError(f"{_where(name, 'max_tokens')} must be in 1..max_context-1 "
                                f"({max_context - 1}), got {max_tokens}")
        mml = settings.get("max_model_len")
        if mml is not None and (mml > max_context or mml <= max_tokens):
            raise ManifestError(
                f"{_where(name, 'engine_settings.max_model_len')} is {mml}: it must leave room "
                f"for the prompt above max_tokens ({max_tokens}) and not exceed max_context "
                f"({max_context})"
            )
        sampling = Sampling.from_dict(_take(data, "sampling", (dict,), name), name)
        weights = _take(data, "weights", (str,), name, default="*.safetensors")
        files_raw = _take(data, "files", (list,), name)
        files = tuple(FileRecord.from_dict(f, name, f"files[{i}]") for i, f in enumerate(files_raw))
        seen: set[str] = set()
        for rec in files:
            if rec.path in seen:
                raise ManifestError(f"{_where(name, 'files')} lists {rec.path!r} twice")
            seen.add(rec.path)
        verified = _take(data, "verified", (bool,), name)
        note = _take(data, "note", (str,), name, default="")
        if not verified and not note.strip():
            raise ManifestError(f"{_where(name, 'note')} must say what is unverified "
                                "(verified is false)")
        return cls(
            name=name,
            source=source,
            format=fmt,
            max_context=max_context,
            prompt_styles=prompt_styles,
            stop=stop,
            engine=engine,
            engine_settings=settings,
            max_tokens=max_tokens,
            sampling=sampling,
            files=files,
            weights=weights,
            verified=verified,
            note=note,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in the manifest's order (round-trips through from_dict)."""
        return {
            "name": self.name,
            "source": self.source.to_dict(),
            "format": self.format,
            "max_context": self.max_context,
            "prompt_styles": dict(self.prompt_styles),
            "stop": list(self.stop),
            "engine": self.engine,
            "engine_settings": dict(self.engine_settings),
            "max_tokens": self.max_tokens,
            "sampling": dataclasses.asdict(self.sampling),
            "weights": self.weights,
            "files": [f.to_dict() for f in self.files],
            "verified": self.verified,
            "note": self.note,
        }


def _parse_engine_settings(data: dict[str, Any], engine: str, entry: str) -> dict[str, Any]:
    schema = ENGINE_SETTINGS[engine]
    _no_unknown(data, set(schema), entry, "engine_settings.")
    for key in REQUIRED_ENGINE_SETTINGS[engine]:
        if key not in data:
            raise ManifestError(f"{_where(entry, 'engine_settings.' + key)} is missing "
                                f"(required for engine {engine!r})")
    out = {k: _check_type(v, schema[k], entry, "engine_settings." + k) for k, v in data.items()}
    for key in ("tensor_parallel_size", "data_parallel_size", "max_num_seqs", "max_concurrent"):
        if key in out and out[key] < 1:
            raise ManifestError(f"{_where(entry, 'engine_settings.' + key)} must be >= 1")
    gmu = out.get("gpu_memory_utilization")
    if gmu is not None and not 0 < gmu <= 1:
        raise ManifestError(f"{_where(entry, 'engine_settings.gpu_memory_utilization')} must be "
                            f"in (0, 1], got {gmu}")
    if engine == "vllm":  # the engine's own value checks (choices, layouts), named for the entry
        try:
            VLLMSettings.from_dict({"model": entry, **out})
        except ValueError as exc:
            raise ManifestError(f"{_where(entry, 'engine_settings')}: {exc}") from None
    return out


# ---------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ModelEntry, ...]
    path: Path | None = None
    defaults: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> ModelEntry:
        """The entry called ``name``; the error lists the known names."""
        for e in self.entries:
            if e.name == name:
                return e
        where = f" in {self.path}" if self.path else ""
        raise ManifestError(f"no model {name!r}{where}; known: {', '.join(self.names)}")

    def default(self, where: str = "kaggle") -> ModelEntry:
        """The default model for ``where`` ('local' or 'kaggle')."""
        try:
            return self.get(self.defaults[where])
        except KeyError:
            raise ManifestError(f"the manifest names no default model for {where!r}; "
                                f"defaults: {dict(self.defaults)}") from None

    def for_profile(self, profile: CompetitionProfile, model: str | None = None) -> ModelEntry:
        """The entry a notebook for ``profile`` runs: ``model`` if named, else the profile's
        ``default_model``, else the Kaggle default."""
        name = model or profile.default_model
        return self.get(name) if name else self.default("kaggle")

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError(f"the manifest must be a JSON object, got {type(data).__name__}")
        _no_unknown(data, {"schema_version", "description", "defaults", "models"}, None, "")
        version = _take(data, "schema_version", (int,), None)
        if version != SCHEMA_VERSION:
            raise ManifestError(f"schema_version {version} is not supported (this code reads "
                                f"{SCHEMA_VERSION})")
        models = _take(data, "models", (list,), None)
        entries = tuple(ModelEntry.from_dict(m, i) for i, m in enumerate(models))
        names = [e.name for e in entries]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ManifestError(f"model names must be unique; repeated: {dupes}")
        defaults = _take(data, "defaults", (dict,), None, default={})
        for key, value in defaults.items():
            _check_type(value, (str,), None, f"defaults.{key}")
            if value not in names:
                raise ManifestError(f"field 'defaults.{key}' names unknown model {value!r}; "
                                    f"known: {names}")
        description = _take(data, "description", (str,), None, default="")
        return cls(entries, path, dict(defaults), description)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        if self.description:
            out["description"] = self.description
        if self.defaults:
            out["defaults"] = dict(self.defaults)
        out["models"] = [e.to_dict() for e in self.entries]
        return out


def package_root() -> Path:
    """The folder holding ``aimo_submit/``: the repo, or the Kaggle library dataset folder."""
    return Path(__file__).resolve().parent.parent


def default_manifest_path() -> Path:
    """``$AIMO_MANIFEST``, else ``weights_manifest.json`` beside or inside the package."""
    env = os.environ.get(MANIFEST_ENV)
    if env:
        return Path(env)
    candidates = [package_root() / MANIFEST_FILENAME, Path(__file__).resolve().parent /
                  MANIFEST_FILENAME]
    for c in candidates:
        if c.is_file():
            return c
    raise ManifestError(
        f"{MANIFEST_FILENAME} not found; looked at {[str(c) for c in candidates]}. Put it next "
        f"to the aimo_submit folder (as 'make package' does) or set {MANIFEST_ENV}."
    )


@functools.lru_cache(maxsize=1)
def package_manifest() -> Manifest:
    """The package's own manifest, whatever ``AIMO_MANIFEST`` says: the configuration that the
    hardware model (``hardware.SETUPS``) and the presets' token caps are computed from."""
    return load_manifest(package_root() / MANIFEST_FILENAME)


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and validate the manifest (the package's own when ``path`` is None)."""
    p = Path(path) if path is not None else default_manifest_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {p}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{p} is not valid JSON: {exc}") from exc
    try:
        return Manifest.from_dict(data, p)
    except ManifestError as exc:
        raise ManifestError(f"{p}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Finding the weights
# ---------------------------------------------------------------------------------------------


def candidate_paths(
    entry: ModelEntry,
    search_roots: Sequence[Path] = (),
    *,
    pkg_root: Path | None = None,
    kaggle_input: Path | None = None,
) -> list[Path]:
    """Where ``resolve_model_path`` looks, in order.

    Folders the caller names come first (an explicit choice beats a default), then the package
    (kind ``package``), then ``/kaggle/input``: the expected path and its alternatives, or for
    kind ``package`` the same path inside any attached library dataset.
    """
    rels = [entry.source.path, *entry.source.alt_paths]
    out: list[Path] = []
    for root in search_roots:
        root = Path(root)
        out += [root / r for r in rels]
        out.append(root / entry.name)
        if entry.source.kind == "package":
            out.append(root / Path(entry.source.path).name)
        out.append(root)
    if entry.source.kind == "package":
        out.append((pkg_root or package_root()) / entry.source.path)
    kin = kaggle_input if kaggle_input is not None else KAGGLE_INPUT
    if entry.source.kind == "package":  # inside any attached copy of the library dataset
        out += sorted(kin.glob(f"*/{entry.source.path}")) if kin.is_dir() else []
    else:
        out += [kin / r for r in rels]
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def resolve_model_path(
    entry: ModelEntry,
    search_roots: Sequence[Path] = (),
    *,
    pkg_root: Path | None = None,
    kaggle_input: Path | None = None,
) -> Path:
    """The first candidate folder that holds ``config.json``; else a ManifestError that lists
    every place looked at, what was wrong there, and how to attach the weights."""
    candidates = candidate_paths(entry, search_roots, pkg_root=pkg_root,
                                 kaggle_input=kaggle_input)
    lines = []
    for p in candidates:
        if (p / MODEL_MARKER).is_file():
            return p
        if p.is_dir():
            lines.append(f"  - {p}: folder exists but has no {MODEL_MARKER}")
        else:
            lines.append(f"  - {p}: no such folder")
    src = entry.source
    what = f"{src.kind} {src.handle}" if src.handle else f"{src.kind} {src.path}"
    msg = [f"weights of model {entry.name!r} ({what}) not found. Looked in:", *lines]
    kin = kaggle_input if kaggle_input is not None else KAGGLE_INPUT
    others = _other_variations(src, kin)
    if others:
        msg.append(f"Other folders with a {MODEL_MARKER} under the same Kaggle slug (a different "
                   f"variation or version?): {', '.join(str(o) for o in others)}")
    if src.kind == "package":
        msg.append("The tiny model ships inside the package: rebuild it with 'make tiny-model', "
                   "or pass search_roots / --root with a folder that holds it.")
    elif src.kind == "kaggle_model":
        msg.append(f"On Kaggle: attach the model {src.handle} (notebook 'Add Input', or "
                   f"model_sources in kernel-metadata.json). Elsewhere: pass search_roots / "
                   f"--root with a folder that holds it.")
    else:
        msg.append(f"On Kaggle: attach the dataset {src.handle} (notebook 'Add Input', or "
                   f"dataset_sources in kernel-metadata.json). Elsewhere: pass search_roots / "
                   f"--root with a folder that holds it.")
    if not entry.verified:
        msg.append(f"Note: this entry's handle is unverified: {entry.note}")
    raise ManifestError("\n".join(msg))


def _other_variations(src: Source, kaggle_input: Path, limit: int = 8) -> list[Path]:
    """Model folders under the same top-level slug, to spot a wrong variation or version."""
    if not src.on_kaggle:
        return []
    top = kaggle_input / Path(src.path).parts[0]
    if not top.is_dir():
        return []
    found = []
    try:
        for cfg in sorted(top.glob(f"**/{MODEL_MARKER}")):
            found.append(cfg.parent)
            if len(found) >= limit:
                break
    except OSError:
        return found
    return found


# ---------------------------------------------------------------------------------------------
# Verifying and recording files
# ---------------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What ``verify`` found; ``ok`` when nothing is missing or different."""

    name: str
    path: Path
    mode: str
    checked: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    wrong_size: list[tuple[str, int, int]] = field(default_factory=list)
    """(file, expected, actual)"""
    wrong_hash: list[tuple[str, str, str]] = field(default_factory=list)
    """(file, expected, actual)"""
    unchecked: list[str] = field(default_factory=list)
    """Files present but with no recorded size (fast) or sha256 (full) to compare with."""
    extra: list[str] = field(default_factory=list)
    """Files in the folder that the manifest does not list (informational)."""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.wrong_hash)

    def summary(self) -> str:
        head = "OK" if self.ok else "FAILED"
        lines = [f"{head}: {self.name} at {self.path} ({self.mode} check, "
                 f"{len(self.checked)} file(s) checked)"]
        lines += [f"  missing: {m}" for m in self.missing]
        lines += [f"  wrong size: {f} (expected {e:,} bytes, found {a:,})"
                  for f, e, a in self.wrong_size]
        lines += [f"  wrong sha256: {f} (expected {e[:12]}..., found {a[:12]}...)"
                  for f, e, a in self.wrong_hash]
        if self.unchecked:
            lines.append(f"  present, nothing recorded to compare: {', '.join(self.unchecked)}")
        if self.extra:
            lines.append(f"  not in the manifest: {', '.join(self.extra)}")
        return "\n".join(lines)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _folder_files(folder: Path) -> list[str]:
    """Relative POSIX paths of the regular files under ``folder``, minus hidden and caches."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if p.is_file():
            out.append(rel.as_posix())
    return out


def verify(entry: ModelEntry, path: str | Path, mode: str = "fast") -> VerifyReport:
    """Check a weights folder against the entry: ``fast`` = presence + sizes, ``full`` = + sha256.

    Also requires at least one file matching ``entry.weights``, since shard names of real
    models are often not known in advance.
    """
    if mode not in ("fast", "full"):
        raise ManifestError(f"verify mode must be 'fast' or 'full', got {mode!r}")
    folder = Path(path)
    report = VerifyReport(entry.name, folder, mode)
    if not folder.is_dir():
        report.missing.append(f"{folder} (no such folder)")
        return report
    present = _folder_files(folder)
    for rec in entry.files:
        p = folder / rec.path
        if not p.is_file():
            report.missing.append(rec.path)
            continue
        report.checked.append(rec.path)
        size = p.stat().st_size
        if rec.size is not None and size != rec.size:
            report.wrong_size.append((rec.path, rec.size, size))
            continue
        if mode == "full" and rec.sha256 is not None:
            digest = sha256_file(p)
            if digest != rec.sha256:
                report.wrong_hash.append((rec.path, rec.sha256, digest))
        elif rec.size is None or (mode == "full" and rec.sha256 is None):
            report.unchecked.append(rec.path)
    if not any(fnmatch.fnmatch(f, entry.weights) or fnmatch.fnmatch(Path(f).name, entry.weights)
               for f in present):
        report.missing.append(f"any file matching {entry.weights!r} (the weights)")
    if entry.files:
        listed = {r.path for r in entry.files}
        report.extra = [f for f in present if f not in listed]
    return report


def file_records(folder: str | Path) -> list[FileRecord]:
    """Size and sha256 of every file under ``folder`` (hidden files and caches skipped)."""
    root = Path(folder)
    if not root.is_dir():
        raise ManifestError(f"{root} is not a folder")
    return [
        FileRecord(rel, (root / rel).stat().st_size, sha256_file(root / rel))
        for rel in _folder_files(root)
    ]


def update_checksums(
    name: str,
    manifest_path: str | Path | None = None,
    model_dir: str | Path | None = None,
    *,
    search_roots: Sequence[Path] = (),
) -> ModelEntry:
    """Record the files (size + sha256) of ``model_dir`` (default: where ``name`` resolves)
    into the manifest file, leaving every other entry as it was. Returns the new entry."""
    path = Path(manifest_path) if manifest_path is not None else default_manifest_path()
    manifest = load_manifest(path)
    entry = manifest.get(name)
    folder = Path(model_dir) if model_dir is not None else resolve_model_path(entry, search_roots)
    records = file_records(folder)
    if not records:
        raise ManifestError(f"{folder} holds no files; nothing to record for {name!r}")
    new_entry = dataclasses.replace(entry, files=tuple(records))
    entries = tuple(new_entry if e.name == name else e for e in manifest.entries)
    new_manifest = dataclasses.replace(manifest, entries=entries)
    data = new_manifest.to_dict()
    Manifest.from_dict(json.loads(json.dumps(data)), path)  # never write what cannot be read
    _atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return new_entry


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _describe_source(e: ModelEntry) -> str:
    return e.source.handle or e.source.path


def main(argv: list[str] | None = None) -> int:
    """``python -m aimo_submit manifest {list,show,verify,update}``."""
    ap = argparse.ArgumentParser(prog="python -m aimo_submit manifest",
                                 description="Inspect and maintain weights_manifest.json.")
    ap.add_argument("--manifest", default=None, help=f"manifest file (default: the package's "
                    f"{MANIFEST_FILENAME}, or ${MANIFEST_ENV})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="one line per model")
    p_show = sub.add_parser("show", help="one entry as JSON, and where its weights resolve")
    p_show.add_argument("name")
    p_show.add_argument("--root", action="append", default=[], help="extra folder to search")
    p_ver = sub.add_parser("verify", help="check a model's files (exit 1 when they differ)")
    p_ver.add_argument("name")
    p_ver.add_argument("--full", action="store_true", help="compare sha256 too (reads it all)")
    p_ver.add_argument("--root", action="append", default=[], help="extra folder to search")
    p_upd = sub.add_parser("update", help="record sizes + sha256 of a model's files")
    p_upd.add_argument("name")
    p_upd.add_argument("--dir", default=None, help="the model folder (default: where it resolves)")
    p_upd.add_argument("--root", action="append", default=[], help="extra folder to search")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "update":
            entry = update_checksums(args.name, args.manifest, args.dir,
                                     search_roots=[Path(r) for r in args.root])
            total = sum(f.size or 0 for f in entry.files)
            where = args.manifest or default_manifest_path()
            print(f"recorded {len(entry.files)} file(s), {total:,} bytes, for {entry.name} "
                  f"in {where}")
            return 0
        manifest = load_manifest(args.manifest)
        if args.cmd == "list":
            rows = [("name", "engine", "format", "verified", "files", "source")]
            rows += [(e.name, e.engine, e.format, "yes" if e.verified else "NO",
                      str(len(e.files)), f"{e.source.kind}:{_describe_source(e)}")
                     for e in manifest]
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
            return 0
        entry = manifest.get(args.name)
        roots = [Path(r) for r in args.root]
        if args.cmd == "show":
            print(json.dumps(entry.to_dict(), indent=2, ensure_ascii=False))
            try:
                print(f"weights: {resolve_model_path(entry, roots)}")
            except ManifestError as exc:
                print(f"weights: not found here\n{exc}")
            return 0
        folder = resolve_model_path(entry, roots)
        report = verify(entry, folder, "full" if args.full else "fast")
        print(report.summary())
        return 0 if report.ok else 1
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
