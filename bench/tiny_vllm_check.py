"""Why does the tiny model score worse under vLLM than under transformers? (issue 15, GPU)

The runner rehearsal on the H200 scored 12/40 through vLLM (bf16) where the same model scores
36/40 through transformers on CPU (fp32 and bf16). This compares, on the GPU, for the same
prompt token ids:

* greedy continuations: transformers (bf16 and fp32) against vLLM in several variants (the
  runner's settings, fp32, another attention backend): the position of the first differing
  token and the top log-probabilities of the first generated token;
* vLLM's streamed text against ``tokenizer.decode`` of its own token ids (detokenization);
* where vLLM stops with the solver's stop strings (``<|im_end|>``, ```` ```output ````);
* greedy accuracy on all 40 tiny problems (answer extracted from the text, no code run),
  and sampled accuracy (8 samples a problem, temperature 1) with per-sample and majority score.

``python -m bench.tiny_vllm_check --out DIR`` runs transformers in this process and each vLLM
variant in a subprocess (one crash does not end the check); writes ``DIR/tiny_vllm_check.json``.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aimo_submit.extract import extract_answer  # noqa: E402
from aimo_submit.prompts import build_messages  # noqa: E402

TINY = REPO / "aimo_submit" / "assets" / "tiny-model"
PROBLEMS = REPO / "aimo_submit" / "assets" / "tiny_problems.csv"
MAX_NEW = 200
STOPS = ["<|im_end|>", "```output"]
VARIANTS: dict[str, dict[str, Any]] = {
    # the runner's settings (bench/configs/tiny_vllm_manifest.json)
    "vllm-bf16": {"dtype": "bfloat16"},
    "vllm-fp32": {"dtype": "float32"},
    "vllm-bf16-triton": {"dtype": "bfloat16", "attention_backend": "TRITON_ATTN"},
    "vllm-bf16-nogencfg": {"dtype": "bfloat16", "generation_config": "vllm"},
}


LIMIT = [0]
"""Problems used (0: all); ``--limit`` sets it for a quick CPU run."""


def problems() -> list[tuple[str, int]]:
    with PROBLEMS.open() as f:
        rows = [(r["problem"], int(r["answer"])) for r in csv.DictReader(f)]
    return rows[:LIMIT[0]] if LIMIT[0] else rows


def prompt_ids(tok: Any) -> dict[str, list[list[int]]]:
    """Token ids of every problem's prompt in both tiny styles, as the engines build them."""
    out: dict[str, list[list[int]]] = {}
    for style in ("tiny", "tiny-tir"):
        rows = []
        for problem, _ in problems():
            text = tok.apply_chat_template(build_messages(problem, style, 999),
                                           add_generation_prompt=True, tokenize=False)
            rows.append(tok.encode(text, add_special_tokens=False))
        out[style] = rows
    return out


def score(texts: list[list[str]], answers: list[int]) -> dict[str, Any]:
    """Per-sample and majority accuracy of extracted answers (None counts as wrong)."""
    per, maj, none = 0, 0, 0
    for samples, want in zip(texts, answers, strict=True):
        got = [extract_answer(t, 1000) for t in samples]
        per += sum(g == want for g in got)
        none += sum(g is None for g in got)
        votes = collections.Counter(g for g in got if g is not None)
        maj += bool(votes) and votes.most_common(1)[0][0] == want
    n = sum(len(s) for s in texts)
    return {"per_sample": round(per / n, 3), "majority": f"{maj}/{len(texts)}",
            "no_answer_share": round(none / n, 3)}


# --------------------------------------------------------------------------------------------
# transformers (in this process)
# --------------------------------------------------------------------------------------------


def hf_run(ids: dict[str, list[list[int]]], device: str) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TINY)
    answers = [a for _, a in problems()]
    out: dict[str, Any] = {}
    for dtype in ("bfloat16", "float32"):
        model = AutoModelForCausalLM.from_pretrained(TINY, dtype=getattr(torch, dtype)).to(device)
        model.eval()
        res: dict[str, Any] = {"greedy": {}, "first_top5": {}}
        t0 = time.perf_counter()
        for style, rows in ids.items():
            gens = []
            for row in rows:
                x = torch.tensor([row], device=device)
                with torch.no_grad():
                    g = model.generate(x, max_new_tokens=MAX_NEW, do_sample=False,
                                       eos_token_id=2, pad_token_id=0,
                                       output_scores=True, return_dict_in_generate=True)
                new = g.sequences[0, len(row):].tolist()
                gens.append(new)
                if len(res["first_top5"].setdefault(style, [])) < 5:
                    lp = torch.log_softmax(g.scores[0][0].float(), -1)
                    top = torch.topk(lp, 5)
                    res["first_top5"][style].append(
                        [[int(i), round(float(v), 4)] for v, i in zip(top.values, top.indices,
                                                                       strict=True)])
            res["greedy"][style] = gens
            texts = [[tok.decode(g, skip_special_tokens=True)] for g in gens]
            res.setdefault("greedy_score", {})[style] = score(texts, answers)
        # sampled: 8 a problem, tiny style, temperature 1 (the runner's sampling)
        torch.manual_seed(0)
        texts = []
        for row in ids["tiny"]:
            x = torch.tensor([row] * 8, device=device)
            with torch.no_grad():
                g = model.generate(x, max_new_tokens=256, do_sample=True, temperature=1.0,
                                   top_p=1.0, top_k=0, eos_token_id=2, pad_token_id=0)
            texts.append([tok.decode(s[len(row):], skip_special_tokens=True) for s in g])
        res["sampled_score_tiny"] = score(texts, answers)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        out[f"hf-{dtype}"] = res
        print(f"hf-{dtype}: greedy {res['greedy_score']} sampled {res['sampled_score_tiny']} "
              f"({res['seconds']} s)", flush=True)
        del model
    return out


# --------------------------------------------------------------------------------------------
# vLLM (one variant per subprocess)
# --------------------------------------------------------------------------------------------


def vllm_variant(name: str, ids: dict[str, list[list[int]]]) -> dict[str, Any]:
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    from aimo_submit.engines.vllm_engine import _vllm_env_defaults

    _vllm_env_defaults()
    tok = AutoTokenizer.from_pretrained(TINY)
    answers = [a for _, a in problems()]
    kw = dict(model=str(TINY), max_model_len=512, gpu_memory_utilization=0.1, enforce_eager=True,
              enable_prefix_caching=True, seed=0, max_num_seqs=64, **VARIANTS[name])
    t0 = time.perf_counter()
    llm = LLM(**kw)
    res: dict[str, Any] = {"settings": kw, "startup_s": round(time.perf_counter() - t0, 1)}
    with __import__("contextlib").suppress(Exception):
        cfg = llm.llm_engine.model_config
        res["hf_config_rope"] = str(getattr(cfg.hf_config, "rope_parameters", None))
        res["hf_config_tie"] = getattr(cfg.hf_config, "tie_word_embeddings", None)
        res["dtype"] = str(cfg.dtype)
    vtok = llm.get_tokenizer()
    res["tokenizer_class"] = type(vtok).__name__
    probe = tok.apply_chat_template(build_messages(problems()[0][0], "tiny-tir", 999),
                                    add_generation_prompt=True, tokenize=False)
    res["prompt_ids_same"] = (vtok.encode(probe, add_special_tokens=False)
                              == tok.encode(probe, add_special_tokens=False))
    greedy = SamplingParams(temperature=0.0, max_tokens=MAX_NEW, logprobs=5,
                            skip_special_tokens=True)
    res["greedy"], res["first_top5"], res["detok_mismatch"] = {}, {}, {}
    for style, rows in ids.items():
        outs = llm.generate([{"prompt_token_ids": r} for r in rows], greedy, use_tqdm=False)
        gens = [list(o.outputs[0].token_ids) for o in outs]
        res["greedy"][style] = gens
        res["first_top5"][style] = [
            sorted(([int(t), round(lp.logprob, 4)] for t, lp in o.outputs[0].logprobs[0].items()),
                   key=lambda p: -p[1])[:5] for o in outs[:5]]
        mism = [i for i, o in enumerate(outs)
                if o.outputs[0].text != tok.decode(gens[i], skip_special_tokens=True)]
        res["detok_mismatch"][style] = {"count": len(mism), "examples": [
            [outs[i].outputs[0].text[:300], tok.decode(gens[i], skip_special_tokens=True)[:300]]
            for i in mism[:2]]}
        res.setdefault("greedy_score", {})[style] = score(
            [[o.outputs[0].text] for o in outs], answers)
    # the solver's stop strings on the TIR prompts, streamed text as the engine sees it
    stop = SamplingParams(temperature=0.0, max_tokens=MAX_NEW, stop=STOPS,
                          include_stop_str_in_output=True, skip_special_tokens=True)
    outs = llm.generate([{"prompt_token_ids": r} for r in ids["tiny-tir"]], stop, use_tqdm=False)
    res["stops_tir"] = [{"finish": o.outputs[0].finish_reason,
                         "stop_reason": o.outputs[0].stop_reason,
                         "tokens": len(o.outputs[0].token_ids),
                         "tail": o.outputs[0].text[-60:]} for o in outs[:12]]
    # sampled, as the runner samples (temperature 1, per-sample seeds)
    texts = []
    params = [SamplingParams(temperature=1.0, top_p=1.0, max_tokens=256, seed=1000 + i,
                             skip_special_tokens=True) for i in range(8)]
    for row in ids["tiny"]:
        outs = llm.generate([{"prompt_token_ids": row}] * 8, params, use_tqdm=False)
        texts.append([o.outputs[0].text for o in outs])
    res["sampled_score_tiny"] = score(texts, answers)
    res["sampled_examples"] = [t[:2] for t in texts[:3]]
    print(f"{name}: greedy {res['greedy_score']} sampled {res['sampled_score_tiny']}",
          flush=True)
    return res


def first_diff(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return -1 if len(a) == len(b) else min(len(a), len(b))


def compare(ref: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Per style: how many greedy continuations are identical; median first difference."""
    out = {}
    for style, gens in ref["greedy"].items():
        diffs = [first_diff(a, b) for a, b in zip(gens, other["greedy"][style], strict=True)]
        same = sum(d == -1 for d in diffs)
        out[style] = {"identical": f"{same}/{len(diffs)}",
                      "first_diff_positions": [d for d in diffs if d != -1][:12]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--variant", help="run one vLLM variant (internal)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--limit", type=int, default=0, help="first N problems only")
    args = p.parse_args(argv)
    LIMIT[0] = args.limit
    from transformers import AutoTokenizer

    ids = prompt_ids(AutoTokenizer.from_pretrained(TINY))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.variant:
        data = vllm_variant(args.variant, ids)
        (out / f"tiny_{args.variant}.json").write_text(json.dumps(data))
        return 0
    t0 = time.perf_counter()
    results: dict[str, Any] = {"command": "python -m bench.tiny_vllm_check " + " ".join(
        sys.argv[1:]), "date": time.strftime("%Y-%m-%d")}
    try:
        results.update(hf_run(ids, args.device))
    except Exception as exc:  # noqa: BLE001 - the vLLM side still runs
        results["hf_error"] = f"{type(exc).__name__}: {exc}"
        print(results["hf_error"], flush=True)
    for name in filter(None, args.variants.split(",")):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([sys.executable, "-m", "bench.tiny_vllm_check", "--out", str(out),
                               "--variant", name, "--limit", str(args.limit)], cwd=REPO,
                              timeout=300, text=True, capture_output=True, env=env)
        path = out / f"tiny_{name}.json"
        if proc.returncode or not path.exists():
            results[name] = {"error": f"rc {proc.returncode}", "stderr": proc.stderr[-3000:]}
            print(f"{name}: rc {proc.returncode}\n{proc.stderr[-2000:]}", flush=True)
            continue
        print(proc.stdout[-500:], flush=True)
        results[name] = json.loads(path.read_text())
        path.unlink()
    for ref in ("hf-float32", "hf-bfloat16"):
        if ref not in results:
            continue
        for name in VARIANTS:
            if "greedy" in results.get(name, {}):
                results.setdefault("agreement", {})[f"{name} vs {ref}"] = compare(
                    results[ref], results[name])
        if "hf-bfloat16" in results and ref == "hf-float32":
            results.setdefault("agreement", {})["hf-bfloat16 vs hf-float32"] = compare(
                results[ref], results["hf-bfloat16"])
    results["seconds"] = round(time.perf_counter() - t0, 1)
    for key in list(results):  # keep the file small: the token lists only as a summary
        if isinstance(results[key], dict) and "greedy" in results[key]:
            results[key]["greedy_head"] = {s: g[:3] for s, g in results[key]["greedy"].items()}
            del results[key]["greedy"]
    (out / "tiny_vllm_check.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results.get("agreement"), indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
