"""TransformersEngine against a random tiny Qwen2 built on the fly (no committed model needed).

The fixture goes through the real ``from_pretrained`` path: a byte-level BPE tokenizer trained
on a few lines (with multi-byte characters, so partial UTF-8 tokens occur) plus a ChatML
template, and a 2-layer random ``Qwen2ForCausalLM``.
"""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
from pathlib import Path

import pytest
import torch

from aimo_submit.engines.base import FinishReason, GenerationRequest, SampleEvent, SampleState
from aimo_submit.engines.transformers_engine import (
    IncrementalDetokenizer,
    TransformersEngine,
    _StopMatcher,
)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = [
    "Find the remainder when 2^100 is divided by 7. The answer is \\boxed{2}.",
    "Let x be a real number with x^2 - 5x + 6 = 0. Then x = 2 or x = 3.",
    "π ≈ 3.14159, √2 ≈ 1.41421, and ∑_{k=1}^{n} k = n(n+1)/2 — café 数学 ∞ ≤ ≥ ≠.",
    "```python\nprint(sum(range(10)))\n```\n```output\n45\n```",
    "<think>We compute step by step.</think> So the final answer is 42.",
]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _build_tiny_model(root: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHATML
    path = root / "tiny-qwen2"
    tok.save_pretrained(path)

    eos = tok.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        eos_token_id=eos,
        bos_token_id=None,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    # Random init gives near-uniform logits; sharpen them so greedy runs are not ties.
    with torch.no_grad():
        model.lm_head.weight.mul_(25.0)
    model.generation_config.eos_token_id = eos
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_tiny_model(tmp_path_factory.mktemp("engine"))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map used by byte-level BPE vocabularies."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = iter(range(256, 512))
    return {b: chr(b) if b in keep else chr(next(extra)) for b in range(256)}


_BYTE_CHAR = _bytes_to_unicode()


def run(coro):  # noqa: ANN001, ANN201 - tiny helper
    return asyncio.run(coro)


async def _collect(gen) -> tuple[list[SampleEvent], dict[int, SampleState]]:  # noqa: ANN001
    events: list[SampleEvent] = []
    states: dict[int, SampleState] = {}
    async with gen:
        async for ev in gen:
            events.append(ev)
            states.setdefault(ev.index, SampleState(ev.index)).apply(ev)
    return events, states


def _well_formed(events: list[SampleEvent], n: int) -> None:
    finals = [ev.index for ev in events if ev.finished]
    assert sorted(finals) == list(range(n)), finals
    seen_final: set[int] = set()
    last_tokens: dict[int, int] = {}
    for ev in events:
        assert ev.index not in seen_final, f"event after final for sample {ev.index}"
        assert ev.tokens >= last_tokens.get(ev.index, 0)
        last_tokens[ev.index] = ev.tokens
        if ev.finished:
            seen_final.add(ev.index)
            assert ev.finish_reason is not None
        else:
            assert ev.finish_reason is None and ev.delta


@pytest.fixture(scope="module")
def engine(model_dir: Path):
    eng = TransformersEngine(model_dir, device="cpu", max_concurrent=4, threads=1)
    run(eng.start())
    yield eng
    run(eng.close())


def _prompt(engine: TransformersEngine, text: str = "What is 2+3?") -> str:
    return engine.format_prompt([{"role": "user", "content": text}])


def _wait_threads(baseline: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= baseline, threading.enumerate()


# --------------------------------------------------------------------------------------------


def test_format_prompt_matches_chat_template(engine: TransformersEngine) -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}]
    assert engine.format_prompt(msgs) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert engine.eos_token_ids == {engine.tokenizer.convert_tokens_to_ids("<|im_end|>")}


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    eng = TransformersEngine(tmp_path / "nope", device="cpu")
    with pytest.raises(FileNotFoundError, match="nope"):
        run(eng.start())
    with pytest.raises(RuntimeError, match="start"):
        eng.generate(GenerationRequest("x"))


def test_events_well_formed_and_deltas_match_decode(engine: TransformersEngine) -> None:
    req = GenerationRequest(_prompt(engine), n=6, max_tokens=40, temperature=1.0, seed=1)
    gen = engine.generate(req)
    events, states = run(_collect(gen))
    _well_formed(events, 6)
    tok = engine.tokenizer
    for i, st in states.items():
        ids = gen.output_ids[i]
        assert st.tokens == len(ids)
        body = ids[:-1] if st.finish_reason is FinishReason.STOP else ids
        if st.finish_reason is FinishReason.LENGTH:
            assert st.tokens == 40
        assert st.text == tok.decode(body, skip_special_tokens=False)
    assert gen.stats.generated_tokens == sum(st.tokens for st in states.values())
    assert engine.stats.generated_tokens >= gen.stats.generated_tokens
    assert gen.stats.tokens_per_second > 0


def test_sampling_differs_across_samples_and_is_reproducible(engine: TransformersEngine) -> None:
    def texts(seed: int) -> list[str]:
        req = GenerationRequest(_prompt(engine), n=4, max_tokens=20, temperature=1.0, seed=seed)
        _, states = run(_collect(engine.generate(req)))
        return [states[i].text for i in range(4)]

    a, b, c = texts(7), texts(7), texts(8)
    assert a == b
    assert len(set(a)) == 4
    assert a != c


def test_top_p_tiny_is_greedy(engine: TransformersEngine) -> None:
    prompt = _prompt(engine)
    greedy = GenerationRequest(prompt, n=1, max_tokens=15, temperature=0)
    nucleus = GenerationRequest(prompt, n=3, max_tokens=15, temperature=1.0, top_p=1e-6, seed=3)
    _, g = run(_collect(engine.generate(greedy)))
    _, s = run(_collect(engine.generate(nucleus)))
    assert {s[i].text for i in range(3)} == {g[0].text}


def test_greedy_matches_hf_generate(engine: TransformersEngine) -> None:
    prompt = _prompt(engine, "Compute 7*6.")
    req = GenerationRequest(prompt, n=3, max_tokens=30, temperature=0)
    gen = engine.generate(req)
    _, states = run(_collect(gen))
    assert gen.output_ids[0] == gen.output_ids[1] == gen.output_ids[2]
    ids = engine.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        ref = engine.model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=30
        )
    assert gen.output_ids[0] == ref[0, ids.shape[1] :].tolist()
    again = engine.generate(req)
    run(_collect(again))
    assert again.output_ids == gen.output_ids


def test_max_tokens_and_max_model_len_give_length(model_dir: Path) -> None:
    async def main() -> None:
        eng = TransformersEngine(model_dir, device="cpu", threads=1)
        await eng.start()
        prompt = _prompt(eng)
        # Remove eos so no sample can end early.
        eng.eos_token_ids = frozenset()
        events, states = await _collect(
            eng.generate(GenerationRequest(prompt, n=3, max_tokens=9, seed=0))
        )
        assert all(
            s.finish_reason is FinishReason.LENGTH and s.tokens == 9 for s in states.values()
        )
        plen = len(eng.tokenizer(prompt, add_special_tokens=False).input_ids)
        eng.max_model_len = plen + 4
        _, states = await _collect(eng.generate(GenerationRequest(prompt, n=2, max_tokens=50)))
        assert all(
            s.finish_reason is FinishReason.LENGTH and s.tokens == 4 for s in states.values()
        )
        eng.max_model_len = plen
        _, states = await _collect(eng.generate(GenerationRequest(prompt, n=2, max_tokens=50)))
        assert all(
            s.finish_reason is FinishReason.LENGTH and s.tokens == 0 for s in states.values()
        )
        await eng.close()

    run(main())


@pytest.mark.parametrize("include_stop", [True, False])
def test_stop_string(engine: TransformersEngine, include_stop: bool) -> None:
    prompt = _prompt(engine, "Compute 7*6.")
    base = GenerationRequest(prompt, n=1, max_tokens=30, temperature=0)
    gen = engine.generate(base)
    _, states = run(_collect(gen))
    full, ids = states[0].text, gen.output_ids[0]
    tok = engine.tokenizer
    # A stop string the model really produces, spanning tokens 3..5 (skip unstable byte pieces).
    stop = None
    for a in range(2, len(ids) - 3):
        cand = tok.decode(ids[a : a + 3])
        if "\ufffd" not in cand and cand.strip() and cand in full:
            stop = cand
            break
    assert stop is not None, full
    pos = full.index(stop)
    req = GenerationRequest(
        prompt,
        n=2,
        max_tokens=30,
        temperature=0,
        stop=("never-there", stop),
        include_stop=include_stop,
    )
    events, states = run(_collect(engine.generate(req)))
    _well_formed(events, 2)
    for st in states.values():
        assert st.finish_reason is FinishReason.STOP
        assert st.text == (full[: pos + len(stop)] if include_stop else full[:pos])
        assert st.tokens < len(ids)


def test_eos_ends_sample_with_stop(engine: TransformersEngine) -> None:
    eos = next(iter(engine.eos_token_ids))
    calls = 0

    def favour_eos(module, args, output):  # noqa: ANN001, ANN202
        nonlocal calls
        calls += 1
        if calls >= 5:  # prefill + 3 decode steps, then eos becomes the sure pick
            output[..., eos] += 1e4
        return output

    handle = engine.model.lm_head.register_forward_hook(favour_eos)
    try:
        req = GenerationRequest(_prompt(engine), n=3, max_tokens=50, seed=2)
        gen = engine.generate(req)
        events, states = run(_collect(gen))
    finally:
        handle.remove()
    _well_formed(events, 3)
    for i, st in states.items():
        assert st.finish_reason is FinishReason.STOP
        assert st.tokens == 5 and gen.output_ids[i][-1] == eos
        assert st.text == engine.tokenizer.decode(gen.output_ids[i][:-1])
        assert "<|im_end|>" not in st.text


def test_cancel_one_sample_others_continue(engine: TransformersEngine) -> None:
    async def main() -> None:
        req = GenerationRequest(_prompt(engine), n=3, max_tokens=60, seed=4)
        gen = engine.generate(req)
        states = {i: SampleState(i) for i in range(3)}
        cancelled_at = None
        tokens_at_cancel = 0
        async with gen:
            async for ev in gen:
                states[ev.index].apply(ev)
                if cancelled_at is None and ev.index == 1 and ev.tokens >= 3:
                    cancelled_at = time.monotonic()
                    tokens_at_cancel = len(gen.output_ids[1])  # the worker's count, not ours
                    gen.cancel(1)
                    gen.cancel(1)  # idempotent
                if ev.index == 1 and ev.finished:
                    assert ev.finish_reason is FinishReason.CANCELLED
                    assert time.monotonic() - cancelled_at < 0.5
        assert states[1].finish_reason is FinishReason.CANCELLED
        for i in (0, 2):
            assert states[i].finish_reason in (FinishReason.LENGTH, FinishReason.STOP)
            assert states[i].tokens > tokens_at_cancel
        # The worker dropped row 1 within a step: at most the token in flight was added.
        assert len(gen.output_ids[1]) <= tokens_at_cancel + 1

    run(main())


def test_cancel_all_ends_iteration_and_thread(engine: TransformersEngine) -> None:
    baseline = threading.active_count()

    async def main() -> None:
        gen = engine.generate(GenerationRequest(_prompt(engine), n=4, max_tokens=400, seed=5))
        events = []
        async for ev in gen:
            events.append(ev)
            if len(events) == 2:
                gen.cancel()
        _well_formed(events, 4)
        assert sum(ev.finish_reason is FinishReason.CANCELLED for ev in events) >= 3
        await gen.aclose()
        assert not gen._thread.is_alive()

    run(main())
    _wait_threads(baseline)


def test_consumer_task_cancellation_stops_worker(engine: TransformersEngine) -> None:
    baseline = threading.active_count()

    async def main() -> None:
        gen = engine.generate(GenerationRequest(_prompt(engine), n=2, max_tokens=2000, seed=6))
        got = asyncio.Event()

        async def consume() -> None:
            async for _ in gen:
                got.set()

        task = asyncio.create_task(consume())
        await got.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        at_cancel = [len(ids) for ids in gen.output_ids]  # the samples are cancelled by now
        t0 = time.monotonic()
        while gen._thread.is_alive() and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.01)
        assert not gen._thread.is_alive()
        # Stopped within a step or two of the cancellation, not at the length limit.
        assert all(len(ids) <= n + 1 for ids, n in zip(gen.output_ids, at_cancel, strict=True))

    run(main())
    _wait_threads(baseline)


def test_break_out_of_loop_stops_worker(engine: TransformersEngine) -> None:
    baseline = threading.active_count()

    async def main() -> None:
        gen = engine.generate(GenerationRequest(_prompt(engine), n=2, max_tokens=2000, seed=6))
        async for _ in gen:
            break
        t0 = time.monotonic()
        while gen._thread.is_alive() and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.01)
        assert not gen._thread.is_alive()

    run(main())
    _wait_threads(baseline)


def test_concurrent_generations_complete_and_queue(model_dir: Path) -> None:
    async def main() -> None:
        eng = TransformersEngine(model_dir, device="cpu", max_concurrent=1, threads=1)
        await eng.start()
        prompt = _prompt(eng)
        reqs = [
            GenerationRequest(prompt, n=2, max_tokens=12, seed=10),
            GenerationRequest(prompt + "x", n=3, max_tokens=12, seed=11),
            GenerationRequest(prompt, n=1, max_tokens=12, temperature=0),
        ]
        gens = [eng.generate(r) for r in reqs]
        results = await asyncio.gather(*(_collect(g) for g in gens))
        for (events, _), r in zip(results, reqs, strict=True):
            _well_formed(events, r.n)
        # FIFO slots: each later request waited for the earlier ones.
        assert gens[2].stats.queue_seconds >= gens[0].stats.queue_seconds
        # Cancelling a queued request finishes it without ever taking a slot.
        first = eng.generate(GenerationRequest(prompt, n=1, max_tokens=200, seed=1))
        queued = eng.generate(GenerationRequest(prompt, n=2, max_tokens=200, seed=2))
        queued.cancel()
        events, states = await _collect(queued)
        assert all(s.finish_reason is FinishReason.CANCELLED for s in states.values())
        assert queued.stats.prefill_seconds == 0
        await first.aclose()
        await eng.close()

    run(main())


def test_concurrent_requests_on_one_engine(engine: TransformersEngine) -> None:
    async def main() -> None:
        prompt = _prompt(engine)
        a = engine.generate(GenerationRequest(prompt, n=2, max_tokens=15, temperature=0))
        b = engine.generate(GenerationRequest(prompt, n=2, max_tokens=15, temperature=0))
        (ea, sa), (eb, sb) = await asyncio.gather(_collect(a), _collect(b))
        _well_formed(ea, 2)
        _well_formed(eb, 2)
        assert sa[0].text == sb[0].text == sa[1].text

    run(main())


def test_worker_exception_gives_error_events(engine: TransformersEngine, monkeypatch) -> None:  # noqa: ANN001
    model = engine.model
    real_forward = model.forward
    calls = 0

    def flaky(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("boom on the GPU")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", flaky)
    baseline = threading.active_count()
    req = GenerationRequest(_prompt(engine), n=3, max_tokens=50, seed=3)
    events, states = run(_collect(engine.generate(req)))
    _well_formed(events, 3)
    for st in states.values():
        assert st.finish_reason is FinishReason.ERROR
        assert "boom on the GPU" in (st.error or "")
        assert st.tokens == 3
    _wait_threads(baseline)


def test_incremental_detokenizer_handles_split_characters(engine: TransformersEngine) -> None:
    tok = engine.tokenizer
    text = "π ≈ 3.14 数学 café ∞"
    ids = tok(text, add_special_tokens=False).input_ids
    # Also a byte-by-byte path: single-byte tokens split every multi-byte character.
    byte_ids = tok.convert_tokens_to_ids([_BYTE_CHAR[b] for b in text.encode()])
    assert len(byte_ids) > len(ids)
    for seq in (ids, byte_ids):
        d = IncrementalDetokenizer(lambda x: tok.decode(x, skip_special_tokens=False))
        pieces = []
        for t in seq:
            before = d.text
            d.add(t)
            assert "\ufffd" not in d.text
            pieces.append(d.text[len(before) :])
        d.flush()
        assert "".join(pieces) == d.text == tok.decode(seq) == text


def test_stop_matcher_spanning_overlapping_and_holdback() -> None:
    m = _StopMatcher(["</think>", "ink"])
    assert m.find("abc</th") is None
    assert m.holdback("abc</th") == 4  # "</th" may still become "</think>"
    assert m.holdback("abc<") == 1 and m.holdback("abc") == 0 and m.holdback("in") == 2
    # "ink" completes before "</think>" does, so it is the stop that fires.
    assert m.find("abc</think> more") == (7, 10)
    assert _StopMatcher(["ab", "b"]).find("xab") == (1, 3)  # same end: the longer one
    assert _StopMatcher([]).find("anything") is None


def test_sampler_follows_the_distribution() -> None:
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = probs.log().expand(4000, -1)
    rngs = [random.Random(i) for i in range(4000)]
    req = GenerationRequest("x", temperature=1.0)
    counts = torch.bincount(TransformersEngine._sample(logits, req, rngs), minlength=4)
    assert counts[3] == 0
    assert torch.allclose(counts[:3] / 4000.0, probs[:3], atol=0.03), counts
    nucleus = GenerationRequest("x", temperature=1.0, top_p=0.7)
    rngs = [random.Random(i) for i in range(4000)]
    counts = torch.bincount(TransformersEngine._sample(logits, nucleus, rngs), minlength=4)
    assert counts[2] == counts[3] == 0
    assert abs(counts[0] / 4000.0 - 0.5 / 0.8) < 0.03, counts


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_greedy_matches_cpu(model_dir: Path, engine: TransformersEngine) -> None:
    async def main() -> None:
        gpu = TransformersEngine(model_dir, device="cuda", dtype="float32")
        await gpu.start()
        prompt = _prompt(gpu)
        req = GenerationRequest(prompt, n=4, max_tokens=20, temperature=0)
        g = gpu.generate(req)
        _, gs = await _collect(g)
        c = engine.generate(req)
        _, cs = await _collect(c)
        assert g.output_ids[0] == c.output_ids[0]
        sreq = GenerationRequest(prompt, n=4, max_tokens=20, seed=1, stop=("x",))
        events, _ = await _collect(gpu.generate(sreq))
        _well_formed(events, 4)
        await gpu.close()

    run(main())


def test_dropped_handle_cancels_worker(engine: TransformersEngine) -> None:
    baseline = threading.active_count()

    async def main() -> None:
        gen = engine.generate(GenerationRequest(_prompt(engine), n=2, max_tokens=2000, seed=9))
        thread = gen._thread
        await asyncio.sleep(0.05)
        del gen  # never iterated, never closed: the finalizer must stop the worker
        gc.collect()
        t0 = time.monotonic()
        while thread.is_alive() and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.01)
        assert not thread.is_alive()

    run(main())
    _wait_threads(baseline)


def test_engine_close_cancels_running_generations(model_dir: Path) -> None:
    async def main() -> None:
        eng = TransformersEngine(model_dir, device="cpu", threads=1)
        await eng.start()
        eng.eos_token_ids = frozenset()  # no early eos: both samples are still running
        gen = eng.generate(GenerationRequest(_prompt(eng), n=2, max_tokens=2000, seed=9))
        await asyncio.sleep(0.05)
        await eng.close()
        await eng.close()  # idempotent
        assert not gen._thread.is_alive()
        events, states = await _collect(gen)
        _well_formed(events, 2)
        assert all(s.finish_reason is FinishReason.CANCELLED for s in states.values()), states
        with pytest.raises(RuntimeError):
            eng.generate(GenerationRequest("x"))

    run(main())


def test_token_stats_equal_a_direct_computation_from_the_logits(engine: TransformersEngine) -> None:
    """Confidence and chosen log-prob of every token, against one forward over the full text."""
    k = 5
    prompt = _prompt(engine, "Compute 7*6.")
    req = GenerationRequest(prompt, n=3, max_tokens=25, temperature=1.0, seed=11, logprobs=k)
    gen = engine.generate(req)
    events, states = run(_collect(gen))
    per_sample: dict[int, list[tuple[float, float]]] = {i: [] for i in range(3)}
    for ev in events:
        if ev.stats is not None:
            per_sample[ev.index].extend(zip(ev.stats.confidence, ev.stats.logprob, strict=True))
    ids = engine.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    for i in range(3):
        out = gen.output_ids[i]
        assert len(per_sample[i]) == len(out) == states[i].tokens > 0
        full = torch.cat([ids, torch.tensor([out])], dim=1)
        with torch.inference_mode():
            logits = engine.model(input_ids=full).logits[0, ids.shape[1] - 1 : -1].double()
        logp = torch.log_softmax(logits, dim=-1)
        want_conf = -logp.topk(k, dim=-1).values.mean(dim=-1)
        want_lp = logp[torch.arange(len(out)), torch.tensor(out)]
        got = torch.tensor(per_sample[i], dtype=torch.float64)
        torch.testing.assert_close(got[:, 0], want_conf, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got[:, 1], want_lp, atol=1e-4, rtol=1e-4)
        assert (got[:, 1] <= 0).all() and (got[:, 0] >= 0).all()
    plain = engine.generate(GenerationRequest(prompt, n=1, max_tokens=5, seed=1))
    assert all(ev.stats is None for ev in run(_collect(plain))[0])
