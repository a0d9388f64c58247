"""NUTS for the negative binomial, Gamma, beta and ordinal GLMMs and the Student-t linear mixed
model: hierlm against brms, compile included.

Each hierlm fit runs in a fresh process (PyMC compiles the model in it), 4 chains x 1000 draws
after 1000 tuning, brms's defaults.  brms's times are those tests/reference/families_brms.R
recorded (compile, then sampling, 4 chains on 2 cores) in tests/reference/families_brms.json
(and beta_brms.R in beta_brms.json, ordinal_brms.R in ordinal_brms.json); rerun those scripts on the same machine for a same-run
comparison.

Run:  python benchmarks/bench_families.py [CASE ...]   (default: every case)
"""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = {
    "owls_nb": """
import json, pandas as pd, hierlm
ref = json.load(open('tests/reference/families.json'))
d = pd.read_csv('tests/reference/Owls.csv')
for c, lv in ref['factor_levels']['Owls'].items():
    d[c] = pd.Categorical(d[c].astype(str), categories=lv)
m = hierlm.Model('SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1|Nest)', d,
                 family='negbinomial')
m.fit('nuts', draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
""",
    "sleep_gamma": """
import hierlm
m = hierlm.Model('Reaction ~ Days + (Days|Subject)', hierlm.datasets.load('sleepstudy'), family='gamma',
                 link='log')
m.fit('nuts', draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
""",
    "sleep_student": """
import hierlm
m = hierlm.Model('Reaction ~ Days + (Days|Subject)', hierlm.datasets.load('sleepstudy'), family='student')
m.fit('nuts', draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
""",
    "gcse_written_beta": """
import pandas as pd, hierlm
g = pd.read_csv('tests/reference/Gcsemv.csv', dtype={'school': str, 'student': str})
d = g[g.written.notna()].assign(y=lambda f: f.written / 100)
m = hierlm.Model('y ~ gender + (1|school)', d, family='beta')
m.fit('nuts', draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
""",
    "wine_logit": """
import hierlm
from hierlm.priors import Flat
m = hierlm.Model('rating ~ temp + contact + (1|judge)', hierlm.datasets.load('wine'), family='ordinal')
m.set_prior('fixed', Flat())  # brms's default for a cumulative model's coefficients
m.fit('nuts', draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
""",
}


def main() -> None:
    ref = ROOT / "tests" / "reference"
    brms = {**json.loads((ref / "families_brms.json").read_text())["cases"],
            **json.loads((ref / "beta_brms.json").read_text())["cases"],
            **json.loads((ref / "ordinal_brms.json").read_text())["cases"]}
    wanted = sys.argv[1:] or list(CODE)
    print(f"{'model':<18} {'hierlm s':>9} {'brms compile s':>15} {'brms sample s':>14} {'brms total s':>13} {'ratio':>6}")
    for name in wanted:
        code = CODE[name]
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
        ours = time.perf_counter() - t
        b = brms[name]
        total = b["compile_seconds"] + b["sample_seconds"]
        print(f"{name:<18} {ours:9.1f} {b['compile_seconds']:15.1f} {b['sample_seconds']:14.1f} {total:13.1f} "
              f"{total / ours:6.1f}")


if __name__ == "__main__":
    main()
