"Length bias end to end: planted in generated rows, it is found by `notus analyze` and `notus length`, absent in the control, and `--length-balance` reduces it; real TRL pairs and a real tokenizer."
import json, subprocess, sys
from pathlib import Path
import numpy as np, pyarrow.parquet as pq, pytest
from notus.core import shared_file
from notus.data import arrow_table
from notus.synthetic import make_ultrafeedback
from notus.length import plant_length_bias, pair_lengths

ROOT = Path(__file__).resolve().parents[1]
NOTUS = Path(sys.executable).parent/'notus'

def notus_(*args):
    "Run the real `notus` command; returns the completed process (text stdout/stderr)."
    return subprocess.run([str(NOTUS), *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300)

@pytest.fixture(scope='module')
def rows(tmp_path_factory):
    "Generated UltraFeedback rows with a planted length bias, and the same rows with random lengths (the control)."
    d = tmp_path_factory.mktemp('length')
    gen = make_ultrafeedback(400, seed=5)
    out = {}
    for name, per_point in (('planted', 150), ('control', 0)):
        out[name] = d/f'{name}.parquet'
        pq.write_table(arrow_table(plant_length_bias(gen, per_point=per_point, seed=1)), out[name])
    return out

def _length_json(pairs, *args):
    r = notus_('length', pairs, '--json', *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

def test_planted_bias_is_found_and_the_control_is_clean(rows, tmp_path):
    "`notus binarize` then `notus length`: the planted rows give 'chosen longer' for every strategy, the control does not."
    for strategy in ('mean_rating', 'overall_score', 'best_worst'):
        verdicts = {}
        for name, src in rows.items():
            out = tmp_path/f'{name}_{strategy}.parquet'
            r = notus_('binarize', src, '--strategy', strategy, '--output', out)
            assert r.returncode == 0, r.stderr
            s = _length_json(out)['stats'][0]
            verdicts[name] = s['verdict']
            # the share, recomputed here from the written pairs with plain Python
            t = pq.read_table(out).to_pylist()
            assert s['pairs'] == len(t)
            assert s['share_chosen_longer'] == pytest.approx(np.mean([len(p['chosen'][-1]['content']) > len(p['rejected'][-1]['content']) for p in t]))
        assert verdicts == {'planted': 'chosen longer', 'control': 'no clear bias'}, (strategy, verdicts)

def test_length_balance_reduces_the_planted_bias(rows, tmp_path):
    "`--length-balance` keeps the prompts and chosen completions and lowers the share chosen longer and the gap."
    a, b = tmp_path/'a.parquet', tmp_path/'b.parquet'
    for out, extra in ((a, []), (b, ['--length-balance'])):
        r = notus_('binarize', rows['planted'], '--output', out, '--json', *extra)
        assert r.returncode == 0, r.stderr
    sa, sb = _length_json(a)['stats'][0], _length_json(b)['stats'][0]
    assert sa['pairs'] == sb['pairs']
    assert sb['share_chosen_longer'] < sa['share_chosen_longer'] and sb['mean_gap'] < sa['mean_gap']
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.column('chosen').to_pylist() == tb.column('chosen').to_pylist()
    assert ta.column('rejected').to_pylist() != tb.column('rejected').to_pylist()
    assert all(x > y for x, y in zip(tb.column('chosen_rating').to_pylist(), tb.column('rejected_rating').to_pylist()))

def test_analyze_report_has_the_length_sections(rows, tmp_path):
    "`notus analyze` writes the length tables and names the planted bias on its page."
    found = {}
    for name, src in rows.items():
        r = notus_('analyze', src, '--output', tmp_path/name, '--no-mismatch', '--no-html')
        assert r.returncode == 0, r.stderr
        md = (tmp_path/name/'report.md').read_text()
        assert '## Length bias' in md and '## Balancing length' in md and (tmp_path/name/'length.png').exists()
        found[name] = json.loads((tmp_path/name/'length.json').read_text())['length_bias']
    col = lambda t, c: [row[t['columns'].index(c)] for row in t['data']]
    assert set(col(found['planted'], 'verdict')) == {'chosen longer'}
    assert set(col(found['control'], 'verdict')) == {'no clear bias'}

def test_errors_are_one_sentence(rows, tmp_path):
    for args, msg in [((rows['planted'],), 'holds UltraFeedback rows'), ((tmp_path/'none.parquet',), 'no such file'),
                      ((rows['planted'], '--unit', 'tokens'), 'needs --tokenizer'), ((rows['planted'], '--unit', 'lines'), 'unknown --unit')]:
        r = notus_('length', *args)
        assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_tokens_with_a_real_tokenizer(tmp_path):
    "A byte-level BPE tokenizer saved to a folder: `--unit tokens --tokenizer DIR` counts what the tokenizer counts."
    from notus.template import build_tiny_tokenizer
    from notus.binarize import binarize
    pairs, _ = binarize(make_ultrafeedback(40, seed=2))
    texts = [m[-1]['content'] for m in pairs['chosen']] + [m[-1]['content'] for m in pairs['rejected']]
    tok = build_tiny_tokenizer(texts, vocab_size=400)
    tok.save_pretrained(tmp_path/'tok')
    pairs.to_parquet(str(tmp_path/'p.parquet'))
    got = _length_json(tmp_path/'p.parquet', '--unit', 'tokens', '--tokenizer', tmp_path/'tok')['stats'][0]
    n = lambda s: len(tok(s, add_special_tokens=False)['input_ids'])
    c = np.array([n(m[-1]['content']) for m in pairs['chosen']]); r = np.array([n(m[-1]['content']) for m in pairs['rejected']])
    assert got['pairs'] == len(pairs) and got['share_chosen_longer'] == pytest.approx((c > r).mean())
    assert got['chosen_median'] == pytest.approx(np.median(c)) and got['mean_gap'] == pytest.approx((c - r).mean())
    r2 = notus_('length', tmp_path/'p.parquet', '--unit', 'tokens', '--tokenizer', tmp_path/'no-such-tokenizer')
    assert r2.returncode == 2 and 'cannot load the tokenizer' in r2.stderr

@pytest.mark.skipif(shared_file('trl-lib_ultrafeedback_binarized_1000.jsonl') is None, reason='reference pairs not present')
def test_real_trl_pairs():
    "The 1,000 real TRL pairs: every row read, and the share chosen longer is the one plain Python finds."
    f = shared_file('trl-lib_ultrafeedback_binarized_1000.jsonl')
    rows = [json.loads(l) for l in f.read_text(encoding='utf-8').splitlines() if l.strip()]
    s = _length_json(f)['stats'][0]
    assert s['pairs'] == len(rows) == 1000
    assert s['share_chosen_longer'] == pytest.approx(np.mean([len(r['chosen']) > len(r['rejected']) for r in rows]))
    assert s['share_equal'] == pytest.approx(np.mean([len(r['chosen']) == len(r['rejected']) for r in rows]))
    fr = pair_lengths(f)
    assert (fr.chosen_chars.to_numpy() == [len(r['chosen']) for r in rows]).all()
