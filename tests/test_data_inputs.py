"""Inputs as users have them, through the real `notus` command: numeric ratings, lone surrogates, folders (per-source,
mixed formats, split files), zero rows, scores out of range, empty prompts, and generated files with 1% and 30% invalid
rows checked against a plain-Python reading of the same file."""
import json, math, subprocess, sys
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import pytest

NOTUS = str(Path(sys.executable).parent/'notus')
ASPECTS = ['instruction_following', 'honesty', 'truthfulness', 'helpfulness']

def notus(*args):
    return subprocess.run([NOTUS, *map(str, args)], capture_output=True, text=True, timeout=600)

def validate(path, *extra):
    r = notus('validate', path, '--json', *extra)
    assert r.returncode == 0, r.stderr
    assert 'Traceback' not in r.stderr
    return json.loads(r.stdout)

def one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    for w in words: assert w in r.stderr, r.stderr

def comp(model, ratings, score=7.0, response='An answer.'):
    return {'annotations': {a: {'Rating': x, 'Rationale': 'r'} for a, x in zip(ASPECTS, ratings)}, 'critique': 'fine',
            'model': model, 'overall_score': score, 'response': response}

def row(i, ratings=(('5', '4', '3', '2'), ('2', '2', '2', '2')), score=7.0, instruction=None):
    return {'source': 'sharegpt', 'instruction': f'Question {i}?' if instruction is None else instruction,
            'models': ['a', 'b'], 'completions': [comp('a', ratings[0], score, f'Answer a to {i}.'),
                                                  comp('b', ratings[1], 5.0, f'Answer b to {i}.')]}

def write_jsonl(path, rows, raw_lines=()):
    with open(path, 'w', encoding='utf-8') as f:
        for r in rows: f.write(json.dumps(r) + '\n')
        for line in raw_lines: f.write(line + '\n')
    return path

def rating_type(path):
    t = pq.read_schema(path).field('completions').type.value_type.field('annotations').type
    return t.field('honesty').type.field('Rating').type

# --- ratings typed as numbers --------------------------------------------------------------------------------------

@pytest.mark.parametrize('typ', [pa.int64(), pa.float64()])
def test_numeric_ratings_in_parquet_are_ratings(tmp_path, typ):
    rows = [row(i, ratings=((5, 4, 3, 2), (2, 2, 2, 2))) for i in range(6)]
    rows[5]['completions'][0]['annotations']['honesty']['Rating'] = 9          # out of range: bad_rating
    f = tmp_path/'num.parquet'
    t = pa.Table.from_pylist(rows)
    t = t.cast(pa.schema([fld if fld.name != 'completions' else pa.field('completions', pa.list_(pa.struct([
        pa.field('annotations', pa.struct([pa.field(a, pa.struct([('Rating', typ), ('Rationale', pa.string())])) for a in ASPECTS])),
        ('critique', pa.string()), ('model', pa.string()), ('overall_score', pa.float64()), ('response', pa.string())])))
        for fld in t.schema]))
    pq.write_table(t, f)
    assert rating_type(f) == typ
    rep = validate(f)
    assert (rep['rows_kept'], rep['dropped_rows']) == (5, {'bad_rating': [5]})
    r = notus('binarize', f, '--output', tmp_path/'pairs.parquet')
    assert r.returncode == 0, r.stderr
    pairs = pq.read_table(tmp_path/'pairs.parquet')
    assert pairs.num_rows == 5 and pairs.column('chosen_rating').to_pylist() == [3.5] * 5

def test_all_null_rating_column_is_missing_not_a_crash(tmp_path):
    rows = [row(i) for i in range(3)]
    for r in rows:
        for c in r['completions']: c['annotations']['truthfulness']['Rating'] = None
    f = tmp_path/'nulls.parquet'
    pq.write_table(pa.Table.from_pylist(rows), f)
    assert pa.types.is_null(pq.read_schema(f).field('completions').type.value_type.field('annotations').type
                            .field('truthfulness').type.field('Rating').type)
    rep = validate(f)
    assert rep['dropped_rows'] == {'missing_field': [0, 1, 2]}
    for verb in ('binarize', 'curate'):
        r = notus(verb, f, '--output', tmp_path/f'out_{verb}')
        one_line_error(r, 'no valid rows')

def test_saved_dataset_and_json_array_with_numeric_ratings(tmp_path):
    import datasets
    rows = [row(i, ratings=((5, 4, 3, 2), (2, 2, 2, 2))) for i in range(4)]
    datasets.Dataset(pa.Table.from_pylist(rows)).save_to_disk(str(tmp_path/'saved'))
    assert validate(tmp_path/'saved')['rows_kept'] == 4
    rows[2]['completions'][0]['annotations']['honesty']['Rating'] = '3'      # strings and numbers in one JSON array
    rows[3]['instruction'] = 'Question \ud800 3?'
    (tmp_path/'rows.json').write_text(json.dumps(rows, indent=1))
    rep = validate(tmp_path/'rows.json')
    assert (rep['rows_kept'], rep['repaired_rows']) == (4, {'lone_surrogate': [3]})

def test_numeric_ratings_in_jsonl_mixed_with_strings(tmp_path):
    rows = [row(i) for i in range(5)]
    rows[1]['completions'][0]['annotations']['honesty']['Rating'] = 4          # int among strings
    rows[2]['completions'][1]['annotations']['helpfulness']['Rating'] = 2.0    # float
    rows[3]['completions'][0]['annotations']['truthfulness']['Rating'] = 4.5   # not a rating
    rep = validate(write_jsonl(tmp_path/'mixed.jsonl', rows))
    assert (rep['rows_kept'], rep['dropped_rows']) == (4, {'bad_rating': [3]})

# --- text that Python cannot encode ---------------------------------------------------------------------------------

def test_lone_surrogate_is_replaced_and_counted_in_every_verb(tmp_path):
    from notus.synthetic import make_ultrafeedback
    rows = make_ultrafeedback(80, seed=1).to_list()
    rows[2]['instruction'] = 'Question LONE 2?'
    rows[5]['completions'][1]['response'] += ' LOW'
    rows[6]['instruction'] = 'Question PAIR 6?'
    text = '\n'.join(json.dumps(r) for r in rows) + '\n'
    f = tmp_path/'surrogate.jsonl'
    f.write_text(text.replace('LONE', '\\ud800').replace('LOW', '\\udfff').replace('PAIR', '\\ud83d\\ude00'))  # escapes, as JSON writes them
    rep = validate(f)
    assert (rep['rows_kept'], rep['repaired_rows']) == (80, {'lone_surrogate': [2, 5]})
    for verb in (('analyze', '--output', tmp_path/'an'), ('mismatch',), ('binarize', '--output', tmp_path/'p.jsonl'),
                 ('curate', '--output', tmp_path/'cur')):
        r = notus(verb[0], f, *verb[1:])
        assert r.returncode == 0 and 'Traceback' not in r.stderr, (verb, r.stderr[-3000:])
    texts = [json.loads(l)['prompt'][0]['content'] for l in (tmp_path/'p.jsonl').read_text(encoding='utf-8').splitlines()]
    assert 'Question \ufffd 2?' in texts and 'Question \U0001F600 6?' in texts

# --- folders --------------------------------------------------------------------------------------------------------

OPENBMB_FILES = ['evol_instruct', 'false_qa', 'flan', 'sharegpt', 'truthful_qa', 'ultrachat']

def test_per_source_folder_takes_source_from_file_name(tmp_path):
    d = tmp_path/'UltraFeedback'; d.mkdir()
    (d/'README.md').write_text('# not data\n')
    sizes = {}
    for k, name in enumerate(OPENBMB_FILES):
        rows = [{key: v for key, v in row(100 * k + i).items() if key != 'source'} for i in range(k + 2)]
        write_jsonl(d/f'{name}.jsonl', rows); sizes[name] = len(rows)
    rep = validate(d)
    assert rep['rows_in'] == rep['rows_kept'] == sum(sizes.values())
    assert rep['summary']['sources'] == sizes
    assert [f['file'] for f in rep['files']] == [f'{n}.jsonl' for n in OPENBMB_FILES]

def test_mixed_formats_folder_loads_every_file(tmp_path):
    d = tmp_path/'mixed'; d.mkdir()
    pq.write_table(pa.Table.from_pylist([row(i) for i in range(200)]), d/'a.parquet')
    bad = [row(200 + i) for i in range(50)]; bad[7]['instruction'] = '   '
    write_jsonl(d/'b.jsonl', bad)
    rep = validate(d)
    assert (rep['rows_in'], rep['rows_kept'], rep['dropped_rows']) == (250, 249, {'empty_prompt': [207]})
    assert rep['files'] == [{'file': 'a.parquet', 'first_row': 0, 'rows': 200}, {'file': 'b.jsonl', 'first_row': 200, 'rows': 50}]

def test_folder_of_split_files_reads_the_split(tmp_path):
    d = tmp_path/'splits'; d.mkdir()
    write_jsonl(d/'train.jsonl', [row(i) for i in range(7)]); write_jsonl(d/'test.jsonl', [row(i) for i in range(3)])
    assert validate(d)['rows_in'] == 7 and validate(d, '--split', 'test')['rows_in'] == 3
    one_line_error(notus('validate', d, '--split', 'validation'), 'none for split')

# --- zero rows, scores, prompts -------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['zero.parquet', 'zero.jsonl', 'blank.jsonl', 'zero.json', 'zero_saved', 'zero_folder'])
def test_zero_rows_one_rule(tmp_path, name):
    f = tmp_path/name
    if name == 'zero.parquet': pq.write_table(pa.Table.from_pylist([row(0)]).slice(0, 0), f)
    elif name == 'zero_saved':
        import datasets
        datasets.Dataset(pa.Table.from_pylist([row(0)]).slice(0, 0)).save_to_disk(str(f))
    elif name == 'zero_folder': f.mkdir(); (f/'a.jsonl').write_text(''); (f/'b.jsonl').write_text('\n')
    else: f.write_text({'zero.jsonl': '', 'blank.jsonl': '\n  \n', 'zero.json': '[]'}[name])
    one_line_error(notus('validate', f), 'holds no rows')

@pytest.mark.parametrize('fmt', ['jsonl', 'parquet'])
def test_scores_outside_the_range_are_dropped(tmp_path, fmt):
    scores = [float('nan'), float('inf'), -float('inf'), -3.0, 11.0, 10.5, 0.0, 1.0, 10.0, 5.5]
    rows = [row(i, score=s) for i, s in enumerate(scores)]
    f = tmp_path/f's.{fmt}'
    if fmt == 'jsonl': write_jsonl(f, rows)          # NaN and Infinity tokens, as Python's json writes them
    else: pq.write_table(pa.Table.from_pylist(rows), f)
    rep = validate(f)
    assert rep['dropped_rows'] == {'bad_score': [0, 1, 2, 3, 4, 5, 6]} and rep['rows_kept'] == 3
    r = notus('binarize', f, '--output', tmp_path/'p.parquet', '--strategy', 'overall_score')
    assert r.returncode == 0, r.stderr
    assert np.isfinite(pq.read_table(tmp_path/'p.parquet').column('chosen_score').to_numpy()).all()

def test_empty_prompts_are_dropped(tmp_path):
    rows = [row(i) for i in range(6)]
    rows[1]['instruction'], rows[3]['instruction'], rows[4]['instruction'] = '', ' \t\n ', '\u3000'
    rep = validate(write_jsonl(tmp_path/'p.jsonl', rows))
    assert rep['dropped_rows'] == {'empty_prompt': [1, 3, 4]}
    r = notus('curate', tmp_path/'p.jsonl', '--output', tmp_path/'cur')
    if r.returncode == 0:
        for f in (tmp_path/'cur').rglob('*.jsonl'):
            for line in f.read_text().splitlines():
                assert json.loads(line)['prompt'][0]['content'].strip()

def test_a_type_clash_costs_only_its_rows(tmp_path):
    rows = [row(i) for i in range(3000)]
    rows[1234]['models'] = 'gpt-4'                               # Arrow refuses the block; json reads it
    rows[2500]['completions'][1]['overall_score'] = 'high'
    rep = validate(write_jsonl(tmp_path/'clash.jsonl', rows))
    assert (rep['rows_kept'], rep['dropped_rows']) == (2998, {'wrong_type': [1234, 2500]})

def test_truncated_last_line_names_the_line(tmp_path):
    f = write_jsonl(tmp_path/'t.jsonl', [row(i) for i in range(20)], raw_lines=['', json.dumps(row(20))[:40]])
    one_line_error(notus('validate', f), 'line 22', 'truncated')

# --- generated files with invalid rows, against a plain-Python reference -----------------------------------------

def reference_reasons(path):
    "Plain Python, one row at a time: the reason each row of a JSON Lines file must be dropped for (None: kept)."
    def reason(r):
        req = ['source', 'instruction', 'models', 'completions']
        if any(r.get(c) is None for c in req): return 'missing_field'
        comps = r['completions']
        for c in comps:
            if any(c.get(f) is None for f in ('response', 'critique', 'model', 'overall_score')): return 'missing_field'
            if any(c['annotations'].get(a, {}).get('Rating') is None for a in ASPECTS): return 'missing_field'
        if len(comps) < 2: return 'too_few_completions'
        if not r['instruction'].strip(): return 'empty_prompt'
        if any(not c['response'].strip() for c in comps): return 'empty_response'
        ok = {'1', '2', '3', '4', '5', 'N/A'}
        if any(str(c['annotations'][a]['Rating']).strip() not in ok for c in comps for a in ASPECTS): return 'bad_rating'
        if any(not (math.isfinite(c['overall_score']) and 1 <= c['overall_score'] <= 10) for c in comps): return 'bad_score'
        return None
    return [reason(json.loads(line)) for line in open(path, encoding='utf-8') if line.strip()]

@pytest.mark.parametrize('rate', [0.01, 0.3])
def test_invalid_rows_match_a_plain_python_check(tmp_path, rate):
    f = tmp_path/'g.jsonl'
    r = notus('generate-data', f, '--prompts', 1500, '--seed', 4, '--invalid-rate', rate, '--response-chars', 300)
    assert r.returncode == 0, r.stderr
    ref = reference_reasons(f)
    expected = {}
    for i, why in enumerate(ref):
        if why: expected.setdefault(why, []).append(i)
    assert 0.5 * rate < sum(map(len, expected.values())) / len(ref) < 1.5 * rate + 0.01
    rep = validate(f)
    assert rep['dropped_rows'] == expected
    assert rep['rows_kept'] == ref.count(None)
    # the same rows as Parquet give the same account
    r = notus('generate-data', tmp_path/'g.parquet', '--prompts', 1500, '--seed', 4, '--invalid-rate', rate, '--response-chars', 300)
    assert r.returncode == 0, r.stderr
    assert validate(tmp_path/'g.parquet')['dropped_rows'] == expected

def test_kept_rows_are_input_row_numbers(tmp_path):
    from notus.data import load_ultrafeedback
    from notus.synthetic import write_ultrafeedback
    f = write_ultrafeedback(tmp_path/'k.jsonl', 400, seed=8, invalid_rate=0.2)
    ref = reference_reasons(f)
    ds, rep = load_ultrafeedback(f)
    assert rep.kept_rows.tolist() == [i for i, why in enumerate(ref) if why is None]
    src = [json.loads(l)['instruction'] for l in open(f, encoding='utf-8')]
    assert ds['instruction'] == [src[i] for i in rep.kept_rows]
    assert 'kept_rows' not in rep.to_dict()

# --- generate-data arguments ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('args,words', [(['--prompts', 0], ['at least 1']), (['--invalid-rate', 2], ['between 0 and 1']),
                                        (['--response-chars', -5], ['at least 1'])])
def test_generate_data_refuses_bad_arguments(tmp_path, args, words):
    one_line_error(notus('generate-data', tmp_path/'x.parquet', *args), *words)
    assert not (tmp_path/'x.parquet').exists()

def test_generate_data_refuses_unknown_output_types(tmp_path):
    one_line_error(notus('generate-data', tmp_path/'g.csv', '--prompts', 3), 'unsupported output type .csv')
    assert list(tmp_path.iterdir()) == []
