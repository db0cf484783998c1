"""bench/gpu_smoke.py on CPU with tiny shapes: every run and way of getting the reference log-probs trains and is
measured, the numbers follow the stated formulas, the warm cache computes nothing, and the GPU peak table picks the
right entry (the one part that needs a GPU name, given here by a stand-in)."""
import json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'bench'))

@pytest.fixture(scope='module')
def res(tmp_path_factory):
    d = tmp_path_factory.mktemp('smoke')
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'gpu_smoke.py'), '--tiny', '--steps', '2', '--warmup', '1', '--threads', '1',
                        '--out', str(d/'smoke.json'), '--workdir', str(d/'work')], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads((d/'smoke.json').read_text()), (d/'smoke.md').read_text(), d

def test_every_run_and_mode(res):
    out, md, _ = res
    got = [(r['run'], r['mode']) for r in out['rows']]
    assert got == [(run, m) for run in ('tiny-lora', 'tiny-full') for m in ('live', 'precomputed', 'cache-cold', 'cache-warm')]
    assert all(r['status'] == 'ok' for r in out['rows'])
    assert md.count('\n| tiny-') == 8 and 'MFU = 6 N tokens' in md

def test_numbers_follow_the_formulas(res):
    out, _, _ = res
    c, peak = out['config'], out['machine']['peak_flops']
    tokens = c['batch'] * 2 * (c['prompt_len'] + c['completion_len'] + 1)
    for r in out['rows']:
        assert abs(r['tokens_per_s'] - tokens / r['step_s']) <= 0.01 * r['tokens_per_s'] + 1, r
        assert r['mfu'] == pytest.approx(6 * r['params_linear'] * tokens / (r['step_s'] * peak), rel=0.02, abs=1e-3), r
        assert r['peak_mem_gib'] is None                  # CPU: no GPU memory to report
    lora, full = (next(r for r in out['rows'] if r['run'] == k) for k in ('tiny-lora', 'tiny-full'))
    assert lora['params_linear'] == full['params_linear']   # LoRA's N is the base model's, not the adapter's

def test_cache_computes_only_once(res):
    out, _, d = res
    c = out['config']
    n = 2 * c['batch'] * (c['steps'] + c['warmup'])             # sequences of the random pairs
    for run in ('tiny-lora', 'tiny-full'):
        m = {r['mode']: r for r in out['rows'] if r['run'] == run}
        assert m['cache-cold']['ref_sequences_computed'] == m['precomputed']['ref_sequences_computed'] == n
        assert m['cache-warm']['ref_sequences_computed'] == 0
        assert len(list((d/'work'/f'{run}-cache').glob('*/part-*.parquet'))) == 1   # the warm run wrote no shard

def test_peak_table(monkeypatch):
    import torch, gpu_smoke
    for name, want in [('NVIDIA H100 80GB HBM3', 989e12), ('NVIDIA H100 PCIe', 756e12), ('NVIDIA H200', 989e12),
                       ('NVIDIA A100-SXM4-80GB', 312e12)]:
        monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *a, n=name: n)
        p, src = gpu_smoke.peak_flops('cuda')
        assert p == want and src.startswith('data sheet'), (name, p, src)
    p, src = gpu_smoke.peak_flops('cpu')
    assert p > 0 and src.startswith('measured')

def test_no_cuda_says_so():
    import torch
    if torch.cuda.is_available(): pytest.skip('a GPU is here')
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'gpu_smoke.py')], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and 'no CUDA device' in r.stderr and 'Traceback' not in r.stderr
