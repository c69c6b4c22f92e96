#!/usr/bin/env python
"""Train the project's embedded tiny math model, its tokenizer and its problem CSV.

Model hubs are out of reach in development and CI, so the project ships its own model: a tiny
Qwen2 (the same loading code serves real Qwen-based checkpoints) trained from scratch on
synthetic problems in the real output format (``<think>`` ... ``</think>`` then ``\\boxed{N}``,
and fenced python / fenced output for tool-integrated reasoning). It is meant to be *partly*
right, so that sampling, majority voting, early stopping and code execution all visibly matter.

The data and problem CSV are deterministic given ``--seed``; the weights were not reproduced
bit for bit: the committed model was trained under transformers 5.23, and one retrain under the
pinned 5.24 / torch 2.13 gave other weights (final loss 0.0345 against 0.0363; the same CSV),
whether from the versions or from thread timing was not checked. ``make tiny-model`` then
records the new files in weights_manifest.json, which preflight and the tests check. Run
``python scripts/make_tiny_model.py --help``.
The generator functions are importable (tests load this file by path).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Before torch loads: spinning OpenMP threads collapse (seconds per step) on a shared CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the package importable
    sys.path.insert(0, str(ROOT))

from aimo_submit.prompts import (  # noqa: E402
    CODE_OPEN,
    CODE_STOP,
    THINK_CLOSE,
    THINK_OPEN,
    build_messages,
    format_code_output,
    last_code_block,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEFAULT_OUT = ROOT / "aimo_submit" / "assets" / "tiny-model"
DEFAULT_CSV = ROOT / "aimo_submit" / "assets" / "tiny_problems.csv"

PAD, BOS_EOS, IM_START, IM_END = "<|endoftext|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]
"""Control tokens: atomic, and dropped by ``decode(skip_special_tokens=True)``."""
THINK_TOKENS = [THINK_OPEN, THINK_CLOSE]
"""Atomic but not "special", as in DeepSeek-R1-Distill: decoded text keeps them."""

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""ChatML as in Qwen2, without Qwen's default system prompt (our prompt styles have none)."""

# Qwen2's pre-tokenizer split: digits stay single tokens, which arithmetic needs.
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ---------------------------------------------------------------------------------------------
# Synthetic problems
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One synthetic problem and how it is worked.

    ``calc`` is the underlying calculation, e.g. ``("+", 347, 218)`` or ``("rem", 347, 9)``;
    ``work`` turns it into a chain of thought. ``code`` is the one-line program that the
    tool-integrated style writes instead (hard kinds only: not doable "in the head").
    """

    kind: str
    text: str
    answer: int
    calc: tuple[str, int, int]
    code: str | None = None

    @property
    def think(self) -> str:
        """The clean worked solution (no tags)."""
        return work(self.calc)[0]


def _slip(rng: random.Random | None, slip: float) -> bool:
    return rng is not None and slip > 0 and rng.random() < slip


def _add_work(a: int, b: int, rng: random.Random | None, slip: float) -> tuple[str, int]:
    """Column addition, ones first (``7+8=15, 4+1+1=6, 3+2=5``) and the sum it gives."""
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry, result = [], 0, 0
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        if _slip(rng, slip):
            s = s + 1 if s == 0 or rng.random() < 0.5 else s - 1
        steps.append(f"{x}+{y}" + ("+1" if carry else "") + f"={s}")
        result += (s % 10) * 10**i
        carry = s // 10
    return ", ".join(steps), result + carry * 10 ** max(len(da), len(db))


def _sub_work(a: int, b: int, rng: random.Random | None, slip: float) -> tuple[str, int]:
    """Column subtraction, ones first, with borrows (``17-8=9, 4-1-1=2, 5-2=3``)."""
    da, db = str(a)[::-1], str(b)[::-1]
    steps, borrow, result = [], 0, 0
    for i in range(len(da)):
        x = int(da[i])
        y = int(db[i]) if i < len(db) else 0
        top = x + 10 if x - borrow < y else x
        s = top - y - borrow
        if _slip(rng, slip):
            s = s + 1 if s == 0 or (s < 9 and rng.random() < 0.5) else s - 1
        steps.append(f"{top}-{y}" + ("-1" if borrow else "") + f"={s}")
        result += s * 10**i
        borrow = 1 if top != x else 0
    return ", ".join(steps), result


def _div_work(a: int, d: int, rng: random.Random | None, slip: float) -> tuple[str, int, int]:
    """Long division digit by digit (``3 = 9*0 + 3, 34 = 9*3 + 7, 77 = 9*8 + 5``)."""
    steps, r, q = [], 0, 0
    for ch in str(a):
        cur = r * 10 + int(ch)
        qd, r = divmod(cur, d)
        if _slip(rng, slip):
            r = r + 1 if r == 0 or (r < d - 1 and rng.random() < 0.5) else r - 1
        steps.append(f"{cur} = {d}*{qd} + {r}")
        q = q * 10 + qd
    return ", ".join(steps), q, r


def work(
    calc: tuple[str, int, int], rng: random.Random | None = None, slip: float = 0.0
) -> tuple[str, int]:
    """Chain of thought for ``calc`` and the answer it reaches.

    With ``rng`` and ``slip`` > 0 each column / division step is off by one with probability
    ``slip`` and the error carries through to the answer: a noisy teacher, so the model's own
    samples slip now and then, disagree, and voting has something to do. Without them the
    worked solution is exact.
    """
    op, a, b = calc
    while True:
        if op == "+":
            steps, ans = _add_work(a, b, rng, slip)
            think = f"{a} + {b}\n{steps}\n{a} + {b} = {ans}"
        elif op == "-":
            steps, ans = _sub_work(a, b, rng, slip)
            think = f"{a} - {b}\n{steps}\n{a} - {b} = {ans}"
        elif op == "rem":
            steps, q, ans = _div_work(a, b, rng, slip)
            think = f"{a} / {b}\n{steps}\n{a} = {b}*{q} + {ans}"
        elif op == "mulmod":  # no way to show the work in the head: a bare (learned) guess
            ans = a * b % 1000
            think = f"{a} * {b} mod 1000 = {ans}"
        elif op == "powmod":
            ans = pow(a, b, 1000)
            think = f"{a}^{b} mod 1000 = {ans}"
        else:
            raise ValueError(f"unknown calculation {op!r}")
        if 0 <= ans <= 999:  # a slip past 999 is drawn again: answers are always in range
            return think, ans


def _problem(kind: str, text: str, calc: tuple[str, int, int], code: str | None = None) -> Problem:
    return Problem(kind, text, work(calc)[1], calc, code)


def gen_add(rng: random.Random) -> Problem:
    """Sum of two 2-3 digit numbers, at most 999."""
    a = rng.randint(10, 989)
    b = rng.randint(10, 999 - a)
    if rng.random() < 0.5:
        a, b = b, a
    return _problem("add", f"What is {a} + {b}?", ("+", a, b))


def gen_sub(rng: random.Random) -> Problem:
    """Difference of two 2-3 digit numbers, not negative."""
    a = rng.randint(20, 999)
    b = rng.randint(10, a)
    return _problem("sub", f"What is {a} - {b}?", ("-", a, b))


def gen_rem(rng: random.Random) -> Problem:
    """Remainder of a 2-3 digit number by 3..12, by long division."""
    a = rng.randint(20, 999)
    d = rng.randint(3, 12)
    return _problem("rem", f"What is the remainder when {a} is divided by {d}?", ("rem", a, d))


_NAMES = ["Ann", "Ben", "Carl", "Dana", "Eve", "Finn", "Gia", "Hugo", "Ivy", "Jon", "Kim", "Leo"]
_ITEMS = ["apples", "books", "coins", "pens", "stamps", "cards", "marbles", "shells"]


def gen_word(rng: random.Random) -> Problem:
    """Buy-more / give-away word problem on 2-digit numbers."""
    name, other = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if rng.random() < 0.5:
        text = f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?"
        return _problem("word", text, ("+", a, b))
    a, b = max(a, b), min(a, b)
    text = f"{name} has {a} {item} and gives {b} to {other}. How many {item} are left?"
    return _problem("word", text, ("-", a, b))


def gen_mulmod(rng: random.Random) -> Problem:
    """Product of two 3-digit numbers mod 1000: easy with code, hard in the head."""
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    text = f"Compute {a} * {b} modulo 1000."
    return _problem("mulmod", text, ("mulmod", a, b), f"print({a} * {b} % 1000)")


def gen_powmod(rng: random.Random) -> Problem:
    """A power mod 1000: easy with ``pow``, hopeless in the head for a tiny model."""
    a, e = rng.randint(2, 19), rng.randint(10, 199)
    text = f"What is {a}^{e} mod 1000?"
    return _problem("powmod", text, ("powmod", a, e), f"print(pow({a}, {e}, 1000))")


GENERATORS: dict[str, Callable[[random.Random], Problem]] = {
    "add": gen_add,
    "sub": gen_sub,
    "rem": gen_rem,
    "word": gen_word,
    "mulmod": gen_mulmod,
    "powmod": gen_powmod,
}
HARD_KINDS = frozenset({"mulmod", "powmod"})
"""Kinds that the tool-integrated style solves with code; the others never use code."""

TRAIN_WEIGHTS = {"add": 0.2, "sub": 0.2, "rem": 0.2, "word": 0.15, "mulmod": 0.125, "powmod": 0.125}


def sample_problem(rng: random.Random, weights: dict[str, float] = TRAIN_WEIGHTS) -> Problem:
    """One problem of a kind drawn by ``weights``."""
    kind = rng.choices(list(weights), weights=list(weights.values()))[0]
    return GENERATORS[kind](rng)


def make_problem_set(
    seed: int, n: int, hard_frac: float = 0.25, exclude: Iterable[str] = ()
) -> list[Problem]:
    """``n`` distinct problems, ``round(n * hard_frac)`` of them hard, the rest spread evenly.

    Deterministic for ``seed``; texts in ``exclude`` are skipped so held-out sets stay disjoint.
    """
    rng = random.Random(seed)
    n_hard = round(n * hard_frac)
    easy = [k for k in GENERATORS if k not in HARD_KINDS]
    hard = sorted(HARD_KINDS)
    kinds = [hard[i % len(hard)] for i in range(n_hard)]
    kinds += [easy[i % len(easy)] for i in range(n - n_hard)]
    rng.shuffle(kinds)
    seen, out = set(exclude), []
    for kind in kinds:
        while True:
            p = GENERATORS[kind](rng)
            if p.text not in seen:
                seen.add(p.text)
                out.append(p)
                break
    return out


def training_items(
    seed: int, n: int, held_out: set[str], slip: float
) -> list[tuple[Problem, str, tuple[str, int]]]:
    """The training examples ``(problem, style, worked)``, exactly as ``main`` draws them.

    Deterministic for its arguments (TRAINING.json records them), so a benchmark can rebuild
    the training set and prove its own problems are not in it.
    """
    rng = random.Random(seed)
    items: list[tuple[Problem, str, tuple[str, int]]] = []
    while len(items) < n:
        p = sample_problem(rng)
        if p.text in held_out:
            continue
        style = "tiny-tir" if rng.random() < 0.5 else "tiny"
        items.append((p, style, work(p.calc, rng, slip)))
    return items


def program_output(code: str) -> str:
    """What ``code`` prints. Only used on our own one-line programs (print of an expression)."""
    m = re.fullmatch(r"print\((.*)\)", code.strip())
    if not m:
        raise ValueError(f"not a print expression: {code!r}")
    return f"{eval(m.group(1), {'__builtins__': {}, 'pow': pow})}\n"  # noqa: S307 - our own code


def target_segments(
    p: Problem, style: str, worked: tuple[str, int] | None = None
) -> list[tuple[str, bool]]:
    """The assistant turn as ``(text, trained)`` segments, ending with ``<|im_end|>``.

    ``worked`` is a (possibly slipped) ``work(p.calc, ...)``; by default the exact one. In the
    tool style the program's output block is what the runtime appends (see
    ``format_code_output``), so it stays in context but carries no loss. It holds the *true*
    output, so the model learns to copy the output into its answer.
    """
    if style == "tiny-tir" and p.code is not None:
        out = program_output(p.code)
        assert int(out) == p.answer, (p, out)
        return [
            (f"{THINK_OPEN}\n{CODE_OPEN}\n{p.code}\n```\n{CODE_STOP}", True),
            (format_code_output(out), False),
            (f"The answer is {p.answer}.\n{THINK_CLOSE}\n\\boxed{{{p.answer}}}{IM_END}", True),
        ]
    think, answer = worked if worked is not None else work(p.calc)
    return [(f"{THINK_OPEN}\n{think}\n{THINK_CLOSE}\n\\boxed{{{answer}}}{IM_END}", True)]


def prompt_text(tok: PreTrainedTokenizerBase, problem: str, style: str) -> str:
    """The chat-templated prompt, ending with the assistant generation prompt."""
    return tok.apply_chat_template(
        build_messages(problem, style), add_generation_prompt=True, tokenize=False
    )


def write_csv(path: Path, problems: list[Problem]) -> None:
    """Competition format: ``id,problem,answer``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "problem", "answer"])
        for i, p in enumerate(problems):
            writer.writerow([f"tiny{i:03d}", p.text, p.answer])


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """Byte-level BPE (Qwen2-style split), ChatML template, eos ``<|im_end|>``."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()  # as Qwen2's tokenizer (transformers adds it on load)
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=IM_END,
        pad_token=PAD,
        bos_token=None,
        unk_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=512,
        padding_side="left",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def check_round_trip(tok: PreTrainedTokenizerBase, texts: Iterable[str]) -> int:
    """Assert ``decode(encode(x)) == x``; returns how many texts were checked."""
    n = 0
    for x in texts:
        ids = tok.encode(x, add_special_tokens=False)
        y = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        assert y == x, f"tokenizer round trip failed:\n{x!r}\n{y!r}"
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def encode_example(
    tok: PreTrainedTokenizerBase, p: Problem, style: str, worked: tuple[str, int] | None = None
) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt and on runtime-supplied code output)."""
    prompt = prompt_text(tok, p.text, style)
    ids = tok.encode(prompt, add_special_tokens=False)
    labels = [-100] * len(ids)
    for text, trained in target_segments(p, style, worked):
        seg = tok.encode(text, add_special_tokens=False)
        ids += seg
        labels += seg if trained else [-100] * len(seg)
    return ids, labels


def build_model(vocab_size: int, args: argparse.Namespace, tok: PreTrainedTokenizerBase) -> Any:
    """A tiny ``Qwen2ForCausalLM``, so real Qwen checkpoints load through the same code."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 4,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        bos_token_id=tok.convert_tokens_to_ids(BOS_EOS),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return Qwen2ForCausalLM(config)


def train(
    model: Any, examples: list[tuple[list[int], list[int]]], args: argparse.Namespace, pad_id: int
) -> list[float]:
    """AdamW with warmup + cosine decay; loss only on assistant tokens. Returns loss history."""
    import torch
    from tqdm import tqdm

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, args.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses: list[float] = []
    bar = tqdm(range(args.steps), desc="train", dynamic_ncols=True)
    for step in bar:
        # Batches in generation order: sorting by length to save padding (~20% of the compute)
        # groups kinds together and, tried, left the copying of code output half learned.
        batch = examples[step * args.batch_size : (step + 1) * args.batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
            mask[i, : len(ids)] = 1
        dev = model.device
        loss = model(
            input_ids=input_ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)
        ).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == args.steps - 1:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}")
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")


def boxed_answer(text: str) -> int | None:
    """Integer in the last ``\\boxed{}``, or None (also for values outside 0..999)."""
    found = _BOXED.findall(text)
    if not found:
        return None
    value = int(found[-1])
    return value if 0 <= value <= 999 else None


def run_code(code: str, timeout: float = 5.0) -> str:
    """Run model-written code in a fresh interpreter; stdout, or the error's last line."""
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "TimeoutError: code ran too long\n"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return (lines[-1] if lines else "error") + "\n"
    return proc.stdout[-500:]


def _generate(
    model: Any,
    tok: PreTrainedTokenizerBase,
    prompts: list[str],
    n: int,
    max_new_tokens: int,
    stop: list[str] | None = None,
) -> list[str]:
    """Sample ``n`` completions per prompt at T=1.0, top_p=1.0 (grouped by prompt)."""
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = enc.to(model.device)
    extra = {"stop_strings": stop, "tokenizer": tok} if stop else {}
    with torch.no_grad():
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=None,
            num_return_sequences=n,
            max_new_tokens=max_new_tokens,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            **extra,
        )
    gen = out[:, enc["input_ids"].shape[1] :]
    return tok.batch_decode(gen, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def sample_plain(
    model: Any, tok: PreTrainedTokenizerBase, problems: list[Problem], n: int, chunk: int = 16
) -> list[list[str]]:
    """``n`` plain-style completions per problem."""
    out: list[list[str]] = []
    for i in range(0, len(problems), chunk):
        part = problems[i : i + chunk]
        texts = _generate(model, tok, [prompt_text(tok, p.text, "tiny") for p in part], n, 160)
        out += [texts[j * n : (j + 1) * n] for j in range(len(part))]
    return out


def sample_tir(
    model: Any,
    tok: PreTrainedTokenizerBase,
    problems: list[Problem],
    n: int,
    max_calls: int = 2,
    chunk: int = 16,
) -> list[list[tuple[str, int]]]:
    """``n`` tool-style completions per problem, running code like the runtime does.

    Each sample generates until ``CODE_STOP``; the last ```python block is run, its output is
    appended with ``format_code_output`` and generation continues (at most ``max_calls`` runs).
    Returns ``(text, code_runs)`` per sample.
    """
    prompts = [prompt_text(tok, p.text, "tiny-tir") for p in problems]
    texts: list[str] = []
    for i in range(0, len(prompts), chunk):
        texts += _generate(model, tok, prompts[i : i + chunk], n, 160, stop=[CODE_STOP])
    owner = [k // n for k in range(len(texts))]
    calls = [0] * len(texts)
    for _ in range(max_calls):
        todo = [k for k, t in enumerate(texts) if t.rstrip().endswith(CODE_STOP)]
        if not todo:
            break
        for k in todo:
            code = last_code_block(texts[k])
            texts[k] = texts[k].rstrip() + format_code_output(
                run_code(code) if code is not None else "SyntaxError: no code block\n"
            )
            calls[k] += 1
        for i in range(0, len(todo), chunk * n):
            part = todo[i : i + chunk * n]
            cont = _generate(
                model, tok, [prompts[owner[k]] + texts[k] for k in part], 1, 96, stop=[CODE_STOP]
            )
            for k, c in zip(part, cont, strict=True):
                texts[k] += c
    return [[(texts[k], calls[k]) for k in range(j * n, (j + 1) * n)] for j in range(len(problems))]


def vote(answers: list[int | None]) -> int | None:
    """Most common extracted answer (ties: first reached); None when nobody answered."""
    counts = Counter(a for a in answers if a is not None)
    return counts.most_common(1)[0][0] if counts else None


def score(problems: list[Problem], samples: list[list[str]]) -> dict[str, Any]:
    """Single-sample accuracy (mean over samples) and majority-vote accuracy, by kind too."""
    rows: dict[str, list[tuple[float, float]]] = {}
    for p, texts in zip(problems, samples, strict=True):
        answers = [boxed_answer(t) for t in texts]
        single = sum(a == p.answer for a in answers) / len(answers)
        voted = float(vote(answers) == p.answer)
        rows.setdefault(p.kind, []).append((single, voted))
    every = [r for v in rows.values() for r in v]

    def agg(rs: list[tuple[float, float]]) -> dict[str, float]:
        return {
            "n": len(rs),
            "single": round(sum(s for s, _ in rs) / len(rs), 4),
            "voted": round(sum(v for _, v in rs) / len(rs), 4),
        }

    return {"all": agg(every), "by_kind": {k: agg(v) for k, v in sorted(rows.items())}}


def evaluate(
    model: Any, tok: PreTrainedTokenizerBase, problems: list[Problem], n: int, seed: int
) -> dict[str, Any]:
    """Plain and tool-style sampling on held-out problems; the numbers go to TRAINING.json."""
    import torch

    torch.manual_seed(seed)
    plain = sample_plain(model, tok, problems, n)
    plain_flat = [t for ts in plain for t in ts]
    torch.manual_seed(seed + 1)
    tir = sample_tir(model, tok, problems, n)
    hard = [i for i, p in enumerate(problems) if p.kind in HARD_KINDS]
    easy = [i for i, p in enumerate(problems) if p.kind not in HARD_KINDS]
    tir_texts = [[t for t, _ in s] for s in tir]

    def code_rate(idx: list[int]) -> float:
        flags = [CODE_OPEN in t for i in idx for t, _ in tir[i]]
        return round(sum(flags) / max(1, len(flags)), 4)

    return {
        "problems": len(problems),
        "samples_per_problem": n,
        "temperature": 1.0,
        "top_p": 1.0,
        "plain": {
            **score(problems, plain),
            "answered": round(
                sum(boxed_answer(t) is not None for t in plain_flat) / len(plain_flat), 4
            ),
            "code_emission": round(sum(CODE_OPEN in t for t in plain_flat) / len(plain_flat), 4),
        },
        "tir": {
            **score(problems, tir_texts),
            "hard": score([problems[i] for i in hard], [tir_texts[i] for i in hard])["all"],
            "code_emission_hard": code_rate(hard),
            "code_emission_easy": code_rate(easy),
            "code_runs": sum(c for s in tir for _, c in s),
        },
        "examples": {
            "plain": plain[0][0],
            "tir_hard": tir[hard[0]][0][0] if hard else None,
        },
    }


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _rel(path: Path) -> str:
    """Repo-relative path for reports (absolute when outside the repo)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="training seed (data, init, sampling)")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--steps", type=int, default=2200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument(
        "--slip",
        type=float,
        default=0.1,
        help="chance that a worked step in a target is off by one",
    )
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=600)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--csv-problems", type=int, default=40)
    ap.add_argument("--csv-seed", type=int, default=1001, help="seed of the committed CSV")
    ap.add_argument("--eval-problems", type=int, default=100)
    ap.add_argument("--eval-seed", type=int, default=2002, help="seed of the held-out set")
    ap.add_argument("--eval-samples", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (the reference); cuda only for sweeps")
    ap.add_argument("--max-mb", type=float, default=10.0, help="size limit of the model folder")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch
    from transformers import GenerationConfig

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    # Held-out sets first, so training can exclude their exact texts.
    csv_set = make_problem_set(args.csv_seed, args.csv_problems)
    eval_set = make_problem_set(
        args.eval_seed, args.eval_problems, exclude=[p.text for p in csv_set]
    )
    held_out = {p.text for p in csv_set} | {p.text for p in eval_set}

    train_items = training_items(args.seed, args.steps * args.batch_size, held_out, args.slip)
    assert not held_out & {p.text for p, _, _ in train_items}
    worked_steps = [(p, w) for p, s, w in train_items if not (s == "tiny-tir" and p.code)]
    slipped = sum(w[1] != p.answer for p, w in worked_steps) / max(1, len(worked_steps))

    def full_text(
        p: Problem, style: str, worked: tuple[str, int], tok: PreTrainedTokenizerBase | None = None
    ) -> str:
        head = (
            prompt_text(tok, p.text, style)
            if tok is not None
            else f"{IM_START}user\n{build_messages(p.text, style)[-1]['content']}{IM_END}\n"
            f"{IM_START}assistant\n"
        )
        return head + "".join(t for t, _ in target_segments(p, style, worked))

    # Tokenizer: trained on whole chat texts, so template pieces become single tokens.
    corpus = [full_text(*item) for item in train_items[:8000]]
    tok = train_tokenizer(corpus, args.vocab_size)
    held_texts = [full_text(p, s, work(p.calc)) for p in eval_set for s in ("tiny", "tiny-tir")]
    n_checked = check_round_trip(tok, corpus[:3000] + held_texts)
    tricky = "a  b\n\n\tc \\boxed{12} {x}} ``` `x` ```python\nprint(1)\n```\n```output\n1\n```\n"
    check_round_trip(tok, [tricky])

    examples = [encode_example(tok, *item) for item in train_items]
    for item, (ids, _) in zip(train_items[:500], examples[:500], strict=True):
        whole = tok.encode(full_text(*item, tok), add_special_tokens=False)
        assert whole == ids, "segment-wise encoding differs from whole-text encoding"
    max_len = max(len(ids) for ids, _ in examples)
    assert max_len <= 512, max_len

    model = build_model(len(tok), args, tok).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"vocab {len(tok)}, params {n_params:,}, train examples {len(examples):,}, "
        f"max len {max_len}",
        flush=True,
    )
    t_train = time.time()
    losses = train(model, examples, args, tok.pad_token_id)
    train_s = time.time() - t_train

    t_eval = time.time()
    metrics = evaluate(model, tok, eval_set, args.eval_samples, args.seed)
    eval_s = time.time() - t_eval

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():  # stale weights or tokenizer files from an earlier layout
        if f.is_file():
            f.unlink()
    dtype = getattr(torch, args.dtype)
    model.to("cpu", dtype).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    # Name the class real Qwen checkpoints use: transformers 4 and 5 both load tokenizer.json.
    cfg_path = out / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_path.read_text())
    tok_cfg["tokenizer_class"] = "Qwen2Tokenizer"
    cfg_path.write_text(json.dumps(tok_cfg, indent=2) + "\n")
    GenerationConfig(
        bos_token_id=tok.convert_tokens_to_ids(BOS_EOS),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=256,
    ).save_pretrained(out)
    write_csv(args.csv, csv_set)

    size = folder_size(out)
    report = {
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "slip": args.slip,
        "slipped_targets": round(slipped, 4),
        "train_examples": len(examples),
        "train_wall_s": round(train_s, 1),
        "eval_wall_s": round(eval_s, 1),
        "total_wall_s": round(time.time() - t_start, 1),
        "threads": args.threads,
        "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
        "architecture": {
            "class": "Qwen2ForCausalLM",
            "hidden_size": args.hidden,
            "intermediate_size": args.hidden * 4,
            "layers": args.layers,
            "heads": args.heads,
            "kv_heads": args.kv_heads,
            "vocab_size": len(tok),
            "max_position_embeddings": 512,
            "tie_word_embeddings": True,
            "dtype": args.dtype,
        },
        "params": n_params,
        "size_bytes": size + 2048,  # plus this file
        "tokenizer": {
            "round_trip_checked": n_checked,
            "special_ids": {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS + THINK_TOKENS},
            "eos": IM_END,
            "pad": PAD,
            "stop_strings": [CODE_STOP, IM_END],
        },
        "train_weights": TRAIN_WEIGHTS,
        "csv": {"path": _rel(args.csv), "problems": len(csv_set), "seed": args.csv_seed},
        "eval": {"seed": args.eval_seed, **metrics},
    }
    (out / "TRAINING.json").write_text(json.dumps(report, indent=2) + "\n")
    size = folder_size(out)
    assert size <= args.max_mb * 1e6, f"model folder is {size / 1e6:.2f} MB > {args.max_mb} MB"

    ev = metrics
    print(
        f"\n== tiny model: {n_params:,} params, {size / 1e6:.2f} MB, train {train_s:.0f}s "
        f"({args.steps} steps), eval {eval_s:.0f}s, final loss {report['final_loss']}\n"
        f"plain  single {ev['plain']['all']['single']:.3f}  voted@{args.eval_samples} "
        f"{ev['plain']['all']['voted']:.3f}  (answered {ev['plain']['answered']:.3f}, "
        f"code {ev['plain']['code_emission']:.3f})\n"
        + "".join(
            f"  {k:7s} single {v['single']:.3f} voted {v['voted']:.3f} (n={v['n']})\n"
            for k, v in ev["plain"]["by_kind"].items()
        )
        + f"tir    single {ev['tir']['all']['single']:.3f}  voted {ev['tir']['all']['voted']:.3f}; "
        f"hard: single {ev['tir']['hard']['single']:.3f} voted {ev['tir']['hard']['voted']:.3f}, "
        f"code emitted {ev['tir']['code_emission_hard']:.3f} "
        f"(easy kinds: {ev['tir']['code_emission_easy']:.3f})\n"
        f"wrote {_rel(out)} and {_rel(args.csv)}",
        flush=True,
    )
    return report


if __name__ == "__main__":
    main()
