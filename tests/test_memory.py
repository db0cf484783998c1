"""The launch plan and memory estimate of the GPU recipes (`notus.memory`, `notus train --check`), against the published runs.

Published facts used (see the memory page for the sources):
- Zephyr 7B beta / Notus 7B v1: full DPO of a Mistral 7B, 8 per device x 8 GPUs = 64, ZeRO-3; the alignment-handbook
  recipe ran on 80 GB A100s without offload; Notus ran on 8 x A100 40GB with ZeRO-3 and CPU offload.
- The Notus LoRA recipe trains on one GPU (its config file is named a100_40gb.yaml).
- Notux 8x7B v1: full DPO of Mixtral 8x7B on 8 x H100 80GB, with the ZeRO-3 offload config.
"""
import json, subprocess, sys
from pathlib import Path
import pytest
from notus.memory import ARCHITECTURES, estimate_memory, launch_plan, GIB
from notus.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
NOTUS = Path(sys.executable).parent/'notus'
M7, MX = ARCHITECTURES['mistral-7b'], ARCHITECTURES['mixtral-8x7b']

def plan(name): return launch_plan(load_recipe(ROOT/'recipes'/f'{name}.yaml', dry_run=True))

def test_parameter_counts_match_the_published_sizes():
    assert round(M7.params / 1e9, 2) == 7.24
    assert round(MX.params / 1e9, 1) == 46.7 and round(MX.active_params / 1e9, 1) == 12.9

@pytest.mark.parametrize('name', ['notus-7b-v1', 'notux-8x7b-v1', 'notus-7b-v1-lora', 'zephyr-7b-beta'])
def test_check_prints_the_plan(name, tmp_path):
    "`notus train --check` prints the launch command, the processes, the global batch and the memory per GPU."
    rec = load_recipe(ROOT/'recipes'/f'{name}.yaml', dry_run=True)
    r = subprocess.run([str(NOTUS), 'train', str(ROOT/'recipes'/f'{name}.yaml'), '--check', '--json-report', str(tmp_path/'r.json')],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    t, n = rec.training, rec.launch.num_processes
    gb = t.per_device_train_batch_size * t.gradient_accumulation_steps * n
    assert f"global batch {gb} = {t.per_device_train_batch_size} per device x {t.gradient_accumulation_steps} accumulation x {n} process" in r.stdout
    assert ('accelerate launch --config_file recipes/accelerate/' in r.stdout) == (n > 1), r.stdout
    assert f'train recipes/{name}.yaml' in r.stdout
    assert 'GiB per GPU' in r.stdout and 'B parameters' in r.stdout
    rep = json.loads((tmp_path/'r.json').read_text())['plan']
    assert (rep['world_size'], rep['global_batch_size']) == (n, gb)
    if name == 'notus-7b-v1': assert gb == 64 and n == 8

def test_full_7b_fits_8x80gb_without_offload():
    z = plan('zephyr-7b-beta').chosen
    assert not z.offload and z.fits(80), z
    assert not estimate_memory(M7, 8, 'none', optim='rmsprop').fits(80)     # without sharding it does not fit at all

def test_full_7b_fits_8x40gb_with_offload():
    p = plan('notus-7b-v1')
    assert p.chosen.offload and p.chosen.fits(40), p.chosen

@pytest.mark.xfail(strict=True, reason="the count puts Notus's ZeRO-3 step without offload at about 26 GiB per GPU; the published "
                   "runs used offload on 40 GB cards (and alignment-handbook#22 reports OOM on 8 x 46 GB without it), so real "
                   "ZeRO-3 overheads exceed the count: only a measurement on GPUs settles it")
def test_full_7b_needs_offload_on_8x40gb():
    assert not plan('notus-7b-v1').estimates['ZeRO-3'].fits(40)

def test_lora_7b_fits_one_80gb_card():
    p = plan('notus-7b-v1-lora')
    assert p.world_size == 1 and p.chosen.fits(80) and p.chosen.reference == 0, p.chosen

def test_mixtral_full_on_8x80gb_needs_offload():
    "Notux 8x7B: the ZeRO-3 model states alone exceed 80 GB per GPU without offload; with offload (Notux's config) it fits."
    p = plan('notux-8x7b-v1')
    off, no = p.chosen, p.estimates['ZeRO-3']
    assert off.offload and off.fits(80), off
    assert not no.fits(80) and (no.policy + no.gradients + no.optimizer) > 80 * GIB, no

def test_model_states_match_deepspeeds_own_estimate():
    "ZeRO-3 model states with AdamW: DeepSpeed's estimate_zero3_model_states_mem_needs, where DeepSpeed is importable."
    ds = pytest.importorskip('deepspeed.runtime.zero.stage3')
    e = estimate_memory(M7, 8, 'zero3', per_device_batch=1, max_length=128)
    _, gpu, _ = ds.estimate_zero3_model_states_mem_needs(M7.params, M7.largest_module, num_gpus_per_node=8, cpu_offload=False)
    assert e.policy + e.gradients + e.optimizer + e.gathered / 2 == pytest.approx(gpu, rel=1e-6)
