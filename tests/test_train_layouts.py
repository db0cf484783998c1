"""`notus train` and `notus evaluate` on every published pairs layout: each layout file (built by `tests/layouts.py` from
the real trl-lib rows, multi-turn prompts included) is the `data.source` of `recipes/tiny-cpu.yaml` for a few training
steps, then the run is evaluated on the same file through the real CLI, and `notus train --check` cleans it. The real-row cases skip when the shared
reference data is absent; the generated equivalents always run."""
import io, json, math, contextlib
from pathlib import Path
import pytest
from layouts import LAYOUT_NAMES, write_layout, generated_rows, real_rows_available, expected_pairs, split_of

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT/'recipes'/'tiny-cpu.yaml'
REAL_ROWS = 200          # the first 200 real pairs: enough text for the tokenizer, a few seconds per layout
STEPS = 3

@pytest.fixture(autouse=True)
def _one_thread():
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def _cli(*args) -> tuple:
    "(exit code, stdout, stderr) of the notus command line, run in this process."
    from notus.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()

def _expected_counts(name:str, rows) -> tuple:
    "(pairs read for training, pairs `notus evaluate` scores): a hub-style folder brings its own test_prefs split."
    ex = expected_pairs(name, rows, multi_turn=True)
    if name == 'h4_binarized': return len(ex), sum(e['split'] == 'test_prefs' for e in ex)
    return len(ex), len(ex)

def _train_and_evaluate(name:str, rows, tmp:Path):
    src = write_layout(name, tmp/'data', rows=rows, multi_turn=True)
    out, rep = tmp/'run', tmp/'train.json'
    rc, so, se = _cli('train', TINY, '--output', out, '--json-report', rep, '--override', f'data.source={src}',
                      'data.format=auto', 'data.min_margin=0', f'training.max_steps={STEPS}', 'training.save_strategy=no',
                      'training.logging_steps=1')
    assert rc == 0, se[-3000:]
    res = json.loads(rep.read_text())
    n_read, n_eval = _expected_counts(name, rows)
    m = res['metrics']
    assert res['global_step'] == STEPS
    assert m['train_pairs'] + m.get('eval_pairs', 0) == n_read, (m, n_read)
    assert m['eval_pairs'] > 0 and all(math.isfinite(m[k]) for k in ('train_loss', 'eval_loss', 'eval_rewards/margins')), m
    rc, so, se = _cli('evaluate', out, '--pairs', src, '--json')
    assert rc == 0, se[-3000:]
    ev = json.loads(so[so.index('{'):])
    assert ev['layout'] == name and ev['pairs'] == n_eval, (ev['layout'], ev['pairs'], n_eval)
    assert 0 <= ev['accuracy'] <= 1 and math.isfinite(ev['margin']) and math.isfinite(ev['chosen_reward']), ev
    rc, so, se = _cli('evaluate', out, '--json')                    # no --pairs: the run's own held-out pairs
    assert rc == 0, se[-3000:]
    own = json.loads(so[so.index('{'):])
    assert (own['pairs'], Path(own['pairs_file']).name) == (m['eval_pairs'], 'heldout.parquet'), own
    return src

def _multi_turn_reaches_the_template(name:str, src:Path, rows):
    "Multi-turn prompts arrive whole, as message lists, in the pairs the trainer gets (plain layouts: one transcript turn)."
    from notus.recipe import load_recipe
    from notus.dpo import prepare_pairs
    r = load_recipe(TINY, [f'data.source={src}', 'data.min_margin=0'])
    dd, counts = prepare_pairs(r.data)
    assert counts['layout'] == name
    got = {(p[-1]['content'], len(p)) for sp in dd.values() for p in sp['prompt']}
    want = {(e['prompt'][-1]['content'], len(e['prompt'])) for e in expected_pairs(name, rows, multi_turn=True)}
    assert want <= got, sorted(want - got)[:3]
    assert max(n for _, n in got) == (1 if name in ('trl_standard', 'argilla_flat') else 4)

def _check_with_cleaning(name:str, src:Path, rows, tmp:Path):
    "`notus train --check` with data.clean runs the data step on the layout: ties and empty answers dropped, counts add up."
    rep = tmp/'check.json'
    rc, so, se = _cli('train', TINY, '--check', '--json-report', rep, '--override', f'data.source={src}', 'data.clean=true')
    assert rc == 0, se[-3000:]
    d = json.loads(rep.read_text())['data']
    ex = expected_pairs(name, rows, multi_turn=True)
    assert d['checked'] and d['layout'] == name and d['read'] == len(ex)
    assert d['read'] == d['dropped_by_clean'] + d['train'] + d['test'] + d['capped'], d
    bad = sum(e['chosen_score'] == e['rejected_score'] or not e['chosen'].strip() or not e['rejected'].strip() for e in ex)
    assert bad > 0 and d['dropped_by_clean'] >= bad, (d, bad)
    assert 'dropped by cleaning' in so

@pytest.mark.skipif(not real_rows_available(), reason='the shared reference data (trl-lib rows) is absent')
@pytest.mark.parametrize('name', LAYOUT_NAMES)
def test_train_and_evaluate_real_rows(name, tmp_path):
    src = _train_and_evaluate(name, REAL_ROWS, tmp_path)
    _multi_turn_reaches_the_template(name, src, REAL_ROWS)
    _check_with_cleaning(name, src, REAL_ROWS, tmp_path)

@pytest.mark.parametrize('name', ['trl_standard', 'h4_binarized', 'argilla_flat', 'trl_implicit_prompt'])
def test_train_and_evaluate_generated_rows(name, tmp_path):
    rows = generated_rows(60)
    src = _train_and_evaluate(name, rows, tmp_path)
    _multi_turn_reaches_the_template(name, src, rows)
    _check_with_cleaning(name, src, rows, tmp_path)

def test_short_prompt_ids_split(tmp_path):
    "A prompt_id that is not a SHA-256 (e.g. '17') splits into train and test like any other."
    import pyarrow as pa, pyarrow.parquet as pq
    from notus.recipe import DataConfig
    from notus.dpo import prepare_pairs
    rows = [{'prompt_id': str(i), 'prompt': [{'content': f'q{i}', 'role': 'user'}], 'chosen': [{'content': 'good', 'role': 'assistant'}],
             'rejected': [{'content': 'bad', 'role': 'assistant'}]} for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path/'p.parquet')
    dd, c = prepare_pairs(DataConfig(source=str(tmp_path/'p.parquet'), test_size=0.25))
    assert (c['train'], c['test']) == (30, 10)
    assert not set(dd['train_prefs']['prompt_id']) & set(dd['test_prefs']['prompt_id'])
