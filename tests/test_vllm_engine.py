"""vLLM engine: settings, memory arithmetic and our mapping of vLLM outputs (CPU), plus GPU runs.

The CPU tests feed plain objects shaped like vLLM's ``RequestOutput``/``CompletionOutput`` into
our bookkeeping; they test our logic, not a fake engine. The GPU tests need CUDA and vLLM.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aimo_submit.engines.base import FinishReason, GenerationRequest, SampleState, TokenStats
from aimo_submit.engines.vllm_engine import (
    GIB,
    L4_BYTES,
    MIB,
    QWEN25_14B,
    WEIGHT_FORMATS,
    PromptTokens,
    ReplicaRouter,
    SampleTracker,
    VLLMEngine,
    VLLMGeneration,
    VLLMSettings,
    WeightFormat,
    kv_bytes_per_token,
    map_finish_reason,
    memory_plan,
    model_shape_from_config,
    sample_request_ids,
    sample_seeds,
    sampling_kwargs,
    token_stats,
    weight_bytes,
)

# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def test_settings_from_manifest_keys() -> None:
    s = VLLMSettings.from_dict({
        "path": "/m", "tensor_parallel_size": 1, "data_parallel_size": 4, "quantization": "awq",
        "kv_cache_dtype": "fp8", "max_model_len": 32768, "gpu_memory_utilization": 0.9,
        "max_num_seqs": 16, "enforce_eager": False, "enable_prefix_caching": True,
        "dtype": "float16", "seed": 3,
    })
    assert s.model == "/m" and s.n_gpus == 4 and s.n_replicas == 4
    kw = s.engine_kwargs()
    assert kw["data_parallel_size"] == 4 and kw["tensor_parallel_size"] == 1
    assert kw["enable_prefix_caching"] is True and kw["kv_cache_dtype"] == "fp8"
    assert kw["quantization"] == "awq" and kw["seed"] == 3 and kw["tokenizer"] == "/m"
    assert "stream_interval" not in kw and "max_num_batched_tokens" not in kw


@pytest.mark.parametrize(
    "bad",
    [
        {"tensor_parallel_size": 0},
        {"gpu_memory_utilization": 1.5},
        {"quantization": "int3"},
        {"kv_cache_dtype": "fp4"},
        {"dp_backend": "ray"},
        {"data_parallel_size": 2, "gpu_ids": [0]},
        {"data_parallel_size": 2, "gpu_ids": [1, 1]},
        {"max_model_len": 8},
    ],
)
def test_settings_refuse_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        VLLMSettings.from_dict({"model": "/m", **bad})


def test_settings_refuse_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown vLLM settings: tensor_paralel_size"):
        VLLMSettings.from_dict({"model": "/m", "tensor_paralel_size": 2})


def test_l4x4_presets() -> None:
    tp = VLLMSettings.for_l4x4("/m")
    assert (tp.tensor_parallel_size, tp.data_parallel_size) == (4, 1)
    assert tp.kv_cache_dtype == "fp8" and tp.enable_prefix_caching and not tp.enforce_eager
    dp = VLLMSettings.for_l4x4("/m", layout="dp", max_num_seqs=8)
    assert (dp.tensor_parallel_size, dp.data_parallel_size, dp.max_num_seqs) == (1, 4, 8)
    with pytest.raises(ValueError):
        VLLMSettings.for_l4x4("/m", layout="pp")


def test_replica_layout_and_visible_devices() -> None:
    s = VLLMSettings(model="/m", tensor_parallel_size=2, data_parallel_size=2,
                     dp_backend="replicas", gpu_ids=(3, 2, 1, 0))
    assert s.replica_gpus(0) == (3, 2) and s.replica_gpus(1) == (1, 0)
    assert s.visible_devices(1) == "1,0"
    assert "data_parallel_size" not in s.engine_kwargs(1)  # each replica is its own engine
    v = VLLMSettings(model="/m", data_parallel_size=2)
    assert v.visible_devices() is None and v.engine_kwargs()["data_parallel_size"] == 2
    assert VLLMSettings(model="/m", extra={"swap_space": 0}).engine_kwargs()["swap_space"] == 0


def test_vllm_env_defaults_do_not_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from aimo_submit.engines.vllm_engine import _vllm_env_defaults

    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "fork")
    monkeypatch.delenv("VLLM_USE_FLASHINFER_SAMPLER", raising=False)
    _vllm_env_defaults()
    assert os.environ["VLLM_WORKER_MULTIPROC_METHOD"] == "fork"
    if importlib.util.find_spec("flashinfer") is None:
        assert os.environ["VLLM_USE_FLASHINFER_SAMPLER"] == "0"


def test_engine_constructor_matches_create_engine() -> None:
    eng = VLLMEngine("/models/x", tensor_parallel_size=4, data_parallel_size=1,
                     quantization="awq", kv_cache_dtype="fp8", max_model_len=8192,
                     gpu_memory_utilization=0.9, max_num_seqs=32, enforce_eager=True)
    assert eng.settings.model == "/models/x" and eng.settings.tensor_parallel_size == 4
    assert eng.startup_s is None
    with pytest.raises(RuntimeError, match="before start"):
        eng.generate(GenerationRequest("hi"))


# --------------------------------------------------------------------------------------------
# Memory arithmetic (numbers written in the module docstring)
# --------------------------------------------------------------------------------------------


def test_qwen25_14b_shape() -> None:
    assert QWEN25_14B.linear_params == 13_212_057_600
    assert QWEN25_14B.embedding_params == 2 * 152064 * 5120
    assert round(QWEN25_14B.params / 1e9, 2) == 14.77


def test_awq_bits_and_weights() -> None:
    assert WEIGHT_FORMATS["awq"].bits_per_weight == pytest.approx(4 + 20 / 128)
    assert WeightFormat(bits=8).bits_per_weight == 8
    w = weight_bytes(QWEN25_14B, WEIGHT_FORMATS["awq"])
    assert w / GIB == pytest.approx(9.29, abs=0.01)
    assert weight_bytes(QWEN25_14B, WEIGHT_FORMATS["awq"], 4) / GIB == pytest.approx(2.32, abs=0.01)
    assert weight_bytes(QWEN25_14B, WEIGHT_FORMATS["bf16"]) / GIB == pytest.approx(27.51, abs=0.01)


def test_kv_bytes_per_token() -> None:
    assert kv_bytes_per_token(QWEN25_14B) == 2 * 48 * 8 * 128 * 2 == 192 * 1024
    assert kv_bytes_per_token(QWEN25_14B, "fp8") == 96 * 1024
    assert kv_bytes_per_token(QWEN25_14B, "fp8", tensor_parallel=4) == 24 * 1024
    assert kv_bytes_per_token(QWEN25_14B, "auto", tensor_parallel=16) == 2 * 48 * 1 * 128 * 2
    with pytest.raises(ValueError):
        kv_bytes_per_token(QWEN25_14B, "int4")


def test_l4_memory_plan_fp16_vs_fp8() -> None:
    fp16 = memory_plan(QWEN25_14B, "awq", gpu_bytes=L4_BYTES, utilization=0.92)
    fp8 = memory_plan(QWEN25_14B, "awq", gpu_bytes=L4_BYTES, utilization=0.92, kv_dtype="fp8")
    assert fp16.kv_budget_bytes == fp8.kv_budget_bytes
    assert fp16.kv_budget_bytes / GIB == pytest.approx(9.40, abs=0.01)
    assert fp16.max_kv_tokens == 51_336 and fp8.max_kv_tokens == 102_672
    assert (fp16.max_sequences(32768), fp8.max_sequences(32768)) == (1, 3)
    assert (fp16.max_sequences(16384), fp8.max_sequences(16384)) == (3, 6)
    tp4 = memory_plan(QWEN25_14B, "awq", kv_dtype="fp8", tensor_parallel=4)
    assert tp4.max_kv_tokens == 715_206 and tp4.max_sequences(32768) == 21
    assert "TP 4" in tp4.summary()
    with pytest.raises(ValueError):
        fp8.max_sequences(0)


def test_memory_plan_never_negative() -> None:
    tiny_gpu = memory_plan(QWEN25_14B, "bf16", gpu_bytes=8 * GIB)
    assert tiny_gpu.kv_budget_bytes == 0 and tiny_gpu.max_kv_tokens == 0
    h100 = memory_plan(QWEN25_14B, "bf16", gpu_bytes=81559 * MIB, utilization=0.9)
    assert h100.max_kv_tokens == 230_311
    # the H100 run (bench/results/vllm_h100.md): vLLM 0.26 allocated 84,000 tokens here
    fp8 = memory_plan(QWEN25_14B, "fp8", gpu_bytes=81559 * MIB, utilization=0.42)
    assert fp8.max_kv_tokens == 88_720 and 84_000 / fp8.max_kv_tokens > 0.94


def test_model_shape_from_config(tmp_path: Path) -> None:
    cfg = {"num_hidden_layers": 48, "hidden_size": 5120, "num_attention_heads": 40,
           "num_key_value_heads": 8, "vocab_size": 152064, "intermediate_size": 13824,
           "tie_word_embeddings": False}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert model_shape_from_config(tmp_path) == QWEN25_14B


# --------------------------------------------------------------------------------------------
# Request bookkeeping and output mapping
# --------------------------------------------------------------------------------------------


@dataclass
class Completion:
    """Shaped like vllm.outputs.CompletionOutput (the fields we read)."""

    text: str
    token_ids: list[int]
    finish_reason: str | None = None
    index: int = 0
    stop_reason: int | str | None = None
    logprobs: Any = None


@dataclass
class Output:
    """Shaped like vllm.outputs.RequestOutput."""

    request_id: str
    outputs: list[Completion] = field(default_factory=list)
    finished: bool = False


def test_request_ids_seeds_and_sampling_kwargs() -> None:
    assert sample_request_ids("ab-7", 3) == ["ab-7-0", "ab-7-1", "ab-7-2"]
    assert sample_seeds(10, 3) == [10, 11, 12] and sample_seeds(None, 2) == [None, None]
    req = GenerationRequest("p", n=4, max_tokens=99, stop=("```output", "</s>"), temperature=0.6,
                            top_p=0.95, seed=5, include_stop=False)
    kw = sampling_kwargs(req, 3)
    assert kw["seed"] == 8 and kw["n"] == 1 and kw["max_tokens"] == 99
    assert kw["stop"] == ["```output", "</s>"] and kw["include_stop_str_in_output"] is False
    assert kw["temperature"] == 0.6 and kw["top_p"] == 0.95
    assert sampling_kwargs(GenerationRequest("p"), 0)["stop"] is None


@pytest.mark.parametrize(
    ("reason", "want"),
    [("stop", FinishReason.STOP), ("length", FinishReason.LENGTH),
     ("abort", FinishReason.CANCELLED), ("error", FinishReason.ERROR),
     ("repetition", FinishReason.LENGTH), ("weird", FinishReason.ERROR), (None, None)],
)
def test_finish_reason_mapping(reason: str | None, want: FinishReason | None) -> None:
    assert map_finish_reason(reason) is want


def test_tracker_delta_stream() -> None:
    t = SampleTracker(2, "g-2")
    ev = t.events(Output("g-2", [Completion("Hel", [1, 2])]))
    assert [(e.index, e.delta, e.tokens, e.finished) for e in ev] == [(2, "Hel", 2, False)]
    assert t.events(Output("g-2", [Completion("", [])])) == []  # nothing new: no event
    ev = t.events(Output("g-2", [Completion("", [3])]))  # a token held back (partial stop)
    assert ev[0].delta == "" and ev[0].tokens == 3
    ev = t.events(Output("g-2", [Completion("lo```output", [4], "stop", stop_reason="```output")],
                         finished=True))
    assert ev[0].finished and ev[0].finish_reason is FinishReason.STOP and ev[0].tokens == 4
    assert t.text == "Hello```output"
    assert t.events(Output("g-2", [Completion("late", [5])])) == []  # nothing after the end


def test_tracker_cumulative_diff() -> None:
    t = SampleTracker(0, "g-0", cumulative=True)
    t.events(Output("g-0", [Completion("ab", [1, 2])]))
    ev = t.events(Output("g-0", [Completion("abcd", [1, 2, 3], "length")], finished=True))
    assert ev[0].delta == "cd" and ev[0].tokens == 3 and ev[0].finish_reason is FinishReason.LENGTH


def test_tracker_finished_without_reason_is_an_error() -> None:
    t = SampleTracker(0, "g-0")
    ev = t.events(Output("g-0", [Completion("x", [1])], finished=True))
    assert ev[-1].finish_reason is FinishReason.ERROR and ev[-1].error
    t2 = SampleTracker(1, "g-1")
    ev2 = t2.events(Output("g-1", [], finished=True))
    assert ev2[0].finish_reason is FinishReason.ERROR


def test_tracker_events_build_sample_state() -> None:
    t, state = SampleTracker(0, "g-0"), SampleState(0)
    for out in [Output("g-0", [Completion("1+1", [1, 2])]),
                Output("g-0", [Completion("=2", [3], "stop")], finished=True)]:
        for e in t.events(out):
            state.apply(e)
    assert (state.text, state.tokens, state.finish_reason) == ("1+1=2", 3, FinishReason.STOP)


def test_router_spreads_samples_and_follows_prefix() -> None:
    r = ReplicaRouter(4, slack=2)
    picks = [r.acquire("P") for _ in range(8)]
    assert sorted(picks) == [0, 0, 1, 1, 2, 2, 3, 3]
    for p in picks:
        r.release(p)
    r.remember("P sample-one says ```output", 2)
    r.remember("P sample-two", 1)
    assert r.affinity("P sample-one says ```output\n4\n```\n") == 2
    assert r.affinity("Q other") is None
    assert r.acquire("P sample-one says ```output\n4\n```\n") == 2
    r.loads = [0, 0, 9, 0]  # home replica overloaded: least-loaded wins
    assert r.acquire("P sample-one says ```output\n4\n```\n") != 2


def test_router_memory_is_bounded_and_longest_prefix_wins() -> None:
    r = ReplicaRouter(2, memory=2)
    r.remember("ab", 0)
    r.remember("abcd", 1)
    assert r.affinity("abcdef") == 1
    r.remember("zz", 0)
    assert len(r._seen) == 2 and r.affinity("abx") is None  # "ab" was evicted
    one = ReplicaRouter(1)
    one.remember("ab", 0)
    assert one.affinity("abc") is None and one.acquire("abc") == 0


# --------------------------------------------------------------------------------------------
# Generation plumbing with a scripted stream (our cancel/abort bookkeeping, no vLLM)
# --------------------------------------------------------------------------------------------


class _ScriptedClient:
    """Replays outputs like AsyncLLM.generate and records aborts as vLLM does on cancellation."""

    def __init__(self, script: dict[int, list[Output]], hang: set[int]) -> None:
        self.script, self.hang = script, hang
        self.aborted: list[str] = []
        self.submitted: list[tuple[str, Any]] = []
        self.prompts: list[tuple[Any, str]] = []

    async def generate(self, prompt: Any, params: Any, request_id: str, **kw: Any):
        self.submitted.append((request_id, params))
        self.prompts.append((prompt, request_id))
        i = int(request_id.rsplit("-", 1)[1])
        try:
            for out in self.script.get(i, []):
                await asyncio.sleep(0)
                yield out
            if i in self.hang:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.aborted.append(request_id)
            raise


class _CharTokenizer:
    """One token per character (id = code point): encodings are easy to state in tests."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, text: str) -> list[int]:
        self.encoded.append(text)
        return [ord(c) for c in text]

    @staticmethod
    def decode(ids: Any) -> str:
        return "".join(chr(i) for i in ids)


def _char_prompts(tok: _CharTokenizer | None = None) -> PromptTokens:
    tok = tok or _CharTokenizer()
    return PromptTokens(tok.encode, tok.decode)


def _engine_with(client: _ScriptedClient) -> VLLMEngine:
    from aimo_submit.engines.vllm_engine import _Replica

    eng = VLLMEngine("/m", sampling_extra={"min_p": 0.05})
    eng._replicas = [_Replica(client)]
    eng._prompts = _char_prompts()
    eng._sampling_params = lambda **kw: kw
    eng._delta_kind = "DELTA"
    return eng


def test_generation_streams_cancels_and_aborts() -> None:
    async def main() -> tuple[dict[int, SampleState], _ScriptedClient, VLLMGeneration]:
        script = {
            0: [Output("x-0", [Completion("a", [1])]),
                Output("x-0", [Completion("b", [2], "stop")], finished=True)],
            1: [Output("x-1", [Completion("c", [1])])],
            2: [Output("x-2", [Completion("d", [1])])],
        }
        client = _ScriptedClient(script, hang={1, 2})
        eng = _engine_with(client)
        gen = eng.generate(GenerationRequest("P", n=3, seed=7, stop=("```output",)))
        states = {i: SampleState(i) for i in range(3)}
        async for ev in gen:
            states[ev.index].apply(ev)
            if ev.index == 1 and ev.delta == "c":
                gen.cancel(1)
            if ev.index == 0 and ev.finished:
                gen.cancel()
        await gen.aclose()
        return states, client, gen

    states, client, gen = asyncio.run(main())
    assert states[0].text == "ab" and states[0].finish_reason is FinishReason.STOP
    assert states[1].finish_reason is FinishReason.CANCELLED and states[1].tokens == 1
    assert states[2].finish_reason is FinishReason.CANCELLED
    assert sorted(client.aborted) == [gen.request_ids[1], gen.request_ids[2]]
    seeds = sorted(p["seed"] for _, p in client.submitted)
    assert seeds == [7, 8, 9]
    assert all(p["output_kind"] == "DELTA" for _, p in client.submitted)
    assert all(p["min_p"] == 0.05 for _, p in client.submitted)


def test_consumer_cancellation_aborts_everything() -> None:
    async def main() -> _ScriptedClient:
        client = _ScriptedClient({0: [Output("x-0", [Completion("a", [1])])]}, hang={0, 1})
        eng = _engine_with(client)
        gen = eng.generate(GenerationRequest("P", n=2))

        async def consume() -> None:
            async for _ in gen:
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gen.aclose()
        return client

    client = asyncio.run(main())
    assert len(client.aborted) == 2


def test_engine_error_ends_the_sample_with_error() -> None:
    class Broken(_ScriptedClient):
        async def generate(self, prompt: str, params: Any, request_id: str, **kw: Any):
            raise RuntimeError("engine dead")
            yield  # pragma: no cover

    async def main() -> list[Any]:
        eng = _engine_with(Broken({}, set()))
        return [ev async for ev in eng.generate(GenerationRequest("P", n=2))]

    events = asyncio.run(main())
    assert len(events) == 2 and all(e.finish_reason is FinishReason.ERROR for e in events)
    assert "engine dead" in (events[0].error or "")


def test_cancel_before_the_loop_runs() -> None:
    async def main() -> list[Any]:
        eng = _engine_with(_ScriptedClient({}, {0}))
        gen = eng.generate(GenerationRequest("P", n=1))
        gen.cancel(0)
        with pytest.raises(IndexError):
            gen.cancel(5)
        return [ev async for ev in gen]

    events = asyncio.run(main())
    assert [e.finish_reason for e in events] == [FinishReason.CANCELLED]


# --------------------------------------------------------------------------------------------
# GPU (needs CUDA and vLLM; the bench script runs the same engine on bigger shapes)
# --------------------------------------------------------------------------------------------


def _gpu_ready() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None


gpu = pytest.mark.skipif(not _gpu_ready(), reason="needs CUDA and vllm")


def _tiny_model(tmp_path: Path) -> str:
    """A small random Qwen2 (dummy weights) with the project's tiny tokenizer if present."""
    from bench.bench_vllm import write_model_dir

    return str(write_model_dir(tmp_path / "m", layers=2, hidden=256, heads=4, kv_heads=2,
                               intermediate=512))


@pytest.mark.gpu
@gpu
def test_gpu_stream_stop_and_abort(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path)

    async def main() -> tuple[dict[int, SampleState], VLLMEngine]:
        eng = VLLMEngine(model, max_model_len=1024, gpu_memory_utilization=0.3,
                         load_format="dummy", enforce_eager=True, max_num_seqs=8)
        await eng.start()
        states = {i: SampleState(i) for i in range(4)}
        try:
            gen = eng.generate(GenerationRequest("1 2 3", n=4, max_tokens=200, seed=1,
                                                 temperature=1.0))
            async for ev in gen:
                states[ev.index].apply(ev)
                if ev.index == 3 and states[3].tokens >= 10 and not states[3].finished:
                    gen.cancel(3)
            await gen.aclose()
        finally:
            await eng.close()
        return states, eng

    states, eng = asyncio.run(main())
    assert eng.startup_s and eng.startup_s > 0
    assert states[3].finish_reason is FinishReason.CANCELLED and states[3].tokens < 200
    for i in range(3):
        assert states[i].finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
        assert states[i].tokens > 0



# --------------------------------------------------------------------------------------------
# Prompt tokenised once; continuations reuse the prefix's ids
# --------------------------------------------------------------------------------------------


def test_prompt_tokens_tokenise_once_and_extend() -> None:
    tok = _CharTokenizer()
    cache = _char_prompts(tok)
    assert cache.ids("PROMPT") == [ord(c) for c in "PROMPT"]
    assert cache.ids("PROMPT") == [ord(c) for c in "PROMPT"]
    assert tok.encoded == ["PROMPT"]  # the second call tokenised nothing
    # a sample generated "ab```output" with exact ids; the continuation adds the tool output
    cache.remember("PROMPT", cache.ids("PROMPT"), "ab```output", [ord(c) for c in "ab```output"])
    ids = cache.ids("PROMPT" + "ab```output" + "\n4\n")
    assert ids == [ord(c) for c in "PROMPTab```output\n4\n"]
    assert tok.encoded[-1] == "\n4\n"  # only the new tail was tokenised


def test_prompt_tokens_distrust_generated_ids_that_do_not_decode_to_the_text() -> None:
    tok = _CharTokenizer()
    cache = _char_prompts(tok)
    base = cache.ids("P")
    # the stop string ended inside the last token (id 999 decodes to a char not in the text),
    # and an end-of-sequence id follows: both are dropped, the rest of the text re-tokenised
    cache.remember("P", base, "xyz", [ord("x"), ord("y"), 999, 998])
    assert cache.ids("Pxyz!") == [ord(c) for c in "Pxyz!"]
    assert tok.encoded[-1] == "z!"
    # generated ids that match nothing: back to the prompt's ids, the rest tokenised
    cache.remember("Q", cache.ids("Q"), "abc", [1, 2, 3, 4, 5, 6, 7])
    assert cache.ids("Qabcd") == [ord(c) for c in "Qabcd"] and tok.encoded[-1] == "abcd"


def test_prompt_tokens_memory_is_bounded_and_longest_prefix_wins() -> None:
    tok = _CharTokenizer()
    cache = PromptTokens(tok.encode, tok.decode, memory=2)
    cache.ids("ab")
    cache.ids("abcd")
    cache.ids("abcdef")
    assert tok.encoded == ["ab", "cd", "ef"]
    assert len(cache._entries) == 2 and "ab" not in cache._entries


def test_generation_submits_one_token_list_for_all_samples_and_reuses_it() -> None:
    async def main() -> tuple[_ScriptedClient, _CharTokenizer, list[Any]]:
        script = {0: [Output("x-0", [Completion("ok```output", [ord(c) for c in "ok```output"],
                                                "stop")], finished=True)]}
        client = _ScriptedClient(script, hang=set())
        eng = _engine_with(client)
        tok = _CharTokenizer()
        eng._prompts = _char_prompts(tok)
        async for _ in eng.generate(GenerationRequest("PROMPT", n=4, max_tokens=8)):
            pass
        async for _ in eng.generate(GenerationRequest("PROMPTok```output\n1\n", n=1)):
            pass
        return client, tok, [p for p, _ in client.prompts]

    client, tok, prompts = asyncio.run(main())
    assert tok.encoded == ["PROMPT", "\n1\n"]
    first = prompts[:4]
    ids = first[0]["prompt_token_ids"]
    assert all(p["prompt_token_ids"] is ids for p in first)  # one list for the 4 samples
    assert first[0] == {"prompt_token_ids": [ord(c) for c in "PROMPT"]}
    assert prompts[4]["prompt_token_ids"] == [ord(c) for c in "PROMPTok```output\n1\n"]


def test_untokenisable_prompt_fails_its_samples_not_the_caller() -> None:
    async def main() -> list[Any]:
        eng = _engine_with(_ScriptedClient({}, set()))
        return [ev async for ev in eng.generate(GenerationRequest("", n=2))]

    events = asyncio.run(main())
    assert [e.finish_reason for e in events] == [FinishReason.ERROR] * 2
    assert "empty prompt" in (events[0].error or "")


# --------------------------------------------------------------------------------------------
# Token statistics from vLLM logprobs
# --------------------------------------------------------------------------------------------


@dataclass
class _Logprob:
    """Shaped like vllm.logprobs.Logprob."""

    logprob: float
    rank: int | None
    decoded_token: str | None = None


@dataclass
class _Flat:
    """Shaped like vllm.logprobs.FlatLogprobs (the fields we read)."""

    start_indices: list[int] = field(default_factory=list)
    end_indices: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    ranks: list[int | None] = field(default_factory=list)

    def add(self, entries: list[tuple[int, float, int]]) -> _Flat:
        self.start_indices.append(len(self.logprobs))
        for tid, lp, rank in entries:
            self.token_ids.append(tid)
            self.logprobs.append(lp)
            self.ranks.append(rank)
        self.end_indices.append(len(self.logprobs))
        return self

    def __len__(self) -> int:
        return len(self.start_indices)


def test_token_stats_flat_and_dict_layouts_agree_with_the_formula() -> None:
    # position 0: sampled token 7 is the top-1 (listed first as sampled, then again as rank 1)
    # position 1: sampled token 9 is rank 4, outside the top-3
    pos0 = [(7, -0.1, 1), (7, -0.1, 1), (3, -2.5, 2), (5, -3.0, 3)]
    pos1 = [(9, -4.0, 4), (1, -0.5, 1), (2, -1.5, 2), (4, -2.0, 3)]
    flat = _Flat().add(pos0).add(pos1)
    dicts = [{tid: _Logprob(lp, r) for tid, lp, r in pos} for pos in (pos0, pos1)]
    want = TokenStats((-(-0.1 - 2.5 - 3.0) / 3, -(-0.5 - 1.5 - 2.0) / 3), (-0.1, -4.0))
    for layout in (flat, dicts):
        got = token_stats(layout, [7, 9], 3)
        assert got.logprob == want.logprob
        assert got.confidence == pytest.approx(want.confidence)
    assert token_stats(flat, [7, 9], 3, start=1).logprob == (-4.0,)
    with pytest.raises(ValueError):
        token_stats(flat, [8, 9], 3)  # sampled token missing from its position


def test_tracker_attaches_token_stats_per_event() -> None:
    t = SampleTracker(0, "g-0", logprobs=2)
    out1 = Completion("ab", [1, 2], logprobs=_Flat().add([(1, -0.2, 1), (5, -1.0, 2)])
                      .add([(2, -1.0, 2), (6, -0.3, 1), (2, -1.0, 2)]))
    out2 = Completion("c", [3], "length", logprobs=_Flat().add([(3, -0.7, 1), (4, -0.9, 2)]))
    ev1 = t.events(Output("g-0", [out1]))[0]
    ev2 = t.events(Output("g-0", [out2], finished=True))[0]
    assert ev1.stats is not None and len(ev1.stats) == 2 and ev1.stats.logprob == (-0.2, -1.0)
    assert ev1.stats.confidence == pytest.approx((0.6, 0.65))
    assert ev2.stats is not None and ev2.stats.logprob == (-0.7,) and ev2.finished
    assert list(t.token_ids) == [1, 2, 3]
    plain = SampleTracker(1, "g-1")  # logprobs not asked: no stats even if present
    assert plain.events(Output("g-1", [out1]))[0].stats is None


def test_sampling_kwargs_ask_for_flat_logprobs_only_when_requested() -> None:
    assert "logprobs" not in sampling_kwargs(GenerationRequest("p"), 0)
    kw = sampling_kwargs(GenerationRequest("p", logprobs=5), 0)
    assert kw["logprobs"] == 5 and kw["flat_logprobs"] is True
    with pytest.raises(ValueError):
        GenerationRequest("p", logprobs=-1)
    with pytest.raises(ValueError):
        GenerationRequest("p", logprobs=21)
