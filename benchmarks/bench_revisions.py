"""Side-by-side timings of the same fits under two revisions of hierlm (base vs new).

Run (from the repository root)::

    python benchmarks/bench_revisions.py --base HEAD~5            # defaults, ~3-4 min on 2 cores
    python benchmarks/bench_revisions.py --base HEAD --quick      # smoke run, ~20 s
    python benchmarks/bench_revisions.py --base v0.1 --new HEAD --out benchmarks/rev.md

What it is for: showing that a refactor causes no slowdown beyond noise.  ``--base``
is a git revision (``HEAD~5``, a branch, a commit hash), exported with ``git archive``
into a temporary directory.  ``--new`` is the current working tree by default (the
repository this script lives in, uncommitted changes included), or another git
revision, or a directory holding a hierlm tree (e.g. a ``git worktree``); ``--base``
may name such a directory too.

What is timed is "formula to fit", as in bench_lmm.py and bench_glmm.py: from a
DataFrame already in memory to the estimates, using only the public API,
``hierlm.lmer(formula, df)`` (REML, the default) and
``hierlm.glmer(formula, df, family=...)`` (Laplace, the defaults); the data come from
each revision's own ``hierlm.datasets.load(name)`` (loading is not timed).

Cases:

* sleepstudy   ``Reaction ~ Days + (Days|Subject)``
* Penicillin   ``diameter ~ 1 + (1|plate) + (1|sample)``
* Pastes       ``strength ~ 1 + (1|batch/cask)``
* cbpp         ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial
* grouseticks  ``TICKS ~ YEAR + cHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)``, Poisson
* InstEval     ``y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)`` (skipped by ``--quick``)

The three small lmer fits take ~10 ms, so they get more repetitions (``--reps-tiny``,
default 100) than the GLMMs (``--reps``, 25) and InstEval (``--reps-large``, 6);
``--quick`` runs 30 and 8 repetitions and skips InstEval.

Methodology: each revision runs in its own persistent Python worker (the same
interpreter, ``sys.executable``, started on this very script with ``--worker``),
with ``PYTHONPATH`` and ``sys.path[0]`` set to that revision's tree, so the
``hierlm`` it imports is that tree's; the worker checks that ``hierlm.__file__``, and
every ``hierlm.*`` module it loads, lies inside the expected tree (an editable install
of another tree fails loudly instead of being timed).  Both workers get the parent's
environment unchanged apart from ``PYTHONPATH`` (no BLAS thread pinning, as in the
other benches), and only one of them fits at a time.  The parent sends one request
per fit over stdin (a JSON line naming the case); the worker answers with the
elapsed seconds and the fit's ``loglik`` (a JSON line).  Every case gets one untimed
warm-up fit in each worker first (imports, caches).  Then the two revisions are
interleaved within each repetition, the order rotating from one repetition to the
next, so that slow drifts of the machine hit both alike.  A ``gc`` (untimed) precedes
every fit.

The table reports medians and the ratio new/base of the medians (< 1: new is
faster), and the paired ratio: the median over the repetitions of each repetition's
new/base (the two fits of a repetition run back to back, so load from other processes
largely cancels), with a 95% bootstrap interval.  The verdict per case reads that
interval: "no slowdown" when its upper end is at most 1 + ``--threshold`` (default
5%), "SLOWER" when its lower end exceeds 1 + ``--threshold``, "faster" when its upper
end is below 1 - ``--threshold``, and "inconclusive" otherwise (too noisy: raise the
repetitions, or run on a quieter machine).  The report gives the load average during
the run, with a caution when it exceeded the CPU count: load that changes within a
repetition is not captured by the intervals, so on a busy machine a verdict can be a
false alarm (once seen: a 30-repetition ``--quick`` run at load 8 on 2 CPUs called a
14% slowdown that 200 repetitions did not confirm).  The report also checks that
every fit of both revisions gives the same ``loglik`` (relative tolerance ``--tol``,
default 1e-6) and reports mismatches.

A fit that raises is reported with the worker's traceback, and the case is skipped; a
worker that dies or hangs (``--timeout``) is reported with its exit status and the
tail of its stderr, and restarted for the next case; a worker that cannot import
hierlm stops the run with the traceback.  Exit status: 0 when all is well, 1 on a
loglik mismatch, a SLOWER verdict or a failed case, 2 when a revision cannot be
exported or a worker cannot start.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import io
import json
import os
import platform
import queue
import random
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

# The parent uses the standard library only: it never imports hierlm (the working tree
# may be mid-refactor), numpy or pandas; the workers do.

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CASES = [
    # name, formula, family (None: lmer, REML), size (which --reps-* applies)
    ("sleepstudy", "Reaction ~ Days + (Days|Subject)", None, "tiny"),
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", None, "tiny"),
    ("Pastes", "strength ~ 1 + (1|batch/cask)", None, "tiny"),
    ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "small"),
    ("grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)", "poisson", "small"),
    ("InstEval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", None, "large"),
]
CASE_BY_NAME = {c[0]: c for c in CASES}
REPS_OPTION = {"tiny": "--reps-tiny", "small": "--reps", "large": "--reps-large"}


# ------------------------------------------------------------------------ worker

def _hierlm_modules_outside(root: Path) -> list[str]:
    """Loaded hierlm modules whose file is not under ``root``."""
    bad = []
    for name, mod in list(sys.modules.items()):
        if name != "hierlm" and not name.startswith("hierlm."):
            continue
        f = getattr(mod, "__file__", None)
        if f is None:
            continue
        try:
            Path(f).resolve().relative_to(root)
        except ValueError:
            bad.append(f"{name} from {f}")
    return bad


def worker_main(tree: str) -> int:
    """Serve fit requests for the hierlm under ``tree`` (the directory holding hierlm/)."""
    # Protocol on a private copy of stdout; anything the library prints goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    faulthandler.enable()                   # a crash (segfault, abort) leaves its Python stack on stderr
    root = Path(tree).resolve()
    sys.path.insert(0, str(root))           # ahead of site-packages and any editable-install finder
    try:
        import hierlm
        import numpy
        import pandas

        bad = _hierlm_modules_outside(root)
        if bad:
            raise ImportError(f"hierlm was not imported from {root}: " + "; ".join(bad[:3])
                              + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                              + f" (sys.path[:3] = {sys.path[:3]})")
        try:
            import scipy
            scipy_version = scipy.__version__
        except Exception:
            scipy_version = "n/a"
        hello = {"hierlm_file": str(Path(hierlm.__file__).resolve()),
                 "hierlm_version": getattr(hierlm, "__version__", "?"),
                 "numpy": numpy.__version__, "pandas": pandas.__version__, "scipy": scipy_version,
                 "python": platform.python_version(), "pid": os.getpid()}
    except BaseException:
        send({"ok": False, "error": traceback.format_exc()})
        return 1
    send({"ok": True, "hello": hello})

    data: dict = {}
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        try:
            req = json.loads(line)
        except ValueError:
            send({"ok": False, "error": f"bad request {line!r}"})
            continue
        if req.get("cmd") == "quit":
            return 0
        case = req.get("case")
        try:
            name, formula, family, _ = CASE_BY_NAME[case]
            if name not in data:
                data[name] = hierlm.datasets.load(name)          # untimed
            df = data[name]
            gc.collect()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t0 = time.perf_counter()
                if family is None:
                    fit = hierlm.lmer(formula, df)
                else:
                    fit = hierlm.glmer(formula, df, family=family)
                dt = time.perf_counter() - t0
            loglik = float(fit.loglik)
            bad = _hierlm_modules_outside(root)
            if bad:
                raise ImportError(f"hierlm module loaded from outside {root}: " + "; ".join(bad))
            msgs = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
            send({"ok": True, "case": case, "seconds": dt, "loglik": loglik, "warnings": msgs})
        except Exception:
            send({"ok": False, "case": case, "error": traceback.format_exc()})


# ------------------------------------------------------------------------ parent

class WorkerError(RuntimeError):
    """A worker failed: ``detail`` is its traceback or stderr tail; ``dead``: the process is gone."""

    def __init__(self, msg: str, detail: str = "", dead: bool = False):
        super().__init__(msg)
        self.detail, self.dead = detail, dead


def exit_status(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


class Worker:
    """A persistent Python worker fitting with the hierlm of one tree."""

    def __init__(self, label: str, pkg_root: Path, timeout: float):
        self.label, self.pkg_root, self.timeout = label, pkg_root, timeout
        self.proc = None
        self.hello: dict = {}

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.pkg_root)]
                                            + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(self.pkg_root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            cwd=str(self.pkg_root), env=env, text=True, bufsize=1,
        )
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines), daemon=True).start()
        msg = self._receive("start-up (import hierlm)")
        if not msg.get("ok"):
            self.kill()
            raise WorkerError(f"{self.label}: worker could not import hierlm from {self.pkg_root}",
                              msg.get("error", ""), dead=True)
        self.hello = msg["hello"]
        try:
            Path(self.hello["hierlm_file"]).resolve().relative_to(self.pkg_root.resolve())
        except ValueError:
            self.kill()
            raise WorkerError(f"{self.label}: hierlm imported from {self.hello['hierlm_file']}, "
                              f"not from {self.pkg_root}", dead=True) from None

    @staticmethod
    def _pump(stream, q: queue.Queue) -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    def stderr_tail(self, n: int = 3000) -> str:
        """The worker's stderr, from faulthandler's report of a crash if there is one."""
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace")
        except Exception:
            return ""
        k = text.rfind("Fatal Python error")
        if k >= 0:   # faulthandler's stack; drop its (long) list of extension modules
            text = "\n".join(ln for ln in text[k:].splitlines() if not ln.startswith("Extension modules:"))
        return text[-n:].strip()

    def _receive(self, what: str) -> dict:
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            self.kill()
            raise WorkerError(f"{self.label}: no answer to {what} within {self.timeout:g} s; worker killed",
                              self.stderr_tail(), dead=True) from None
        if line is None:
            rc = self.proc.wait()
            raise WorkerError(f"{self.label}: worker died during {what} ({exit_status(rc)})",
                              self.stderr_tail() or "(no stderr output)", dead=True)
        try:
            return json.loads(line)
        except ValueError:
            self.kill()
            raise WorkerError(f"{self.label}: garbled answer to {what}: {line[:200]!r}",
                              self.stderr_tail(), dead=True) from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def fit(self, case: str) -> tuple[float, float, list[str]]:
        """(seconds, loglik, warnings) of one fit of ``case``."""
        try:
            self.proc.stdin.write(json.dumps({"case": case}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            rc = self.proc.wait()
            raise WorkerError(f"{self.label}: worker is gone ({exit_status(rc)})",
                              self.stderr_tail() or "(no stderr output)", dead=True) from None
        msg = self._receive(f"fit {case}")
        if not msg.get("ok"):
            raise WorkerError(f"{self.label}: fit of {case} raised", msg.get("error", ""))
        return float(msg["seconds"]), float(msg["loglik"]), list(msg.get("warnings", []))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:
                self.kill()
        try:
            self._stderr.close()
        except Exception:
            pass


def git(*args: str, cwd: Path = REPO, binary: bool = False):
    out = subprocess.run(["git", "--no-optional-locks", "-C", str(cwd), *args],
                         capture_output=True, text=not binary)
    if out.returncode != 0:
        err = out.stderr if not binary else out.stderr.decode("utf-8", "replace")
        raise RuntimeError(f"git {' '.join(args)} failed: {err.strip()}")
    return out.stdout


def package_root(tree: Path) -> Path | None:
    """The directory to put on sys.path for ``tree`` (flat or src layout), or None."""
    for cand in (tree, tree / "src"):
        if (cand / "hierlm" / "__init__.py").is_file():
            return cand
    return None


def describe_dir(tree: Path, root: Path) -> tuple[str, str | None]:
    """(description, HEAD's commit when the package under ``root`` matches it) of a directory.

    For a git work tree the description names HEAD and counts the files of the package
    (``root``/hierlm) that differ from it, untracked ones included.
    """
    try:
        if Path(git("rev-parse", "--show-toplevel", cwd=tree).strip()).resolve() != tree:
            return f"directory {tree}", None
        head = git("rev-parse", "HEAD", cwd=tree).strip()
        subject = git("log", "-1", "--format=%h %s", head, cwd=tree).strip()
        changed = [ln for ln in git("status", "--porcelain", "--untracked-files=all", "--",
                                    str(root / "hierlm"), cwd=tree).splitlines() if ln]
    except Exception:
        return f"directory {tree}", None
    if not changed:
        return f"working tree {tree} (HEAD {subject}; hierlm/ unchanged)", head
    n = len(changed)
    return f"working tree {tree} (HEAD {subject}; {n} file{'s' if n != 1 else ''} in hierlm/ changed or new)", None


def resolve(spec: str, tmp: Path, label: str) -> tuple[Path, str, str | None]:
    """(package root, description, commit or None) for a directory or a git revision."""
    p = Path(spec).expanduser()
    if p.is_dir():
        tree = p.resolve()
        root = package_root(tree)
        if root is None:
            raise RuntimeError(f"{label}: directory {p} holds no hierlm/__init__.py (nor src/hierlm)")
        desc, commit = describe_dir(tree, root)
        return root, desc, commit
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}").strip()
    except RuntimeError:
        raise RuntimeError(f"{label}: {spec!r} is neither a directory nor a git revision of {REPO}") from None
    subject = git("log", "-1", "--format=%h %s", commit).strip()
    dest = tmp / label
    dest.mkdir()
    blob = git("archive", "--format=tar", commit, binary=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tf.extractall(dest)
    root = package_root(dest)
    if root is None:
        raise RuntimeError(f"{label}: revision {spec} ({subject}) has no hierlm/__init__.py (nor src/hierlm)")
    return root, f"`{spec}` = {subject} (git archive)", commit


def paired_ratio(base: list[float], new: list[float], n_boot: int = 4000, seed: int = 0
                 ) -> tuple[float, float, float]:
    """Median of the per-repetition ratios new/base and its 95% bootstrap interval.

    Repetition i holds one base and one new fit run back to back, so their ratio cancels
    what drifts more slowly than a pair of fits (load from other processes, clock
    changes); its median is much less noisy on a shared machine than a ratio of the
    two medians.
    """
    r = [b_new / b_base for b_base, b_new in zip(base, new) if b_base > 0]
    n = len(r)
    rng = random.Random(seed)
    meds = sorted(statistics.median(r[rng.randrange(n)] for _ in range(n)) for _ in range(n_boot))
    return statistics.median(r), meds[int(0.025 * n_boot)], meds[min(n_boot - 1, int(0.975 * n_boot))]


def loadavg() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def fmt_load(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU model n/a"


def fmt_s(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4f}" if x < 1 else f"{x:.2f}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True,
                   help="git revision of the baseline (HEAD~5, a commit hash), or a directory with a hierlm tree")
    p.add_argument("--new", default=str(REPO),
                   help="git revision or directory of the new code (default: this working tree, "
                        "uncommitted changes included)")
    p.add_argument("--reps", type=int, default=25,
                   help="timed repetitions of the GLMM fits, cbpp and grouseticks (default 25)")
    p.add_argument("--reps-tiny", type=int, default=100,
                   help="timed repetitions of the ~10 ms lmer fits: sleepstudy, Penicillin, Pastes (default 100)")
    p.add_argument("--reps-large", type=int, default=6, help="timed repetitions of the InstEval fit (default 6)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --reps 8 --reps-tiny 30, InstEval skipped")
    p.add_argument("--cases", nargs="+", choices=list(CASE_BY_NAME), default=list(CASE_BY_NAME))
    p.add_argument("--tol", type=float, default=1e-6, help="relative tolerance for 'loglik agrees' (default 1e-6)")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="slowdown that counts, as a fraction (default 0.05: 5%%)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds to wait for a worker's answer before killing it (default 600)")
    p.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    a = p.parse_args(argv)
    if a.quick:
        a.reps, a.reps_tiny = 8, 30
        a.cases = [c for c in a.cases if CASE_BY_NAME[c][3] != "large"]
    if min(a.reps, a.reps_tiny, a.reps_large) < 1:
        p.error("--reps, --reps-tiny and --reps-large must be >= 1")
    return a


def main(argv=None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2])
    args = parse_args(argv)
    t_start = time.perf_counter()
    loads = [loadavg()]

    def log(msg: str) -> None:
        loads.append(loadavg())
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    labels = ["base", "new"]
    workers: dict[str, Worker] = {}
    with tempfile.TemporaryDirectory(prefix="hierlm-bench-rev-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            trees = {"base": resolve(args.base, tmp, "base"), "new": resolve(args.new, tmp, "new")}
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            for lab in labels:
                root, desc, _ = trees[lab]
                log(f"{lab}: starting worker on {root} ({desc})")
                workers[lab] = Worker(lab, root, args.timeout)
                workers[lab].start()
        except WorkerError as exc:
            print(f"error: {exc}\n{exc.detail}", file=sys.stderr)
            for w in workers.values():
                w.close()
            return 2
        hello = {lab: dict(workers[lab].hello) for lab in labels}

        times = {c: {lab: [] for lab in labels} for c in args.cases}
        logliks = {c: {lab: [] for lab in labels} for c in args.cases}
        errors: dict[str, str] = {}          # case -> message with traceback
        notes: list[str] = []
        aborted = None
        try:
            for case in args.cases:
                n = {"tiny": args.reps_tiny, "small": args.reps, "large": args.reps_large}[CASE_BY_NAME[case][3]]
                try:
                    for lab in labels:               # a worker that died on an earlier case is restarted
                        if not workers[lab].alive():
                            log(f"{lab}: restarting worker")
                            workers[lab].close()
                            workers[lab] = Worker(lab, trees[lab][0], args.timeout)
                            workers[lab].start()
                except WorkerError as exc:
                    aborted = f"{exc}\n{exc.detail}"
                    break
                try:
                    log(f"{case}: warm-up")
                    for lab in labels:               # untimed warm-up fits
                        _, ll, ws = workers[lab].fit(case)
                        logliks[case][lab].append(ll)
                        notes += [f"{lab}: {case}: {w}" for w in ws]
                    for i in range(n):
                        k = i % len(labels)
                        for lab in labels[k:] + labels[:k]:   # rotate who goes first
                            dt, ll, ws = workers[lab].fit(case)
                            times[case][lab].append(dt)
                            logliks[case][lab].append(ll)
                            notes += [f"{lab}: {case}: {w}" for w in ws]
                        log(f"{case}: rep {i + 1}/{n}")
                except WorkerError as exc:
                    errors[case] = f"{exc}\n{exc.detail}".rstrip()
                    log(f"{case}: FAILED: {exc}")
                    times[case] = {lab: [] for lab in labels}
        except KeyboardInterrupt:
            aborted = "interrupted (Ctrl-C)"
        finally:
            for w in workers.values():
                w.close()

    # ------------------------------------------------------------ report
    notes = list(dict.fromkeys(notes))
    bad = False
    rows = ["| case | reps | base median s | new median s | new/base | paired new/base (95% interval) "
            "| loglik agrees? | verdict |",
            "|---|---:|---:|---:|---:|---|---|---|"]
    verdicts = []
    for case in args.cases:
        tb, tn = times[case]["base"], times[case]["new"]
        lb, ln = logliks[case]["base"], logliks[case]["new"]
        if case in errors or not tb or not tn:
            why = "failed, see below" if case in errors else "not run (run aborted)"
            rows.append(f"| {case} | 0 | n/a | n/a | n/a | n/a | n/a | **ERROR**: {why} |")
            verdicts.append(f"{case}: ERROR ({why})")
            bad = True
            continue
        mb, mn = statistics.median(tb), statistics.median(tn)
        pr, lo, hi = paired_ratio(tb, tn)
        ref = lb[0]
        scale = max(abs(ref), 1e-300)
        dev_b = max(abs(v - ref) for v in lb) / scale
        dev_n = max(abs(v - ref) for v in ln) / scale
        if max(dev_b, dev_n) <= args.tol:
            agree = f"yes (rel Δ {dev_n:.1e})"
        else:
            agree = (f"**NO**: base {statistics.median(lb):.8g}, new {statistics.median(ln):.8g}, "
                     f"rel Δ {dev_n:.2e}" + (f" (base itself varies by {dev_b:.1e})" if dev_b > args.tol else ""))
            bad = True
        thr = args.threshold
        if lo > 1 + thr:
            verdict = f"**SLOWER** by {100 * (pr - 1):.0f}% (beyond noise and the {100 * thr:g}% threshold)"
            bad = True
        elif hi < 1 - thr:
            verdict = f"faster by {100 * (1 - pr):.0f}%"
        elif hi <= 1 + thr:
            verdict = f"no slowdown (at most {100 * (hi - 1):+.1f}% at 95%)" if hi > 1 else "no slowdown"
        else:
            verdict = (f"inconclusive: interval reaches +{100 * (hi - 1):.0f}%; "
                       f"rerun with more {REPS_OPTION[CASE_BY_NAME[case][3]]}")
        if not agree.startswith("yes"):
            verdict += "; **loglik MISMATCH**"
        rows.append(f"| {case} | {len(tb)} | {fmt_s(mb)} | {fmt_s(mn)} | {mn / mb:.3f} "
                    f"| {pr:.3f} ({lo:.3f}–{hi:.3f}) "
                    f"| {agree} | {verdict} |")
        verdicts.append(f"{case}: {verdict}")

    ll_rows = ["| case | base loglik | new loglik |", "|---|---:|---:|"]
    for case in args.cases:
        vals = [f"{statistics.median(logliks[case][lab]):.8f}" if logliks[case][lab] else "n/a" for lab in labels]
        ll_rows.append(f"| {case} | {vals[0]} | {vals[1]} |")

    loads = [x for x in loads + [loadavg()] if x is not None] or [None]
    max_load = max(loads) if loads[0] is not None else None
    ncpu = os.cpu_count() or 1
    same = trees["base"][2] is not None and trees["base"][2] == trees["new"][2]
    h = hello["new"]
    env = (f"Python {h['python']} ({sys.executable}), numpy {h['numpy']}, pandas {h['pandas']}, "
           f"scipy {h['scipy']}; {platform.machine()}, {os.cpu_count()} CPUs; {platform.platform()}; "
           f"{cpu_model()}")
    total = time.perf_counter() - t_start
    report = [
        "## hierlm revisions: formula to fit, base vs new (median wall-clock seconds)",
        "",
        f"- base: {trees['base'][1]}; hierlm {hello['base']['hierlm_version']} from {hello['base']['hierlm_file']}",
        f"- new: {trees['new'][1]}; hierlm {hello['new']['hierlm_version']} from {hello['new']['hierlm_file']}",
    ]
    if same:
        report.append("- base and new are the same commit: the ratios show the noise floor of this machine")
    report += [
        "",
        "\n".join(rows),
        "",
        f"reps = timed repetitions per revision (after one untimed warm-up fit each); the revisions are "
        f"interleaved, order rotating per repetition, each in its own persistent worker process. "
        f"new/base = ratio of the medians (< 1: new is faster); paired new/base = median over the "
        f"repetitions of each repetition's new/base, with a 95% bootstrap interval; the verdict reads this "
        f"interval, and a slowdown counts beyond {100 * args.threshold:g}%. loglik agrees = every fit of "
        f"both revisions within relative {args.tol:g} of base's warm-up fit.",
        "",
        "### loglik (median over fits)",
        "",
        "\n".join(ll_rows),
        "",
        f"Machine: {env}",
        f"Load average (1 min): {fmt_load(loads[0])} at the start, {fmt_load(max_load)} at most, "
        f"{fmt_load(loads[-1])} at the end, on {ncpu} CPUs",
        f"Total benchmark wall time: {total:.0f} s",
        "",
        "Verdicts:",
    ] + [f"- {v}" for v in verdicts]
    if max_load is not None and max_load > ncpu:
        report += ["", f"**Caution**: the machine was busy (load average up to {max_load:.1f} on {ncpu} CPUs). "
                       "Load from other processes changes within a repetition too, which the intervals do not "
                       "capture: a SLOWER or faster verdict may be a false alarm; rerun on a quiet machine."]
    if args.quick:
        report += ["", "--quick: a smoke run with few repetitions; decide on the default repetitions."]
    if aborted:
        report += ["", f"**Run aborted**: {aborted}"]
        bad = True
    if errors:
        report += ["", "### Errors"]
        for case, msg in errors.items():
            report += ["", f"{case}:", "", "```", msg, "```"]
    if notes:
        report += ["", "Notes (warnings raised during fits):"] + [f"- {n}" for n in notes]
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"(written to {args.out})", file=sys.stderr)
    if aborted:
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
