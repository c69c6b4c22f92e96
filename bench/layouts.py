"""The 4-GPU layouts of the Kaggle 4x L4 machine, measured on four H200s (issue 18).

Kaggle's AIMO2 machine has four L4s; the manifest runs the 14B AWQ model tensor parallel 4, and
data parallel 4 (four replicas, prefix-affinity routing) or TP 2 x DP 2 are one setting away.
None of these had run before on more than one GPU, so this module holds the measurements that
settle them, ready for a machine of four GPUs (``bench/h200x4_session.sh`` runs them):

* ``tables --layout tp4|dp4|tp2dp2 --quantization awq|fp8``: decode tokens/s per sequence
  against concurrency (8..128, all sequences of the machine) and context (1k..16k) through
  ``VLLMEngine``, next to vLLM driven directly on the same engine (``plain``: one request per
  sample, no streaming to Python, nothing of ours in between), the start-up time, and the KV
  tokens vLLM allocated against ``hardware.memory_plan``. Written as
  ``h200x4_<model>_<layout>.json``: the one-GPU table format (``bench_hardware.tables``) plus
  ``layout``; ``hardware.throughput_for`` carries it to the L4 setup of the same layout.
* ``runner --layout ...``: the solver through ``Submission`` on the tiny model in that layout,
  checking that early-stop aborts reach every replica (no replica keeps unfinished requests
  after a problem) and, with several replicas, that a replica made to hang (its engine process
  stopped with SIGSTOP) is detected and restarted while the other replicas' samples still vote.

NVLink multicast stays off on the lent multi-GPU machines (a program using it can take the
host's GPUs out of service): :func:`no_multicast` sets the variables in this process before
vLLM starts, so every process vLLM spawns inherits them, and refuses to go on without them.
A layout asks for more GPUs than the machine has: :func:`check_gpus` refuses with the count.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aimo_submit.engines.base import GenerationRequest  # noqa: E402
from aimo_submit.engines.vllm_settings import VLLMSettings  # noqa: E402
from aimo_submit.hardware import (  # noqa: E402
    MIB,
    QWEN25_14B,
    layout_name,
    layout_table_name,
    memory_plan,
)

CONCURRENCY = (8, 16, 32, 64, 128)
CONTEXTS = (1024, 4096, 8192, 16384)
LAYOUTS: dict[str, tuple[int, int]] = {"tp4": (4, 1), "dp4": (1, 4), "tp2dp2": (2, 2)}
"""Layout name -> (tensor parallel, data parallel); names as ``hardware.layout_name`` spells."""
HARDWARE_MODEL: dict[tuple[str, str], str] = {
    ("r1-distill-qwen-14b", "awq"): "deepseek-r1-distill-qwen-14b-awq"}
"""(bench config, weight format) -> the ``hardware.MODELS`` shape the table measures, so the
simulator finds it; other pairs are named ``<config>-<format>`` (comparison tables)."""
NO_MULTICAST: dict[str, str] = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
"""NVLink multicast off in NCCL, PyTorch and NVSHMEM: the lent machines' rule (KINDS.md)."""
ALSO_OFF: dict[str, str] = {
    "VLLM_ALLREDUCE_USE_SYMM_MEM": "0",
    "VLLM_ALLREDUCE_USE_FLASHINFER": "0",
}
"""vLLM's all-reduce paths over torch symmetric memory and FlashInfer: off too, so that only
NCCL and vLLM's custom (CUDA IPC) all-reduce run."""


class LayoutError(RuntimeError):
    """A layout this machine cannot run (too few GPUs, unknown name)."""


def no_multicast(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set the multicast-off variables (overriding any other value) and check them.

    ``os.environ`` by default: vLLM's engine-core and worker processes inherit it."""
    env = os.environ if environ is None else environ
    env.update(NO_MULTICAST)
    env.update(ALSO_OFF)
    assert_no_multicast(env)
    return {k: env[k] for k in (*NO_MULTICAST, *ALSO_OFF)}


def assert_no_multicast(environ: Mapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    wrong = {k: env.get(k) for k, v in NO_MULTICAST.items() if env.get(k) != v}
    if wrong:
        raise LayoutError(f"NVLink multicast must stay off: {wrong} (want {NO_MULTICAST})")


@dataclass(frozen=True)
class Layout:
    """A split of the machine's GPUs: ``dp`` replicas of ``tp`` GPUs each."""

    name: str
    tp: int
    dp: int

    @classmethod
    def named(cls, name: str) -> Layout:
        try:
            tp, dp = LAYOUTS[name]
        except KeyError:
            raise LayoutError(f"unknown layout {name!r}; known: {sorted(LAYOUTS)}") from None
        return cls(name, tp, dp)

    @property
    def gpus(self) -> int:
        return self.tp * self.dp

    def settings(self, base: VLLMSettings, dp_backend: str = "vllm") -> VLLMSettings:
        """``base`` laid out this way (GPUs 0..gpus-1; replicas take consecutive groups)."""
        return base.replace(tensor_parallel_size=self.tp, data_parallel_size=self.dp,
                            dp_backend=dp_backend, gpu_ids=None)

    def describe(self, settings: VLLMSettings) -> dict[str, Any]:
        """What the table records about the layout: sizes, backend, GPUs of each replica."""
        return {"name": self.name, "tensor_parallel": self.tp, "data_parallel": self.dp,
                "dp_backend": settings.dp_backend,
                "replica_gpus": [list(settings.replica_gpus(r)) for r in range(self.dp)],
                "visible_devices": [settings.visible_devices(r) for r in range(self.dp)]}


def check_gpus(layout: Layout, available: int) -> None:
    """Refuse, saying why, a layout that needs more GPUs than ``available``."""
    if available < layout.gpus:
        raise LayoutError(
            f"layout {layout.name} needs {layout.gpus} GPUs (TP {layout.tp} x DP {layout.dp}); "
            f"this machine has {available}. Run it on a machine of {layout.gpus} GPUs "
            "(the device kind nvidia-h200-x4).")


def gpu_count() -> int:
    """GPUs this process may use: ``nvidia-smi``'s list, cut to ``CUDA_VISIBLE_DEVICES``."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    n = len([line for line in out.splitlines() if line.strip()])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        n = min(n, len([v for v in visible.split(",") if v.strip()]))
    return n


def gpu_bytes() -> int | None:
    """Memory of GPU 0 as the driver reports it (what ``gpu_memory_utilization`` divides)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total",
                              "--format=csv,noheader,nounits", "-i", "0"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        return int(out.split()[0]) * MIB
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def hardware_model(config: str, fmt: str) -> str:
    return HARDWARE_MODEL.get((config, fmt), f"{config}-{fmt}")


def planned_kv_tokens(fmt: str, settings: VLLMSettings, total_bytes: int) -> dict[str, Any]:
    """``hardware.memory_plan`` of one replica of the 14B shape, for the table's KV check."""
    plan = memory_plan(QWEN25_14B, fmt, gpu_bytes=total_bytes,
                       utilization=settings.gpu_memory_utilization,
                       kv_dtype=settings.kv_cache_dtype,
                       tensor_parallel=settings.tensor_parallel_size)
    return {"kv_tokens_planned_per_replica": plan.max_kv_tokens, "plan": plan.summary()}


def table_document(*, model: str, layout: Layout, settings: VLLMSettings, rows: list[dict],
                   meta: dict[str, Any]) -> dict[str, Any]:
    """The per-layout table: the one-GPU format (``hardware.load_throughput`` reads it) plus
    ``layout``; ``concurrency`` counts the sequences of the whole machine."""
    need = {"concurrency", "context", "tokens_per_s_per_seq"}
    for row in rows:
        if not need <= set(row):
            raise ValueError(f"table row lacks {sorted(need - set(row))}: {row}")
    return {**meta, "model": model, "layout": layout.describe(settings),
            "quantization": meta.get("quantization"), "rows": rows}


def write_table(out: Path, doc: dict[str, Any]) -> Path:
    lay = doc["layout"]
    name = layout_table_name(doc["model"], layout_name(lay["tensor_parallel"],
                                                       lay["data_parallel"]))
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(doc, indent=1))
    return path


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


async def _plain(engine: Any, prompt_ids: list[int], c: int, tokens: int, seed: int) -> float:
    """Total decode tokens/s of ``c`` samples sent to vLLM directly, spread over replicas as
    our router would (round robin), each request's output taken only when it has finished."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    async def one(i: int) -> int:
        rep = engine._replicas[i % len(engine._replicas)]
        kw = {} if rep.dp_rank is None else {"data_parallel_rank": rep.dp_rank}
        params = SamplingParams(max_tokens=tokens, seed=seed + i, ignore_eos=True,
                                output_kind=RequestOutputKind.FINAL_ONLY)
        n = 0
        async for out in rep.client.generate({"prompt_token_ids": prompt_ids}, params,
                                             f"plain-{seed}-{i}", **kw):
            n = len(out.outputs[0].token_ids)
        return n

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(one(i) for i in range(c)))
    return sum(counts) / (time.perf_counter() - t0)


async def _tables(args: argparse.Namespace, layout: Layout) -> dict[str, Any]:
    from aimo_submit.engines.vllm_engine import VLLMEngine
    from bench.bench_hardware import device_name, model_dir, settings_for, shape_of, text_of, timed
    from bench.bench_vllm import _kv_tokens

    path, meta = model_dir(args.model, args.quantization, Path(args.workdir), args.layers)
    cfg = meta["config"]
    contexts = [c for c in args.contexts if c + args.tokens + 16 <= args.max_model_len]
    base = settings_for(path, args.quantization, max_model_len=args.max_model_len,
                        gpu_mem=args.gpu_mem, max_seqs=max(args.concurrency),
                        disable_cascade_attn=True)
    settings = layout.settings(base, args.dp_backend)
    engine = VLLMEngine(settings=settings)
    await engine.start()
    print(f"{args.model} {args.quantization} {layout.name}: ready in {engine.startup_s:.1f} s",
          flush=True)
    info: dict[str, Any] = {"startup_s": round(engine.startup_s or 0, 1)}
    info["kv_tokens_allocated_per_replica"] = [_kv_tokens(c) for c in engine._clients]
    total = gpu_bytes()
    if total:
        info.update(planned_kv_tokens(args.quantization, settings, total))
        info["gpu_total_gib"] = round(total / (1 << 30), 2)
    scale = cfg["num_hidden_layers"] / meta["layers_full"]
    rows = []
    try:
        await timed(engine, GenerationRequest(text_of(64, 0), n=4 * layout.dp, max_tokens=16,
                                              seed=0))
        for ctx in contexts:
            prompt = text_of(ctx, ctx)
            # prefill once on every replica (the router spreads n samples evenly)
            await timed(engine, GenerationRequest(prompt, n=layout.dp, max_tokens=2, seed=1))
            ids = engine._prompt_ids(prompt)
            for c in args.concurrency:
                r = await timed(engine, GenerationRequest(prompt, n=c, max_tokens=args.tokens,
                                                          seed=100 + c))
                row = {"concurrency": c, "context": ctx,
                       "tokens_per_s_per_seq": round(r["per_seq"] * scale, 2),
                       "first_token_ms": round(r["first_ms_all"], 1),
                       "measured_tokens_per_s_per_seq": round(r["per_seq"], 2),
                       "total_tokens_per_s": round(r["tok_s"], 1)}
                if "plain" in args.modes:
                    plain = await _plain(engine, ids, c, args.tokens, 500 + c)
                    row["plain_total_tokens_per_s"] = round(plain, 1)
                    row["ratio_wrapper"] = round(r["tok_s"] / plain, 3)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        await engine.close()
    layers = cfg["num_hidden_layers"]
    full_cfg = {**cfg, "num_hidden_layers": meta["layers_full"]}
    info.update({
        "device": f"{gpu_count()}x {device_name()}", "shape": shape_of(full_cfg),
        "bench_config": args.model, "layers_measured": layers, "layers_full": meta["layers_full"],
        "layer_scale": round(layers / meta["layers_full"], 4), "quantization": args.quantization,
        "kv_cache_dtype": "auto (bf16/fp16, the model dtype)",
        "command": "python -m bench.layouts " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "decode_tokens": args.tokens,
        "env": {k: os.environ.get(k) for k in (*NO_MULTICAST, *ALSO_OFF)},
        "method": "dummy weights; one shared prompt per context, prefilled once per replica, "
                  "prefix-cached, cascade attention off; concurrency = sequences of the whole "
                  "machine, spread evenly over the replicas by ReplicaRouter; per-sample "
                  "(tokens-1)/(last-first token time), mean over samples; plain = the same "
                  "engine driven directly (one request per sample, final output only), its "
                  "total tokens/s including the prefix-hit prefill; tokens_per_s_per_seq "
                  "scaled by layers_measured/layers_full when fewer layers ran",
    })
    return table_document(model=hardware_model(args.model, args.quantization), layout=layout,
                          settings=settings, rows=rows, meta=info)


def tables(args: argparse.Namespace) -> dict[str, Any]:
    from aimo_submit.engines.vllm_engine import _vllm_env_defaults

    layout = Layout.named(args.layout)
    check_gpus(layout, gpu_count())
    no_multicast()
    _vllm_env_defaults()
    doc = asyncio.run(_tables(args, layout))
    path = write_table(Path(args.out), doc)
    print(f"wrote {path}", flush=True)
    return doc


# --------------------------------------------------------------------------------------------
# runner: Submission on the tiny model, per layout; aborts on every replica; a hung replica
# --------------------------------------------------------------------------------------------

TINY_MANIFEST = REPO / "bench" / "configs" / "tiny_vllm_manifest.json"
TINY_CSV = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"


def layout_manifest(layout: Layout, dp_backend: str, folder: Path,
                    stall_s: float) -> Path:
    """The bench's tiny-model manifest with its engine laid out as ``layout``."""
    doc = json.loads(TINY_MANIFEST.read_text())
    entry = doc["models"][0]
    entry["engine_settings"] = {**entry["engine_settings"],
                                "tensor_parallel_size": layout.tp,
                                "data_parallel_size": layout.dp, "dp_backend": dp_backend,
                                "replica_stall_s": stall_s}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tiny_{layout.name}_{dp_backend}.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def engine_core_pids(client: Any) -> list[int]:
    """PIDs of an ``AsyncLLM``'s engine-core processes (one per vLLM data-parallel rank), read
    from vLLM 0.26's client internals; empty when they are not where that version keeps them."""
    core = getattr(client, "engine_core", None)
    resources = getattr(core, "resources", None)
    manager = getattr(resources, "engine_manager", None)
    procs = getattr(manager, "processes", None) or []
    return [p.pid for p in procs if getattr(p, "pid", None)]


def _wait_quiet(engine: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Per replica: our outstanding samples and vLLM's unfinished requests, once they reach 0
    (or at ``timeout``): an early stop's aborts have reached every replica when both are 0."""
    t0 = time.monotonic()
    while True:
        state = engine.replica_state()
        unfinished = []
        for client in engine._clients:
            proc = getattr(client, "output_processor", None)
            n = proc.get_num_unfinished_requests() if proc is not None else None
            unfinished.append(n)
        busy = any(r["outstanding"] for r in state) or any(unfinished)
        if not busy or time.monotonic() - t0 > timeout:
            return {"replicas": state, "vllm_unfinished_per_client": unfinished,
                    "quiet": not busy}
        time.sleep(0.2)


def run_layout(layout: Layout, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One layout through ``Submission``: problems, then one with a replica hung."""
    import csv

    from aimo_submit.runner import Submission

    problems = list(csv.DictReader(TINY_CSV.open()))[: args.problems]
    manifest = layout_manifest(layout, args.dp_backend, out / "manifests", args.replica_stall)
    # two agreeing samples stop a problem: the others, spread over every replica, are aborted
    overrides = {"n_samples": args.samples, "early_stop_agree": 2,
                 "engine_stall_s": args.engine_stall}
    sub = Submission.create("tiny-qwen2-math-vllm", manifest_path=manifest,
                            policy_overrides=overrides, workdir=out / f"runner_{layout.name}",
                            total_s=args.budget, n_problems=len(problems) + 1, preset="")
    result: dict[str, Any] = {"layout": layout.name, "dp_backend": args.dp_backend}
    try:
        ok = sub.wait_ready(timeout=600)
        result["ready"] = ok
        result["startup_s"] = sub.startup_s
        if not ok:
            return result
        engine = sub.engine
        checks = []
        for p in problems:
            sub.predict(p["id"], p["problem"])
            rec = sub.records.get(str(p["id"]), {})
            quiet = _wait_quiet(engine)
            checks.append({"id": p["id"], "stop": rec.get("stop_reason"),
                           "n_voted": rec.get("n_voted"), **quiet})
        result["problems"] = checks
        state = engine.replica_state()
        result["aborted_per_replica"] = [r["aborted"] for r in state]
        result["submitted_per_replica"] = [r["submitted"] for r in state]
        # every replica saw aborts, and none kept a sample or a vLLM request after a problem
        result["aborts_reach_every_replica"] = (
            all(r["aborted"] > 0 for r in state) and all(c["quiet"] for c in checks))
        result["stop_reasons"] = dict(collections.Counter(str(c["stop"]) for c in checks))
        result["hang"] = _hang_check(sub, engine, layout, args, problems[0])
    finally:
        sub.close()
    return result


def _hang_check(sub: Any, engine: Any, layout: Layout, args: argparse.Namespace,
                problem: dict[str, str]) -> dict[str, Any]:
    """Stop one replica's engine process mid-problem (SIGSTOP) and see what follows.

    With several replicas the others' samples must still finish and vote, the stopped one must
    be fenced off and (``dp_backend="replicas"``) restarted; with one replica the runner's
    whole-engine stall detection restarts the engine."""
    victim = layout.dp - 1
    client = engine._replicas[victim].client
    pids = engine_core_pids(client)
    if not pids:
        return {"skipped": "engine-core pids not found in this vLLM version"}
    pid = pids[engine._replicas[victim].dp_rank or 0] if len(pids) > 1 else pids[0]
    before = engine.replica_state()
    restarts_before = len(sub.restarts)
    timer = threading.Timer(args.hang_after, os.kill, (pid, signal.SIGSTOP))
    timer.start()
    t0 = time.monotonic()
    try:
        sub.predict(f"hang-{problem['id']}", problem["problem"])
    finally:
        timer.cancel()
    took = time.monotonic() - t0
    rec = sub.records.get(f"hang-{problem['id']}", {})
    deadline = time.monotonic() + args.restart_wait
    while time.monotonic() < deadline:  # a replica restart runs in the background
        state = engine.replica_state()
        if (state[victim]["restarts"] > before[victim]["restarts"] and not state[victim]["down"]
                ) or len(sub.restarts) > restarts_before:
            break
        time.sleep(1.0)
    with_killed = False
    try:  # whatever happened, never leave a stopped process behind
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
        with_killed = True
    except ProcessLookupError:
        pass
    state = engine.replica_state()
    after = None
    if sub.wait_ready(timeout=args.restart_wait):
        sub.predict(f"after-{problem['id']}", problem["problem"])
        after = sub.records.get(f"after-{problem['id']}", {})
    final = engine.replica_state()
    return {"victim_replica": victim, "pid": pid, "problem_s": round(took, 1),
            "stop": rec.get("stop_reason"), "n_voted": rec.get("n_voted"),
            "faults": rec.get("faults"), "replicas_after_hang": state,
            "runner_restarts": sub.restarts[restarts_before:],
            "victim_still_alive_at_cleanup": with_killed,
            "after_problem": {"stop": (after or {}).get("stop_reason"),
                              "n_voted": (after or {}).get("n_voted")},
            "submitted_per_replica_after": [r["submitted"] for r in final],
            "detected": bool(state[victim]["hangs"] > before[victim]["hangs"]
                             or len(sub.restarts) > restarts_before),
            "others_voted": bool(rec.get("n_voted"))}


def runner(args: argparse.Namespace) -> dict[str, Any]:
    from aimo_submit.engines.vllm_engine import _vllm_env_defaults

    available = gpu_count()
    chosen = [Layout.named(name) for name in args.layouts]
    for layout in chosen:  # refuse before anything starts
        check_gpus(layout, available)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    no_multicast()
    _vllm_env_defaults()
    results = []
    for layout in chosen:
        name = layout.name
        print(f"=== runner {name} ({time.strftime('%T')})", flush=True)
        try:
            res = run_layout(layout, args, out)
        except Exception as exc:  # noqa: BLE001 - one layout's failure is a result too
            res = {"layout": name, "error": f"{type(exc).__name__}: {exc}"}
        results.append(res)
        print(json.dumps(res, default=str)[:3000], flush=True)
    data = {"command": "python -m bench.layouts " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"), "gpus": available,
            "env": {k: os.environ.get(k) for k in NO_MULTICAST}, "results": results}
    (out / "runner_layouts.json").write_text(json.dumps(data, indent=1, default=str))
    return data


# --------------------------------------------------------------------------------------------


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",")]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.layouts",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tables", help="throughput table of one layout")
    t.add_argument("--layout", choices=sorted(LAYOUTS), required=True)
    t.add_argument("--quantization", choices=("awq", "fp8"), default="awq")
    t.add_argument("--model", default="r1-distill-qwen-14b", help="bench/configs/<model>.json")
    t.add_argument("--dp-backend", choices=("vllm", "replicas"), default="vllm")
    t.add_argument("--layers", type=int, default=None, help="measure fewer layers")
    t.add_argument("--concurrency", type=_ints, default=list(CONCURRENCY))
    t.add_argument("--contexts", type=_ints, default=list(CONTEXTS))
    t.add_argument("--tokens", type=int, default=96, help="decoded tokens per sample")
    t.add_argument("--max-model-len", type=int, default=16384 + 256)
    t.add_argument("--gpu-mem", type=float, default=0.9)
    t.add_argument("--modes", default="wrapper,plain", help="add 'plain' for vLLM directly")
    t.add_argument("--workdir", default="/tmp/bench_layouts")
    t.add_argument("--out", default="bench/results/throughput")
    r = sub.add_parser("runner", help="Submission on the tiny model in each layout")
    r.add_argument("--layouts", type=lambda s: s.split(","), default=list(LAYOUTS))
    r.add_argument("--dp-backend", choices=("vllm", "replicas"), default="replicas",
                   help="'replicas' can restart one replica; vLLM's own DP cannot")
    r.add_argument("--problems", type=int, default=8)
    r.add_argument("--samples", type=int, default=16)
    r.add_argument("--budget", type=float, default=900.0)
    r.add_argument("--replica-stall", type=float, default=10.0,
                   help="seconds of silence before a replica counts as hung")
    r.add_argument("--engine-stall", type=float, default=20.0,
                   help="the policy's engine_stall_s (whole-engine hang, one replica)")
    r.add_argument("--hang-after", type=float, default=1.0,
                   help="seconds into the problem the victim replica is stopped")
    r.add_argument("--restart-wait", type=float, default=180.0)
    r.add_argument("--out", default="/tmp/res")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        {"tables": tables, "runner": runner}[args.cmd](args)
    except LayoutError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
