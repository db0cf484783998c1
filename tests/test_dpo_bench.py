"""The DPO throughput benchmark runs on CPU with a tiny shape (the GPU run is documented in bench/dpo_throughput.py)
and reports what it says: one row per configuration, TRL's default first, tokens/s consistent with step time."""
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_bench_tiny_cpu(tmp_path):
    out = tmp_path/'bench.json'
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'dpo_throughput.py'), '--device', 'cpu', '--tiny', '--steps', '2',
                        '--warmup', '1', '--repeats', '1', '--threads', '1', '--out', str(out), '--workdir', str(tmp_path/'work')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads(out.read_text())
    c, rows = res['config'], res['rows']
    assert c['shape'] == 'tiny' and c['hidden_size'] == 64 and res['machine']['peak_tflops'] > 0
    names = [row['variant'] for row in rows]
    assert names[0] == 'trl-default' and set(names[1:]) == {'sdpa-ckpt', 'sdpa-ckpt-precomp', 'sdpa', 'sdpa-precomp'}
    tokens = c['batch'] * 2 * (c['prompt_len'] + c['completion_len'] + 1)
    for row in rows:
        assert row['status'] == 'ok', row
        assert abs(row['tokens_per_s'] - tokens / row['step_s']) <= 0.01 * row['tokens_per_s'] + 1, row
        assert 0 < row['mfu'] < 1 and row['peak_mem_gib'] is None, row
        assert (row['precompute_s'] is not None) == row['precompute_ref_log_probs'], row
        if row['variant'] != 'trl-default':
            assert row['gradient_checkpointing'] == ('ckpt' in row['variant']) and row['bf16'] is False, row
    default = rows[0]
    assert default['bf16'] and default['gradient_checkpointing'] and not default['precompute_ref_log_probs']   # TRL's defaults
    md = out.with_suffix('.md').read_text()
    assert md.count('\n| ') >= 6 and "TRL's default" in md
