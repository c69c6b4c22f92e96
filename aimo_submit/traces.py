"""Sample traces for the simulator: recorded ones when present, otherwise calibrated synthetic ones.

A *trace* is what one sample of the model did on one problem: how many tokens it generated
before it ended, what it wrote in its final ``\\boxed{}`` (if anything) and whether it ended on
its own. The replay engine turns traces into timed token streams; the policy under test never
sees anything else, so a policy tuned here is judged on the same evidence a GPU would give it.

**Recorded traces** live in ``<repo parent>/shared/traces/*.jsonl``, one model and setup per
file (see :func:`load_shared_traces` for the format); the simulator reads one file at a time,
judged under a competition profile, and skips cleanly when the folder is absent.

**Synthetic traces** (:func:`synthetic_problems`) follow a small generative model whose
parameters are fitted to published figures (:data:`PUBLISHED`):

* per problem, the chance ``q`` that a sample allowed to finish is right is drawn from a
  Beta with mean ``q_mean`` and concentration ``kappa`` (U-shaped for ``kappa < 2``: most
  olympiad problems are either mostly solved or mostly missed);
* natural lengths are lognormal: ``log L ~ N(mu0 + hard_slope * (0.5 - q) + tau * z, sigma)``
  for a right sample, plus ``delta_wrong`` for a wrong one (harder problems and wrong samples
  run longer); the model stops at ``max_model_tokens`` (truncated, no answer);
* wrong samples write one of a few per-problem distractors (Dirichlet weights), a uniform
  random integer, or no answer at all.

``q_mean``, ``mu0``, ``sigma``, ``delta_wrong`` and ``hard_slope`` are fitted (least squares,
:func:`calibrate`) to the pass@1 and mean-output-token table of the Fast-Math-R1 model card for
DeepSeek-R1-Distill-Qwen-14B and Fast-Math-R1-14B at token budgets 8k..32k on AIME 2024/2025,
using ``pass@1(B) = E[q * P(L_right <= B)]`` and ``mean(B) = E[min(L, B)]``. ``kappa`` is set so
that majority over 64 samples beats pass@1 by the published margin (DeepSeek-R1 model card:
R1-Distill-Qwen-14B, AIME 2024, pass@1 69.7 vs cons@64 80.0). ``tau``, the distractor mix and
the no-answer share are assumptions, stated where they are defined. The fitted values are
stored in :data:`CALIBRATED` (``python -m aimo_submit.traces`` refits and prints the table).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aimo_submit.competition import AIMO2, CompetitionProfile
from aimo_submit.confidence import ConfidenceBlocks

__all__ = [
    "CALIBRATED",
    "DEFAULT_MODEL",
    "PUBLISHED",
    "SyntheticModel",
    "TraceProblem",
    "TraceSample",
    "calibrate",
    "default_traces_dir",
    "fit_report",
    "load_runlog_traces",
    "load_shared_traces",
    "trace_files",
    "majority_gain",
    "predicted_table",
    "synthetic_problems",
]


# -- the trace format --------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceSample:
    """One recorded (or synthetic) sample of one problem."""

    tokens: int
    """Generated tokens until the sample ended (or until the recording cut it)."""
    answer_text: str | None
    """Content of the sample's final ``\\boxed{}``; None when it wrote no answer."""
    finished: bool = True
    """False: the sample never ended on its own (cut at ``tokens``); it has no answer."""
    confidence: ConfidenceBlocks | None = None
    """Its recorded confidence series (issue 16), when the recording asked for log-probabilities;
    the replay engine streams them and confidence rules use them. None: plain votes."""


@dataclass(frozen=True)
class TraceProblem:
    """A problem's gold answer and its pool of samples (every policy draws from the same pool)."""

    id: str
    answer: int
    samples: tuple[TraceSample, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


# -- published figures -------------------------------------------------------------------------
PUBLISHED: dict[str, dict[str, tuple[tuple[int, float, float], ...]]] = {
    # (token budget, pass@1 in % averaged over 64 samples, mean output tokens).
    # Source: the Fast-Math-R1-14B model card, huggingface.co/RabotniKuma/Fast-Math-R1-14B,
    # "DS-R1-Qwen-14B vs Fast-Math-R1-14B" table.
    "r1-distill-qwen-14b": {
        "aime24": ((8000, 41.8, 6587), (12000, 53.7, 8472), (16000, 61.0, 9708),
                   (24000, 65.7, 10784), (32000, 66.9, 11026)),
        "aime25": ((8000, 31.1, 6788), (12000, 39.9, 9008), (16000, 46.2, 10567),
                   (24000, 49.7, 11978), (32000, 49.9, 12310)),
    },
    "fast-math-r1-14b": {
        "aime24": ((8000, 51.4, 5939), (12000, 61.9, 7362), (16000, 66.7, 8017),
                   (24000, 67.9, 8209), (32000, 68.0, 8217)),
        "aime25": ((8000, 36.3, 6174), (12000, 45.2, 8048), (16000, 48.4, 9083),
                   (24000, 49.6, 9627), (32000, 49.6, 9663)),
    },
}

MAJORITY_REFERENCE = (69.7, 80.0)
"""DeepSeek-R1-Distill-Qwen-14B on AIME 2024: pass@1 and cons@64 (majority of 64), from the
DeepSeek-R1 model card (huggingface.co/deepseek-ai/DeepSeek-R1-Distill-Qwen-14B)."""


# -- the generative model ----------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticModel:
    """Parameters of the synthetic trace generator (see the module docstring)."""

    q_mean: float
    kappa: float
    mu0: float
    sigma: float
    delta_wrong: float
    hard_slope: float
    tau: float = 0.25
    """Per-problem length noise (log scale) beyond what difficulty explains. Assumed."""
    max_model_tokens: int = 32768
    """Where the model stops by itself at the latest (the evaluations' 32k budget)."""
    n_distractors: int = 3
    """Wrong answers that recur on a problem (a common slip, a misread). Assumed."""
    distractor_share: float = 0.6
    """Of wrong samples: share writing a distractor. Assumed."""
    no_answer_share: float = 0.1
    """Of wrong samples: share ending without an answer. The rest write a uniform integer."""
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


HARD_SLOPE = 0.5
"""Log-length slope in difficulty: a problem nobody solves runs e^0.5 = 1.65x longer than one
everybody solves, before wrong samples add ``delta_wrong``. The published tables cannot tell
this apart from ``delta_wrong`` (the fit is as good with 0), so it is an assumption."""

# Fitted by ``calibrate`` (``python -m aimo_submit.traces`` prints the fit and its residuals).
# Residuals: pass@1 within 1.3 points and mean tokens within 350 at every budget; majority of 64
# beats pass@1 by 11-12 points (published reference: 10.3).
CALIBRATED: dict[str, SyntheticModel] = {
    "r1-distill-qwen-14b/aime24": SyntheticModel(
        q_mean=0.6888, kappa=0.6, mu0=9.0068, sigma=0.5781, delta_wrong=0.5303, hard_slope=0.5,
        source="r1-distill-qwen-14b/aime24"),
    "r1-distill-qwen-14b/aime25": SyntheticModel(
        q_mean=0.5026, kappa=0.6, mu0=8.9907, sigma=0.5420, delta_wrong=0.4777, hard_slope=0.5,
        source="r1-distill-qwen-14b/aime25"),
    "fast-math-r1-14b/aime24": SyntheticModel(
        q_mean=0.6997, kappa=0.6, mu0=8.8079, sigma=0.4773, delta_wrong=0.3653, hard_slope=0.5,
        source="fast-math-r1-14b/aime24"),
    "fast-math-r1-14b/aime25": SyntheticModel(
        q_mean=0.4982, kappa=0.6, mu0=8.7920, sigma=0.4962, delta_wrong=0.3853, hard_slope=0.5,
        source="fast-math-r1-14b/aime25"),
}
DEFAULT_MODEL = "r1-distill-qwen-14b/aime25"
_MOD = AIMO2.answer_modulus
"""Synthetic traces stand for AIMO2 problems: answers 0..999."""
"""The project's Kaggle model (weights_manifest.json) on the harder of the two AIME years:
AIMO2 problems sit between AIME and IMO, so AIME 2025 is the closer stand-in."""


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF; erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), no scipy."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _beta_grid(mean: float, kappa: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights for Beta(mean*kappa, (1-mean)*kappa), on a logit grid."""
    a, b = mean * kappa, (1.0 - mean) * kappa
    u = np.linspace(-14.0, 14.0, n)
    q = 1.0 / (1.0 + np.exp(-u))
    log_w = a * np.log(q) + b * np.log1p(-q)  # pdf(q) * dq/du with dq/du = q(1-q)
    w = np.exp(log_w - log_w.max())
    return q, w / w.sum()


def _expected_min(mu: np.ndarray, sigma: float, budget: float) -> np.ndarray:
    """E[min(L, B)] for log L ~ N(mu, sigma)."""
    lb = math.log(budget)
    return (np.exp(mu + sigma * sigma / 2) * _norm_cdf((lb - mu - sigma * sigma) / sigma)
            + budget * (1.0 - _norm_cdf((lb - mu) / sigma)))


def predicted_table(
    model: SyntheticModel, budgets: Sequence[int]
) -> list[tuple[int, float, float]]:
    """The model's (budget, pass@1 %, mean output tokens), computed by quadrature."""
    q, wq = _beta_grid(model.q_mean, model.kappa)
    z, wz = np.polynomial.hermite_e.hermegauss(7)
    wz = wz / wz.sum()
    mu = model.mu0 + model.hard_slope * (0.5 - q)[:, None] + model.tau * z[None, :]
    w = wq[:, None] * wz[None, :]
    qq = q[:, None]
    out = []
    for b in budgets:
        cap = min(b, model.max_model_tokens)
        p_fit = _norm_cdf((math.log(cap) - mu) / model.sigma)
        pass1 = float((w * qq * p_fit).sum())
        mean_right = _expected_min(mu, model.sigma, cap)
        mean_wrong = _expected_min(mu + model.delta_wrong, model.sigma, cap)
        mean = float((w * (qq * mean_right + (1 - qq) * mean_wrong)).sum())
        out.append((int(b), 100.0 * pass1, mean))
    return out


def _loss(model: SyntheticModel, table: Sequence[tuple[int, float, float]]) -> float:
    pred = predicted_table(model, [b for b, _, _ in table])
    # One pass@1 point weighs as much as 200 tokens of mean length.
    return sum(((p - tp) / 1.0) ** 2 + ((m - tm) / 200.0) ** 2
               for (_, p, m), (_, tp, tm) in zip(pred, table, strict=True))


def _nelder_mead(f: Any, x0: np.ndarray, step: float = 0.3, iters: int = 600) -> np.ndarray:
    """Plain Nelder-Mead (scipy is not a dependency); good enough for five smooth parameters."""
    n = len(x0)
    simplex = [x0] + [x0 + step * np.eye(n)[i] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(values)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        centroid = np.mean(simplex[:-1], axis=0)
        worst = simplex[-1]
        xr = centroid + (centroid - worst)
        fr = f(xr)
        if fr < values[0]:
            xe = centroid + 2 * (centroid - worst)
            fe = f(xe)
            simplex[-1], values[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (worst - centroid)
            fc = f(xc)
            if fc < values[-1]:
                simplex[-1], values[-1] = xc, fc
            else:
                best = simplex[0]
                simplex = [best] + [best + 0.5 * (x - best) for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
        if max(values) - min(values) < 1e-9:
            break
    return simplex[int(np.argmin(values))]


def _fit_lengths(table: Sequence[tuple[int, float, float]], kappa: float,
                 hard_slope: float = HARD_SLOPE) -> SyntheticModel:
    """Least-squares fit of q_mean, mu0, sigma and delta_wrong for fixed kappa and hard_slope."""
    template = SyntheticModel(0.5, kappa, 9.0, 0.6, 0.3, hard_slope)

    def unpack(x: np.ndarray) -> SyntheticModel:
        return replace(template, q_mean=float(1 / (1 + math.exp(-x[0]))), mu0=float(x[1]),
                       sigma=float(math.exp(x[2])), delta_wrong=float(x[3]))

    x0 = np.array([0.0, template.mu0, math.log(template.sigma), template.delta_wrong])
    best = _nelder_mead(lambda x: _loss(unpack(x), table), x0)
    best = _nelder_mead(lambda x: _loss(unpack(x), table), best, step=0.05)
    return unpack(best)


def majority_gain(model: SyntheticModel, k: int = 64, n_problems: int = 4000,
                  seed: int = 0) -> tuple[float, float]:
    """Monte-Carlo (pass@1 %, majority-of-k %) of the model at its own max length."""
    rng = np.random.default_rng(seed)
    probs = synthetic_problems(n_problems, seed=int(rng.integers(2**31)), model=model, pool=k)
    pass1 = maj = 0.0
    for p in probs:
        votes: dict[str, int] = {}
        for s in p.samples:
            if s.finished and s.answer_text is not None:
                votes[s.answer_text] = votes.get(s.answer_text, 0) + 1
        gold = str(p.answer)
        pass1 += votes.get(gold, 0) / k
        if votes:
            top = max(votes.values())
            leaders = [a for a, c in votes.items() if c == top]
            maj += (gold in leaders) / len(leaders)
    return 100.0 * pass1 / n_problems, 100.0 * maj / n_problems


def calibrate(model_name: str = "r1-distill-qwen-14b", benchmark: str = "aime25",
              kappa: float | None = None) -> SyntheticModel:
    """Fit the generator to ``PUBLISHED[model_name][benchmark]``.

    With ``kappa=None`` the concentration is searched (on a small grid) so that the AIME 2024
    fit of R1-Distill-Qwen-14B gains ``MAJORITY_REFERENCE`` points from majority voting; that
    kappa is then used for the requested table. Takes tens of seconds; the Monte-Carlo gain is
    noisy by about a point, so neighbouring kappas are equally good.
    """
    table = PUBLISHED[model_name][benchmark]
    if kappa is None:
        ref_table = PUBLISHED["r1-distill-qwen-14b"]["aime24"]
        target = MAJORITY_REFERENCE[1] - MAJORITY_REFERENCE[0]
        best_k, best_err = 1.0, math.inf
        for k in (0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.3):
            fitted = _fit_lengths(ref_table, k)
            p1, mj = majority_gain(fitted, n_problems=4000)
            err = abs((mj - p1) - target)
            if err < best_err:
                best_k, best_err = k, err
        kappa = best_k
    fitted = _fit_lengths(table, kappa)
    return replace(fitted, source=f"{model_name}/{benchmark}")


def fit_report(model: SyntheticModel, model_name: str, benchmark: str) -> str:
    """Markdown table: published vs fitted pass@1 and mean tokens at each budget."""
    table = PUBLISHED[model_name][benchmark]
    pred = predicted_table(model, [b for b, _, _ in table])
    lines = [f"Calibration {model_name}/{benchmark}: published vs synthetic",
             "", "| budget | pass@1 pub | pass@1 fit | mean tok pub | mean tok fit |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for (b, p, m), (_, pp, pm) in zip(table, pred, strict=True):
        lines.append(f"| {b} | {p:.1f} | {pp:.1f} | {m:.0f} | {pm:.0f} |")
    return "\n".join(lines)


# -- drawing pools -----------------------------------------------------------------------------
def synthetic_problems(n: int, seed: int, model: SyntheticModel | str = DEFAULT_MODEL,
                       pool: int = 64) -> list[TraceProblem]:
    """``n`` problems with ``pool`` samples each, fully determined by ``seed``."""
    m = CALIBRATED[model] if isinstance(model, str) else model
    rng = np.random.default_rng(seed)
    a, b = m.q_mean * m.kappa, (1.0 - m.q_mean) * m.kappa
    problems = []
    for i in range(n):
        q = float(rng.beta(a, b))
        mu = m.mu0 + m.hard_slope * (0.5 - q) + m.tau * float(rng.standard_normal())
        gold = int(rng.integers(0, _MOD))
        distractors = [(gold + int(d)) % _MOD for d in rng.choice(np.arange(1, _MOD),
                                                                   m.n_distractors, replace=False)]
        d_weights = rng.dirichlet(np.ones(m.n_distractors))
        right = rng.random(pool) < q
        log_len = mu + m.delta_wrong * (~right) + m.sigma * rng.standard_normal(pool)
        kind = rng.random(pool)
        pick = rng.choice(m.n_distractors, size=pool, p=d_weights)
        noise = rng.integers(0, _MOD, size=pool)
        samples = []
        for j in range(pool):
            length = int(min(max(16.0, math.exp(log_len[j])), 1e9))
            if length > m.max_model_tokens:
                samples.append(TraceSample(m.max_model_tokens, None, finished=False))
                continue
            if right[j]:
                text: str | None = str(gold)
            elif kind[j] < m.no_answer_share:
                text = None
            elif kind[j] < m.no_answer_share + m.distractor_share:
                text = str(distractors[pick[j]])
            else:
                text = str(int(noise[j]))
            samples.append(TraceSample(length, text, finished=True))
        problems.append(TraceProblem(
            id=f"s{seed}-p{i:02d}", answer=gold, samples=tuple(samples),
            meta={"q": round(q, 4), "mu": round(mu, 4), "distractors": distractors},
        ))
    return problems


# -- recorded traces ---------------------------------------------------------------------------
def default_traces_dir() -> Path:
    """``<repo parent>/shared/traces``: where recorded generations are shared between checkouts."""
    return Path(__file__).resolve().parents[2] / "shared" / "traces"


_ID_KEYS = ("problem_id", "id", "problem")
_GOLD_KEYS = ("gold", "answer", "ground_truth", "truth")
_TOKEN_KEYS = ("tokens", "n_tokens", "completion_tokens", "num_tokens", "output_tokens")


def _first(record: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if key in record and record[key] is not None:
            return record[key]
    return None


def _sample_from_record(record: dict[str, Any]) -> TraceSample | None:
    from aimo_submit.extract import find_last_boxed

    tokens = _first(record, _TOKEN_KEYS)
    if tokens is None:
        return None
    finish = str(record.get("finish_reason", "stop")).lower()
    finished = finish not in ("length", "max_tokens", "truncated")
    if "extracted" in record:
        value = record["extracted"]
        answer_text = None if value is None else str(value)
    elif isinstance(record.get("text"), str):
        answer_text = find_last_boxed(record["text"])
    else:
        answer_text = None
    if not finished:
        answer_text = None
    return TraceSample(int(tokens), answer_text, finished=finished,
                       confidence=_confidence_from_record(record))


def _confidence_from_record(record: dict[str, Any]) -> ConfidenceBlocks | None:
    """``confidence``: block means as a trace writes them, or a run-log sample's confidence
    entry (its ``blocks``); anything unreadable replays as a sample without confidence."""
    data = record.get("confidence")
    if isinstance(data, dict) and isinstance(data.get("blocks"), dict):
        data = data["blocks"]
    if not isinstance(data, dict):
        return None
    try:
        return ConfidenceBlocks.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def trace_files(root: str | Path | None = None) -> list[Path]:
    """The ``*.jsonl`` trace files of a folder (default :func:`default_traces_dir`), or ``[root]``
    when it is a file; ``[]`` when absent. Subfolders (such as ``holdout/``) are not included."""
    path = Path(root) if root is not None else default_traces_dir()
    if path.is_file():
        return [path]
    return sorted(path.glob("*.jsonl")) if path.is_dir() else []


def load_shared_traces(root: str | Path | None = None, *, profile: CompetitionProfile = AIMO2,
                       min_samples: int = 1) -> list[TraceProblem] | None:
    """Recorded pools of ONE trace file (``root``: the file, or a folder holding exactly one);
    None if there is none.

    Each file is one model and setup, so a folder of several files is refused rather than
    pooled into one problem set. Gold answers are judged under ``profile``: reduced modulo its
    ``answer_modulus`` (AIMO2: 0..999; AIMO3: 0..99999, where the reduction changes nothing in
    range). One JSON object per line, one line per sample. Recognised keys: the problem's id
    (``problem_id`` or ``id``), its gold answer (``gold`` or ``answer``, an integer; problems
    without one are skipped), the sample's generated tokens (``tokens``, ``completion_tokens``,
    ...), ``finish_reason`` (``stop``/``length``) and either ``extracted`` (the final boxed
    content, or null) or the full ``text`` (its last ``\\boxed{}`` is used). Samples keep file
    order; ``meta`` records the file and its ``model`` field.
    """
    files = trace_files(root)
    if not files:
        return None
    if len(files) > 1:
        raise ValueError(f"{root or default_traces_dir()} holds {len(files)} trace files "
                         f"({', '.join(f.name for f in files)}): name one; files of different "
                         "models or setups are never pooled")
    path = files[0]
    modulus = profile.answer_modulus
    gold: dict[str, int] = {}
    pools: dict[str, list[TraceSample]] = {}
    model: str | None = None
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            pid = _first(record, _ID_KEYS)
            truth = _first(record, _GOLD_KEYS)
            sample = _sample_from_record(record)
            if pid is None or sample is None:
                continue
            try:
                if truth is not None:
                    gold.setdefault(str(pid), int(truth))
            except (TypeError, ValueError):
                continue
            if model is None and isinstance(record.get("model"), str):
                model = record["model"]
            pools.setdefault(str(pid), []).append(sample)
    problems = [TraceProblem(pid, gold[pid] % modulus, tuple(samples),
                             meta={"source": str(path), "model": model, "profile": profile.name})
                for pid, samples in pools.items()
                if pid in gold and len(samples) >= min_samples]
    return problems or None


def load_runlog_traces(path: str | Path, gold: dict[str, int], *,
                       modulus: int = AIMO2.answer_modulus) -> list[TraceProblem]:
    """Pools from a submission's ``aimo_runlog.jsonl`` (one line per problem, its ``samples``),
    with each sample's recorded confidence (issue 16); ``gold`` maps problem ids to answers
    (a run log does not know them). Problems without a gold answer are skipped.

    Record with early stop off (``early_stop_agree`` above ``n_samples``, ``unbeatable`` off)
    and ``confidence_record=True``: a sample the run cancelled is replayed as cut where it was
    cancelled (no answer), which is all the log knows about it.
    """
    problems = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            pid = str(record.get("id")) if isinstance(record, dict) else None
            if pid not in gold or not isinstance(record.get("samples"), list):
                continue
            samples = []
            for s in record["samples"]:
                ended = s.get("finish") in ("boxed", "stop")
                answer = s.get("answer") if ended else None
                samples.append(TraceSample(
                    int(s.get("tokens") or 0), None if answer is None else str(answer),
                    finished=ended, confidence=_confidence_from_record(s)))
            problems.append(TraceProblem(pid, int(gold[pid]) % modulus, tuple(samples),
                                         meta={"source": str(path)}))
    return problems


def main(argv: list[str] | None = None) -> int:
    """Refit every published table and print the parameters and residuals."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for model_name, tables in PUBLISHED.items():
        for bench in tables:
            fitted = calibrate(model_name, bench)
            print(f'"{model_name}/{bench}": {fitted!r},')
            print(fit_report(fitted, model_name, bench))
            p1, mj = majority_gain(fitted)
            print(f"pass@1 {p1:.1f}  maj@64 {mj:.1f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
