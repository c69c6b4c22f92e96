"""The submission: one object that owns the engine, the clock and ``predict``.

``predict`` is what Kaggle's gateway calls; it must never raise and never miss its deadline, so
the solver runs on a dedicated event-loop thread and ``predict`` waits for it with a hard timeout.
If the solve overruns (a hung engine), ``predict`` answers from the votes gathered so far, or
from partial texts, or with the policy's fallback. Model loading starts in the background as
soon as the submission is created, so the inference server answers the gateway's start-up
handshake immediately while weights load.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import re
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from aimo_submit.competition import CompetitionProfile, get_profile
from aimo_submit.engines.base import Engine
from aimo_submit.policy import PolicyConfig
from aimo_submit.runlog import RunLog
from aimo_submit.schedule import ProblemBudget, Scheduler
from aimo_submit.solver import LiveProblem, Solver, SolveResult

log = logging.getLogger("aimo_submit.runner")

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""C0 controls and DEL, except tab, newline and carriage return."""
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_CUT_MARK = "\n[...]\n"


@dataclass(frozen=True)
class ModelSpec:
    """What the runner needs to know of a model (built from its manifest entry)."""

    name: str
    engine: str
    path: Path
    prompt_style: str = "r1"
    tir_prompt_style: str | None = None
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    engine_settings: dict[str, Any] = field(default_factory=dict)


class EventLoopThread:
    """An asyncio loop on a daemon thread: the engine and solver live there across problems.

    ``loop`` may be given: the simulator passes a virtual-clock loop (``simclock``) so that the
    same ``Submission`` plays a whole competition in virtual time.
    """

    def __init__(self, name: str = "aimo-loop",
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def wait(self, future: concurrent.futures.Future[Any], timeout: float) -> bool:
        """Block the calling thread until ``future`` is done (True) or ``timeout`` seconds of
        the loop's clock pass (False). A real loop waits in real time, which also bounds a
        loop that is blocked; a virtual one (``block_until``) in its own time."""
        block_until = getattr(self.loop, "block_until", None)
        if block_until is not None:
            return bool(block_until(future, timeout))
        done, _ = concurrent.futures.wait([future], timeout=max(0.0, timeout))
        return bool(done)

    def result(self, future: concurrent.futures.Future[Any], timeout: float,
               what: str = "loop task") -> Any:
        """``future``'s result once done (:meth:`wait`), or ``TimeoutError`` saying ``what``."""
        if not self.wait(future, timeout):
            raise TimeoutError(f"{what} took over {timeout:g} s")
        return future.result(timeout=0)

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)


def coerce_text(value: Any) -> tuple[str, str | None]:
    """Turn whatever the gateway sent into a string; the note says what was unusual."""
    note = None
    try:
        if hasattr(value, "to_series") and hasattr(value, "columns"):  # polars DataFrame
            value = value.to_series(0) if value.width else None
            note = "got a DataFrame, used its first column"
        elif hasattr(value, "iloc") and hasattr(value, "columns"):  # pandas DataFrame
            value = value.iloc[:, 0] if value.shape[1] else None
            note = "got a pandas DataFrame, used its first column"
        if hasattr(value, "iloc"):  # pandas Series
            value = value.iloc[0] if len(value) else None
        elif hasattr(value, "item") and hasattr(value, "len"):  # polars Series
            value = value.item(0) if value.len() else None
        elif isinstance(value, (list, tuple)):
            value = value[0] if value else None
    except Exception as exc:
        return "", f"could not read value ({type(exc).__name__}: {exc})"
    if value is None:
        return "", (note + "; " if note else "") + "empty value"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace"), "got bytes, decoded as UTF-8"
    if not isinstance(value, str):
        try:
            text = str(value)
        except Exception as exc:
            return "", f"could not read value ({type(exc).__name__}: {exc})"
        return text, (note + "; " if note else "") + f"got {type(value).__name__}"
    return value, note


def clean_text(text: str, max_chars: int) -> tuple[str, list[str]]:
    """Make gateway text safe for the tokenizer, the run log and polars; notes say what changed.

    Lone surrogates (text that was not valid UTF-8) cannot be encoded and would fail inside
    the engine's worker, which looks like a broken engine; control characters only confuse the
    model. Over-long text is cut in the middle: statements put the question last.
    """
    notes: list[str] = []
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATES.sub("\ufffd", text)
        notes.append("replaced lone surrogates (text was not valid UTF-8)")
    controls = len(_CONTROL_CHARS.findall(text))
    if controls:
        text = _CONTROL_CHARS.sub("", text)
        notes.append(f"removed {controls} control character(s)")
    if len(text) > max_chars:
        head = max_chars // 2
        tail = max(0, max_chars - head - len(_CUT_MARK))
        notes.append(f"cut from {len(text)} to {max_chars} characters (middle removed)")
        text = text[:head] + _CUT_MARK + (text[-tail:] if tail else "")
    return text, notes


class Submission:
    """Everything ``predict`` needs, created once per run."""

    def __init__(
        self,
        engine: Engine,
        spec: ModelSpec,
        profile: CompetitionProfile,
        *,
        policy: PolicyConfig | None = None,
        total_s: float | None = None,
        n_problems: int | None = None,
        workdir: str | Path = ".",
        sandbox: Any = None,
        clock: Any = time.monotonic,
        started: float | None = None,
        setup_s: dict[str, float] | None = None,
        loop: EventLoopThread | None = None,
    ) -> None:
        """``engine`` is built but not started (this starts it in the background); ``clock``
        and ``loop`` are injectable so the simulator runs this very object in virtual time
        (``simclock``: ``clock`` is then the virtual loop's ``time``)."""
        self.created = clock()
        self.clock = clock
        self.started = self.created if started is None else started
        """When the run began, on ``clock``: the notebook's first line, so that installing and
        importing count against the time limit like everything after."""
        self.setup_s = dict(setup_s or {})
        """Seconds the caller spent on each step before this object existed (e.g. install)."""
        self.ready_at: float | None = None
        self.profile = profile
        self.spec = spec
        policy = policy or PolicyConfig()
        self.policy = policy
        self.engine = engine
        self.sandbox = sandbox
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scheduler = Scheduler(
            policy,
            total_s if total_s is not None else profile.time_limit_s,
            n_problems if n_problems is not None else profile.n_problems,
            clock=clock,
            start=self.started,
            max_problem_s=max(1.0, profile.response_timeout_s - 60.0),
        )
        self.solver = Solver(
            engine,
            policy,
            modulus=profile.answer_modulus,
            prompt_style=spec.prompt_style,
            tir_prompt_style=spec.tir_prompt_style,
            stop=spec.stop,
            sandbox=sandbox,
        )
        self.runlog = RunLog(self.workdir / "aimo_runlog.jsonl")
        self.records: dict[str, dict[str, Any]] = {}
        self.engine_failures = 0
        """Consecutive problems the engine failed outright (resets on a healthy problem)."""
        self.restarts: list[float] = []
        """Seconds each engine restart took (close + start)."""
        self._restarts_noted = 0
        self.sample_cap: int | None = None
        """Samples per problem after an out-of-memory error (None: the policy's count)."""
        self.startup_s: float | None = None
        self.last_budget: ProblemBudget | None = None
        """The last problem's budget, unrounded (the run log rounds it; the simulator times
        every answer against it)."""
        self._loop = loop or EventLoopThread()
        self._ready = self._loop.submit(self._start_engine())

    # -- construction from the manifest ----------------------------------------------------------
    @classmethod
    def create(
        cls,
        model: str = "tiny-qwen2-math",
        profile: str | CompetitionProfile = "aimo2",
        manifest_path: str | Path | None = None,
        search_roots: Sequence[str | Path] = (),
        policy_overrides: dict[str, Any] | None = None,
        workdir: str | Path = ".",
        *,
        total_s: float | None = None,
        n_problems: int | None = None,
        preset: str | None = None,
        started: float | None = None,
        setup_s: dict[str, float] | None = None,
    ) -> Submission:
        """Resolve ``model`` in the weights manifest, build its engine and start loading it.

        Policy precedence (``presets.resolve_policy``): the model's manifest defaults
        (``max_tokens``, sampling), then the named ``preset`` (default: the profile's
        ``default_preset``, the policy benchmarked for it; ``""`` for none), then
        ``policy_overrides``. A preset's token cap never exceeds the model's own. ``started``
        (a ``time.monotonic()`` reading) is when the run began, if before this call;
        ``setup_s`` names what the time before went on.
        """
        from aimo_submit.engines import create_engine
        from aimo_submit.manifest import load_manifest, resolve_model_path

        prof = get_profile(profile) if isinstance(profile, str) else profile
        manifest = load_manifest(manifest_path)
        entry = manifest.get(model)
        path = resolve_model_path(entry, [Path(p) for p in search_roots])
        spec = spec_from_entry(entry, path)
        from aimo_submit.presets import model_sampling, resolve_policy

        policy = resolve_policy(preset if preset is not None else prof.default_preset,
                                model_max_tokens=spec.max_tokens,
                                sampling=model_sampling(entry), overrides=policy_overrides)
        sandbox = None
        if policy.tir and spec.tir_prompt_style:
            from aimo_submit.sandbox import Sandbox

            sandbox = Sandbox(workers=policy.code_workers, timeout_s=policy.code_timeout_s)
        _prepare_prompt_format(spec)
        engine = create_engine(spec.engine, spec.path, spec.engine_settings)
        return cls(
            engine,
            spec,
            prof,
            policy=policy,
            total_s=total_s,
            n_problems=n_problems,
            workdir=workdir,
            sandbox=sandbox,
            started=started,
            setup_s=setup_s,
        )

    # -- engine lifecycle --------------------------------------------------------------------
    async def _start_engine(self) -> float:
        loop = asyncio.get_running_loop()  # its clock: real here, virtual in the simulator
        t0 = loop.time()
        await self.engine.start()
        self.startup_s = loop.time() - t0
        self.ready_at = self.clock()
        log.info("engine %s ready in %.1f s", self.engine.name, self.startup_s)
        return self.startup_s

    async def _restart_engine(self) -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await asyncio.wait_for(self.engine.close(), timeout=self.policy.engine_close_timeout_s)
        except Exception as exc:  # a broken engine may not close cleanly; start anew anyway
            log.warning("engine close failed during restart: %r", exc)
        await self.engine.start()
        took = loop.time() - t0
        self.restarts.append(took)
        log.warning("engine restarted in %.1f s", took)
        return took

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the engine is loaded (True) or failed / timed out (False)."""
        try:
            self._ready.result(timeout=timeout)
            return True
        except Exception:
            return False

    # -- the gateway's entry point ---------------------------------------------------------------
    def predict(self, id_: Any = None, problem: Any = None, *extra: Any) -> pl.DataFrame:
        """Kaggle's ``predict``: a one-row DataFrame ``id, answer``. Never raises."""
        t0 = self.clock()
        faults: list[str] = []
        pid, text = self._read_inputs(id_, problem, extra, faults)
        answer: Any = self.policy.fallback_answer
        result, budget, live = None, None, None
        try:
            budget = self.last_budget = self.scheduler.plan()
            if not text.strip():
                faults.append("empty problem text: answered with the fallback without solving")
            else:
                live = LiveProblem(self.profile.answer_modulus)
                answer, result = self._answer(text, budget, faults, live)
        except BaseException as exc:  # noqa: BLE001 - predict must answer whatever happens
            faults.append(f"predict error: {type(exc).__name__}: {exc}")
            log.exception("predict error")
        try:
            answer = int(answer) % self.profile.answer_modulus
        except Exception:
            faults.append(f"unusable answer {answer!r}: used the fallback")
            answer = self.policy.fallback_answer % self.profile.answer_modulus
        try:
            self.scheduler.finish_problem()
            record = self._record(pid, answer, result, budget, self.clock() - t0, faults, live)
            self.records[pid] = record
            self.runlog.write(record)
            for fault in faults:
                log.warning("problem %s: %s", pid, fault)
        except Exception:  # bookkeeping must not cost the answer
            log.exception("could not record problem %s", pid)
        return pl.DataFrame(
            {"id": [pid], "answer": [answer]}, schema={"id": pl.String, "answer": pl.Int64}
        )

    def _read_inputs(
        self, id_: Any, problem: Any, extra: tuple[Any, ...], faults: list[str]
    ) -> tuple[str, str]:
        """Id and statement as clean strings; anything unusual becomes a fault line."""
        pid, note = coerce_text(id_)
        if note:
            faults.append(f"id: {note}")
        pid, notes = clean_text(pid, self.policy.max_problem_chars)
        faults.extend(f"id: {n}" for n in notes)
        text, note = coerce_text(problem)
        if note:
            faults.append(f"problem: {note}")
        text, notes = clean_text(text, self.policy.max_problem_chars)
        faults.extend(f"problem: {n}" for n in notes)
        if extra:
            faults.append(f"ignored {len(extra)} extra argument(s) from the gateway")
        if pid in self.records:
            faults.append(f"repeated id {pid!r}: solved again")
        return pid, text

    def _answer(
        self, text: str, budget: ProblemBudget, faults: list[str], live: LiveProblem
    ) -> tuple[int, SolveResult | None]:
        ready_before = self._ready
        answer, result = self._solve_once(text, budget, faults, live)
        restarting = self._ready is not ready_before  # the failure scheduled a restart
        if (result is None or result.n_voted > 0 or not restarting
                or not self._engine_broke(result) or not self.policy.retry_after_restart):
            return answer, result
        # The engine failed the whole problem and a restart is under way: if it can finish with
        # time to spare, ask again on the fresh engine instead of leaving the problem to chance.
        expected = self.restarts[-1] if self.restarts else (self.startup_s or float("inf"))
        left = budget.hard_deadline - self.clock() - self.policy.answer_grace_s
        if left < expected + self.policy.min_problem_s:
            faults.append(f"no time to retry after the restart ({left:.1f} s left, a restart "
                          f"takes about {expected:.1f} s)")
            return answer, result
        faults.append("retrying this problem on the restarted engine")
        retry = LiveProblem(self.profile.answer_modulus)
        answer2, result2 = self._solve_once(text, budget, faults, retry)
        if result2 is not None and result2.n_voted > 0:
            live.samples, live.votes = retry.samples, retry.votes
            return answer2, result2
        return answer, result

    def _engine_broke(self, result: SolveResult) -> bool:
        """Did the engine fail this whole problem (silence, or errors and not one vote)?"""
        return result.stop_reason == "engine-stalled" or (
            result.engine_errors > 0 and result.n_voted == 0
        )

    def _solve_once(
        self, text: str, budget: ProblemBudget, faults: list[str], live: LiveProblem
    ) -> tuple[int, SolveResult | None]:
        fallback = self.policy.fallback_answer
        if not self._engine_ready(budget, faults):
            return fallback, None
        if self.sample_cap is not None and self.sample_cap < budget.n_samples:
            budget = dataclasses.replace(budget, n_samples=self.sample_cap)
        future = self._loop.submit(self.solver.solve(text, self._on_loop_clock(budget), live=live))
        timeout = max(0.0, budget.hard_deadline - self.clock()) + self.policy.answer_grace_s
        try:
            result = self._loop.result(future, timeout, "solve")
        except TimeoutError:
            future.cancel()
            faults.append(f"solve overran its deadline by {self.policy.answer_grace_s:.1f} s")
            best, source = live.best_answer()
            faults.append(f"answered from {source}")
            self._engine_failed(faults)
            return (best if best is not None else fallback), None
        except BaseException as exc:  # noqa: BLE001
            faults.append(f"solve failed: {type(exc).__name__}: {exc}")
            best, _ = live.best_answer()
            return (best if best is not None else fallback), None
        faults.extend(result.faults)
        if result.tokens_per_s:
            self.scheduler.observe_throughput(int(result.tokens_per_s * 1000), 1000.0)
        if result.out_of_memory:
            self._degrade(budget.n_samples, faults)
        if self._engine_broke(result):
            self._engine_failed(faults)
        else:
            self.engine_failures = 0
        return result.answer, result

    def _on_loop_clock(self, budget: ProblemBudget) -> ProblemBudget:
        """The budget in the solver's time: it runs on the loop's clock, not on ``self.clock``."""
        shift = self._loop.loop.time() - self.clock()
        return dataclasses.replace(
            budget,
            start=budget.start + shift,
            soft_deadline=budget.soft_deadline + shift,
            hard_deadline=budget.hard_deadline + shift,
        )

    def _engine_ready(self, budget: ProblemBudget, faults: list[str]) -> bool:
        """Wait (within the problem's time) for the engine; restart it once if it failed."""
        for attempt in range(2):
            if not self._ready.done():
                wait = budget.hard_deadline - self.clock() - self.policy.answer_grace_s
                if wait > 0:
                    self._loop.wait(self._ready, wait)
                if not self._ready.done():
                    faults.append("engine not ready before the problem's deadline")
                    return False
            exc = self._ready.exception()
            if exc is None:
                for took in self.restarts[self._restarts_noted :]:
                    faults.append(f"engine restarted in {took:.1f} s")
                self._restarts_noted = len(self.restarts)
                return True
            faults.append(f"engine failed to start: {exc!r}")
            if attempt == 0:
                self._schedule_restart(faults)  # and wait for it within this problem's time
        return False

    def _engine_failed(self, faults: list[str]) -> None:
        """The engine failed a whole problem (errors, silence, or an overrun): maybe restart."""
        self.engine_failures += 1
        if self.engine_failures >= self.policy.engine_restart_after:
            self._schedule_restart(faults)

    def _degrade(self, n_samples: int, faults: list[str]) -> None:
        """Out of memory: later problems start fewer samples."""
        fewer = max(1, int(n_samples * self.policy.oom_sample_factor))
        if fewer < n_samples:
            self.sample_cap = fewer
            faults.append(f"out of memory: later problems start {fewer} sample(s), not {n_samples}")

    def _schedule_restart(self, faults: list[str]) -> None:
        if self._ready.done():
            faults.append("engine restart scheduled")
            self.engine_failures = 0
            self._ready = self._loop.submit(self._restart_engine())

    def _record(
        self,
        pid: str,
        answer: int,
        result: SolveResult | None,
        budget: ProblemBudget | None,
        seconds: float,
        faults: list[str],
        live: LiveProblem | None = None,
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "id": pid,
            "answer": answer,
            "seconds": round(seconds, 3),
            "time_left_s": round(self.scheduler.usable_left(), 1),
            "answered_at_s": round(self.clock() - self.started, 1),
            "faults": faults,
            "votes": {},
            "n_voted": 0,
            "tokens": 0,
        }
        if result is None and live is not None:  # the solve never returned: what it had so far
            rec["votes"] = {str(k): v for k, v in live.tally().counts.items()}
            rec["n_voted"] = len(live.votes)
            rec["tokens"] = sum(s.tokens for s in live.samples.values())
        if not self.records:  # the first answer: how the time before it was spent
            rec["startup"] = self.timeline()
        if budget is not None:
            rec["budget"] = {
                "soft_s": round(budget.soft_deadline - budget.start, 2),
                "hard_s": round(budget.hard_deadline - budget.start, 2),
                "max_tokens": budget.max_tokens,
            }
        if result is not None:
            rec.update(
                {
                    k: v
                    for k, v in result.to_dict().items()
                    if k not in ("answer", "seconds", "faults")
                }
            )
        return rec

    def timeline(self) -> dict[str, Any]:
        """Seconds from the run's start: setup steps, model load, engine ready, first answer."""
        first = min((r.get("answered_at_s", 0.0) for r in self.records.values()), default=None)
        out: dict[str, Any] = {f"{k}_s": round(v, 1) for k, v in self.setup_s.items()}
        out["submission_created_s"] = round(self.created - self.started, 1)
        out["model_load_s"] = None if self.startup_s is None else round(self.startup_s, 1)
        out["model_ready_s"] = None if self.ready_at is None else round(
            self.ready_at - self.started, 1)
        out["first_answer_s"] = first if first is not None else round(
            self.clock() - self.started, 1)
        return out

    # -- running ------------------------------------------------------------------------------
    def serve(
        self,
        test_csv: str | Path | None = None,
        kaggle_data: str | Path | None = None,
        *,
        seed: int | None = None,
        report: bool = True,
        progress: bool = True,
    ) -> Any:
        """Serve through Kaggle's gateway if present, else rehearse with the local one."""
        from aimo_submit.gateway import serve

        result = serve(
            self.predict,
            self.profile,
            test_csv=test_csv,
            kaggle_data=kaggle_data,
            time_limit_s=self.scheduler.total_s,
            seed=seed,
            out_dir=self.workdir,
            progress=progress,
        )
        if result is not None and report:
            from aimo_submit.report import print_report, write_plot

            print_report(result, self.records, startup_s=self.startup_s,
                         timeline=self.timeline())
            plot = write_plot(result, self.records, self.workdir / "rehearsal.png")
            print(f"plot: {plot}")
        return result

    def close(self) -> None:
        if not self._ready.done():
            self._ready.cancel()  # a load or restart still running: the engine closes anyway
        try:
            self._loop.result(self._loop.submit(self.engine.close()), 30, "engine close")
        except Exception as exc:
            log.warning("engine close failed: %r", exc)
        if self.sandbox is not None and hasattr(self.sandbox, "close"):
            try:
                res = self.sandbox.close()
                if asyncio.iscoroutine(res):
                    self._loop.result(self._loop.submit(res), 10, "sandbox close")
            except Exception as exc:
                log.warning("sandbox close failed: %r", exc)
        self._loop.stop()


def _prepare_prompt_format(spec: ModelSpec) -> None:
    """Harmony models: find the tokenizer vocabulary now, before the engine starts.

    Exporting its folder before vLLM starts lets every process load it offline; a missing file
    is logged loudly at start-up (each problem then answers with the fallback and says why).
    """
    from aimo_submit.prompts import HARMONY, prompt_format

    if prompt_format(spec.prompt_style) != HARMONY:
        return
    from aimo_submit.harmony import HarmonyUnavailable, ensure_vocab

    try:
        log.info("harmony vocabulary in %s", ensure_vocab())
    except HarmonyUnavailable as exc:
        log.error("%s", exc)


def spec_from_entry(entry: Any, path: Path) -> ModelSpec:
    """Adapt a manifest entry to what the runner needs."""
    prompt = getattr(entry, "prompt_style", None) or "r1"
    return ModelSpec(
        name=entry.name,
        engine=entry.engine,
        path=path,
        prompt_style=prompt,
        tir_prompt_style=getattr(entry, "tir_prompt_style", None),
        stop=tuple(getattr(entry, "stop", ()) or ()),
        max_tokens=getattr(entry, "max_tokens", None),
        engine_settings=dict(getattr(entry, "engine_settings", {}) or {}),
    )


class FallbackSubmission:
    """What a competition rerun serves when :class:`Submission` cannot even be built (weights
    missing, a broken install): every problem gets the fallback answer and its log line says
    why, so the run completes instead of the gateway failing it for a server that never came."""

    def __init__(self, profile: str | CompetitionProfile, reason: str,
                 workdir: str | Path = ".", answer: int | None = None) -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.reason = reason
        self.answer = (PolicyConfig().fallback_answer if answer is None else answer) \
            % self.profile.answer_modulus
        self.workdir = Path(workdir)
        self.runlog = RunLog(self.workdir / "aimo_runlog.jsonl")
        log.error("serving the fallback answer for every problem: %s", reason)

    def predict(self, id_: Any = None, problem: Any = None, *extra: Any) -> pl.DataFrame:
        pid, _ = coerce_text(id_)
        self.runlog.write({"id": pid, "answer": self.answer, "seconds": 0.0,
                           "faults": [f"no submission: {self.reason}"]})
        return pl.DataFrame({"id": [pid], "answer": [self.answer]},
                            schema={"id": pl.String, "answer": pl.Int64})

    def serve(self, test_csv: str | Path | None = None, kaggle_data: str | Path | None = None,
              **_: Any) -> Any:
        from aimo_submit.gateway import serve

        return serve(self.predict, self.profile, test_csv=test_csv, kaggle_data=kaggle_data,
                     out_dir=self.workdir)

    def close(self) -> None:
        pass
