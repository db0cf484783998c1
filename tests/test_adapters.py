"""HelpSteer2 and Nectar through the UltraFeedback engine: generated files in each layout (JSON Lines and Parquet) are
read, validated, binarized, analysed and cleaned, and the pairs are the ones the datasets' own numbers call for
(computed here from the fixtures, not by notus)."""
import json, re, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
import pytest
from notus.adapters import (HELPSTEER2_ASPECTS, HELPSTEER2_WEIGHTS, UF_LAYOUT, make_helpsteer2, make_nectar, write_table)
from notus.binarize import binarize
from notus.data import load_ultrafeedback, ultrafeedback_schema

NOTUS = str(Path(sys.executable).parent/'notus')

def notus(*args):
    return subprocess.run([NOTUS, *map(str, args)], capture_output=True, text=True, timeout=600)

def write(table, path):
    "A fixture file in the dataset's own layout: Parquet by pyarrow, JSON Lines one object per row."
    path = Path(path)
    if path.suffix == '.parquet': pq.write_table(table, path)
    else: path.write_text(''.join(json.dumps(r) + '\n' for r in table.to_pylist()))
    return path

def question(prompt_messages) -> int:
    "The fixture's question number in a prompt (works for single- and multi-turn prompts)."
    return int(re.search(r'Question (\d+):', prompt_messages[-1]['content']).group(1))

def helpsteer2_truth(raw: pa.Table, weights: dict) -> pd.DataFrame:
    "Per fixture question: both responses and their weighted sums, by hand from the raw rows."
    df = raw.to_pandas()
    df['q'] = df.prompt.str.extract(r'Question (\d+):', expand=False).astype(int)
    df['w'] = sum(weights.get(a, 0) * df[a] for a in HELPSTEER2_ASPECTS)
    df['hc'] = df.helpfulness + df.correctness
    return df

def test_adapted_schema_is_ultrafeedbacks():
    assert UF_LAYOUT.equals(ultrafeedback_schema(), check_metadata=False)

@pytest.mark.parametrize('suffix', ['.jsonl', '.parquet'])
def test_helpsteer2_pairs_follow_the_weighted_rule(tmp_path, suffix):
    raw = make_helpsteer2(120, seed=7)
    ds, rep = load_ultrafeedback(write(raw, tmp_path/f'hs2{suffix}'))
    assert (rep.rows_in, rep.rows_kept, rep.rows_dropped) == (120, 120, 0)     # rows are prompts: 240 responses in pairs
    truth = helpsteer2_truth(raw, HELPSTEER2_WEIGHTS['nemotron_reward'])
    pairs, brep = binarize(ds, 'overall_score')
    assert brep.pairs_out == 120
    by_text = dict(zip(truth.response, truth.w))
    for p in pairs:
        q = question(p['prompt'])
        best = truth[truth.q == q].w.max()
        assert by_text[p['chosen'][0]['content']] == best, q
        assert by_text[p['rejected'][0]['content']] <= best
    # mean_rating: mean of helpfulness and correctness (the two mapped aspects); equal means are all_tied
    pairs, brep = binarize(ds, 'mean_rating')
    hc = truth.groupby('q').hc.agg(['max', 'min'])
    assert brep.counts.get('all_tied', 0) == int((hc['max'] == hc['min']).sum())
    by_hc = dict(zip(truth.response, truth.hc))
    for p in pairs:
        assert by_hc[p['chosen'][0]['content']] == hc.loc[question(p['prompt']), 'max'] > by_hc[p['rejected'][0]['content']]

def test_helpsteer2_weights_change_the_pairs(tmp_path):
    "The rule is an option: helpfulness alone and the default weights pick differently on some prompts, each as computed by hand."
    raw = make_helpsteer2(200, seed=3)
    f = write(raw, tmp_path/'hs2.jsonl')
    chosen = {}
    for name in ('helpfulness', 'nemotron_reward'):
        out = tmp_path/f'{name}.parquet'
        r = notus('convert', f, '--output', out, '--weights', name)
        assert r.returncode == 0, r.stderr
        ds, _ = load_ultrafeedback(out)
        pairs, _ = binarize(ds, 'overall_score')
        truth = helpsteer2_truth(raw, HELPSTEER2_WEIGHTS[name])
        w = dict(zip(truth.response, truth.w))
        best = truth.groupby('q').w.max()
        chosen[name] = {question(p['prompt']): p['chosen'][0]['content'] for p in pairs}
        assert all(w[c] == best[q] for q, c in chosen[name].items())
    assert sum(chosen['helpfulness'][q] != chosen['nemotron_reward'][q] for q in chosen['helpfulness']) > 0

@pytest.mark.parametrize('suffix', ['.jsonl', '.parquet'])
def test_nectar_pairs_follow_the_ranks(tmp_path, suffix):
    raw = make_nectar(80, seed=5)
    ds, rep = load_ultrafeedback(write(raw, tmp_path/f'nectar{suffix}'))
    assert (rep.rows_in, rep.rows_kept) == (80, 80)
    rank = {a['answer']: a['rank'] for row in raw.column('answers').to_pylist() for a in row}
    for strategy, rejected in [('mean_rating', None), ('overall_score', None), ('best_worst', 7.0)]:
        pairs, brep = binarize(ds, strategy)
        assert brep.pairs_out == 80, strategy
        assert all(rank[p['chosen'][0]['content']] == 1.0 for p in pairs), strategy
        assert all(rank[p['rejected'][0]['content']] > 1.0 for p in pairs), strategy
        if rejected: assert all(rank[p['rejected'][0]['content']] == rejected for p in pairs)
    # all_pairs: every pair of answers whose rounded ratings differ, the better-ranked one chosen
    pairs, _ = binarize(ds, 'all_pairs')
    assert all(rank[p['chosen'][0]['content']] < rank[p['rejected'][0]['content']] for p in pairs)
    levels = np.floor(1 + 4 * (7 - np.arange(1, 8)) / 6 + 0.5)                  # 5 4 4 3 2 2 1
    per_prompt = sum(levels[i] > levels[j] for i in range(7) for j in range(7))
    assert len(pairs) == 80 * per_prompt

def test_planted_defects_are_dropped_and_counted(tmp_path):
    "What is wrong in a HelpSteer2 or Nectar row reaches validation and is counted; counts add up."
    hs = make_helpsteer2(10, seed=0).to_pandas()
    hs.loc[2, 'helpfulness'] = 5          # outside 0-4 -> rating '6' -> bad_rating (prompt 1)
    hs.loc[6, 'correctness'] = None       # missing -> missing_field (prompt 3)
    hs.loc[9, 'coherence'] = None         # not a UltraFeedback aspect: overall_score missing -> missing_field (prompt 4)
    hs = hs.drop(index=[14]).reset_index(drop=True)   # prompt 7 keeps one response -> too_few_completions
    ds, rep = load_ultrafeedback(write(pa.Table.from_pandas(hs, preserve_index=False), tmp_path/'hs.jsonl'))
    assert rep.rows_in == 10 and rep.rows_in == rep.rows_kept + rep.rows_dropped
    assert rep.counts == {'bad_rating': 1, 'missing_field': 2, 'too_few_completions': 1}, rep.counts
    assert sorted(r for v in rep.dropped.values() for r in v) == [1, 3, 4, 7]
    nec = make_nectar(10, seed=0).to_pylist()
    nec[2]['answers'][0]['rank'] = 0.0     # rank outside 1..7 -> rating 6 -> bad_rating
    nec[4]['answers'][3]['rank'] = None    # no rank -> missing rating -> missing_field
    nec[6]['answers'] = nec[6]['answers'][:1]
    ds, rep = load_ultrafeedback(write(pa.Table.from_pylist(nec), tmp_path/'nectar.parquet'))
    assert rep.counts == {'bad_rating': 1, 'missing_field': 1, 'too_few_completions': 1}, rep.counts
    assert rep.rows_kept == 7

def test_the_verbs_run_on_both_layouts(tmp_path):
    "validate, analyze and mismatch read the raw files; convert, binarize and clean take the converted rows."
    files = {'helpsteer2': write(make_helpsteer2(60, seed=2), tmp_path/'hs2.jsonl'),
             'nectar': write(make_nectar(60, seed=2), tmp_path/'nectar.parquet')}
    for name, f in files.items():
        r = notus('validate', f, '--json')
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)['rows_kept'] == 60
        r = notus('analyze', f, '--output', tmp_path/f'{name}_analysis', '--no-html', '--top', '3', '--json')
        assert r.returncode == 0, r.stderr
        assert Path(json.loads(r.stdout)['report']).exists()
        r = notus('mismatch', f, '--top', '3', '--json')
        assert r.returncode == 0, r.stderr
        uf = tmp_path/f'{name}_uf.parquet'
        r = notus('convert', f, '--output', uf, '--json')
        assert r.returncode == 0, r.stderr
        conv = json.loads(r.stdout)
        assert (conv['schema'], conv['rows_in'], conv['rows_out'], conv['prompts']) == (name, 60 * (2 if name == 'helpsteer2' else 1), 60 * (2 if name == 'helpsteer2' else 1), 60)
        r = notus('binarize', uf, '--strategy', 'overall_score', '--output', tmp_path/f'{name}_pairs.parquet', '--json')
        assert r.returncode == 0, r.stderr
        r = notus('clean', tmp_path/f'{name}_pairs.parquet', '--output', tmp_path/f'{name}_clean.parquet', '--json')
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        assert rep['rows_in'] == rep['rows_out'] + rep['rows_dropped']

@pytest.mark.parametrize('args,msg', [
    (['--schema', 'nectar'], "does not have nectar's columns"),
    (['--weights', 'politeness=1'], 'unknown HelpSteer2 aspect(s) politeness'),
    (['--schema', 'alpaca'], "unknown schema 'alpaca'"),
])
def test_convert_errors_are_one_line(tmp_path, args, msg):
    f = write(make_helpsteer2(3), tmp_path/'hs2.jsonl')
    r = notus('convert', f, '--output', tmp_path/'out.parquet', *args)
    assert r.returncode == 2 and msg in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path/'out.parquet').exists()

def test_convert_refuses_ultrafeedback(tmp_path):
    from notus.data import sample_path
    r = notus('convert', sample_path(), '--output', tmp_path/'out.parquet')
    assert r.returncode == 2 and 'the input is ultrafeedback' in r.stderr, r.stderr

def test_saved_dataset_folder_and_gzipped_json_lines(tmp_path):
    "A HelpSteer2 dataset saved by datasets is adapted by the reader; the published .jsonl.gz is read by notus convert."
    import datasets, gzip
    raw = make_helpsteer2(15, seed=4)
    datasets.Dataset(raw).save_to_disk(str(tmp_path/'saved'))
    ds, rep = load_ultrafeedback(tmp_path/'saved')
    assert (rep.rows_in, rep.rows_kept, len(ds)) == (15, 15, 15)
    with gzip.open(tmp_path/'train.jsonl.gz', 'wt') as f: f.write(''.join(json.dumps(r) + '\n' for r in raw.to_pylist()))
    r = notus('convert', tmp_path/'train.jsonl.gz', '--output', tmp_path/'uf.parquet')
    assert r.returncode == 0, r.stderr
    assert load_ultrafeedback(tmp_path/'uf.parquet')[1].rows_kept == 15
