"""Judge-output checks through the real command line, on generated files with each defect planted at known places.

What each check should find is computed by the planting (`plant_judge_defects` records what it changed), and the
validation side by `notus.data`; the tests compare the findings of `notus validate` / `notus analyze` with both."""
import json, subprocess, sys
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import pytest
from notus.data import ASPECTS, ultrafeedback_schema, validate_table
from notus.synthetic import make_ultrafeedback, DefectRates, JUDGE_DEFECTS as DEFECTS, plant_judge_defects
from notus.judge import CHECKS, judge_findings, detection_table

NOTUS = str(Path(sys.executable).parent/'notus')
COMPANIONS = {'ten_point_scale': {'rating_out_of_scale'}, 'score_10_low_ratings': {'critique_score_mismatch'},
              'score_1_high_ratings': {'critique_score_mismatch'}}   # a defect another check must also see

def notus(*args):
    return subprocess.run([NOTUS, *map(str, args)], capture_output=True, text=True, timeout=600)

def clean(n=500, seed=11):
    "Generated rows without the generator's own overall_score bug: nothing for the checks to find."
    return make_ultrafeedback(n, seed=seed, rates=DefectRates(inflated_score=0))

def write(table, path):
    if path.suffix == '.parquet': pq.write_table(table, path)
    else: path.write_text(''.join(json.dumps(r) + '\n' for r in table.to_pylist()))
    return path

def found_rows(findings):
    out = {}
    for f in findings: out.setdefault(f['check'], set()).update(f['rows'])
    return out

@pytest.mark.parametrize('suffix', ['.jsonl', '.parquet'])
def test_validate_finds_every_planted_defect(tmp_path, suffix):
    table, truth = plant_judge_defects(clean(), seed=3)
    r = notus('validate', write(table, tmp_path/f'planted{suffix}'), '--json')
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    found = found_rows(rep['findings'])
    for check in CHECKS:
        assert found.get(check, set()) == set(truth.get(check, {}).get('rows', [])), check
    groups = {(f['check'], f.get('group')) for f in rep['findings'] if f.get('by')}
    assert ('ten_point_scale', truth['ten_point_scale']['group']) in groups
    assert ('constant_column', truth['constant_column']['group']) in groups
    assert ('all_na_column', truth['all_na_column']['group']) in groups
    # validation drops exactly the rows of the scale checks, and each finding says how many of its rows it drops
    scale = set().union(*(found.get(c, set()) for c in ('rating_out_of_scale', 'rating_not_a_number', 'rating_malformed', 'score_out_of_scale')))
    dropped = set(rep['dropped_rows'].get('bad_rating', [])) | set(rep['dropped_rows'].get('bad_score', []))
    assert dropped == scale and rep['rows_dropped'] == len(scale)
    for f in rep['findings']: assert f['dropped_by_validation'] == len(set(f['rows']) & dropped), f['check']

def test_validate_on_clean_rows_finds_nothing(tmp_path):
    r = notus('validate', write(clean().data.table, tmp_path/'clean.jsonl'), '--json')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['findings'] == []
    r = notus('validate', tmp_path/'clean.jsonl')
    assert 'judge checks: none of the' in r.stdout

@pytest.mark.parametrize('defect', DEFECTS)
def test_each_defect_alone_is_found_by_its_check_only(defect):
    table, truth = plant_judge_defects(clean(400, seed=4), [defect], seed=4)
    found = found_rows(judge_findings(table))
    assert set(found) == {defect} | COMPANIONS.get(defect, set())
    assert found[defect] == set(truth[defect]['rows']) and truth[defect]['rows']

def test_bundled_bug_is_found_where_planted():
    "The generator's own overall_score bug: tens on completions whose ratings (mean by completions_frame) are low."
    from notus.data import completions_frame
    ds, truth = make_ultrafeedback(1000, seed=8, with_truth=True)
    cf = completions_frame(ds)
    planted = cf.prompt_idx[truth.inflated.to_numpy() & (cf.mean_rating <= 2).to_numpy()]
    f = [f for f in judge_findings(ds) if f['check'] == 'score_10_low_ratings']
    assert len(f) == 1 and f[0]['rows'] == sorted(set(planted)) and f[0]['count'] == len(planted) > 10

def test_below_the_thresholds_nothing_is_called_a_scale_or_a_constant():
    "A few 7s in one model are out of scale, not a 1-10 scale; a constant column in a group of 5 is not judged."
    recs = clean(300, seed=6).to_list()
    model = recs[0]['completions'][0]['model']
    mine = [c for r in recs for c in r['completions'] if c['model'] == model]
    for c in mine[:3]: c['annotations']['honesty']['Rating'] = '7'
    small = [c for r in recs for c in r['completions'] if c['model'] == mine[0]['model']][:5]
    table = pa.Table.from_pylist(recs, schema=ultrafeedback_schema())
    fs = judge_findings(table)
    assert [f['check'] for f in fs] == ['rating_out_of_scale'] and fs[0]['count'] == 3
    assert fs[0]['models'] == {model: 3}
    assert not [f for f in judge_findings(table, min_share=0.0001) if f['check'] == 'constant_column']

def test_rows_are_input_rows_when_validation_drops_some(tmp_path):
    "Rows broken for validation's other reasons shift nothing: findings name rows of the input file."
    table, truth = plant_judge_defects(clean(300, seed=9), ['score_1_high_ratings'], seed=9)
    recs = table.to_pylist()
    for i in range(0, 300, 7): recs[i]['instruction'] = ' '          # empty prompts: dropped by validation
    f = write(pa.Table.from_pylist(recs, schema=ultrafeedback_schema()), tmp_path/'p.jsonl')
    rep = json.loads(notus('validate', f, '--json').stdout)
    assert rep['dropped_by_reason']['empty_prompt'] == len(range(0, 300, 7))
    got = [x for x in rep['findings'] if x['check'] == 'score_1_high_ratings'][0]
    assert got['rows'] == truth['score_1_high_ratings']['rows']
    assert got['dropped_by_validation'] == len(set(got['rows']) & set(range(0, 300, 7)))

def test_raw_rows_broken_every_way_do_not_break_the_checks(tmp_path):
    "The generator's invalid rows (missing fields, one completion, empty text, bad ratings) go through the checks."
    ds = make_ultrafeedback(400, seed=2, invalid_rate=0.5)
    r = notus('validate', write(ds.data.table, tmp_path/'bad.jsonl'), '--json')
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    found = found_rows(rep['findings'])
    scale = set().union(*(found.get(c, set()) for c in ('rating_out_of_scale', 'rating_not_a_number', 'rating_malformed')))
    assert set(rep['dropped_rows']['bad_rating']) <= scale
    _, vrep = validate_table(ds.data.table)
    assert set(vrep.dropped['bad_rating']) <= scale

def test_strict_still_names_the_first_bad_row(tmp_path):
    table, truth = plant_judge_defects(clean(50, seed=1), ['rating_out_of_scale'], seed=1)
    r = notus('validate', write(table, tmp_path/'s.jsonl'), '--strict')
    assert r.returncode == 2 and f"row {truth['rating_out_of_scale']['rows'][0]}:" in r.stderr and 'Traceback' not in r.stderr

def test_analyze_reports_the_findings(tmp_path):
    table, truth = plant_judge_defects(clean(300, seed=12), seed=12)
    r = notus('analyze', write(table, tmp_path/'a.parquet'), '--output', tmp_path/'out', '--no-mismatch', '--no-html', '--json')
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert detection_table(rep['findings'], truth)[['missed', 'found, not planted']].to_numpy().sum() == 0
    md = (tmp_path/'out'/'report.md').read_text()
    heads = [l[3:] for l in md.splitlines() if l.startswith('## ')]
    assert heads[:2] == ['Validation', 'Judge outputs']
    section = md.split('## Judge outputs')[1].split('\n## ')[0]
    for check in truth: assert check in section, check
    assert truth['ten_point_scale']['group'] in section

@pytest.mark.parametrize('share,scale', [(0.5, True), (0.08, False)])
def test_a_ten_point_scale_is_told_from_scattered_typos(share, scale):
    "One model rated 1-10 (half its ratings above 5) is a 1-10 scale; the same model with 8% typos above 5 is not."
    recs, rng = clean(400, seed=13).to_list(), np.random.default_rng(13)
    model = recs[0]['completions'][0]['model']
    for c in (c for r in recs for c in r['completions'] if c['model'] == model):
        for a in ASPECTS:
            if rng.random() < share: c['annotations'][a]['Rating'] = str(rng.integers(6, 11))
    fs = judge_findings(pa.Table.from_pylist(recs, schema=ultrafeedback_schema()))
    assert [(f['by'], f['group']) for f in fs if f['check'] == 'ten_point_scale'] == ([('model', model)] if scale else [])
    assert {f['check'] for f in fs} == ({'ten_point_scale', 'rating_out_of_scale'} if scale else {'rating_out_of_scale'})

def test_generate_data_plants_what_validate_finds(tmp_path):
    "notus generate-data --judge-defects all, then notus validate: the command-line round trip of the detection counts."
    f = tmp_path/'j.parquet'
    r = notus('generate-data', f, '--prompts', 600, '--seed', 21, '--judge-defects', 'all', '--json')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['judge_defects'] == DEFECTS
    _, truth = plant_judge_defects(make_ultrafeedback(600, seed=21), DEFECTS, 0.02, 21)
    found = found_rows(json.loads(notus('validate', f, '--json').stdout)['findings'])
    for check in CHECKS:
        planted = set(truth[check]['rows'])
        if check == 'score_10_low_ratings': assert planted < found[check]     # and the generator's own overall_score bug
        else: assert found[check] == planted, check
    r = notus('generate-data', tmp_path/'x.jsonl', '--prompts', 5, '--judge-defects', 'typo')
    assert r.returncode == 2 and 'unknown defect(s) typo' in r.stderr and not (tmp_path/'x.jsonl').exists()
