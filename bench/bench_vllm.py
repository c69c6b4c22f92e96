"""vLLM decode throughput through our ``VLLMEngine`` against plain ``LLM.generate``, same GPU.

Random weights (``load_format="dummy"``) on a Qwen2.5-14B-shaped config, so no checkpoint is
needed; the speed of a decode step depends on the shapes and the weight format, not on the
values. For each concurrency ``c`` both paths generate ``c`` samples of one prompt for a fixed
number of tokens (EOS ignored); the table gives total decode tokens/s, per-sample tokens/s and
the wrapper/plain ratio (the cost of one request per sample, delta streaming and our event
plumbing). Start-up time (``start()`` to ready, the number Kaggle's server start-up limit sees)
and the KV cache vLLM actually got, next to ``memory_plan``'s prediction, come with it.

``tiny`` runs the project's tiny model through ``VLLMEngine`` (stop strings, n samples, an abort
mid-stream) and through the solver on a few problems.

Run (GPU with vLLM): ``python -m bench.bench_vllm throughput --out DIR`` and
``python -m bench.bench_vllm tiny --out DIR``. Under ``make bench`` on a CPU machine it reports
itself skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aimo_submit.engines.base import FinishReason, GenerationRequest  # noqa: E402
from aimo_submit.engines.vllm_engine import (  # noqa: E402
    VLLMEngine,
    VLLMSettings,
    _vllm_env_defaults,
)
from aimo_submit.hardware import GIB, MIB, ModelShape, memory_plan  # noqa: E402
from bench.samples import SampleState  # noqa: E402

TINY_MODEL = REPO / "aimo_submit" / "assets" / "tiny-model"
TINY_CSV = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"
SHAPES: dict[str, dict[str, int]] = {
    "qwen2.5-14b": dict(layers=48, hidden=5120, heads=40, kv_heads=8, intermediate=13824,
                        vocab=152064),
    "qwen2.5-7b": dict(layers=28, hidden=3584, heads=28, kv_heads=4, intermediate=18944,
                       vocab=152064),
    "qwen2.5-1.5b": dict(layers=28, hidden=1536, heads=12, kv_heads=2, intermediate=8960,
                         vocab=151936),
}
CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
AWQ_CONFIG = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
              "version": "gemm"}


# --------------------------------------------------------------------------------------------
# A model folder with no weights (vLLM's dummy loader fills them)
# --------------------------------------------------------------------------------------------


def write_tokenizer(path: Path, vocab: int) -> None:
    """A byte-level BPE with no merges and exactly ``vocab`` ids: any text encodes (byte by
    byte) and every id a random model samples decodes (an id past the tokenizer's end would
    break detokenization). transformers rebuilds it as a Qwen2Tokenizer, as vLLM will."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    table = {t: i for i, t in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        table[ch] = len(table)
    filler = 0
    while len(table) < vocab:
        table[f"\u0120w{filler}"] = len(table)
        filler += 1
    tok = Tokenizer(models.BPE(vocab=table, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": specials[1:]})
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(path))


def write_model_dir(path: Path, *, layers: int, hidden: int, heads: int, kv_heads: int,
                    intermediate: int, vocab: int | None = None, max_len: int = 32768,
                    quant: str | None = None) -> Path:
    """config.json (Qwen2) + tokenizer; with ``vocab`` None the tiny model's tokenizer is used
    when it exists (else a byte-level one of 512 ids)."""
    path.mkdir(parents=True, exist_ok=True)
    if vocab is None and (TINY_MODEL / "tokenizer.json").exists():
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (TINY_MODEL / name).exists():
                (path / name).write_bytes((TINY_MODEL / name).read_bytes())
        vocab = json.loads((TINY_MODEL / "config.json").read_text())["vocab_size"]
    else:
        vocab = vocab or 512
        write_tokenizer(path, vocab)
    cfg: dict[str, Any] = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
        "max_position_embeddings": max_len, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "rope_theta": 1000000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 0, "sliding_window": None,
        "use_sliding_window": False, "max_window_layers": layers, "attention_dropout": 0.0,
    }
    if quant == "awq":
        cfg["quantization_config"] = AWQ_CONFIG
        cfg["torch_dtype"] = "float16"
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": 2,
                                                             "bos_token_id": 0}))
    return path


def gpu_total_bytes() -> int | None:
    """GPU 0's memory from nvidia-smi (the parent must not initialize CUDA before vLLM forks)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total,name",
                              "--format=csv,noheader,nounits", "-i", "0"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
        return int(out.split(",")[0]) * MIB
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _kv_tokens(client: Any) -> int | None:
    """KV tokens vLLM allocated (num_gpu_blocks x block_size), where the config exposes it."""
    cache = getattr(getattr(client, "vllm_config", None), "cache_config", None)
    if cache is None:  # LLM wraps its engine
        engine = getattr(client, "llm_engine", None)
        cache = getattr(getattr(engine, "vllm_config", None), "cache_config", None)
    blocks = getattr(cache, "num_gpu_blocks", None)
    return None if not blocks else int(blocks) * int(cache.block_size)


# --------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------


async def _wrapper_once(engine: VLLMEngine, prompt: str, c: int, tokens: int,
                        seed: int) -> tuple[int, float, float]:
    t0 = time.perf_counter()
    first: float | None = None
    total = 0
    gen = engine.generate(GenerationRequest(prompt, n=c, max_tokens=tokens, temperature=1.0,
                                            seed=seed))
    async for ev in gen:
        if first is None and ev.tokens:
            first = time.perf_counter()
        if ev.finished:
            total += ev.tokens
            if ev.finish_reason is FinishReason.ERROR:
                raise RuntimeError(ev.error)
    dt = time.perf_counter() - t0
    return total, dt, (first or t0) - t0


def _plain_once(llm: Any, prompt: str, c: int, tokens: int, seed: int) -> tuple[int, float]:
    from vllm import SamplingParams

    params = [SamplingParams(n=1, max_tokens=tokens, temperature=1.0, seed=seed + i,
                             ignore_eos=True) for i in range(c)]
    t0 = time.perf_counter()
    outs = llm.generate([prompt] * c, params, use_tqdm=False)
    dt = time.perf_counter() - t0
    return sum(len(o.outputs[0].token_ids) for o in outs), dt


def throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both paths at every concurrency; returns the table rows (also written under --out)."""
    _vllm_env_defaults()  # the plain LLM path needs them too
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shape = SHAPES[args.shape]
    quant = {"bf16": None, "fp8": "fp8", "awq": "awq_marlin"}[args.weights]
    model = write_model_dir(Path(args.workdir) / f"{args.shape}-{args.weights}",
                            quant="awq" if args.weights == "awq" else None, **shape)
    settings = VLLMSettings(
        model=str(model), quantization=quant, kv_cache_dtype=args.kv_cache_dtype,
        max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_mem,
        max_num_seqs=max(args.concurrency), enforce_eager=args.enforce_eager,
        dtype="float16" if args.weights == "awq" else "bfloat16", load_format="dummy",
        sampling_extra={"ignore_eos": True}, stream_interval=args.stream_interval,
    )
    rng = random.Random(0)
    words = ("the", "sum", "of", "x", "and", "y", "is", "prime", "find", "mod", "1000")
    prompt = " ".join(rng.choice(words) for _ in range(args.prompt_len))
    modes = args.modes.split(",")
    info: dict[str, Any] = {"shape": args.shape, "weights": args.weights,
                            "kv_cache_dtype": args.kv_cache_dtype, "tokens": args.tokens,
                            "prompt_len": args.prompt_len, "gpu_mem": args.gpu_mem,
                            "enforce_eager": args.enforce_eager}
    loop = asyncio.new_event_loop()
    engine: VLLMEngine | None = None
    llm: Any = None
    try:
        if "wrapper" in modes:
            engine = VLLMEngine(settings=settings)
            loop.run_until_complete(engine.start())
            info["startup_s_wrapper"] = round(engine.startup_s or 0, 1)
            info["kv_tokens_wrapper"] = _kv_tokens(engine._clients[0])
            print(f"wrapper engine ready in {engine.startup_s:.1f} s", flush=True)
        if "plain" in modes:
            from vllm import LLM

            kw = settings.engine_kwargs()
            t0 = time.perf_counter()
            llm = LLM(**kw)
            info["startup_s_plain"] = round(time.perf_counter() - t0, 1)
            info["kv_tokens_plain"] = _kv_tokens(llm)
            print(f"plain LLM ready in {info['startup_s_plain']:.1f} s", flush=True)
        total = gpu_total_bytes()
        if total:
            m = ModelShape(args.shape, layers=shape["layers"], hidden=shape["hidden"],
                           heads=shape["heads"], kv_heads=shape["kv_heads"], head_dim=128,
                           vocab=shape["vocab"], intermediate=shape["intermediate"])
            fmt = {"bf16": "bf16", "fp8": "fp8", "awq": "awq"}[args.weights]
            plan = memory_plan(m, fmt, gpu_bytes=total, utilization=args.gpu_mem,
                               kv_dtype=args.kv_cache_dtype)
            info["gpu_total_gib"] = round(total / GIB, 2)
            info["kv_tokens_predicted"] = plan.max_kv_tokens
            info["weights_gib_predicted"] = round(plan.weight_bytes / GIB, 2)
        # warm-up: first requests pay for lazy initialisation
        if engine:
            loop.run_until_complete(_wrapper_once(engine, prompt, 4, 16, 1))
        if llm is not None:
            _plain_once(llm, prompt, 4, 16, 1)
        rows = []
        for c in args.concurrency:
            row: dict[str, Any] = {"concurrency": c}
            if llm is not None:
                runs = [_plain_once(llm, prompt, c, args.tokens, 100 + r)
                        for r in range(args.repeats)]
                tok, dt = max(runs, key=lambda x: x[0] / x[1])
                row["plain_tok_s"] = round(tok / dt, 1)
                row["plain_tok_s_per_seq"] = round(tok / dt / c, 1)
            if engine is not None:
                runs3 = [loop.run_until_complete(_wrapper_once(engine, prompt, c, args.tokens,
                                                               200 + r))
                         for r in range(args.repeats)]
                tok, dt, ttft = max(runs3, key=lambda x: x[0] / x[1])
                row["wrapper_tok_s"] = round(tok / dt, 1)
                row["wrapper_tok_s_per_seq"] = round(tok / dt / c, 1)
                row["wrapper_first_token_ms"] = round(ttft * 1000, 1)
                row["wrapper_tokens"] = tok
            if "plain_tok_s" in row and "wrapper_tok_s" in row:
                row["ratio"] = round(row["wrapper_tok_s"] / row["plain_tok_s"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if engine is not None:
            loop.run_until_complete(engine.close())
        del llm
        gc.collect()
        loop.close()
    _write(out, f"throughput_{args.shape}_{args.weights}_kv{args.kv_cache_dtype}", rows, info)
    return rows


def _write(out: Path, stem: str, rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    md = [f"### {stem}", "", "```json", json.dumps(info, indent=1), "```", "",
          "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    md += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    text = "\n".join(md) + "\n"
    (out / f"{stem}.md").write_text(text)
    print(text, flush=True)


# --------------------------------------------------------------------------------------------
# Tiny model: stop strings, n samples, abort; then the solver
# --------------------------------------------------------------------------------------------


async def _tiny(args: argparse.Namespace) -> list[dict[str, Any]]:
    from aimo_submit.policy import PolicyConfig
    from aimo_submit.prompts import CODE_STOP, build_messages
    from aimo_submit.schedule import ProblemBudget
    from aimo_submit.solver import Solver

    with open(TINY_CSV) as f:
        problems = list(csv.DictReader(f))[: args.problems]
    engine = VLLMEngine(str(TINY_MODEL), dtype="bfloat16", max_model_len=512,
                        enforce_eager=True, gpu_memory_utilization=args.gpu_mem,
                        max_num_seqs=64, seed=0)
    await engine.start()
    rows: list[dict[str, Any]] = [{"check": "startup_s", "value": round(engine.startup_s or 0, 2)}]
    try:
        # n samples with stop strings, one aborted mid-stream
        prompt = engine.format_prompt(build_messages(problems[0]["problem"], "tiny-tir", 999))
        n = 8
        gen = engine.generate(GenerationRequest(prompt, n=n, max_tokens=200, seed=0,
                                                stop=(CODE_STOP, "<|im_end|>"), include_stop=True))
        states = {i: SampleState(i) for i in range(n)}
        async for ev in gen:
            states[ev.index].apply(ev)
            if ev.index == 0 and states[0].tokens >= 3 and not states[0].finished:
                gen.cancel(0)
        await gen.aclose()
        for i, s in states.items():
            rows.append({"check": f"sample{i}", "value": s.finish_reason.value
                         if s.finish_reason else None, "tokens": s.tokens,
                         "ends_with_stop": s.text.endswith(CODE_STOP), "text": s.text[-60:]})
        # solver on a few problems
        try:
            from aimo_submit.sandbox import Sandbox

            sandbox: Any = Sandbox(workers=4, timeout_s=5.0)
        except Exception as exc:  # noqa: BLE001 - report and go on without code execution
            print(f"sandbox unavailable: {exc!r}", flush=True)
            sandbox = None
        policy = PolicyConfig(n_samples=8, max_tokens=256, early_stop_agree=4)
        solver = Solver(engine, policy, prompt_style="tiny", tir_prompt_style="tiny-tir",
                        stop=("<|im_end|>",), sandbox=sandbox)
        loop = asyncio.get_running_loop()
        correct = 0
        for p in problems:
            now = loop.time()
            budget = ProblemBudget(start=now, soft_deadline=now + 20, hard_deadline=now + 30,
                                   max_tokens=256, n_samples=8, fair_share_s=20)
            res = await solver.solve(p["problem"], budget)
            ok = res.answer == int(p["answer"])
            correct += ok
            rows.append({"check": p["id"], "value": res.answer, "expected": int(p["answer"]),
                         "ok": ok, "stop_reason": res.stop_reason, "tokens": res.tokens,
                         "seconds": round(res.seconds, 2), "code_calls": res.code_calls})
        rows.append({"check": "solver_correct", "value": f"{correct}/{len(problems)}"})
        rows.append({"check": "engine_stats", "value": json.dumps(dict(engine.stats))})
    finally:
        await engine.close()
    return rows


def tiny(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = asyncio.run(_tiny(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write(out, "tiny_vllm", rows, {"model": str(TINY_MODEL), "problems": args.problems})
    return rows


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _ready() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "no CUDA device"


def run() -> list[dict[str, Any]]:
    """``make bench`` hook: a short run where a GPU and vLLM exist, else a 'skipped' row."""
    why = _ready()
    if why:
        return [{"bench": "vllm", "status": f"skipped: {why}"}]
    args = parser().parse_args(["throughput", "--shape", "qwen2.5-1.5b", "--concurrency",
                                "1,8,32", "--tokens", "128"])
    return throughput(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput", help="wrapper vs plain LLM.generate decode tokens/s")
    t.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-14b")
    t.add_argument("--weights", choices=("bf16", "fp8", "awq"), default="fp8")
    t.add_argument("--kv-cache-dtype", default="auto")
    t.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 2, 4, 8, 16, 32, 64])
    t.add_argument("--tokens", type=int, default=256, help="generated tokens per sample")
    t.add_argument("--prompt-len", type=int, default=64, help="prompt words")
    t.add_argument("--repeats", type=int, default=2, help="runs per point; the best is kept")
    t.add_argument("--max-model-len", type=int, default=4096)
    t.add_argument("--gpu-mem", type=float, default=0.42,
                   help="per engine; both engines share the GPU")
    t.add_argument("--enforce-eager", action="store_true")
    t.add_argument("--stream-interval", type=int, default=1)
    t.add_argument("--modes", default="wrapper,plain")
    t.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp") + "/bench_vllm")
    t.add_argument("--out", default="bench/results/vllm_run")
    k = sub.add_parser("tiny", help="tiny model through VLLMEngine and the solver")
    k.add_argument("--problems", type=int, default=6)
    k.add_argument("--gpu-mem", type=float, default=0.2)
    k.add_argument("--out", default="bench/results/vllm_run")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    why = _ready()
    if why:
        print(f"skipped: {why}")
        return 2
    rows = throughput(args) if args.cmd == "throughput" else tiny(args)
    print(json.dumps(rows[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
