"""Run every notebook's tests (nbdev's test machinery), one pytest test per notebook, each in its own process."""
import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_'))

@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    code = ("import sys; from nbdev.test import test_nb; "
            f"ok, t = test_nb({str(nb)!r}, skip_flags=['notest'], cell_timeout=900); sys.exit(0 if ok else 1)")
    r = subprocess.run([sys.executable, '-c', code], cwd=nb.parent, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"{nb.name} failed:\n{r.stderr[-6000:]}"
