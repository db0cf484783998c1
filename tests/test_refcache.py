"""The reference log-prob cache on real pairs (the bundled UltraFeedback sample, binarized two ways) with TRL's real
DPOTrainer: cached values equal TRL's own precomputed ones and a plain one-sequence-at-a-time computation done here;
a run on other pairs computes exactly the sequences the first did not (counted here from TRL's tokenized columns);
`notus train` with `launch.reference_cache` reads a filled cache instead of computing."""
import copy, json, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTUS = Path(sys.executable).parent/'notus'
TINY = ROOT/'recipes'/'tiny-cpu.yaml'

@pytest.fixture(scope='module')
def setup():
    "Training pairs of two strategies over the same prompts, one tokenizer and one start model for both."
    import torch
    from notus.recipe import load_recipe
    from notus.dpo import prepare_pairs
    from notus.template import tokenizer_texts, build_tiny_tokenizer, build_tiny_model
    torch.set_num_threads(1)
    r = load_recipe('tiny-cpu')
    dd = {s: prepare_pairs({**r.data.__dict__, 'strategy': s})[0] for s in ('mean_rating', 'overall_score')}
    tok = build_tiny_tokenizer(sum((tokenizer_texts(d['train_prefs']) for d in dd.values()), []), 1000)
    return r, dd, tok, build_tiny_model(tok, seed=0)

def _trainer(setup, strategy, cache=None, max_length=128):
    from trl import DPOConfig, DPOTrainer
    from notus.refcache import cached_dpo_trainer
    r, dd, tok, model0 = setup
    args = DPOConfig(output_dir='unused', precompute_ref_log_probs=True, use_cpu=True, bf16=False, report_to='none',
                     max_length=max_length, per_device_train_batch_size=8, per_device_eval_batch_size=16,
                     activation_checkpointing=False, disable_tqdm=True)
    d = dd[strategy]
    cls, kw = (cached_dpo_trainer(), {'reference_cache': cache}) if cache else (DPOTrainer, {})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return cls(model=copy.deepcopy(model0), args=args, train_dataset=d['train_prefs'], eval_dataset=d['test_prefs'],
                   processing_class=tok, **kw)

def _plain_logps(model, ds, max_length, side):
    "Sum of the reference's log-probs over a side's kept completion tokens, one unpadded sequence at a time."
    import torch
    out = []
    for p, c in zip(ds['prompt_ids'], ds[f'{side}_ids']):
        ids = (list(p) + list(c))[:max_length]
        x = torch.tensor([ids])
        with torch.no_grad(): lp = torch.log_softmax(model(x).logits[0, :-1].float(), -1).gather(1, x[0, 1:, None])[:, 0]
        out.append(float(lp[len(p) - 1:].sum()))
    return np.array(out)

def _sequences(ds, max_length)->set:
    "The distinct (kept token ids, prompt length) of a tokenized dataset's chosen and rejected sequences, in plain Python."
    return {(tuple((list(p) + list(c))[:max_length]), min(len(p), max_length))
            for side in ('chosen', 'rejected') for p, c in zip(ds['prompt_ids'], ds[f'{side}_ids'])}

def test_cached_equal_fresh_and_plain(setup, tmp_path):
    fresh = _trainer(setup, 'mean_rating')
    cached = _trainer(setup, 'mean_rating', tmp_path/'cache')
    for split in ('train_dataset', 'eval_dataset'):
        f, c = getattr(fresh, split), getattr(cached, split)
        assert len(c) == len(f) > 0
        for k in ('ref_chosen_logps', 'ref_rejected_logps'):
            np.testing.assert_allclose(c[k], f[k], rtol=1e-4, atol=1e-3)
    ev = cached.eval_dataset
    for side in ('chosen', 'rejected'):
        np.testing.assert_allclose(ev[f'ref_{side}_logps'], _plain_logps(setup[3], ev, 128, side), rtol=1e-4, atol=1e-3)
    st = cached.ref_cache_stats
    assert st['train']['cached'] == 0 and st['train']['computed'] == len(_sequences(cached.train_dataset, 128))
    # the held-out pairs share no prompt with the training pairs, so only their own repeats are found
    assert st['eval']['computed'] == len(_sequences(ev, 128) - _sequences(cached.train_dataset, 128))

def test_changed_data_computes_only_new_sequences(setup, tmp_path):
    first = _trainer(setup, 'mean_rating', tmp_path/'cache')
    again = _trainer(setup, 'mean_rating', tmp_path/'cache')
    assert again.ref_cache_stats['train']['computed'] == again.ref_cache_stats['eval']['computed'] == 0
    np.testing.assert_array_equal(again.train_dataset['ref_chosen_logps'], first.train_dataset['ref_chosen_logps'])
    other = _trainer(setup, 'overall_score', tmp_path/'cache')
    seen = _sequences(first.train_dataset, 128) | _sequences(first.eval_dataset, 128)
    new_train = _sequences(other.train_dataset, 128) - seen
    new_eval = _sequences(other.eval_dataset, 128) - seen - new_train
    st = other.ref_cache_stats
    assert 0 < st['train']['computed'] == len(new_train) < len(_sequences(other.train_dataset, 128))
    assert st['eval']['computed'] == len(new_eval)
    assert st['train']['cached'] + st['train']['computed'] <= st['train']['sequences']
    fresh = _trainer(setup, 'overall_score')
    np.testing.assert_allclose(other.train_dataset['ref_rejected_logps'], fresh.train_dataset['ref_rejected_logps'], rtol=1e-4, atol=1e-3)

def test_other_length_limit_is_another_context(setup, tmp_path):
    _trainer(setup, 'mean_rating', tmp_path/'cache')
    t = _trainer(setup, 'mean_rating', tmp_path/'cache', max_length=96)
    assert t.ref_cache_stats['train']['cached'] == 0
    assert len(list((tmp_path/'cache').iterdir())) == 2

def test_notus_train_reads_the_cache(tmp_path):
    "Two `notus train` runs of the tiny recipe on one cache: the second computes nothing and trains as well."
    reps = []
    for name in ('a', 'b'):
        rep = tmp_path/f'{name}.json'
        r = subprocess.run([str(NOTUS), 'train', str(TINY), '--output', str(tmp_path/name), '--json-report', str(rep), '--override',
                            f'launch.reference_cache={tmp_path/"cache"}', 'training.num_train_epochs=2'],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert 'reference log-probs of train' in r.stdout
        reps.append(json.loads(rep.read_text())['metrics'])
    a, b = reps
    assert a['reference_computed'] > 0 and a['reference_cached'] + a['reference_computed'] <= a['reference_sequences']
    assert b['reference_computed'] == 0 and b['reference_cached'] == b['reference_sequences'] == a['reference_sequences']
    assert b['eval_rewards/accuracies'] == pytest.approx(a['eval_rewards/accuracies'], abs=0.05)
    assert a['eval_rewards/accuracies'] > 0.7

def test_refused_settings(tmp_path):
    from notus.core import NotusError
    from notus.recipe import load_recipe
    with pytest.raises(NotusError, match='precompute_ref_log_probs'):
        load_recipe('tiny-cpu', [f'launch.reference_cache={tmp_path}', 'training.precompute_ref_log_probs=false'])
    (tmp_path/'file').write_text('x')
    r = subprocess.run([str(NOTUS), 'train', str(TINY), '--output', str(tmp_path/'run'), '--override', f'launch.reference_cache={tmp_path/"file"}'],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'is a file' in r.stderr and 'Traceback' not in r.stderr

def test_two_processes_share_one_cache(tmp_path):
    "Under `accelerate launch` with 2 CPU processes: one line and one shard per dataset from the main process; a second run computes nothing."
    import os, re, shutil
    acc = shutil.which('accelerate', path=str(NOTUS.parent))
    metrics = []
    for name in ('a', 'b'):
        rep = tmp_path/f'{name}.json'
        r = subprocess.run([acc, 'launch', '--config_file', str(ROOT/'recipes'/'accelerate'/'cpu_ddp.yaml'), str(NOTUS), 'train', str(TINY),
                            '--output', str(tmp_path/name), '--json-report', str(rep), '--override', f'launch.reference_cache={tmp_path/"cache"}',
                            'training.num_train_epochs=1', 'training.save_strategy=no'],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, 'TQDM_DISABLE': '1'})
        assert r.returncode == 0, r.stderr[-3000:]
        lines = re.findall(r'notus: reference log-probs of (\w+): .* (\d+) computed', r.stdout)
        assert [k for k, _ in lines] == ['train', 'eval'], r.stdout[-2000:]
        metrics.append(json.loads(rep.read_text())['metrics'])
    a, b = metrics
    shards = list((tmp_path/'cache').glob('*/part-*.parquet'))
    assert len(shards) == 2 and a['reference_computed'] > 0 and b['reference_computed'] == 0
    assert b['reference_cached'] == a['reference_sequences'] and b['eval_rewards/accuracies'] == pytest.approx(a['eval_rewards/accuracies'], abs=1e-6)
