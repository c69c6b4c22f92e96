# Source of notebooks/aimo_submit.ipynb: edit here, then run `make notebook`.
# Cells are separated by "# %%" lines ("# %% [markdown]" for text). This header, above the first
# marker, is not copied into the notebook. Keep the notebook thin: every decision belongs in the
# aimo_submit library, which the notebook finds in an attached dataset.

# %% [markdown]
# # aimo-submit
#
# A thin submission notebook: it installs offline wheels, puts the `aimo_submit` library on
# `sys.path` and hands the competition's gateway to `aimo_submit.runner.Submission`, which owns
# the model, the clock and `predict`.
#
# **Attach** (kernel-metadata.json from `make package` does this): the competition, the
# `aimo-submit-lib` dataset, the `aimo-submit-wheels` dataset and the model's weights.
#
# **Knobs** (environment variables, all optional): `AIMO_MODEL` (a weights_manifest.json entry),
# `AIMO_PROFILE` (`aimo2` or `aimo3`), `AIMO_TEST_CSV` (rehearse over this CSV instead of the
# gateway's), `AIMO_KAGGLE_DATA` (folder with `kaggle_evaluation/`), `AIMO_TIME_BUDGET_S` (whole-run
# seconds), `AIMO_POLICY` (JSON of policy overrides), `AIMO_SEARCH_ROOTS` (extra weight folders,
# `os.pathsep`-separated), `AIMO_WORKDIR`, `AIMO_SUBMIT_ROOT` (a checkout instead of the
# dataset), `AIMO_WHEELS_DIR` / `AIMO_SKIP_WHEELS`.

# %% 1. Offline wheels (no internet at run time)
import glob
import os
import subprocess
import sys

KAGGLE_INPUT = os.environ.get("AIMO_KAGGLE_INPUT", "/kaggle/input")


def find_wheels_dir():
    """$AIMO_WHEELS_DIR, else an attached dataset holding requirements-gpu.txt and wheels."""
    explicit = os.environ.get("AIMO_WHEELS_DIR")
    if explicit:
        return explicit
    for req in sorted(glob.glob(os.path.join(KAGGLE_INPUT, "*", "requirements-gpu.txt"))):
        folder = os.path.dirname(req)
        if glob.glob(os.path.join(folder, "*.whl")):
            return folder
    return None


WHEELS_DIR = None if os.environ.get("AIMO_SKIP_WHEELS") else find_wheels_dir()
if WHEELS_DIR:
    requirements = os.path.join(WHEELS_DIR, "requirements-gpu.txt")
    targets = ["-r", requirements] if os.path.isfile(requirements) else sorted(
        glob.glob(os.path.join(WHEELS_DIR, "*.whl")))
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", WHEELS_DIR,
           *targets]
    print("installing offline wheels:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
else:
    print("no offline wheels attached: using the packages already installed")

# %% 2. The aimo_submit library
def find_library():
    """$AIMO_SUBMIT_ROOT (a checkout), else the attached library dataset under /kaggle/input."""
    explicit = os.environ.get("AIMO_SUBMIT_ROOT")
    if explicit:
        if not os.path.isfile(os.path.join(explicit, "aimo_submit", "__init__.py")):
            raise FileNotFoundError(f"AIMO_SUBMIT_ROOT={explicit} has no aimo_submit/__init__.py")
        return explicit
    for depth in ("*", os.path.join("*", "*")):
        hits = sorted(glob.glob(os.path.join(KAGGLE_INPUT, depth, "aimo_submit", "__init__.py")))
        if hits:
            if len(hits) > 1:
                print("several copies of aimo_submit attached, using the first:", hits)
            return os.path.dirname(os.path.dirname(hits[0]))
    raise FileNotFoundError(
        f"aimo_submit not found under {KAGGLE_INPUT}: attach the aimo-submit-lib dataset "
        "(built by `make package`) or set AIMO_SUBMIT_ROOT to a checkout of the repository")


LIB_ROOT = find_library()
if LIB_ROOT not in sys.path:
    sys.path.insert(0, LIB_ROOT)
import aimo_submit

print(f"aimo_submit {aimo_submit.__version__} from {os.path.dirname(aimo_submit.__file__)}")

# %% 3. Configuration
import json

DEFAULT_MODEL = "deepseek-r1-distill-qwen-14b-awq"
DEFAULT_PROFILE = "aimo2"
MODEL = os.environ.get("AIMO_MODEL", DEFAULT_MODEL)
PROFILE = os.environ.get("AIMO_PROFILE", DEFAULT_PROFILE)
TEST_CSV = os.environ.get("AIMO_TEST_CSV") or None
KAGGLE_DATA = os.environ.get("AIMO_KAGGLE_DATA") or None
WORKDIR = os.environ.get("AIMO_WORKDIR") or (
    "/kaggle/working" if os.path.isdir("/kaggle/working") else ".")
TIME_BUDGET_S = float(os.environ["AIMO_TIME_BUDGET_S"]) if os.environ.get(
    "AIMO_TIME_BUDGET_S") else None
POLICY_OVERRIDES = json.loads(os.environ["AIMO_POLICY"]) if os.environ.get("AIMO_POLICY") else None
SEARCH_ROOTS = [p for p in os.environ.get("AIMO_SEARCH_ROOTS", "").split(os.pathsep) if p]
RERUN = bool(os.environ.get("KAGGLE_IS_COMPETITION_RERUN"))

print(json.dumps({"model": MODEL, "profile": PROFILE, "test_csv": TEST_CSV,
                  "kaggle_data": KAGGLE_DATA, "workdir": WORKDIR, "time_budget_s": TIME_BUDGET_S,
                  "policy_overrides": POLICY_OVERRIDES, "search_roots": SEARCH_ROOTS,
                  "competition_rerun": RERUN}, indent=1))

# %% 4. Serve
from aimo_submit.runner import Submission

extra = {}
if TIME_BUDGET_S is not None:
    extra["total_s"] = TIME_BUDGET_S
if TEST_CSV and not RERUN:  # plan the clock for the rehearsal's problem count, not the profile's
    import polars as pl

    extra["n_problems"] = pl.read_csv(TEST_CSV).height

submission = Submission.create(
    model=MODEL,
    profile=PROFILE,
    manifest_path=None,
    search_roots=SEARCH_ROOTS,
    policy_overrides=POLICY_OVERRIDES,
    workdir=WORKDIR,
    **extra,
)
try:
    submission.serve(test_csv=TEST_CSV, kaggle_data=KAGGLE_DATA)
finally:
    submission.close()
