"""The documentation site builds with warnings as errors: every internal link
resolves, the API reference renders from the docstrings, and every executed
code block of the tutorials runs (markdown-exec turns a failing block into a
warning, which --strict makes an error)."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docs_site_builds_strictly_and_runs_the_tutorials(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "markdown_exec"):
        pytest.importorskip(module)
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                         capture_output=True, text=True, timeout=900, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    page = (site / "tutorials" / "sleepstudy" / "index.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    # the executed outputs and figures are in the page
    assert "REML criterion at convergence: 1743.6\n" in text  # lmerTest prints one decimal
    assert "hierlm: REML criterion 1743.6283" in text and "R sd_Days|Subject" in text
    assert page.count("data:image/png;base64,") >= 4
    pigs = html.unescape(re.sub(r"<[^>]+>", "", (site / "tutorials" / "piglets" / "index.html").read_text()))
    assert "Model selection based on AICc:" in pigs and "PBtest" in pigs
    assert (site / "tutorials" / "piglets" / "index.html").read_text().count("data:image/png;base64,") == 2
    owls_page = (site / "tutorials" / "owls" / "index.html").read_text()
    owls = html.unescape(re.sub(r"<[^>]+>", "", owls_page))
    nested, crossed = re.search(r"REML criterion nested ([0-9.]+), crossed ([0-9.]+)", owls).groups()
    assert nested == crossed  # (1|Brood/Ring) and (1|Brood) + (1|Ring) with unique ring codes
    assert owls_page.count("data:image/png;base64,") == 3
    bayes_page = (site / "tutorials" / "bayesian" / "index.html").read_text()
    bayes = html.unescape(re.sub(r"<[^>]+>", "", bayes_page))
    assert "HalfNormal(sigma=50)" in bayes and "Pareto k diagnostic values" in bayes
    assert bayes_page.count("data:image/png;base64,") == 3
    api = (site / "api" / "index.html").read_text()
    assert "hierlm.lmer" in api and "Parameters" in api
