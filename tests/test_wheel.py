"""The package as others install it: a wheel and an sdist, and the wheel with the core dependencies only (no torch,
no plotting, no Argilla) in a fresh virtual environment, running the data verbs on the bundled sample."""
import os, subprocess, sys, venv, zipfile, tarfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='module')
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    subprocess.run([sys.executable, '-m', 'build', '--no-isolation', '--wheel', '--sdist', '--outdir', str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, cwd=ROOT)
    return out

def test_wheel_contents(dist):
    whl, = dist.glob('notus-*.whl')
    names = zipfile.ZipFile(whl).namelist()
    assert 'notus/assets/ultrafeedback_sample.parquet' in names and 'notus/binarize.py' in names
    assert not [n for n in names if n.startswith(('tests/', 'nbs/')) or n.endswith('.ipynb')], names
    sdist, = dist.glob('notus-*.tar.gz')
    assert any(n.endswith('notus/assets/ultrafeedback_sample.parquet') for n in tarfile.open(sdist).getnames())

def test_core_install_runs_the_data_verbs(dist, tmp_path):
    whl, = dist.glob('notus-*.whl')
    env = tmp_path/'venv'
    venv.EnvBuilder(with_pip=True).create(env)
    py, notus = env/'bin'/'python', env/'bin'/'notus'
    subprocess.run([py, '-m', 'pip', 'install', '-q', '-c', ROOT/'constraints.txt', str(whl)], check=True,
                   capture_output=True, text=True)
    run = lambda *a: subprocess.run([*a], capture_output=True, text=True, cwd=tmp_path,
                                    env={**os.environ, 'PATH': f"{env/'bin'}:{os.environ['PATH']}"})
    for heavy in ('torch', 'transformers', 'trl', 'matplotlib', 'argilla'):
        assert run(py, '-c', f'import {heavy}').returncode != 0, f'{heavy} should not be installed by the core'
    r = run(py, '-c', 'import sys; from notus.binarize import binarize; from notus.data import load_ultrafeedback; '
                      'p, rep = binarize(load_ultrafeedback()[0]); print(len(p)); assert "torch" not in sys.modules')
    assert r.returncode == 0 and int(r.stdout.split()[-1]) > 0, r.stderr
    r = run(notus, 'validate')
    assert r.returncode == 0 and 'rows kept' in r.stdout, r.stderr
    r = run(notus, 'binarize', '--output', 'pairs.parquet')
    assert r.returncode == 0 and (tmp_path/'pairs.parquet').stat().st_size > 0, r.stderr
    site = next((env/'lib').glob('python*/site-packages'))
    size = sum(f.stat().st_size for f in site.rglob('*') if f.is_file())
    print(f'core install: {size/2**20:.0f} MiB')
    assert size < 800 * 2**20
