"""The package's architecture: imports flow one way, with no cycle.

The contracts live in pyproject.toml ([tool.importlinter]) and are checked
by import-linter; the second test plants an upward import in a copy of the
package and shows the check then fails, so a passing check means something.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hierlm"
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def _lint(package_parent: Path, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([LINT, str(config), "--no-cache"], cwd=package_parent, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    out = _lint(ROOT, ROOT / "pyproject.toml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize("module, line, contract", [
    # an upward import: the design layer reaching up into the engines
    ("design/build.py", "from ..lmm import deviance as _planted  # noqa: F401\n", "Layers"),
    # a cycle inside one package: the PIRLS system importing the engine that uses it
    ("glmm/pirls.py", "from . import engine as _planted  # noqa: F401\n", "No import cycles"),
])
def test_planted_violation_breaks_a_contract(tmp_path, module, line, contract):
    shutil.copytree(PACKAGE, tmp_path / "hierlm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "hierlm" / module
    text = target.read_text()
    head, sep, rest = text.partition("\nimport numpy as np\n")
    assert sep, f"{module} has no 'import numpy as np' line to plant the import after"
    target.write_text(head + sep + line + rest)
    out = _lint(tmp_path, tmp_path / "pyproject.toml")
    assert out.returncode != 0, out.stdout
    assert _status(out.stdout, contract) == "BROKEN", out.stdout


def _status(report: str, contract: str) -> str:
    """KEPT or BROKEN: the word after the contract's name in lint-imports' report
    (whose lines wrap at 80 columns)."""
    text = " ".join(report.split())
    after = text[text.index(contract):]
    words = [w for w in after.split() if w in ("KEPT", "BROKEN")]
    return words[0]


def _function_level_own_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("hierlm")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                elif isinstance(node, ast.Import) and any(a.name.startswith("hierlm") for a in node.names):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_few_function_level_imports_of_the_package():
    """Function-level imports of the package's own modules are only the fit's
    convenience methods: fit.py (summary, repr, icc, r2, plot) and
    lmm/results.py (coef_table, confint by profile and by bootstrap, bootstrap
    prediction intervals), and the
    compiled kernels in lmm/deviance.py and bayes/marginal.py (leaf modules
    that load compiled code: numba's, about a second, and the C kernels of
    the engine posterior; paid only by the designs and posteriors that need
    them)."""
    found = _function_level_own_imports()
    files = sorted({f.split(":")[0] for f in found})
    assert files == ["hierlm/bayes/marginal.py", "hierlm/fit.py", "hierlm/lmm/deviance.py",
                     "hierlm/lmm/results.py"] and len(found) == 11, found
