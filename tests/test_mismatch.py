"""notus.mismatch against the planted defects of notus.synthetic and against plain-Python recomputations on raw rows:
the detector's precision and recall, the strategy disagreement, the upstream repair, the three bands, attach_suspicion,
and the CLI (bands, --top within a band, rows of the input file after validation dropped rows)."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest
import matplotlib; matplotlib.use('Agg')
from notus.data import ASPECTS, completions_frame, load_ultrafeedback, prompt_id
from notus.synthetic import DefectRates, make_ultrafeedback, write_ultrafeedback
from notus.binarize import compare_choices
from notus.mismatch import (attach_suspicion, detector_quality, fix_overall_score, inflated_chosen,
                            score_suspicion, suspicious_records)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _mean(c):
    r = [float(c['annotations'][a]['Rating']) for a in ASPECTS if c['annotations'][a]['Rating'] != 'N/A']
    return sum(r) / len(r) if r else None

def _first_max(vals):
    ok = [(v, -i) for i, v in enumerate(vals) if v is not None]
    return -max(ok)[1]

@pytest.fixture(scope='module')
def gen():
    ds, truth = make_ultrafeedback(8000, seed=101, with_truth=True)
    return ds, truth, ds.to_list(), completions_frame(ds, text=True)

# --- the detector on planted defects -------------------------------------------------------------------------

@pytest.mark.parametrize('seed,rates', [(101, None), (202, None),
                                        (303, DefectRates(inflated_score=0.10, inflated_mid=0.5, honest_ten=0.08))])
def test_detector_recall_and_precision_on_planted_defects(seed, rates):
    ds, truth = make_ultrafeedback(6000, seed=seed, rates=rates, with_truth=True)
    cf = completions_frame(ds, text=True)
    q = detector_quality(score_suspicion(cf), truth)
    assert q['inflated'] > 500
    assert q['recall'] >= 0.95 and q['precision'] >= 0.9, q
    # precision and recall recomputed by hand from the flags and the truth, row by row
    flags = score_suspicion(cf).flagged.to_numpy(); inf = truth.inflated.to_numpy()
    assert q['true_positives'] == int(sum(f and i for f, i in zip(flags, inf)))

def test_ratings_alone_are_enough_and_critiques_help(gen):
    ds, truth, rows, cf = gen
    q0 = detector_quality(score_suspicion(cf, text_weight=0), truth)
    q1 = detector_quality(score_suspicion(cf), truth)
    assert q0['recall'] >= 0.95 and q0['precision'] >= 0.9, q0
    assert q1['recall'] >= q0['recall']

def test_suspicion_without_text_matches_the_formula(gen):
    ds, truth, rows, cf = gen
    sc = score_suspicion(cf, text_weight=0)
    comps = [c for r in rows for c in r['completions']]
    want = [min(max(((c['overall_score'] / 2 - _mean(c)) if _mean(c) is not None else 0) / 4, 0), 1) for c in comps]
    np.testing.assert_allclose(sc.suspicion.to_numpy(), want)
    want_flag = [c['overall_score'] >= 8 and _mean(c) is not None and c['overall_score'] / 2 - _mean(c) >= 1.5 for c in comps]
    assert sc.flagged.tolist() == want_flag

def test_inflated_chosen_under_overall_score(gen):
    "How many chosen responses of the overall_score strategy are inflated: the detector's count vs the truth."
    ds, truth, rows, cf = gen
    inf = truth.set_index(['prompt_idx', 'completion_idx']).inflated
    chosen_true = sum(bool(inf[(i, _first_max([c['overall_score'] for c in r['completions']]))]) for i, r in enumerate(rows))
    got = inflated_chosen(score_suspicion(cf), 'overall_score')
    assert got['pairs'] == len(rows)
    assert abs(got['chosen_flagged'] - chosen_true) <= 0.03 * chosen_true, (got, chosen_true)
    assert chosen_true > 0.8 * truth.inflated.sum()               # a 10 wins: most inflated ones become chosen
    assert inflated_chosen(score_suspicion(cf), 'mean_rating')['chosen_flagged'] < 0.05 * chosen_true   # only where every other completion is worse still

# --- disagreement (notus.binarize.compare_choices) ---------------------------------------------------------------------------------------------

def test_disagreement_matches_a_loop(gen):
    ds, truth, rows, cf = gen
    differs, by_src = [], {}
    for r in rows:
        means = [_mean(c) for c in r['completions']]
        rated = [m for m in means if m is not None]
        if len(rated) < 2 or len(set(rated)) == 1: continue       # mean_rating makes no pair
        d = _first_max(means) != _first_max([c['overall_score'] for c in r['completions']])
        differs.append(d); by_src.setdefault(r['source'], []).append(d)
    dis = compare_choices(cf)
    assert dis.n_compared == len(differs)
    assert dis.share_differs == pytest.approx(np.mean(differs))
    for s, v in by_src.items(): assert dis.by_source.loc[s, 'share_differs'] == pytest.approx(np.mean(v)), s

def test_repair_reduces_disagreement(gen):
    ds, truth, rows, cf = gen
    fixed, _ = fix_overall_score(ds)
    before, after = compare_choices(cf), compare_choices(completions_frame(fixed))
    assert after.share_differs < before.share_differs - 0.05, (before, after)

# --- the upstream repair --------------------------------------------------------------------------------------

def test_fix_overall_score_matches_a_loop_and_keeps_the_schema(gen, tmp_path):
    ds, truth, rows, cf = gen
    fixed, rep = fix_overall_score(ds)
    want, review, counts = [], [], {'inflated': 0, 'review': 0, 'kept': 0, 'unrated': 0}
    for i, r in enumerate(rows):
        for j, c in enumerate(r['completions']):
            s, m = c['overall_score'], _mean(c)
            if s == 10:
                band = 'unrated' if m is None else 'inflated' if m <= 2 else 'review' if m <= 4 else 'kept'
                counts[band] += 1
                if band == 'inflated': s = 1.0
                if band in ('review', 'unrated'): review.append((i, j))
            want.append(s)
    assert rep.counts == counts
    got_rows = fixed.to_list()
    assert [c['overall_score'] for r in got_rows for c in r['completions']] == want
    assert sorted(zip(rep.review.prompt_idx, rep.review.completion_idx)) == review
    assert fixed.features == ds.features
    # nothing but overall_score changed
    strip = lambda rs: [{**r, 'completions': [{k: v for k, v in c.items() if k != 'overall_score'} for c in r['completions']]} for r in rs]
    assert strip(got_rows) == strip(rows)
    # the repaired rows go through the pipeline unchanged: Parquet, strict validation, binarize
    import pyarrow.parquet as pq
    from notus.binarize import binarize
    pq.write_table(fixed.data.table, tmp_path/'fixed.parquet')
    back, vrep = load_ultrafeedback(tmp_path/'fixed.parquet', strict=True)
    assert vrep.rows_kept == len(rows)
    pairs, brep = binarize(back, 'overall_score')
    assert brep.pairs_out == len(rows)
    # every planted low-band inflated completion was repaired
    low = truth.inflated.to_numpy() & ~truth.inflated_mid.to_numpy()
    assert (completions_frame(fixed).overall_score.to_numpy()[low] == 1.0).all()

# --- for human review -----------------------------------------------------------------------------------------

def test_attach_suspicion_reads_each_side_from_its_completion(gen):
    ds, truth, rows, cf = gen
    from notus.binarize import binarize
    pairs, _ = binarize(ds, 'overall_score')
    got = attach_suspicion(pairs, ds, text_weight=0).to_pandas()
    by_key = {}
    for r in rows:
        for c in r['completions']:
            m = _mean(c)
            s = min(max(((c['overall_score'] / 2 - m) if m is not None else 0) / 4, 0), 1)
            k = (prompt_id(r['instruction']), c['response'], c['overall_score'])
            by_key[k] = max(by_key.get(k, 0), s)
    for side in ('chosen', 'rejected'):
        want = [by_key[(p, msg[0]['content'], sc)] for p, msg, sc in zip(got.prompt_id, got[side], got[f'{side}_score'])]
        np.testing.assert_allclose(got[f'{side}_suspicion'], want)
    np.testing.assert_allclose(got.suspicion, np.maximum(got.chosen_suspicion, got.rejected_suspicion))

def test_suspicious_records_are_ranked_and_flagged(gen):
    ds, truth, rows, cf = gen
    recs = suspicious_records(ds, top=50)
    assert len(recs) == 50 and recs.flagged.all()
    assert (np.diff(recs.suspicion.to_numpy()) <= 0).all()
    inf = truth.set_index(['prompt_idx', 'completion_idx']).inflated
    assert inf.loc[list(zip(recs.prompt_idx, recs.completion_idx))].all()     # the top of the list is all planted
    for r in recs.head(5).itertuples():
        assert r.instruction == rows[r.prompt_idx]['instruction']
        assert r.critique == rows[r.prompt_idx]['completions'][r.completion_idx]['critique']

# --- command line ---------------------------------------------------------------------------------------------

def _notus(*args):
    return subprocess.run([str(BIN/'notus'), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, 'MPLBACKEND': 'Agg'}, timeout=600)

def _bands_by_hand(rows, text_weight=0):
    "Band of every completion from the raw rows (ratings only: the detector with text_weight 0), in a plain loop."
    assert text_weight == 0
    out = {}
    for i, r in enumerate(rows):
        for j, c in enumerate(r['completions']):
            s, m = c['overall_score'], _mean(c)
            if s == 10 and m is not None and m <= 2: b = 'inflated'
            elif s == 10 and m is not None and m <= 4: b = 'review'
            elif s >= 8 and m is not None and s / 2 - m >= 1.5: b = 'other'
            else: continue
            out[(i, j)] = (b, min(max((s / 2 - m) / 4, 0), 1))
    return out

def test_mismatch_cli_json(tmp_path):
    p = write_ultrafeedback(tmp_path/'uf.parquet', 400, seed=9)
    r = _notus('mismatch', p, '--top', '7', '--json')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ds, truth = make_ultrafeedback(400, seed=9, with_truth=True)
    assert out['completions'] == 1600
    assert out['overall_score_10'] == sum(c['overall_score'] == 10 for row in ds['completions'] for c in row)
    assert list(out['bands']) == ['inflated', 'review', 'other'] and 'flagged' not in out
    assert out['validation'] == {'rows_in': 400, 'rows_kept': 400, 'rows_dropped': 0, 'dropped_by_reason': {}}
    assert len(out['records']) == 7
    inf = truth.set_index(['prompt_idx', 'completion_idx']).inflated
    assert all(inf[(x['row'], x['completion_idx'])] for x in out['records'])
    assert all(x['reason'].startswith('overall_score 10 but mean rating') for x in out['records'])

def test_mismatch_bands_against_planted_defects_and_a_loop(tmp_path):
    "Counts per band through the CLI = a plain loop over the raw rows; the inflated band is the planted bug."
    p = write_ultrafeedback(tmp_path/'uf.jsonl', 3000, seed=77)
    ds, truth = make_ultrafeedback(3000, seed=77, with_truth=True)
    want = _bands_by_hand(ds.to_list())
    r = _notus('mismatch', p, '--json', '--text-weight', '0', '--top', '0')
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)['bands']
    assert got == {b: sum(v[0] == b for v in want.values()) for b in ('inflated', 'review', 'other')}, got
    low = truth[truth.inflated & ~truth.inflated_mid]
    planted, band = set(zip(low.prompt_idx, low.completion_idx)), {k for k, v in want.items() if v[0] == 'inflated'}
    assert len(planted) > 50 and planted <= band                        # every planted bug is in the band
    assert len(band - planted) <= 0.02 * len(planted)                   # and little else (a rare honest 10 rated <= 2)
    mid = set(zip(truth.prompt_idx[truth.inflated_mid], truth.completion_idx[truth.inflated_mid]))
    assert len(mid - {k for k, v in want.items() if v[0] == 'review'}) <= 0.05 * len(mid)   # an N/A can lift a mean above 4
    assert got['other'] > 0              # the generator plants 9s and 8s with low ratings too

@pytest.mark.parametrize('band', ['inflated', 'review', 'other'])
def test_mismatch_top_ranks_within_the_band(tmp_path, band):
    p = write_ultrafeedback(tmp_path/'uf.parquet', 2000, seed=5)
    want = _bands_by_hand(make_ultrafeedback(2000, seed=5).to_list())
    r = _notus('mismatch', p, '--json', '--text-weight', '0', '--top', '6', '--band', band)
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)['records']
    top = sorted((v[1] for v in want.values() if v[0] == band), reverse=True)[:6]
    assert len(recs) == len(top) >= 3 and {x['band'] for x in recs} == {band}
    np.testing.assert_allclose([x['suspicion'] for x in recs], top)
    assert all(want[(x['row'], x['completion_idx'])][0] == band for x in recs)

def test_mismatch_records_name_the_input_row_after_dropped_rows(tmp_path):
    "Rows broken at known positions: every record points at the right row of the file, and the drops are counted."
    rows = make_ultrafeedback(300, seed=31).to_list()
    broken = {0: 'too_few', 7: 'no_instruction', 8: 'too_few', 150: 'no_instruction', 299: 'too_few'}
    for i, how in broken.items():
        if how == 'too_few': rows[i]['completions'] = rows[i]['completions'][:1]
        else: del rows[i]['instruction']
    p = tmp_path/'dirty.jsonl'
    p.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    r = _notus('mismatch', p, '--json', '--top', '1000')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out['validation']['rows_in'] == 300 and out['validation']['rows_dropped'] == len(broken)
    assert out['validation']['rows_kept'] == 300 - len(broken)
    recs = out['records']
    assert len(recs) > 20 and any(x['row'] > 150 for x in recs)
    for x in recs:
        assert x['row'] not in broken
        src = rows[x['row']]
        assert x['instruction'] == src['instruction']
        assert x['response'] == src['completions'][x['completion_idx']]['response']
    r = _notus('mismatch', p, '--top', '3')
    assert r.returncode == 0 and f"300 rows: 295 kept, 5 dropped by validation" in r.stdout, r.stdout

def test_mismatch_cli_refuses_an_unknown_band(tmp_path):
    r = _notus('mismatch', '--band', 'low')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'inflated, review, other' in r.stderr, r.stderr

def test_mismatch_cli_table_and_malformed_input(tmp_path):
    r = _notus('mismatch', '--top', '3')
    assert r.returncode == 0 and 'inflated' in r.stdout and 'other' in r.stdout, r.stderr
    (tmp_path/'x.json').write_text('[{"a": 1}]')
    r = _notus('mismatch', tmp_path/'x.json')
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'not UltraFeedback' in lines[0], r.stderr
