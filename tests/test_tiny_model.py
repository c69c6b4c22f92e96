"""The committed tiny model, its tokenizer and problem CSV: the defaults every CPU path runs on."""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

from aimo_submit.prompts import CODE_OPEN, CODE_STOP, build_messages

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "aimo_submit" / "assets" / "tiny-model"
CSV_PATH = ROOT / "aimo_submit" / "assets" / "tiny_problems.csv"


def _load_script():
    """``scripts/make_tiny_model.py`` as a module (scripts/ is no package)."""
    name = "make_tiny_model"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "make_tiny_model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


mk = _load_script()


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    return AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()


def test_folder_is_small_and_complete():
    names = {p.name for p in MODEL_DIR.iterdir()}
    for need in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert need in names
    size = sum(p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file())
    assert size <= 10e6
    report = json.loads((MODEL_DIR / "TRAINING.json").read_text())
    assert report["eval"]["plain"]["all"]["voted"] > report["eval"]["plain"]["all"]["single"]


def test_chat_template_and_special_tokens(tok):
    prompt = tok.apply_chat_template(
        build_messages("What is 2 + 3?", "tiny"), add_generation_prompt=True, tokenize=False
    )
    assert prompt == (
        "<|im_start|>user\nWhat is 2 + 3?\nAnswer with an integer from 0 to 999 in \\boxed{}."
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token == "<|endoftext|>"
    for t in ("<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        assert len(tok.encode(t, add_special_tokens=False)) == 1
    gen = json.loads((MODEL_DIR / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.eos_token_id
    assert gen["pad_token_id"] == tok.pad_token_id


def test_tokenizer_round_trip(tok):
    rng = random.Random(7)
    texts = [
        "a  b\n\n\tc \\boxed{12} {x}} ``` `x` ",
        "<think>\n```python\nprint(pow(7, 123, 1000))\n```\n```output\n343\n```\n</think>",
        "Ünïcode ≥ 3 — ok",
    ]
    for _ in range(30):
        p = mk.sample_problem(rng)
        texts.append(p.text + "\n" + p.think + f"\n\\boxed{{{p.answer}}}")
    for x in texts:
        ids = tok.encode(x, add_special_tokens=False)
        assert tok.decode(ids, skip_special_tokens=False) == x
    # <think> is not "special": decoded completions keep it, the control tokens go.
    ids = tok.encode("<think>\nhi\n</think>\n\\boxed{1}<|im_end|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\nhi\n</think>\n\\boxed{1}"


def test_greedy_generation_has_the_format(tok, model):
    import torch

    problems = ["What is 123 + 456?", "What is the remainder when 100 is divided by 7?"]
    prompts = [
        tok.apply_chat_template(
            build_messages(q, "tiny"), add_generation_prompt=True, tokenize=False
        )
        for q in problems
    ]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=80)
    for row in out[:, enc["input_ids"].shape[1] :]:
        text = tok.decode(row, skip_special_tokens=True)
        assert text.startswith("<think>\n"), text
        assert "</think>" in text and "\\boxed{" in text, text
        assert mk.boxed_answer(text) is not None, text
        assert CODE_OPEN not in text


def test_tir_prompt_makes_code_for_the_hard_kind(tok, model):
    import torch

    prompt = tok.apply_chat_template(
        build_messages("Compute 347 * 218 modulo 1000.", "tiny-tir"),
        add_generation_prompt=True,
        tokenize=False,
    )
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **enc, do_sample=False, max_new_tokens=60, stop_strings=[CODE_STOP], tokenizer=tok
        )
    text = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.startswith("<think>\n```python\n"), text
    assert text.endswith(CODE_STOP), text


def test_csv_columns_and_answers():
    with CSV_PATH.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        assert reader.fieldnames == ["id", "problem", "answer"]
    assert 30 <= len(rows) <= 60
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert 0 <= int(r["answer"]) <= 999
    hard = sum(("modulo 1000" in r["problem"] or " mod 1000" in r["problem"]) for r in rows)
    assert 0.15 <= hard / len(rows) <= 0.35


def test_csv_matches_generator():
    report = json.loads((MODEL_DIR / "TRAINING.json").read_text())
    expected = mk.make_problem_set(report["csv"]["seed"], report["csv"]["problems"])
    with CSV_PATH.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["problem"], int(r["answer"])) for r in rows] == [
        (p.text, p.answer) for p in expected
    ]


def test_generator_is_deterministic_and_correct():
    a = mk.make_problem_set(123, 50)
    b = mk.make_problem_set(123, 50)
    assert a == b
    assert a != mk.make_problem_set(124, 50)
    assert len({p.text for p in a}) == 50
    rng1, rng2 = random.Random(5), random.Random(5)
    assert [mk.work(p.calc, rng1, 0.3) for p in a] == [mk.work(p.calc, rng2, 0.3) for p in a]
    for p in a:
        op, x, y = p.calc
        truth = {"+": x + y, "-": x - y, "rem": x % y, "mulmod": x * y % 1000}.get(op)
        if op == "powmod":
            truth = pow(x, y, 1000)
        assert p.answer == truth and 0 <= p.answer <= 999
        assert mk.work(p.calc) == (p.think, p.answer)
        if p.code is not None:
            assert int(mk.program_output(p.code)) == p.answer
