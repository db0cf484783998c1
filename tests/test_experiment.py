"""`notus experiment` end to end on CPU (tiny recipe, bundled sample): tables, plot and Markdown written, every model
trained from the same start and evaluated on the same held-out pairs, and the data-level agreement recomputed here
with plain Python from the UltraFeedback rows."""
import contextlib, io, json, time
from pathlib import Path
import numpy as np, pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU = ROOT/'experiments'/'critique-vs-ratings-cpu.yaml'
GPU = ROOT/'experiments'/'critique-vs-ratings-7b-lora.yaml'
STRATEGIES = ['overall_score', 'overall_score_fixed', 'mean_rating', 'best_worst']

@pytest.fixture(scope='module')
def out(tmp_path_factory):
    from notus.cli import main
    d = tmp_path_factory.mktemp('exp')/'cpu'
    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()): rc = main(['experiment', str(CPU), '--output', str(d)])
    assert rc == 0
    assert time.time() - t0 < 180
    return d

def test_writes_table_plot_and_report(out):
    res = pd.read_csv(out/'results.csv')
    assert len(res) == 16 and set(res.trained_on) == set(res.evaluated_on) == set(STRATEGIES)
    assert res.accuracy.between(0, 1).all() and np.isfinite(res.margin).all()
    assert (res.groupby('evaluated_on').pairs.nunique() == 1).all()        # the same held-out pairs for every model
    own = res[res.trained_on == res.evaluated_on].set_index('trained_on').accuracy
    assert (own > 0.5).all(), own                                         # each model learnt its own data
    assert (out/'results.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and (out/'results.png').stat().st_size > 10_000
    md = (out/'results.md').read_text()
    assert 'Smoke run' in md and '| trained_on |' in md
    info = json.loads((out/'results.json').read_text())
    assert info['smoke'] is True and info['recipe'] == 'tiny-cpu' and len(info['training']) == 4
    assert info['test_prompts'] == 60 and info['train_prompts'] == 240

def test_same_starting_point(out):
    "Every run was trained from one tokenizer and one start model: same vocabulary, same rebuilt reference."
    import torch
    from notus.evaluate import load_run
    vocabs, refs = [], []
    for s in STRATEGIES:
        _, ref, tok, _ = load_run(out/'runs'/s)
        vocabs.append(tok.get_vocab()); refs.append(ref.model.embed_tokens.weight)
    assert all(v == vocabs[0] for v in vocabs)
    assert all(torch.equal(r, refs[0]) for r in refs)

def _plain_rows():
    from notus.data import load_ultrafeedback
    ds, _ = load_ultrafeedback(None)
    rows = []
    for r in ds:
        ms = [np.mean([float(c['annotations'][a]['Rating']) for a in c['annotations'] if c['annotations'][a]['Rating'] not in ('N/A', None)])
              if c['annotations'] else np.nan for c in r['completions']]
        rows.append((ms, [c['overall_score'] for c in r['completions']]))
    return rows

def test_agreement_recomputed_in_plain_python(out):
    ag = pd.read_csv(out/'agreement.csv').set_index('strategy')
    assert list(ag.index) == STRATEGIES
    rows = _plain_rows()
    # overall_score (Zephyr): chosen = first completion with the highest overall_score; is it the top-rated one?
    top, n = 0, 0
    for ms, sc in rows:
        if sum(not np.isnan(s) for s in sc) < 2: continue
        c = int(np.nanargmax(sc)); n += 1
        top += ms[c] >= np.nanmax(ms)
    assert ag.loc['overall_score', 'pairs'] == n
    assert abs(ag.loc['overall_score', 'chosen_top_rated'] - top / n) < 1e-9
    assert ag.loc['mean_rating', 'agrees_mean_rating'] == 1.0 and ag.loc['best_worst', 'chosen_top_rated'] == 1.0
    assert ag.loc['overall_score_fixed', 'agrees_mean_rating'] > ag.loc['overall_score', 'agrees_mean_rating']

def test_gpu_experiment_validates_without_gpu():
    from notus.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): rc = main(['experiment', str(GPU), '--check', '--json'])
    assert rc == 0
    got = json.loads(buf.getvalue())
    assert got['recipe'] == 'notus-7b-v1-lora' and got['strategies'] == STRATEGIES

def test_bad_experiment_file(tmp_path):
    from notus.cli import main
    (tmp_path/'x.yaml').write_text('name: x\nrecipe: tiny-cpu\nstrategies: [critique_score]\n')
    err = io.StringIO()
    with contextlib.redirect_stderr(err): rc = main(['experiment', str(tmp_path/'x.yaml')])
    assert rc == 2 and 'unknown strategy critique_score' in err.getvalue() and err.getvalue().count('\n') == 1

def test_rerun_reuses_finished_runs(out):
    "A second run on the same folder reuses the four trained models (same recipe, same pairs) and finds the same results."
    from notus.cli import main
    before = pd.read_csv(out/'results.csv')
    with contextlib.redirect_stdout(io.StringIO()): rc = main(['experiment', str(CPU), '--output', str(out)])
    assert rc == 0
    info = json.loads((out/'results.json').read_text())
    assert [t['seconds'] for t in info['training']] == [0.0] * 4
    pd.testing.assert_frame_equal(pd.read_csv(out/'results.csv'), before)
    src = pd.read_csv(out/'results_by_source.csv')
    assert (src.groupby(['trained_on', 'evaluated_on']).pairs.sum().sort_index().to_numpy()
            == before.set_index(['trained_on', 'evaluated_on']).pairs.sort_index().to_numpy()).all()

def test_runs_share_the_reference_cache(out):
    "The four runs computed each distinct reference sequence once: one cache row per computed sequence, no key twice."
    import pyarrow as pa, pyarrow.parquet as pq
    info = json.loads((out/'results.json').read_text())
    tr, rf = pd.DataFrame(info['training']), info['reference_forward']
    ctx = [d for d in (out/'reference_cache').iterdir() if d.is_dir()]
    assert len(ctx) == 1                                                  # one start model, one tokenizer: one context
    keys = pa.concat_tables([pq.read_table(p) for p in ctx[0].glob('part-*.parquet')]).column('key').to_pylist()
    assert len(keys) == len(set(keys)) == rf['cached'] == tr.ref_computed.sum()
    assert (tr.ref_precomputed == 2 * (tr.train_pairs + tr.test_pairs)).all()
    assert tr.ref_computed.iloc[0] > 0 and (tr.ref_computed.iloc[1:] < tr.ref_precomputed.iloc[1:]).all()
    assert rf['cached'] < rf['precomputed'] < rf['live']
    assert 'Reference forward passes' in (out/'results.md').read_text()
