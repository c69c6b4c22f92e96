"""Measured decode speed on the lent GPU, for the simulator and for the engine's overhead.

Three measurements, each on dummy weights (``load_format="dummy"``: decode speed depends on the
shapes and the weight format, not on the values) of a model whose ``config.json`` facts live in
``bench/configs/<model>.json``:

* ``tables``: tokens/s per sequence against concurrency and context, written as
  ``h200_<model>.json`` (the format ``simulate`` loads). For each context one shared prompt of
  that many tokens is prefilled once; then ``c`` samples of it decode ``--tokens`` tokens each.
  Prefix caching makes every sample's prefill a cache hit, and cascade attention is switched
  off so each sample's attention still reads its whole context, as independent samples do.
  Per sample, speed = (tokens - 1) / (last token time - first token time), so the prefill is
  left out; the row is the mean over samples. Caveat: the c samples read the same KV blocks,
  which the GPU's L2 cache may serve more cheaply than c distinct contexts would.
* ``engine``: plain ``LLM.generate``, vLLM's own ``AsyncLLM``, ``VLLMEngine`` (the solver's path)
  and ``Solver.solve`` on it (extraction, vote and stop checks on every event), optionally the
  wrapper with ``logprobs=k``, at concurrency 1..64 on two engines of one model alive at once
  (``--gpu-mem`` each, so the weights must fit in that share: gpt-oss-120b needs ``--layers``),
  interleaved repetitions, ratios with their spread. Start-up times come with it.
* ``widths``: decode step time of 48-layer AWQ Qwen2 shapes of several widths at c = 1 and 8,
  fitted as fixed cost + bytes / bandwidth (``h200_width_sweep.json``, for issue 12).
* ``runner``: the whole submission (``Submission`` starting vLLM in its background thread, the
  local gateway, ``predict`` through the solver with code execution) on the tiny model.

Run on a GPU with vLLM: ``python -m bench.bench_hardware tables --model gpt-oss-120b --out DIR``
(the exact commands are in ``bench/results/hardware_h200.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aimo_submit.engines.base import FinishReason, GenerationRequest  # noqa: E402
from aimo_submit.engines.vllm_engine import VLLMEngine, VLLMSettings, _vllm_env_defaults  # noqa: E402
from aimo_submit.hardware import WEIGHT_FORMATS, fit_bandwidth, table_name  # noqa: E402
from bench.bench_vllm import write_tokenizer  # noqa: E402

CONFIGS = REPO / "bench" / "configs"
CONCURRENCY = (1, 8, 16, 32, 64)
CONTEXTS = (1024, 4096, 8192, 16384, 32768)
QUANT = {  # bench weight format -> (vLLM quantization, dtype, config.json quantization_config)
    "awq": ("awq_marlin", "float16", {"quant_method": "awq", "bits": 4, "group_size": 128,
                                      "zero_point": True, "version": "gemm"}),
    "fp8": ("fp8", "bfloat16", None),
    "mxfp4": (None, "bfloat16", "keep"),
}
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def model_dir(name: str, fmt: str, root: Path, layers: int | None = None) -> tuple[Path, dict]:
    """A folder vLLM can load with dummy weights: the stored config plus a byte-level tokenizer
    of the model's vocabulary size (one ASCII letter = one token, so prompt lengths are exact)."""
    cfg = json.loads((CONFIGS / f"{name}.json").read_text())
    full = cfg["num_hidden_layers"]
    if layers and layers < full:
        cfg["num_hidden_layers"] = layers
        if "layer_types" in cfg:
            cfg["layer_types"] = cfg["layer_types"][:layers]
        if "max_window_layers" in cfg:
            cfg["max_window_layers"] = layers
    quant = QUANT[fmt][2]
    if quant != "keep":
        cfg.pop("quantization_config", None)
        if quant:
            cfg["quantization_config"] = quant
            cfg["torch_dtype"] = QUANT[fmt][1]
    path = root / f"{name}-{fmt}-{cfg['num_hidden_layers']}l"
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "tokenizer.json").exists():
        write_tokenizer(path, cfg["vocab_size"])
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    return path, {"layers_full": full, "config": cfg}


def shape_of(cfg: dict) -> dict[str, Any]:
    keys = {"layers": "num_hidden_layers", "hidden": "hidden_size", "heads": "num_attention_heads",
            "kv_heads": "num_key_value_heads", "head_dim": "head_dim",
            "intermediate": "intermediate_size", "experts": "num_local_experts",
            "experts_per_token": "num_experts_per_tok", "sliding_window": "sliding_window",
            "vocab": "vocab_size"}
    return {k: cfg[v] for k, v in keys.items() if cfg.get(v) is not None}


def device_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                               "--format=csv,noheader", "-i", "0"], capture_output=True,
                              text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def text_of(n_tokens: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(LETTERS) for _ in range(n_tokens))


def settings_for(path: Path, fmt: str, *, max_model_len: int, gpu_mem: float, max_seqs: int = 64,
                 **extra: Any) -> VLLMSettings:
    return VLLMSettings(
        model=str(path), quantization=QUANT[fmt][0], dtype=QUANT[fmt][1], kv_cache_dtype="auto",
        max_model_len=max_model_len, gpu_memory_utilization=gpu_mem, max_num_seqs=max_seqs,
        load_format="dummy", sampling_extra={"ignore_eos": True}, max_num_batched_tokens=8192,
        extra={"compilation_config": {"max_cudagraph_capture_size": 128}, **extra},
    )


async def timed(engine: VLLMEngine, request: GenerationRequest) -> dict[str, Any]:
    """Per-sample first/last token times of one generation; the summary the tables need."""
    t0 = time.perf_counter()
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    tokens: dict[int, int] = {}
    async for ev in engine.generate(request):
        now = time.perf_counter()
        if ev.finish_reason is FinishReason.ERROR:
            raise RuntimeError(ev.error)
        if ev.tokens:
            first.setdefault(ev.index, now)
            last[ev.index] = now
            tokens[ev.index] = ev.tokens
    wall = time.perf_counter() - t0
    speeds = [(tokens[i] - 1) / (last[i] - first[i]) for i in tokens
              if tokens[i] > 1 and last[i] > first[i]]
    return {"wall_s": wall, "tokens": sum(tokens.values()),
            "tok_s": sum(tokens.values()) / wall,
            "per_seq": statistics.mean(speeds) if speeds else 0.0,
            "first_ms": 1000 * (min(first.values()) - t0) if first else None,
            "first_ms_all": 1000 * (max(first.values()) - t0) if first else None}


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


async def _tables(args: argparse.Namespace) -> dict[str, Any]:
    path, meta = model_dir(args.model, args.format, Path(args.workdir), args.layers)
    cfg = meta["config"]
    contexts = [c for c in args.contexts if c + args.tokens + 16 <= args.max_model_len]
    settings = settings_for(path, args.format, max_model_len=args.max_model_len,
                            gpu_mem=args.gpu_mem, disable_cascade_attn=True)
    engine = VLLMEngine(settings=settings)
    await engine.start()
    print(f"{args.model}: ready in {engine.startup_s:.1f} s", flush=True)
    rows = []
    try:
        await timed(engine, GenerationRequest(text_of(64, 0), n=4, max_tokens=16, seed=0))
        for ctx in contexts:
            prompt = text_of(ctx, ctx)
            await timed(engine, GenerationRequest(prompt, n=1, max_tokens=2, seed=1))  # prefill
            for c in args.concurrency:
                r = await timed(engine, GenerationRequest(prompt, n=c, max_tokens=args.tokens,
                                                          seed=100 + c))
                scale = cfg["num_hidden_layers"] / meta["layers_full"]
                row = {"concurrency": c, "context": ctx,
                       "tokens_per_s_per_seq": round(r["per_seq"] * scale, 2),
                       "first_token_ms": round(r["first_ms_all"], 1),
                       "measured_tokens_per_s_per_seq": round(r["per_seq"], 2),
                       "total_tokens_per_s": round(r["tok_s"], 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        startup = engine.startup_s
        await engine.close()
    layers = cfg["num_hidden_layers"]
    full_cfg = {**cfg, "num_hidden_layers": meta["layers_full"]}
    return {
        "device": device_name(), "model": args.model, "shape": shape_of(full_cfg),
        "layers_measured": layers, "layers_full": meta["layers_full"],
        "layer_scale": round(layers / meta["layers_full"], 4),
        "quantization": args.format, "kv_cache_dtype": "auto (bf16/fp16, the model dtype)",
        "command": "python -m bench.bench_hardware " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "startup_s": round(startup or 0, 1),
        "decode_tokens": args.tokens,
        "method": "dummy weights; one shared prompt per context, prefix-cached, cascade attention "
                  "off; per-sample (tokens-1)/(last-first token time), mean over samples; "
                  "first_token_ms = submit to the last sample's first token (prefix hit); "
                  "tokens_per_s_per_seq is scaled by layers_measured/layers_full when fewer "
                  "layers ran (a slight under-estimate: lm_head and sampling do not scale)",
        "rows": rows,
    }


def tables(args: argparse.Namespace) -> dict[str, Any]:
    _vllm_env_defaults()
    try:
        data = asyncio.run(_tables(args))
    except Exception as exc:  # noqa: BLE001 - fall back to fewer layers, and say so
        if not args.fallback_layers or args.layers:
            raise
        print(f"full model failed ({type(exc).__name__}: {exc}); retrying with "
              f"{args.fallback_layers} layers", flush=True)
        args.layers = args.fallback_layers
        data = asyncio.run(_tables(args))
        data["fallback_reason"] = f"{type(exc).__name__}: {exc}"[:500]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / table_name(args.model)).write_text(json.dumps(data, indent=1))
    return data


# --------------------------------------------------------------------------------------------
# engine: wrapper vs plain vs solver, logprobs
# --------------------------------------------------------------------------------------------


def _solver(engine: VLLMEngine, c: int, tokens: int) -> Any:
    from aimo_submit.policy import PolicyConfig
    from aimo_submit.solver import Solver

    class RawSolver(Solver):
        """The prompt is the problem text itself: the solver submits exactly the prompt the
        other modes submit (same token ids)."""

        def build_prompt(self, problem: str) -> str:
            return problem

    # early_stop_agree past n: no early stop (random text holds no answer anyway); no sandbox,
    # so no code runs; top_p 1.0 as in the other modes (top_p < 1 adds a sort to each step)
    policy = PolicyConfig(n_samples=c, max_tokens=tokens, early_stop_agree=c + 1, top_p=1.0,
                          temperature=1.0, seed=200 + c, min_tokens=min(32, tokens))
    return RawSolver(engine, policy, prompt_style="r1", sandbox=None)


async def _solver_run(engine: VLLMEngine, prompt_text: str, c: int, tokens: int) -> dict[str, Any]:
    from aimo_submit.schedule import ProblemBudget

    solver = _solver(engine, c, tokens)
    now = asyncio.get_running_loop().time()
    budget = ProblemBudget(start=now, soft_deadline=now + 600, hard_deadline=now + 900,
                           max_tokens=tokens, n_samples=c, fair_share_s=600)
    t0 = time.perf_counter()
    res = await solver.solve(prompt_text, budget)
    wall = time.perf_counter() - t0
    return {"tokens": res.tokens, "wall_s": wall, "tok_s": res.tokens / wall,
            "stop_reason": res.stop_reason}


async def _raw_async(engine: VLLMEngine, ids: list[int], c: int, tokens: int,
                     tag: str) -> dict[str, Any]:
    """vLLM's own ``AsyncLLM.generate`` (the client inside VLLMEngine), one request a sample,
    DELTA outputs: what any asyncio front-end pays before our code runs."""
    client = engine._clients[0]
    first: dict[int, float] = {}
    count: dict[int, int] = {}
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        params = engine._sampling_params(max_tokens=tokens, seed=200 + c + i, ignore_eos=True,
                                         temperature=1.0, top_p=1.0,
                                         output_kind=engine._delta_kind)
        async for out in client.generate({"prompt_token_ids": ids}, params, f"{tag}-{i}"):
            n = len(out.outputs[0].token_ids)
            if n:
                first.setdefault(i, time.perf_counter())
                count[i] = count.get(i, 0) + n

    await asyncio.gather(*(one(i) for i in range(c)))
    wall = time.perf_counter() - t0
    total = sum(count.values())
    return {"tokens": total, "wall_s": wall, "tok_s": total / wall,
            "first_ms": 1000 * (min(first.values()) - t0),
            "first_ms_all": 1000 * (max(first.values()) - t0)}


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def engine_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Plain ``LLM.generate``, vLLM's ``AsyncLLM``, ``VLLMEngine`` and ``Solver.solve`` on two
    engines of the same model alive at once (``--gpu-mem`` each), measured interleaved: every
    repetition runs every mode at every concurrency, in an order rotated per repetition, after
    every mode has been warmed at every batch size. Same prompt ids (``--prompt-len`` tokens),
    same output length (``ignore_eos``, no stop strings: every sample makes ``--tokens``), same
    sampling (temperature 1, top_p 1, per-sample seeds). Ratios are per repetition (each mode
    against the plain run of the same repetition), reported as median, min and max."""
    _vllm_env_defaults()
    from vllm import LLM, SamplingParams

    path, meta = model_dir(args.model, args.format, Path(args.workdir), args.layers)
    settings = settings_for(path, args.format, max_model_len=4096, gpu_mem=args.gpu_mem)
    prompt = text_of(args.prompt_len, 7)
    modes = [m for m in ("plain", "async", "wrapper", "solver", "logprobs")
             if m in args.modes.split(",")]
    info: dict[str, Any] = {"model": args.model, "format": args.format,
                            "layers": meta["config"]["num_hidden_layers"],
                            "tokens": args.tokens, "prompt_tokens": args.prompt_len,
                            "repetitions": args.reps, "modes": modes,
                            "gpu_memory_utilization_each": args.gpu_mem,
                            "device": device_name(), "date": time.strftime("%Y-%m-%d"),
                            "command": "python -m bench.bench_hardware " + " ".join(sys.argv[1:])}
    t0 = time.perf_counter()
    llm = LLM(**settings.engine_kwargs())
    info["startup_s_plain"] = round(time.perf_counter() - t0, 1)
    print(f"plain ready in {info['startup_s_plain']:.1f} s", flush=True)
    ids = llm.get_tokenizer().encode(prompt, add_special_tokens=False)
    loop = asyncio.new_event_loop()
    engine = VLLMEngine(settings=settings)
    runs: list[dict[str, Any]] = []
    try:
        loop.run_until_complete(engine.start())
        info["startup_s_wrapper"] = round(engine.startup_s or 0, 1)
        print(f"wrapper ready in {engine.startup_s:.1f} s", flush=True)
        wrapper_ids = engine._prompt_ids(prompt)
        info["prompt_ids_identical"] = wrapper_ids == ids and len(ids) == args.prompt_len
        serial = iter(range(10**9))

        def plain(c: int, tokens: int) -> dict[str, Any]:
            params = [SamplingParams(max_tokens=tokens, seed=200 + c + i, ignore_eos=True,
                                     temperature=1.0, top_p=1.0) for i in range(c)]
            t = time.perf_counter()
            outs = llm.generate([{"prompt_token_ids": ids}] * c, params, use_tqdm=False)
            wall = time.perf_counter() - t
            total = sum(len(o.outputs[0].token_ids) for o in outs)
            return {"tokens": total, "wall_s": wall, "tok_s": total / wall}

        def measure(mode: str, c: int, tokens: int) -> dict[str, Any]:
            if mode == "plain":
                return plain(c, tokens)
            if mode == "async":
                return loop.run_until_complete(_raw_async(engine, ids, c, tokens,
                                                          f"raw{next(serial)}"))
            if mode in ("wrapper", "logprobs"):  # logprobs: the wrapper asking top-5 (issue 16)
                return loop.run_until_complete(timed(engine, GenerationRequest(
                    prompt, n=c, max_tokens=tokens, seed=200 + c, temperature=1.0, top_p=1.0,
                    logprobs=args.logprobs if mode == "logprobs" else 0)))
            return loop.run_until_complete(_solver_run(engine, prompt, c, tokens))

        for c in args.concurrency:  # warm-up: every mode at every batch size
            for mode in modes:
                measure(mode, c, 32)
        for rep in range(args.reps):
            order = modes[rep % len(modes):] + modes[:rep % len(modes)]
            for c in args.concurrency:
                for mode in order:
                    r = measure(mode, c, args.tokens)
                    row = {"rep": rep, "concurrency": c, "mode": mode,
                           **{k: (round(v, 2) if isinstance(v, float) else v)
                              for k, v in r.items()}}
                    if r["tokens"] != c * args.tokens:
                        row["short"] = f"{r['tokens']} of {c * args.tokens} tokens"
                    runs.append(row)
                    print(json.dumps(row), flush=True)
        info["wrapper_stats"] = dict(engine.stats)
    finally:
        loop.run_until_complete(engine.close())
        loop.close()
        with contextlib.suppress(Exception):
            llm.llm_engine.engine_core.shutdown()
    summary = []
    for c in args.concurrency:
        row: dict[str, Any] = {"concurrency": c}
        for mode in modes:
            mine = [r for r in runs if r["concurrency"] == c and r["mode"] == mode]
            row[f"{mode}_tok_s"] = _spread([r["tok_s"] for r in mine])
            if "first_ms" in mine[0]:
                row[f"{mode}_first_token_ms"] = _spread([r["first_ms"] for r in mine])
                row[f"{mode}_first_token_ms_all"] = _spread([r["first_ms_all"] for r in mine])
            if mode != "plain" and "plain" in modes:
                ratios = []
                for rep in range(args.reps):
                    base = next(r for r in runs if r["concurrency"] == c and r["rep"] == rep
                                and r["mode"] == "plain")
                    me = next(r for r in mine if r["rep"] == rep)
                    ratios.append(me["tok_s"] / base["tok_s"])
                row[f"ratio_{mode}"] = _spread(ratios)
        summary.append(row)
        print(json.dumps(row), flush=True)
    data = {**info, "summary": summary, "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"engine_{args.model}.json").write_text(json.dumps(data, indent=1))
    return data


# --------------------------------------------------------------------------------------------
# widths: fixed per-step cost against bandwidth cost (issue 12's L4 scaling)
# --------------------------------------------------------------------------------------------

AWQ_BYTES_PER_PARAM = WEIGHT_FORMATS["awq"].bits_per_weight / 8
"""4-bit weights, plus per group of 128 inputs a 16-bit scale and a 4-bit zero point."""


def width_config(hidden: int) -> dict[str, Any]:
    """The 14B's config at another width: same 48 layers, head size 128 and 5 query heads per
    KV head, the MLP 2.7x wide (13824/5120), rounded to AWQ's group of 128."""
    cfg = json.loads((CONFIGS / "r1-distill-qwen-14b.json").read_text())
    heads = hidden // 128
    cfg.update(hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=heads // 5,
               intermediate_size=round(hidden * 13824 / 5120 / 128) * 128)
    return cfg


def weight_bytes(cfg: dict[str, Any]) -> dict[str, int]:
    """Bytes a decode step reads for the weights (AWQ linears, fp16 embedding row and lm_head)."""
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    linear = cfg["num_hidden_layers"] * (h * (h + 2 * kv) + h * h + 3 * h * i)
    return {"linear_params": linear, "linear_bytes": int(linear * AWQ_BYTES_PER_PARAM),
            "lm_head_bytes": 2 * v * h, "per_step_bytes": int(linear * AWQ_BYTES_PER_PARAM)
            + 2 * v * h}


def _one_width(args: argparse.Namespace, hidden: int) -> dict[str, Any]:
    from vllm import LLM, SamplingParams

    cfg = width_config(hidden)
    cfg["quantization_config"] = QUANT["awq"][2]
    cfg["torch_dtype"] = QUANT["awq"][1]
    path = Path(args.workdir) / f"qwen2-w{hidden}-awq-{cfg['num_hidden_layers']}l"
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "tokenizer.json").exists():
        write_tokenizer(path, cfg["vocab_size"])
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    settings = settings_for(path, "awq", max_model_len=4096, gpu_mem=args.gpu_mem)
    kw = settings.engine_kwargs()
    kw["compilation_config"] = {"cudagraph_capture_sizes": sorted({1, 2, 4, 8, 16,
                                                                   *args.concurrency})}
    t0 = time.perf_counter()
    llm = LLM(**kw)
    startup = time.perf_counter() - t0
    ids = llm.get_tokenizer().encode(text_of(args.context, 11), add_special_tokens=False)

    def run(c: int, tokens: int) -> float:
        params = [SamplingParams(max_tokens=tokens, ignore_eos=True, seed=i) for i in range(c)]
        t = time.perf_counter()
        llm.generate([{"prompt_token_ids": ids}] * c, params, use_tqdm=False)
        return time.perf_counter() - t

    run(1, 2)  # prefill the shared context once (then a prefix-cache hit)
    rows = []
    for c in args.concurrency:
        run(c, args.decode + 1)  # warm this batch size
        steps = []
        for _ in range(args.reps):
            short, long = run(c, 1), run(c, args.decode + 1)
            steps.append((long - short) / args.decode)
        med = statistics.median(steps)
        rows.append({"concurrency": c, "context": args.context,
                     "step_ms": _spread([1000 * x for x in steps]),
                     "tokens_per_s_per_seq": round(1 / med, 1)})
        print(json.dumps({"hidden": hidden, **rows[-1]}), flush=True)
    with contextlib.suppress(Exception):
        llm.llm_engine.engine_core.shutdown()
    return {"hidden": hidden, "shape": shape_of(cfg), **weight_bytes(cfg),
            "startup_s": round(startup, 1), "rows": rows}


def widths(args: argparse.Namespace) -> dict[str, Any]:
    """Each width in its own process (a crash or an out-of-memory ends one width only); the
    fit step = fixed + bytes / bandwidth per concurrency is over the widths that ran."""
    _vllm_env_defaults()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one:
        data = _one_width(args, args.one)
        (out / f"width_{args.one}.json").write_text(json.dumps(data))
        return data
    models, errors = [], {}
    for hidden in args.hidden:
        cmd = [sys.executable, "-m", "bench.bench_hardware", "widths", "--one", str(hidden),
               "--out", str(out), "--workdir", args.workdir, "--gpu-mem", str(args.gpu_mem),
               "--concurrency", ",".join(map(str, args.concurrency)),
               "--context", str(args.context), "--decode", str(args.decode),
               "--reps", str(args.reps)]
        proc = subprocess.run(cmd, cwd=REPO, timeout=args.timeout, text=True, env={
            **os.environ, "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
        part = out / f"width_{hidden}.json"
        if proc.returncode or not part.exists():
            errors[hidden] = f"rc {proc.returncode}"
            continue
        models.append(json.loads(part.read_text()))
        part.unlink()
    fits = []
    for c in args.concurrency:
        pts = [(m["per_step_bytes"], next(r["step_ms"]["median"] for r in m["rows"]
                                          if r["concurrency"] == c) / 1e3) for m in models]
        if len(pts) >= 2:
            try:
                fixed, bandwidth = fit_bandwidth(pts)
            except ValueError:  # equal widths, or step time not growing with bytes
                fixed, bandwidth = None, None
            fits.append({"concurrency": c,
                         "fixed_ms": None if fixed is None else round(1e3 * fixed, 3),
                         "effective_bandwidth_gb_s": None if bandwidth is None
                         else round(bandwidth / 1e9, 1), "points": len(pts)})
    data = {"device": device_name(), "date": time.strftime("%Y-%m-%d"),
            "command": "python -m bench.bench_hardware " + " ".join(sys.argv[1:]),
            "method": "dummy AWQ (Marlin) weights, CUDA graphs on (compiled, captured for the "
                      "listed batch sizes); one shared prefix-cached context; step time = "
                      "(wall of 1+D decoded tokens - wall of 1 token) / D per request batch, "
                      "median of reps; per_step_bytes = AWQ linears + fp16 lm_head (the "
                      "embedding reads one row a token); the fit is least squares over widths",
            "models": models, "fits": fits, "errors": errors}
    (out / "h200_width_sweep.json").write_text(json.dumps(data, indent=1))
    print(json.dumps(fits), flush=True)
    return data


# --------------------------------------------------------------------------------------------
# runner: the whole submission through vLLM on the tiny model
# --------------------------------------------------------------------------------------------


def runner(args: argparse.Namespace) -> dict[str, Any]:
    _vllm_env_defaults()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "aimo_submit", "local-gateway", "--model", "tiny-qwen2-math-vllm",
           "--manifest", str(CONFIGS / "tiny_vllm_manifest.json"),
           "--csv", str(REPO / "aimo_submit" / "assets" / "tiny_problems.csv"),
           "--time-budget", str(args.budget), "--workdir", str(out / "runner"), "--quiet",
           "--set", "n_samples=8"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.budget + 240,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    data = {"command": " ".join(cmd), "rc": proc.returncode,
            "wall_s": round(time.perf_counter() - t0, 1),
            "stdout_tail": proc.stdout[-6000:], "stderr_tail": proc.stderr[-4000:]}
    (out / "runner_tiny_vllm.json").write_text(json.dumps(data, indent=1))
    print(proc.stdout[-3000:], proc.stderr[-2000:], flush=True)
    return data


# --------------------------------------------------------------------------------------------


def run() -> list[dict[str, Any]]:
    """``make bench`` hook (no GPU needed): the committed H200 tables beside what the simulator
    makes of them on the competition machines (``hardware.throughput_for``), tokens/s per
    sequence, so a changed scaling rule shows up as changed numbers."""
    from aimo_submit import hardware

    rows: list[dict[str, Any]] = []
    for setup in ("h100-gpt-oss-120b", "l4x4-tp4", "l4x4-dp4"):
        spec = hardware.SETUPS[setup]
        path = hardware.table_for(spec.table_model)
        if path is None:
            rows.append({"setup": setup, "status": "no measured table: roofline"})
            continue
        measured = hardware.load_throughput(path)
        model = hardware.throughput_for(setup)
        for c in (1, 8, 32, 64):
            for ctx in (1024, 8192, 32768):
                h200 = measured.tokens_per_s(c, ctx)
                there = model.tokens_per_s(c, ctx)
                rows.append({"setup": setup, "table": path.stem, "concurrency": c,
                             "context": ctx, "h200_tok_s_seq": round(h200, 1),
                             "setup_tok_s_seq": round(there, 1),
                             "ratio": round(there / h200, 3) if h200 else None})
    return rows


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",")]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("tables", "engine"):
        t = sub.add_parser(name)
        t.add_argument("--model", required=True, help="bench/configs/<model>.json")
        t.add_argument("--format", choices=sorted(QUANT), required=True)
        t.add_argument("--layers", type=int, default=None, help="measure fewer layers")
        t.add_argument("--concurrency", type=_ints, default=list(CONCURRENCY))
        t.add_argument("--gpu-mem", type=float, default=0.9)
        t.add_argument("--workdir", default="/tmp/bench_hardware")
        t.add_argument("--out", default="bench/results/throughput")
    tb = sub.choices["tables"]
    tb.add_argument("--contexts", type=_ints, default=list(CONTEXTS))
    tb.add_argument("--tokens", type=int, default=96, help="decoded tokens per sample")
    tb.add_argument("--max-model-len", type=int, default=32768 + 256)
    tb.add_argument("--fallback-layers", type=int, default=0)
    en = sub.choices["engine"]
    en.set_defaults(gpu_mem=0.42)  # two engines share the GPU
    en.add_argument("--tokens", type=int, default=256)
    en.add_argument("--prompt-len", type=int, default=256)
    en.add_argument("--reps", type=int, default=3)
    en.add_argument("--logprobs", type=int, default=5, help="top-k of the logprobs mode")
    en.add_argument("--modes", default="plain,async,wrapper,solver")
    w = sub.add_parser("widths")
    w.add_argument("--hidden", type=_ints, default=[2560, 5120, 7680])
    w.add_argument("--one", type=int, default=0, help="measure one width (internal)")
    w.add_argument("--concurrency", type=_ints, default=[1, 8])
    w.add_argument("--context", type=int, default=1024)
    w.add_argument("--decode", type=int, default=128)
    w.add_argument("--reps", type=int, default=3)
    w.add_argument("--gpu-mem", type=float, default=0.85)
    w.add_argument("--timeout", type=int, default=400)
    w.add_argument("--workdir", default="/tmp/bench_hardware")
    w.add_argument("--out", default="bench/results/throughput")
    r = sub.add_parser("runner")
    r.add_argument("--budget", type=int, default=360,
                   help="whole-run seconds, the model load included (vLLM: 50-115 s)")
    r.add_argument("--out", default="bench/results/runner_run")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    {"tables": tables, "engine": engine_bench, "runner": runner, "widths": widths}[args.cmd](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
