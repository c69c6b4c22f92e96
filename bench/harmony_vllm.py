"""The solver's harmony path through real vLLM, on a dummy-weight gpt-oss (issue 15, GPU).

1. **Replay**: a gpt-oss-20b-shaped model (24 layers, 32 experts, MXFP4, dummy weights, eager)
   with ``bench.harmony_replay.HarmonyReplay`` as vLLM logits processor, so each request writes
   the next assistant turn of ``tests/fixtures/gpt_oss_transcript.json`` (three python calls,
   then a final answer). ``Solver.solve`` runs it as it runs gpt-oss: the prompt rendered by
   ``harmony.py`` and submitted as token ids, ``skip_special_tokens=False``, stops at
   ``<|call|>`` / ``<|return|>``, each call run in the sample's persistent ``PythonSession``, the
   output sent back as a harmony tool message, the continuation submitted by token ids (the
   prefix's ids reused), the answer read from the ``final`` channel.
2. **Random output**: the same engine without the processor's arguments; the dummy weights'
   random tokens must end in a clean fallback answer (no crash, notes say why).

The tokenizer is gpt-oss's vocabulary (o200k_base plus the harmony special tokens at their ids)
as a Hugging Face ``tokenizer.json``, built by ``write_tokenizer`` from the tiktoken file that
``harmony.ensure_vocab`` finds (``--tokenizer`` reuses one built before, e.g. on a CPU machine).

``python -m bench.harmony_vllm --out DIR`` writes ``DIR/harmony_vllm.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CONFIGS = REPO / "bench" / "configs"
TRANSCRIPT = json.loads((REPO / "tests" / "fixtures" / "gpt_oss_transcript.json").read_text(
    encoding="utf-8"))
MODULUS = 100_000
O200K_PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}", r" ?[^\s\p{L}\p{N}]+[\r\n/]*", r"\s*[\r\n]+", r"\s+(?!\S)", r"\s+"])
"""o200k's pre-tokenizer split (OpenAI's published pattern)."""


def write_tokenizer(path: Path, vocab_size: int) -> None:
    """gpt-oss's vocabulary as a Hugging Face tokenizer: o200k_base's ranks, then every harmony
    special token below ``vocab_size`` at the id the harmony encoding gives it."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from aimo_submit.harmony import VOCAB_FILE, ensure_vocab, load_encoding

    enc = load_encoding()
    specials = sorted((enc.encode(s, allowed_special={s})[0], s) for s in enc.special_tokens_set)
    names = [s for i, s in specials if i < vocab_size]
    conv = TikTokenConverter(vocab_file=str(ensure_vocab() / VOCAB_FILE), pattern=O200K_PATTERN,
                             extra_special_tokens=names)
    fast = PreTrainedTokenizerFast(tokenizer_object=conv.converted(), eos_token="<|return|>",
                                   pad_token="<|endoftext|>")
    fast.save_pretrained(str(path))


def model_dir(root: Path, tokenizer: Path | None, layers: int, experts: int) -> Path:
    cfg = json.loads((CONFIGS / "gpt-oss-120b.json").read_text())
    cfg.update(num_hidden_layers=layers, num_local_experts=experts,
               layer_types=cfg["layer_types"][:layers])
    path = root / f"gpt-oss-{layers}l-{experts}e"
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    if not (path / "tokenizer.json").exists():
        if tokenizer is not None and (tokenizer / "tokenizer.json").exists():
            for f in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(tokenizer / f, path / f)
        else:
            write_tokenizer(path, cfg["vocab_size"])
    return path


def check_tokenizer(tok: Any) -> dict[str, Any]:
    """The HF tokenizer against the harmony encoding: special ids and a transcript turn."""
    from aimo_submit.harmony import load_encoding

    enc = load_encoding()
    wrong = [s for s in enc.special_tokens_set
             if enc.encode(s, allowed_special={s})[0] < len(tok)
             and tok.convert_tokens_to_ids(s) != enc.encode(s, allowed_special={s})[0]]
    text = TRANSCRIPT["turns"][0]["text"]
    return {"special_ids_wrong": sorted(wrong)[:10], "vocab": len(tok),
            "turn_ids_equal": tok.encode(text, add_special_tokens=False)
            == enc.encode(text, allowed_special="all")}


def _budget(seconds: float, n: int, max_tokens: int) -> Any:
    from aimo_submit.schedule import ProblemBudget

    now = asyncio.get_running_loop().time()
    return ProblemBudget(start=now, soft_deadline=now + seconds, hard_deadline=now + seconds,
                         max_tokens=max_tokens, n_samples=n, fair_share_s=seconds)


async def _solve(engine: Any, sandbox: Any, n: int, max_tokens: int) -> dict[str, Any]:
    from aimo_submit.policy import PolicyConfig
    from aimo_submit.prompts import build_messages
    from aimo_submit.solver import Solver

    policy = PolicyConfig(n_samples=n, early_stop_agree=99, early_stop_unbeatable=False, tir=True,
                          max_code_calls=8, max_tokens=max_tokens, answer_grace_s=2.0,
                          engine_stall_s=60.0, seed=0)
    solver = Solver(engine, policy, modulus=MODULUS, prompt_style="gpt-oss",
                    tir_prompt_style="gpt-oss-tir", sandbox=sandbox,
                    stop=())
    t0 = time.perf_counter()
    res = await solver.solve(TRANSCRIPT["problem"], _budget(120.0, n, max_tokens))
    out = res.to_dict()
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out["prompt_ids_match_harmony"] = (
        engine._prompt_ids(solver.build_prompt(TRANSCRIPT["problem"]))
        == list(solver.chat().render_prompt(build_messages(
            TRANSCRIPT["problem"], "gpt-oss-tir", MODULUS - 1)).token_ids))
    return out


def _brief(result: dict[str, Any]) -> None:
    """One line of a solve's outcome for the log."""
    print(json.dumps({k: result[k] for k in ("answer", "answer_source", "stop_reason", "votes",
                                             "code_calls", "faults")}), flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from aimo_submit.engines.vllm_engine import VLLMEngine, VLLMSettings
    from aimo_submit.harmony import ensure_vocab
    from aimo_submit.sandbox import Sandbox

    ensure_vocab()  # TIKTOKEN_ENCODINGS_BASE for harmony (and vLLM's own harmony code)
    path = model_dir(Path(args.workdir), Path(args.tokenizer) if args.tokenizer else None,
                     args.layers, args.experts)
    tok = AutoTokenizer.from_pretrained(path)
    data: dict[str, Any] = {"model": path.name, "layers": args.layers, "experts": args.experts,
                            "tokenizer_check": check_tokenizer(tok)}
    segments = [tok.encode(t["text"], add_special_tokens=False) for t in TRANSCRIPT["turns"]]
    call_id = tok.convert_tokens_to_ids("<|call|>")
    replay = {"harmony_replay": segments, "call_id": call_id,
              "end_id": tok.convert_tokens_to_ids("<|return|>")}
    base = VLLMSettings(model=str(path), max_model_len=4096, gpu_memory_utilization=args.gpu_mem,
                        max_num_seqs=16, enforce_eager=True, load_format="dummy",
                        dtype="bfloat16", seed=0,
                        sampling_extra={"skip_special_tokens": False, "extra_args": replay},
                        extra={"logits_processors": ["bench.harmony_replay:HarmonyReplay"]})
    engine = VLLMEngine(settings=base)
    sandbox = Sandbox(workers=2, timeout_s=20.0)
    try:
        await engine.start()
        data["startup_s"] = round(engine.startup_s or 0, 1)
        print(f"ready in {engine.startup_s:.1f} s", flush=True)
        data["replay"] = await _solve(engine, sandbox, n=2, max_tokens=2048)
        _brief(data["replay"])
        # the same engine, requests without the processor's arguments: random tokens
        engine.settings = base.replace(sampling_extra={"skip_special_tokens": False})
        data["random"] = await _solve(engine, sandbox, n=4, max_tokens=args.random_tokens)
        _brief(data["random"])
        data["engine_stats"] = dict(engine.stats)
    finally:
        sandbox.close()
        await engine.close()
    data["expected_answer"] = TRANSCRIPT["answer"]
    data["passed"] = bool(
        data.get("replay", {}).get("answer") == TRANSCRIPT["answer"]
        and data["replay"]["answer_source"] == "votes"
        and all(s["code_calls"] == 3 and s["code_ok"] == 3 and s["finish"] == "stop"
                for s in data["replay"]["samples"]))
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--workdir", default="/tmp/bench_harmony")
    p.add_argument("--tokenizer", default=str(REPO / ".gpu" / "gtok"),
                   help="folder with a tokenizer.json built by write_tokenizer (else built)")
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--experts", type=int, default=32)
    p.add_argument("--gpu-mem", type=float, default=0.5)
    p.add_argument("--random-tokens", type=int, default=512)
    args = p.parse_args(argv)
    os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")  # v1 runner: custom logits processors
    t0 = time.perf_counter()
    data = asyncio.run(run(args))
    data.update(command="python -m bench.harmony_vllm " + " ".join(sys.argv[1:]),
                date=time.strftime("%Y-%m-%d"), seconds=round(time.perf_counter() - t0, 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "harmony_vllm.json").write_text(json.dumps(data, indent=1))
    print("PASSED" if data["passed"] else "FAILED", flush=True)
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
