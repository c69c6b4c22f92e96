"""weights_manifest.json and aimo_submit.manifest: strict parsing, resolution, verification."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from aimo_submit import manifest as mf
from aimo_submit.manifest import (
    Manifest,
    ManifestError,
    ModelEntry,
    file_records,
    load_manifest,
    resolve_model_path,
    update_checksums,
    verify,
)
from aimo_submit.prompts import PROMPT_STYLES

REPO = Path(__file__).resolve().parents[1]

BASE_ENTRY = {
    "name": "toy",
    "source": {"kind": "package", "path": "aimo_submit/assets/toy-model"},
    "format": "fp32",
    "max_context": 512,
    "prompt_styles": {"plain": "tiny", "tir": "tiny-tir"},
    "stop": ["<|im_end|>"],
    "engine": "transformers",
    "engine_settings": {"device": "cpu", "dtype": "float32"},
    "max_tokens": 128,
    "sampling": {"temperature": 1.0},
    "files": [],
    "verified": True,
}

VLLM_SETTINGS = {
    "tensor_parallel_size": 4,
    "data_parallel_size": 1,
    "quantization": "awq_marlin",
    "kv_cache_dtype": "auto",
    "max_model_len": 8192,
    "gpu_memory_utilization": 0.9,
    "max_num_seqs": 16,
    "enforce_eager": False,
}


def entry_dict(**changes) -> dict:
    d = copy.deepcopy(BASE_ENTRY)
    d.update(changes)
    return d


def kaggle_entry_dict(**changes) -> dict:
    d = entry_dict(
        name="real",
        source={
            "kind": "kaggle_model",
            "handle": "someone/some-model/Transformers/v14b/2",
            "path": "some-model/transformers/v14b/2",
            "alt_paths": ["m/someone/some-model/transformers/v14b/2"],
        },
        format="AWQ",
        max_context=32768,
        prompt_styles={"plain": "r1", "tir": "r1-tir"},
        engine="vllm",
        engine_settings=dict(VLLM_SETTINGS),
        max_tokens=4096,
    )
    d.update(changes)
    return d


def doc(*entries: dict) -> dict:
    return {"schema_version": 1, "models": list(entries)}


def write_model(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


TOY_FILES = {
    "config.json": b'{"model_type": "qwen2"}',
    "model.safetensors": b"\x00" * 1000,
    "tokenizer.json": b"{}",
}


# ---------------------------------------------------------------------------------------------
# The real manifest
# ---------------------------------------------------------------------------------------------


def test_real_manifest_loads_and_every_entry_is_valid():
    manifest = load_manifest(REPO / "weights_manifest.json")
    assert {"tiny-qwen2-math", "deepseek-r1-distill-qwen-14b-awq", "fast-math-r1-14b",
            "openmath-nemotron-14b"} <= set(manifest.names)
    for entry in manifest:
        # a round trip through the JSON form gives the same entry
        assert ModelEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry
        assert entry.max_tokens < entry.max_context
        if not entry.verified:
            assert entry.note.strip(), entry.name
    assert manifest.default("local").name == "tiny-qwen2-math"
    assert manifest.default("kaggle").engine == "vllm"


def test_the_model_a_profile_runs():
    from aimo_submit.competition import AIMO2, AIMO3

    manifest = load_manifest(REPO / "weights_manifest.json")
    assert manifest.for_profile(AIMO2) == manifest.default("kaggle")  # AIMO2 names no model
    assert manifest.for_profile(AIMO3).name == AIMO3.default_model == "gpt-oss-120b"
    assert manifest.for_profile(AIMO3, "tiny-qwen2-math").name == "tiny-qwen2-math"
    with pytest.raises(ManifestError, match="no-such-model"):
        manifest.for_profile(AIMO2, "no-such-model")


def test_default_manifest_is_found_next_to_the_package(monkeypatch):
    monkeypatch.delenv(mf.MANIFEST_ENV, raising=False)
    assert mf.default_manifest_path() == REPO / "weights_manifest.json"
    assert load_manifest().path == REPO / "weights_manifest.json"


def test_manifest_env_var_wins(tmp_path, monkeypatch):
    p = tmp_path / "other.json"
    p.write_text(json.dumps(doc(entry_dict())))
    monkeypatch.setenv(mf.MANIFEST_ENV, str(p))
    assert load_manifest().names == ["toy"]


def test_prompt_styles_named_exist():
    for entry in load_manifest(REPO / "weights_manifest.json"):
        for style in entry.prompt_styles.values():
            assert style in PROMPT_STYLES, (entry.name, style)
        assert entry.prompt_style in PROMPT_STYLES
        assert entry.tir_prompt_style in PROMPT_STYLES


def test_real_models_have_4xl4_settings_and_tiny_model_uses_transformers():
    manifest = load_manifest(REPO / "weights_manifest.json")
    tiny = manifest.get("tiny-qwen2-math")
    assert tiny.engine == "transformers" and tiny.source.kind == "package"
    assert tiny.source.path == "aimo_submit/assets/tiny-model"
    for entry in manifest:
        if entry.engine != "vllm":
            continue
        s = entry.engine_settings
        assert s["tensor_parallel_size"] * s["data_parallel_size"] <= 4
        assert s["max_model_len"] > entry.max_tokens
        assert entry.source.on_kaggle and entry.source.handle


def test_tiny_model_files_recorded_when_the_model_exists():
    """Once the tiny model is trained, its checksums must be in the manifest and match."""
    entry = load_manifest(REPO / "weights_manifest.json").get("tiny-qwen2-math")
    folder = REPO / entry.source.path
    if not (folder / "config.json").is_file():
        pytest.skip("tiny model not trained yet (make tiny-model)")
    if not entry.files:
        pytest.fail("run: python -m aimo_submit manifest update tiny-qwen2-math")
    report = verify(entry, folder, "full")
    assert report.ok, report.summary()


# ---------------------------------------------------------------------------------------------
# Parsing errors name the entry and the field
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.pop("engine"), "entry 'toy': field 'engine' is missing"),
        (lambda d: d.update(engine="tgi"), "field 'engine' is 'tgi'"),
        (lambda d: d.update(format="int3"), "field 'format'"),
        (lambda d: d.update(max_tokens="128"), "field 'max_tokens' must be int"),
        (lambda d: d.update(max_tokens=True), "field 'max_tokens' must be int"),
        (lambda d: d.update(max_tokens=512), "field 'max_tokens' must be in"),
        (lambda d: d.update(colour="red"), "field 'colour' is unknown"),
        (lambda d: d["prompt_styles"].update(plain="nope"), "unknown prompt style 'nope'"),
        (lambda d: d["prompt_styles"].pop("plain"), "field 'prompt_styles.plain' is missing"),
        (lambda d: d.update(stop=["a", 3]), "field 'stop[1]' must be str"),
        (lambda d: d["source"].update(kind="s3"), "field 'source.kind'"),
        (lambda d: d["source"].update(path="/abs/path"), "field 'source.path' must be a relative"),
        (lambda d: d["source"].update(path="../up"), "field 'source.path' must be a relative"),
        (lambda d: d["source"].update(handle="a/b"), "not used by kind 'package'"),
        (lambda d: d["engine_settings"].update(tensor_parallel_size=4),
         "field 'engine_settings.tensor_parallel_size' is unknown"),
        (lambda d: d["engine_settings"].update(max_model_len=100),
         "engine_settings.max_model_len"),
        (lambda d: d["sampling"].update(top_p=0), "field 'sampling' out of range"),
        (lambda d: d.update(files=[{"path": "a", "sha256": "xyz"}]),
         "field 'files[0].sha256' must be 64 hex digits"),
        (lambda d: d.update(files=[{"path": "a"}, {"path": "a"}]), "lists 'a' twice"),
        (lambda d: d.update(verified=False), "field 'note' must say what is unverified"),
    ],
)
def test_parse_errors_name_entry_and_field(mutate, needle):
    d = entry_dict()
    mutate(d)
    with pytest.raises(ManifestError) as err:
        Manifest.from_dict(doc(d))
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["engine_settings"].pop("kv_cache_dtype"),
         "entry 'real': field 'engine_settings.kv_cache_dtype' is missing"),
        (lambda d: d["engine_settings"].update(enforce_eager="no"),
         "field 'engine_settings.enforce_eager' must be bool"),
        (lambda d: d["engine_settings"].update(gpu_memory_utilization=1.5),
         "gpu_memory_utilization"),
        (lambda d: d["source"].update(handle="someone/some-model"),
         "field 'source.handle' must look like owner/model/framework/variation/version"),
        (lambda d: d["source"].pop("handle"), "field 'source.handle' is required"),
    ],
)
def test_vllm_and_kaggle_errors(mutate, needle):
    d = kaggle_entry_dict()
    mutate(d)
    with pytest.raises(ManifestError) as err:
        Manifest.from_dict(doc(d))
    assert needle in str(err.value)


def test_document_level_errors(tmp_path):
    with pytest.raises(ManifestError, match="repeated"):
        Manifest.from_dict(doc(entry_dict(), entry_dict()))
    with pytest.raises(ManifestError, match="schema_version 2"):
        Manifest.from_dict({"schema_version": 2, "models": []})
    with pytest.raises(ManifestError, match="defaults.kaggle' names unknown model 'x'"):
        Manifest.from_dict({**doc(entry_dict()), "defaults": {"kaggle": "x"}})
    with pytest.raises(ManifestError, match=r"models\[0\]: field 'name'"):
        Manifest.from_dict(doc({"engine": "vllm"}))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "absent.json")


def test_get_lists_known_names():
    m = Manifest.from_dict(doc(entry_dict(), kaggle_entry_dict()))
    assert m.get("real").engine == "vllm"
    with pytest.raises(ManifestError, match="no model 'nope'.*known: toy, real"):
        m.get("nope")


def test_runner_facing_attributes():
    e = Manifest.from_dict(doc(kaggle_entry_dict())).get("real")
    assert (e.prompt_style, e.tir_prompt_style) == ("r1", "r1-tir")
    assert e.stop == ("<|im_end|>",) and e.max_tokens == 4096
    assert e.engine_settings["tensor_parallel_size"] == 4
    assert e.source.kaggle_handle("me") == "someone/some-model/Transformers/v14b/2"
    own = Manifest.from_dict(doc(kaggle_entry_dict(
        source={"kind": "kaggle_dataset", "handle": "USERNAME/w", "path": "w"}))).get("real")
    assert own.source.kaggle_handle("me") == "me/w"


# ---------------------------------------------------------------------------------------------
# Resolution order and errors
# ---------------------------------------------------------------------------------------------


def test_resolution_order(tmp_path):
    entry = Manifest.from_dict(doc(kaggle_entry_dict())).get("real")
    kin = tmp_path / "kaggle_input"
    alt = write_model(kin / "m/someone/some-model/transformers/v14b/2", TOY_FILES)
    # only the alternative Kaggle path exists
    assert resolve_model_path(entry, kaggle_input=kin) == alt
    # the expected Kaggle path beats the alternative
    main = write_model(kin / "some-model/transformers/v14b/2", TOY_FILES)
    assert resolve_model_path(entry, kaggle_input=kin) == main
    # a folder the caller names beats both; the model may sit directly in it
    mine = write_model(tmp_path / "mine", TOY_FILES)
    assert resolve_model_path(entry, [mine], kaggle_input=kin) == mine
    # ... or under the entry's name inside it
    named = write_model(tmp_path / "roots" / "real", TOY_FILES)
    assert resolve_model_path(entry, [tmp_path / "roots"], kaggle_input=kin) == named


def test_package_entry_resolves_in_package_then_attached_library(tmp_path):
    entry = Manifest.from_dict(doc(entry_dict())).get("toy")
    kin = tmp_path / "kaggle_input"
    lib = write_model(kin / "aimo-submit-lib/aimo_submit/assets/toy-model", TOY_FILES)
    pkg = tmp_path / "pkg"
    assert resolve_model_path(entry, pkg_root=pkg, kaggle_input=kin) == lib
    inside = write_model(pkg / "aimo_submit/assets/toy-model", TOY_FILES)
    assert resolve_model_path(entry, pkg_root=pkg, kaggle_input=kin) == inside


def test_resolution_error_says_where_and_what(tmp_path):
    entry = Manifest.from_dict(doc(kaggle_entry_dict())).get("real")
    kin = tmp_path / "kaggle_input"
    (kin / "some-model/transformers/v14b/2").mkdir(parents=True)  # empty: no config.json
    other = write_model(kin / "some-model/transformers/v32b/1", TOY_FILES)
    with pytest.raises(ManifestError) as err:
        resolve_model_path(entry, [tmp_path / "nowhere"], kaggle_input=kin)
    msg = str(err.value)
    assert "weights of model 'real'" in msg
    assert "someone/some-model/Transformers/v14b/2" in msg
    assert f"{tmp_path / 'nowhere'}: no such folder" in msg
    assert "v14b/2: folder exists but has no config.json" in msg
    assert str(other) in msg  # a different variation is pointed out
    assert "model_sources" in msg


# ---------------------------------------------------------------------------------------------
# Verify and update
# ---------------------------------------------------------------------------------------------


def test_verify_fast_and_full_catch_a_tampered_file(tmp_path):
    folder = write_model(tmp_path / "model", TOY_FILES)
    records = file_records(folder)
    assert [r.path for r in records] == sorted(TOY_FILES)
    entry = Manifest.from_dict(doc(entry_dict(files=[r.to_dict() for r in records]))).get("toy")
    assert verify(entry, folder, "fast").ok
    assert verify(entry, folder, "full").ok

    # same size, different bytes: only the full check sees it
    (folder / "model.safetensors").write_bytes(b"\x01" * 1000)
    assert verify(entry, folder, "fast").ok
    full = verify(entry, folder, "full")
    assert not full.ok and [w[0] for w in full.wrong_hash] == ["model.safetensors"]
    assert "wrong sha256: model.safetensors" in full.summary()

    # different size: both see it; full does not hash a file whose size is already wrong
    (folder / "tokenizer.json").write_bytes(b"{ }")
    fast = verify(entry, folder, "fast")
    assert fast.wrong_size == [("tokenizer.json", 2, 3)]
    assert [w[0] for w in verify(entry, folder, "full").wrong_hash] == ["model.safetensors"]

    # missing file
    (folder / "config.json").unlink()
    assert verify(entry, folder).missing == ["config.json"]
    with pytest.raises(ManifestError, match="mode"):
        verify(entry, folder, "quick")


def test_verify_without_recorded_sums_and_without_weights(tmp_path):
    folder = write_model(tmp_path / "model", {"config.json": b"{}", "tokenizer.json": b"{}"})
    entry = Manifest.from_dict(doc(kaggle_entry_dict(
        files=[{"path": "config.json"}, {"path": "tokenizer.json", "size": None}]))).get("real")
    report = verify(entry, folder, "full")
    assert report.unchecked == ["config.json", "tokenizer.json"]
    assert report.missing == ["any file matching '*.safetensors' (the weights)"]
    write_model(folder, {"model-00001-of-00002.safetensors": b"w"})
    assert verify(entry, folder, "full").ok
    assert not verify(entry, tmp_path / "absent").ok


def test_update_checksums_rewrites_only_that_entry(tmp_path):
    path = tmp_path / "weights_manifest.json"
    original = doc(entry_dict(), kaggle_entry_dict())
    path.write_text(json.dumps(original))
    folder = write_model(tmp_path / "toy-model", TOY_FILES)
    entry = update_checksums("toy", path, folder)
    assert [f.path for f in entry.files] == sorted(TOY_FILES)
    assert all(f.size is not None and f.sha256 for f in entry.files)
    again = load_manifest(path)
    assert again.get("toy").files == entry.files
    assert again.get("real") == Manifest.from_dict(original).get("real")
    assert verify(again.get("toy"), folder, "full").ok
    assert path.read_text().endswith("\n")
    assert not list(tmp_path.glob("*.tmp"))


def test_cli(tmp_path, capsys):
    path = tmp_path / "weights_manifest.json"
    path.write_text(json.dumps(doc(entry_dict(), kaggle_entry_dict())))
    folder = write_model(tmp_path / "roots" / "toy", TOY_FILES)
    base = ["--manifest", str(path)]
    assert mf.main([*base, "list"]) == 0
    assert "real" in capsys.readouterr().out
    assert mf.main([*base, "update", "toy", "--dir", str(folder)]) == 0
    assert "recorded 3 file(s)" in capsys.readouterr().out
    assert mf.main([*base, "verify", "toy", "--full", "--root", str(tmp_path / "roots")]) == 0
    assert "OK: toy" in capsys.readouterr().out
    (folder / "config.json").write_text("changed!")
    assert mf.main([*base, "verify", "toy", "--root", str(tmp_path / "roots")]) == 1
    assert mf.main([*base, "show", "real"]) == 0
    assert "not found here" in capsys.readouterr().out
    assert mf.main([*base, "verify", "nope"]) == 2
    assert "known: toy, real" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Harmony models (gpt-oss)
# ---------------------------------------------------------------------------------------------


def harmony_entry_dict(**settings) -> dict:
    engine_settings = dict(VLLM_SETTINGS, quantization=None, tensor_parallel_size=1,
                           sampling_extra={"skip_special_tokens": False})
    engine_settings.update(settings)
    return kaggle_entry_dict(format="MXFP4", prompt_styles={"plain": "gpt-oss",
                                                            "tir": "gpt-oss-tir"},
                             engine_settings=engine_settings)


def test_harmony_entry_parses_and_names_its_format():
    e = ModelEntry.from_dict(harmony_entry_dict(extra={"async_scheduling": True}))
    assert e.prompt_format == "harmony" and e.format == "MXFP4"
    assert e.engine_settings["extra"] == {"async_scheduling": True}
    assert ModelEntry.from_dict(kaggle_entry_dict()).prompt_format == "chat"


@pytest.mark.parametrize("sampling_extra", [None, {}, {"skip_special_tokens": True}])
def test_harmony_on_vllm_must_keep_special_tokens(sampling_extra):
    d = harmony_entry_dict()
    if sampling_extra is None:
        d["engine_settings"].pop("sampling_extra")
    else:
        d["engine_settings"]["sampling_extra"] = sampling_extra
    with pytest.raises(ManifestError, match="skip_special_tokens"):
        ModelEntry.from_dict(d)


def test_a_model_speaks_one_prompt_format():
    d = harmony_entry_dict()
    d["prompt_styles"]["tir"] = "r1-tir"
    with pytest.raises(ManifestError, match="mixes prompt formats"):
        ModelEntry.from_dict(d)


def test_gpt_oss_entry_is_the_aimo3_shape():
    from aimo_submit.competition import get_profile

    m = load_manifest(REPO / mf.MANIFEST_FILENAME)
    e = m.get(get_profile("aimo3").default_model)
    assert (e.name, e.format, e.prompt_format, e.engine) == ("gpt-oss-120b", "MXFP4",
                                                            "harmony", "vllm")
    s = e.engine_settings
    assert s["tensor_parallel_size"] * s["data_parallel_size"] == 1  # one H100
    assert s["kv_cache_dtype"].startswith("fp8") and s["extra"]["async_scheduling"] is True
    assert e.max_tokens < s["max_model_len"] <= e.max_context
    assert not e.verified and "UNVERIFIED" in e.note


def test_vllm_settings_have_one_schema_the_engines():
    """Every VLLMSettings field but the path is a manifest key (dp_backend and
    max_num_batched_tokens were refused before), and the engine's value checks run on load."""
    from aimo_submit.engines.vllm_settings import VLLMSettings, settings_schema

    fields = {f for f in VLLMSettings.__dataclass_fields__ if f != "model"}
    assert set(settings_schema()) == fields
    d = kaggle_entry_dict()
    d["engine_settings"].update(dp_backend="replicas", max_num_batched_tokens=4096,
                                gpu_ids=[3, 2, 1, 0])
    e = Manifest.from_dict(doc(d)).get("real")
    settings = VLLMSettings.from_dict({"model": "/m", **e.engine_settings})
    assert settings.dp_backend == "replicas" and settings.gpu_ids == (3, 2, 1, 0)
    for key, value, needle in [("dp_backend", "ray", "dp_backend 'ray' not in"),
                               ("quantization", "int3", "quantization 'int3' not in"),
                               ("max_num_batched_tokens", "many", "must be int or null")]:
        d = kaggle_entry_dict()
        d["engine_settings"][key] = value
        with pytest.raises(ManifestError) as err:
            Manifest.from_dict(doc(d))
        assert "entry 'real'" in str(err.value) and needle in str(err.value)
