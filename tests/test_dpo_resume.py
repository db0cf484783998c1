"""Resume after a kill: a tiny DPO run killed with SIGKILL right after a checkpoint, then started again with the same
command, continues from that checkpoint (not from step 0) and ends with the metrics of an uninterrupted run.

Tolerance: on this CPU the resumed run reproduces the uninterrupted one exactly (the same held-out loss, reward
accuracy and margin to the last bit, and bitwise-equal final weights; measured on a 2-core CPU with
`pytest tests/test_dpo_resume.py`). The assertions allow 1e-5 relative on metrics and 1e-5 absolute on weights,
for other CPUs' floating-point reduction orders.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from runs import complete_checkpoints

ROOT = Path(__file__).resolve().parents[1]
NOTUS = Path(sys.executable).parent/'notus'
# checkpoints every 10 steps, 3 epochs of the tiny recipe: 87 optimizer steps
OVERRIDES = ['training.save_steps=10', 'training.save_total_limit=3']

def _cmd(out, report):
    return [str(NOTUS), 'train', str(ROOT/'recipes'/'tiny-cpu.yaml'), '--output', str(out),
            '--json-report', str(report), '--override', *OVERRIDES]

def _run(out, report, tmp):
    r = subprocess.run(_cmd(out, report), cwd=tmp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return r, json.loads(Path(report).read_text())

def _weights(d):
    from safetensors.torch import load_file
    return load_file(str(Path(d)/'model.safetensors'))

def test_resume_after_sigkill(tmp_path):
    # the reference: one uninterrupted run
    _, full = _run(tmp_path/'full', tmp_path/'full.json', tmp_path)
    assert full['resumed_from'] is None and full['steps_this_run'] == full['global_step'] == 87

    # the same command, killed with SIGKILL as soon as a complete checkpoint exists
    out, report = tmp_path/'killed', tmp_path/'killed.json'
    p = subprocess.Popen(_cmd(out, report), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not complete_checkpoints(out) and p.poll() is None: time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    assert not report.exists() and not (out/'model.safetensors').exists()     # it really did not finish
    ckpts = complete_checkpoints(out)
    assert ckpts and ckpts[-1] < 87, ckpts

    # started again with the same command: continues from the last checkpoint
    r, resumed = _run(out, report, tmp_path)
    start = int(Path(resumed['resumed_from']).name.split('-')[1])
    assert start >= ckpts[-1] > 0
    assert 'resuming from' in r.stdout and f'checkpoint-{start}' in r.stdout
    assert resumed['global_step'] == 87
    assert resumed['steps_this_run'] == 87 - start            # not from step 0

    # and ends where the uninterrupted run ended
    for k in ('eval_loss', 'eval_rewards/accuracies', 'eval_rewards/margins', 'eval_rewards/chosen', 'eval_rewards/rejected'):
        assert resumed['metrics'][k] == pytest.approx(full['metrics'][k], rel=1e-5, abs=1e-7), k
    a, b = _weights(tmp_path/'full'), _weights(out)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
