"""Command line, runnable examples and bundled datasets."""

import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import hierlm
from hierlm.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_prints_lme4_summary(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Linear mixed model fit by REML. t-tests use Satterthwaite's method [lmerModLmerTest]")
    assert "Formula: Reaction ~ Days + (Days | Subject)" in out
    assert "   Data: sleepstudy" in out
    assert "REML criterion at convergence: 1743.6" in out


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


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "hierlm.cli", "demo"], capture_output=True, text=True, check=True)
    assert "Fixed effects:" in out.stdout


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_run(script, capsys):
    runpy.run_path(str(script), run_name="__main__")


def test_datasets_have_r_levels():
    listing = hierlm.datasets.list()
    assert set(listing.index) == {"sleepstudy", "Dyestuff", "Dyestuff2", "Penicillin", "Pastes", "InstEval", "cbpp",
                                  "grouseticks", "ChickWeight"}
    ie = hierlm.datasets.load("InstEval")
    assert ie.shape == (73421, 7)
    assert list(ie["service"].cat.categories) == ["0", "1"]
    assert list(ie["s"].cat.categories[:3]) == ["1", "2", "3"]
    cbpp = hierlm.datasets.load("cbpp")
    assert list(cbpp["period"].cat.categories) == ["1", "2", "3", "4"]
    assert isinstance(hierlm.datasets.load("SLEEPSTUDY"), pd.DataFrame)
    with pytest.raises(hierlm.DataError, match="no bundled dataset"):
        hierlm.datasets.load("iris")


def test_import_and_reml_fit_do_not_import_pymc():
    code = ("import sys, hierlm; hierlm.lmer('Reaction ~ Days + (Days|Subject)', hierlm.datasets.load('sleepstudy'));"
            "bad = [m for m in ('pymc', 'pytensor', 'arviz', 'nutpie') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
