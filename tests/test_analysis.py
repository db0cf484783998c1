"""notus.analysis against independent computations (plain Python loops over the raw rows), and `notus analyze`
end to end: every plot written and embedded, the rows validation dropped counted on the page and the suspicious
records pointing at rows of the input file, malformed input refused with one sentence."""
import json, os, subprocess, sys
from collections import Counter, defaultdict
from pathlib import Path
import numpy as np, pandas as pd, pytest
import matplotlib; matplotlib.use('Agg')
from notus.data import ASPECTS, completions_frame, load_ultrafeedback
from notus.synthetic import make_ultrafeedback
from notus.analysis import (joint_counts, model_summary, na_rates, overview, rating_counts, score_counts,
                            source_summary)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

@pytest.fixture(scope='module')
def data():
    ds = make_ultrafeedback(600, seed=21)
    return ds, ds.to_list(), completions_frame(ds)

def _ratings(c):
    return [float(c['annotations'][a]['Rating']) if c['annotations'][a]['Rating'] != 'N/A' else None for a in ASPECTS]

def _mean(c):
    r = [x for x in _ratings(c) if x is not None]
    return sum(r) / len(r) if r else None

def test_rating_counts_and_na_rates_match_a_loop(data):
    ds, rows, cf = data
    counts = {a: Counter(c['annotations'][a]['Rating'] for r in rows for c in r['completions']) for a in ASPECTS}
    rc = rating_counts(cf)
    for a in ASPECTS:
        for level in ['1', '2', '3', '4', '5', 'N/A']: assert rc.loc[level, a] == counts[a].get(level, 0), (a, level)
    n = sum(len(r['completions']) for r in rows)
    na = na_rates(cf)
    for a in ASPECTS: assert na[a] == pytest.approx(counts[a]['N/A'] / n)
    assert na['any aspect'] == pytest.approx(sum(any(x is None for x in _ratings(c)) for r in rows for c in r['completions']) / n)

def test_overview_and_scores_match_a_loop(data):
    ds, rows, cf = data
    comps = [c for r in rows for c in r['completions']]
    ov = overview(cf).value
    assert (ov['prompts'], ov['completions']) == (len(rows), len(comps))
    assert ov['sources'] == len({r['source'] for r in rows})
    assert ov['models'] == len({c['model'] for c in comps})
    assert ov['overall_score == 10'] == sum(c['overall_score'] == 10 for c in comps)
    assert score_counts(cf).to_dict() == dict(Counter(c['overall_score'] for c in comps))
    pairs = [(c['overall_score'], _mean(c)) for c in comps if _mean(c) is not None]
    x, y = np.array(pairs).T
    assert ov['pearson(overall_score, mean rating)'] == pytest.approx(np.corrcoef(x, y)[0, 1])

def test_group_summaries_match_a_loop(data):
    ds, rows, cf = data
    by_model, by_source = defaultdict(list), defaultdict(list)
    for r in rows:
        for c in r['completions']:
            by_model[c['model']].append(c); by_source[r['source']].append(c)
    ms, ss = model_summary(cf), source_summary(cf)
    for table, groups in ((ms, by_model), (ss, by_source)):
        assert set(table.index) == set(groups)
        for g, cs in groups.items():
            means = [_mean(c) for c in cs if _mean(c) is not None]
            assert table.loc[g, 'completions'] == len(cs)
            assert table.loc[g, 'mean_rating'] == pytest.approx(sum(means) / len(means))
            assert table.loc[g, 'median_rating'] == pytest.approx(float(np.median(means)))
            assert table.loc[g, 'overall_score'] == pytest.approx(np.mean([c['overall_score'] for c in cs]))
            assert table.loc[g, 'share_score_10'] == pytest.approx(np.mean([c['overall_score'] == 10 for c in cs]))
    assert list(ms.mean_rating) == sorted(ms.mean_rating, reverse=True)

def test_joint_counts_match_a_loop(data):
    ds, rows, cf = data
    want = Counter()
    for r in rows:
        for c in r['completions']:
            m = _mean(c)
            if m is None: continue
            s = int(c['overall_score'])                      # whole points: 9.5 counts as 9
            lo = min(int((m - 1) // 0.5), 7)                 # half-point bins from 1, the last includes 5
            want[(s, f'{1 + lo / 2:g}-{1.5 + lo / 2:g}')] += 1
    jc = joint_counts(cf)
    got = {(s, b): int(jc.loc[s, b]) for s in jc.index for b in jc.columns if jc.loc[s, b]}
    assert got == dict(want)

def _notus(*args, cwd=ROOT):
    env = {**os.environ, 'MPLBACKEND': 'Agg'}
    return subprocess.run([str(BIN/'notus'), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)

def test_analyze_cli_writes_every_plot_and_the_report(tmp_path):
    r = _notus('analyze', '--output', tmp_path/'out')
    assert r.returncode == 0, r.stderr
    out = tmp_path/'out'
    pngs = sorted(p.name for p in out.glob('*.png'))
    assert pngs == ['aspect_ratings.png', 'disagreement.png', 'joint.png', 'length.png', 'mean_rating.png', 'models.png',
                    'na_rates.png', 'overall_score.png', 'sources.png', 'suspicion.png']
    md, html = (out/'report.md').read_text(), (out/'report.html').read_text()
    for p in pngs:
        assert f']({p})' in md and f'src="{p}"' in html, p
        assert (out/p).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    from PIL import Image
    assert all(Image.open(out/p).size[0] == 800 for p in pngs)       # docs width
    for t in ['overview', 'rating_counts', 'na_rates', 'score_counts', 'models', 'sources', 'joint_counts']:
        assert (out/f'{t}.csv').exists(), t
    summ = json.loads((out/'summary.json').read_text())
    ds, _ = load_ultrafeedback()
    assert summ['overview']['data'][summ['overview']['index'].index('prompts')] == [len(ds)]
    assert 'Strategy disagreement' in md and 'Most suspicious completions' in md

def test_analyze_cli_on_a_jsonl_file_without_mismatch(tmp_path):
    from notus.synthetic import write_ultrafeedback
    p = write_ultrafeedback(tmp_path/'uf.jsonl', 40, seed=2)
    r = _notus('analyze', p, '--output', tmp_path/'o', '--no-mismatch', '--no-html')
    assert r.returncode == 0, r.stderr
    assert not (tmp_path/'o'/'report.html').exists() and not (tmp_path/'o'/'suspicion.png').exists()
    assert (tmp_path/'o'/'joint.png').exists()

@pytest.mark.parametrize('name,content,msg', [
    ('other.parquet', None, 'not UltraFeedback data'),
    ('trunc.jsonl', '{"source": "x", "instruction": "y", "mod', 'not valid JSON Lines'),
    ('empty.jsonl', '\n', 'holds no rows'),
    ('missing.parquet', 'SKIP', 'no such file'),
])
def test_analyze_cli_refuses_malformed_input_in_one_sentence(tmp_path, name, content, msg):
    p = tmp_path/name
    if content is None: pd.DataFrame({'text': ['a', 'b']}).to_parquet(p)
    elif content != 'SKIP': p.write_text(content)
    r = _notus('analyze', p, '--output', tmp_path/'out')
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and 'Traceback' not in r.stderr, r.stderr

def test_all_rows_invalid_is_one_sentence(tmp_path):
    rows = make_ultrafeedback(3, seed=1).to_list()
    for r in rows: r['completions'] = r['completions'][:1]            # too few completions: every row dropped
    p = tmp_path/'bad.jsonl'
    p.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    r = _notus('analyze', p, '--output', tmp_path/'out')
    assert r.returncode == 2 and 'no valid rows' in r.stderr.strip().splitlines()[-1], r.stderr

def test_analyze_counts_dropped_rows_and_names_input_rows(tmp_path):
    "Rows broken at known positions: the page says how many were dropped, suspicious.csv names rows of the file."
    rows = make_ultrafeedback(200, seed=13).to_list()
    broken = [0, 3, 4, 120]
    for i in broken: rows[i]['completions'] = rows[i]['completions'][:1]          # too few completions
    p = tmp_path/'dirty.jsonl'
    p.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    r = _notus('analyze', p, '--output', tmp_path/'o', '--no-html')
    assert r.returncode == 0, r.stderr
    assert 'validation: 196 of 200 rows kept, 4 dropped' in r.stdout, r.stdout
    md = (tmp_path/'o'/'report.md').read_text()
    assert '196 of 200 rows passed validation; 4 were dropped' in md
    sus = pd.read_csv(tmp_path/'o'/'suspicious.csv')
    assert len(sus) > 5 and not set(sus.row) & set(broken)
    for x in sus.itertuples():
        assert rows[x.row]['instruction'] == x.instruction
        assert rows[x.row]['completions'][x.completion_idx]['response'] == x.response
