"""lme4's convergence check on a model where lme4 is silent: egsingle (mlmRev).

Issue: hierlm once warned "Model failed to converge with max|grad| = 0.0044"
on ``math ~ year * size + female + black + hispanic + retained +
(year|childid) + (year|schoolid)`` where lme4 gives no warning for the same
optimum.  This script fits the model in R (lme4) and in hierlm and compares
theta, the REML criterion and the convergence messages.  It needs R with
lme4 and mlmRev (``apt-get install r-cran-lme4 r-cran-mlmrev``); the data is
mlmRev's and is not shipped with hierlm, so this is a validation script, not
a test.

Run::

    python validation/egsingle_convergence.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import hierlm

FORMULA = "math ~ year * size + female + black + hispanic + retained + (year|childid) + (year|schoolid)"

R_SCRIPT = r"""
suppressMessages({library(lme4); library(mlmRev); library(jsonlite)})
args <- commandArgs(TRUE)
data(egsingle)
write.csv(egsingle, args[1], row.names = FALSE)
m <- lmer(%s, egsingle, REML = TRUE)
writeLines(toJSON(list(theta = unname(getME(m, "theta")), reml = REMLcrit(m),
                       messages = m@optinfo$conv$lme4$messages), digits = 15, auto_unbox = TRUE), args[2])
""" % FORMULA


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        csv, out, script = Path(tmp, "egsingle.csv"), Path(tmp, "lme4.json"), Path(tmp, "fit.R")
        script.write_text(R_SCRIPT)
        try:
            subprocess.run(["Rscript", str(script), str(csv), str(out)], check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"needs R with lme4 and mlmRev: {exc}", file=sys.stderr)
            return 2
        ref = json.loads(out.read_text())
        d = pd.read_csv(csv, dtype={"schoolid": str, "childid": str})
    for c in ("retained", "female", "black", "hispanic"):
        d[c] = pd.Categorical(d[c].astype(str))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = hierlm.lmer(FORMULA, d)
    ours = [str(w.message) for w in caught if issubclass(w.category, hierlm.ConvergenceWarning)]
    theirs = ref.get("messages") or []
    dtheta = float(np.max(np.abs(fit.theta - np.asarray(ref["theta"]))))
    print(f"theta max |diff| {dtheta:.2e}; REML criterion hierlm {fit.reml_criterion:.6f}, lme4 {ref['reml']:.6f}")
    print(f"convergence messages: hierlm {ours or 'none'}; lme4 {theirs or 'none'}")
    ok = dtheta < 1e-4 and abs(fit.reml_criterion - ref["reml"]) < 1e-6 * abs(ref["reml"]) and bool(ours) == bool(theirs)
    print("agrees with lme4" if ok else "DIFFERS from lme4")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
