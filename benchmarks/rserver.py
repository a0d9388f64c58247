"""An R benchmark script running as a persistent Rscript process.

The script prints ``READY lme4 <ver> R <ver>``, then answers ``fit <case>``
with ``RESULT <case> <seconds> <criterion>`` until it reads ``quit``; keeping
one process alive keeps R's start-up out of the timings.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class RServer:
    def __init__(self, script: Path, data_dir: Path):
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            ["Rscript", str(script), str(data_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
        )
        line = self._readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"{Path(script).name} did not start: {line!r} {self.stderr_tail()}")
        parts = line.split()  # READY lme4 <ver> R <ver>
        self.version = f"{parts[2]} (R {parts[4]})"

    def _readline(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"Rscript exited (rc={self.proc.poll()}): {self.stderr_tail()}")
        return line.strip()

    def stderr_tail(self, n: int = 600) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-n:].strip()

    def _request(self, req: str) -> str:
        self.proc.stdin.write(req + "\n")
        self.proc.stdin.flush()
        return self._readline()

    def fit_case(self, case: str) -> tuple[float, float]:
        """(seconds, criterion) of R's fit of ``case``."""
        line = self._request(f"fit {case}")
        parts = line.split()
        if parts[0] != "RESULT" or parts[1] != case:
            raise RuntimeError(f"lme4 {case}: {line}")
        return float(parts[2]), float(parts[3])

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def start(cls, *args):
    """(server, None), or (None, why it was skipped) when R is missing or fails."""
    if shutil.which("Rscript") is None:
        return None, "lme4 skipped: Rscript is not on PATH"
    try:
        return cls(*args), None
    except Exception as exc:
        return None, f"lme4 skipped: {exc}"
