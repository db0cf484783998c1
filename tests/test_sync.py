"""The notebooks are the source: notus/ must be exactly what nbdev-export makes of them, and notebooks must be clean."""
import filecmp, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _copy(tmp):
    for d in ('nbs', 'notus'): shutil.copytree(ROOT/d, tmp/d, symlinks=True)
    for f in ('pyproject.toml', '_quarto.yml'):
        if (ROOT/f).exists(): shutil.copy(ROOT/f, tmp/f)

def _diff(a, b, pattern):
    fa = {p.relative_to(a) for p in a.rglob(pattern)}; fb = {p.relative_to(b) for p in b.rglob(pattern)}
    changed = [str(p) for p in sorted(fa & fb) if not filecmp.cmp(a/p, b/p, shallow=False)]
    return changed + [f'+{p}' for p in sorted(fb - fa)] + [f'-{p}' for p in sorted(fa - fb)]

def test_export_in_sync(tmp_path):
    _copy(tmp_path)
    subprocess.run([BIN/'nbdev-export'], cwd=tmp_path, check=True, capture_output=True)
    changed = _diff(ROOT/'notus', tmp_path/'notus', '*.py')
    assert not changed, f"nbdev-export changes {changed}: run nbdev-export and commit notebooks and notus/ together"

def test_notebooks_clean(tmp_path):
    _copy(tmp_path)
    subprocess.run([BIN/'nbdev-clean', '--fname', str(tmp_path/'nbs')], cwd=tmp_path, check=True, capture_output=True)
    changed = _diff(ROOT/'nbs', tmp_path/'nbs', '*.ipynb')
    assert not changed, f"nbdev-clean changes {changed}: run nbdev-clean and commit"
