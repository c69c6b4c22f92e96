"""``python -m aimo_submit <command>``: the entry points behind the Makefile targets."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path

# Subcommands owned by other modules: each exposes ``main(argv) -> int``.
DELEGATED = {
    "manifest": "aimo_submit.manifest",
    "package": "aimo_submit.packaging",
    "build-notebook": "aimo_submit.notebook",
    "simulate": "aimo_submit.simulate",
    "policy": "aimo_submit.presets",
}

SUMMARIES = {
    "local-gateway": "rehearse the whole submission on a local gateway (make local-gateway)",
    "manifest": "list, verify or update the model entries of weights_manifest.json",
    "package": "build the Kaggle upload folders (make package)",
    "build-notebook": "build notebooks/aimo_submit.ipynb from its template (make notebook)",
    "simulate": "replay recorded or synthetic traces under the policies, in virtual time",
    "policy": "print, as JSON, the policy a submission runs",
}
"""One line per command for ``--help``; each command's own ``--help`` says the rest."""


def _local_gateway(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="aimo_submit local-gateway",
        description="Rehearse the whole submission: gateway -> predict -> solver -> engine.",
    )
    ap.add_argument("--model", default="tiny-qwen2-math", help="weights_manifest.json entry")
    ap.add_argument("--csv", default="aimo_submit/assets/tiny_problems.csv",
                    help="problems with columns id,problem[,answer] (e.g. Kaggle's reference.csv)")
    ap.add_argument("--time-budget", type=float, default=600.0, help="whole-run seconds")
    ap.add_argument("--profile", default="aimo2", help="competition profile (aimo2, aimo3)")
    ap.add_argument("--kaggle-data", default=None,
                    help="folder with Kaggle's kaggle_evaluation/ (uses the real gateway)")
    ap.add_argument("--rerun", action="store_true",
                    help="rehearse a competition rerun: the gateway of --kaggle-data (a stand-in"
                    " of tests/fixtures/kaggle) in another process, serve() here")
    ap.add_argument("--manifest", default=None, help="another weights manifest")
    ap.add_argument("--root", action="append", default=[], help="extra folder to find weights")
    ap.add_argument("--workdir", default=None, help="output folder (default runs/<time>)")
    ap.add_argument("--seed", type=int, default=None, help="fix the problem order")
    ap.add_argument("--preset", default=None,
                    help="named policy from presets.py (ours, aimo2-winner, aimo2-baseline, ...)")
    ap.add_argument("--policy", default=None, help="JSON file of PolicyConfig overrides")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one policy override, e.g. --set n_samples=12 (JSON values)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.rerun and not args.kaggle_data:  # before the model loads, which can take minutes
        ap.error(f"--rerun needs --kaggle-data, e.g. tests/fixtures/kaggle/{args.profile} "
                 "(with make: GATEWAY=standin RERUN=1)")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from aimo_submit.gateway import GatewayError, load_problems
    from aimo_submit.runner import Submission

    overrides: dict = {}
    if args.policy:
        try:
            overrides.update(json.loads(Path(args.policy).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"error: --policy {args.policy}: {exc}", file=sys.stderr)
            return 2
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    workdir = Path(args.workdir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    try:  # the rehearsal serves this CSV through either gateway: plan for its problem count
        n_problems = load_problems(args.csv).height
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        sub = Submission.create(
            model=args.model,
            profile=args.profile,
            manifest_path=args.manifest,
            search_roots=args.root,
            policy_overrides=overrides,
            workdir=workdir,
            total_s=args.time_budget,
            n_problems=n_problems,
            preset=args.preset,
        )
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__name__ == "ManifestError":
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    print(f"model {args.model} ({sub.spec.engine}) from {sub.spec.path}; profile {args.profile};"
          f" budget {args.time_budget:.0f} s; output {workdir}")
    if not sub.wait_ready(timeout=args.time_budget):
        print(f"error: the model failed to load: {sub._ready.exception()!r}", file=sys.stderr)
        sub.close()
        return 1
    print(f"model loaded in {sub.startup_s:.1f} s")
    try:
        if args.rerun:
            _rehearse_rerun(sub, args)
        else:
            sub.serve(test_csv=args.csv, kaggle_data=args.kaggle_data, seed=args.seed,
                      progress=not args.quiet)
    except GatewayError as exc:
        print(f"gateway error: {exc}", file=sys.stderr)
        return 1
    finally:
        sub.close()
    print(f"wall time: {time.monotonic() - t0:.1f} s; run log: {sub.runlog.path}")
    return 0


def _rehearse_rerun(sub, args: argparse.Namespace) -> None:
    from aimo_submit.gateway import rehearse_rerun
    from aimo_submit.report import print_report

    result = rehearse_rerun(sub.predict, sub.profile, Path(args.kaggle_data), args.csv,
                            sub.workdir, time_limit_s=sub.scheduler.total_s)
    print_report(result, sub.records, startup_s=sub.startup_s, timeline=sub.timeline())
    print(f"answered {len(result.rows)} problem(s); result.json: Succeeded")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ["local-gateway", *DELEGATED]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m aimo_submit {" + ",".join(commands) + "} [options]\n")
        print("\n".join(f"  {c:<15} {SUMMARIES[c]}" for c in commands))
        print("\n'python -m aimo_submit COMMAND --help' for a command's options.")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "local-gateway":
        return _local_gateway(rest)
    if cmd in DELEGATED:
        module = importlib.import_module(DELEGATED[cmd])
        return int(module.main(rest) or 0)
    print(f"unknown command {cmd!r}; expected one of {commands}", file=sys.stderr)
    return 2
