"""Command line, runnable examples and bundled datasets."""

import io
import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_compares_reml_map_nuts_and_writes_the_plot(tmp_path, capsys):
    png = tmp_path / "shrink.png"
    assert main(["demo", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Reaction ~ Days + (Days | Subject) on the bundled sleepstudy data")
    lines = out.splitlines()
    assert lines[2].split() == ["REML", "MAP", "NUTS", "mean", "95%", "interval"]
    reml = hierlm.lmer("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy"))
    row = next(ln for ln in lines if ln.startswith("Days "))
    assert float(row.split()[1]) == pytest.approx(reml.fixef["Days"], rel=1e-3)
    row = next(ln for ln in lines if ln.startswith("sigma "))
    assert float(row.split()[1]) == pytest.approx(reml.sigma, rel=1e-3)
    assert "Partial pooling:" in out and "Subject " in out
    # each row's interval is the NUTS fit's own (the demo's fit, seed 1, redone here)
    post = hierlm.Model("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy")).fit(
        "nuts", random_seed=1, progressbar=False)
    row = next(ln for ln in lines if ln.startswith("sd Subject Days "))
    lo = float(row.split("[")[1].split(",")[0])
    assert lo == pytest.approx(post.diagnostics.loc["sd_Subject[Days]", "2.5%"], rel=1e-3)
    assert f"wrote {png} (the shrinkage plot)" in out
    assert png.stat().st_size > 10_000


def test_version_and_machine_output(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"hierlm {hierlm.__version__}"
    f = "Reaction ~ Days + (Days | Subject)"
    assert main(["fit", f, "--data", "sleepstudy", "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    reml = hierlm.lmer(f, hierlm.datasets.load("sleepstudy"))
    assert doc["fit"] == "REML" and doc["nobs"] == 180 and doc["ngroups"] == {"Subject": 18}
    assert doc["loglik"] == pytest.approx(reml.loglik, rel=1e-9)
    fixed = {r["term"]: r["estimate"] for r in doc["estimates"] if r["effect"] == "fixed"}
    assert fixed["Days"] == pytest.approx(reml.fixef["Days"], rel=1e-9)
    assert main(["fit", f, "--data", "sleepstudy", "--output", "csv"]) == 0
    tab = pd.read_csv(io.StringIO(capsys.readouterr().out))
    ref = reml.tidy().reset_index(drop=True)
    assert list(tab.columns) == list(ref.columns) and len(tab) == len(ref)
    for c in ref.columns:
        if pd.api.types.is_numeric_dtype(ref[c]):
            np.testing.assert_allclose(tab[c].to_numpy(dtype=float), ref[c].to_numpy(dtype=float), rtol=1e-12)
        else:  # CSV writes None as an empty cell
            assert [None if pd.isna(v) else v for v in tab[c]] == [None if pd.isna(v) else v for v in ref[c]]


def test_fit_bundled_ml(capsys):
    assert main(["fit", "diameter ~ 1 + (1|plate) + (1|sample)", "--data", "Penicillin", "--ml"]) == 0
    out = capsys.readouterr().out
    assert "maximum likelihood" in out and "plate, 24; sample, 6" in out


def test_fit_glmm_family(capsys):
    """--family and --link: a GLMM fit by the Laplace approximation, as the Python call gives it."""
    f = "cbind(incidence, size - incidence) ~ period + (1|herd)"
    assert main(["fit", f, "--data", "cbpp", "--family", "binomial", "--link", "probit"]) == 0
    out = capsys.readouterr().out
    assert " Family: binomial  ( probit )" in out
    g = hierlm.glmer(f, hierlm.datasets.load("cbpp"), link="probit")
    assert f"{g.fixef.iloc[0]:.4f}"[:6] in out
    assert main(["fit", f, "--data", "cbpp", "--family", "tweedie"]) == 2
    assert "family 'tweedie' is not supported" in capsys.readouterr().err


def test_fit_by_map_and_a_bayesian_only_family(capsys):
    """--map: the MAP fit the Python call gives; a Student-t model without --map or --nuts
    says what to add; --map excludes --nuts and --ml."""
    f = "Reaction ~ Days + (Days|Subject)"
    assert main(["fit", f, "--data", "sleepstudy", "--family", "student"]) == 2
    assert "add --map (the posterior mode) or --nuts" in capsys.readouterr().err
    assert main(["fit", f, "--data", "sleepstudy", "--family", "student", "--map"]) == 0
    out = capsys.readouterr().out
    mp = hierlm.Model(f, hierlm.datasets.load("sleepstudy"), family="student").fit("map")
    assert "fit by MAP" in out and f"Family parameter nu (mode, approximate posterior SD): " \
        f"{mp.family.params['nu']:.4g}" in out
    assert main(["fit", f, "--data", "sleepstudy", "--map", "--ml"]) == 2
    assert "--map and --ml exclude each other" in capsys.readouterr().err


def test_fit_csv(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    hierlm.datasets.load("sleepstudy").to_csv(path, index=False)
    assert main(["fit", "Reaction ~ Days + (1|Subject)", "--data", str(path)]) == 0
    assert "REML criterion at convergence: 1786.5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["fit", "Reaction ~ Days + (Days|Subject", "--data", "sleepstudy"], "never closed"),
        (["fit", "Reaction ~ Dayz + (1|Subject)", "--data", "sleepstudy"], "did you mean 'Days'"),
        (["fit", "y ~ x + (1|g)", "--data", "nosuchdata"], "no bundled dataset 'nosuchdata'"),
        (["fit", "y ~ x + (1|g)", "--data", "missing.csv"], "no such file: missing.csv"),
    ],
)
def test_errors_are_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hierlm.cli", "demo"], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert "NUTS mean" in out.stdout
    assert (tmp_path / "hierlm-demo-shrinkage.png").exists()  # the default: here


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_run(script, capsys):
    runpy.run_path(str(script), run_name="__main__")


def test_datasets_have_r_levels():
    listing = hierlm.datasets.list()
    assert set(listing.index) == {"sleepstudy", "Dyestuff", "Dyestuff2", "Penicillin", "Pastes", "InstEval", "cbpp",
                                  "grouseticks", "ChickWeight", "wine"}
    ie = hierlm.datasets.load("InstEval")
    assert ie.shape == (73421, 7)
    assert list(ie["service"].cat.categories) == ["0", "1"]
    assert list(ie["s"].cat.categories[:3]) == ["1", "2", "3"]
    cbpp = hierlm.datasets.load("cbpp")
    assert list(cbpp["period"].cat.categories) == ["1", "2", "3", "4"]
    wine = hierlm.datasets.load("wine")  # an ordinal response: ordered, in R's order
    assert wine["rating"].cat.ordered and list(wine["rating"].cat.categories) == ["1", "2", "3", "4", "5"]
    assert not wine["judge"].cat.ordered
    assert isinstance(hierlm.datasets.load("SLEEPSTUDY"), pd.DataFrame)
    with pytest.raises(hierlm.DataError, match="no bundled dataset"):
        hierlm.datasets.load("iris")


def test_import_and_reml_fit_do_not_import_pymc():
    code = ("import sys, hierlm; hierlm.lmer('Reaction ~ Days + (Days|Subject)', hierlm.datasets.load('sleepstudy'));"
            "bad = [m for m in ('pymc', 'pytensor', 'arviz', 'nutpie') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
