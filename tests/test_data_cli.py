"""The data layer through the real command line: the bundled sample, a 64k-prompt generated file, malformed inputs."""
import json, subprocess, sys
from pathlib import Path
import pyarrow.parquet as pq
import pytest

NOTUS = str(Path(sys.executable).parent/'notus')

def notus(*args):
    return subprocess.run([NOTUS, *map(str, args)], capture_output=True, text=True, timeout=600)

def test_bundled_sample_is_the_generator_output(tmp_path):
    from notus.data import sample_path
    from notus.synthetic import write_ultrafeedback
    fresh = write_ultrafeedback(tmp_path/'s.parquet', 300, seed=0)
    assert fresh.read_bytes() == sample_path().read_bytes()          # byte for byte
    assert pq.read_table(fresh).equals(pq.read_table(sample_path()))
    assert sample_path().stat().st_size < 1_000_000

def test_validate_64k(tmp_path):
    f = tmp_path/'uf64k.parquet'
    r = notus('generate-data', f, '--prompts', 64000, '--seed', 3)
    assert r.returncode == 0, r.stderr
    r = notus('validate', f, '--json')
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep['rows_in'], rep['rows_kept'], rep['rows_dropped']) == (64000, 64000, 0)
    assert rep['summary']['completions'] == 256000
    assert sum(rep['summary']['sources'].values()) == 64000

@pytest.mark.parametrize('name,content,msg', [
    ('trunc.jsonl', '{"source": "x", "instruction": "y", "models": [], "complet', 'truncated file'),
    ('junk.parquet', bytes(range(256)) * 20, 'not a readable Parquet'),
    ('binary.jsonl', b'\x00\xff\xfe' * 100, 'not valid UTF-8'),
    ('wrong.jsonl', '{"text": "hello"}\n', 'missing column(s)'),
    ('empty.jsonl', '', 'holds no rows'),
])
def test_malformed_inputs_fail_with_one_line(tmp_path, name, content, msg):
    f = tmp_path/name
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = notus('validate', f)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and msg in r.stderr and 'Traceback' not in r.stderr

def test_strict_mode_names_row_and_field(tmp_path):
    from notus.synthetic import make_ultrafeedback
    rows = make_ultrafeedback(5, seed=1).to_list()
    rows[3]['completions'][2]['annotations']['honesty']['Rating'] = 'great'
    f = tmp_path/'bad.jsonl'
    f.write_text('\n'.join(json.dumps(r) for r in rows))
    r = notus('validate', f, '--strict')
    assert r.returncode == 2 and 'row 3' in r.stderr and 'honesty' in r.stderr
    r = notus('validate', f, '--json')
    rep = json.loads(r.stdout)
    assert rep['dropped_by_reason'] == {'bad_rating': 1} and rep['rows_kept'] == 4

def test_hub_id_offline_fails_with_one_line():
    import os
    r = subprocess.run([NOTUS, 'validate', 'openbmb/UltraFeedback'], capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'openbmb/UltraFeedback: the hub is switched off' in r.stderr and 'give a local copy instead' in r.stderr

def test_hub_layout_directory_goes_through_load_dataset(tmp_path):
    from notus.synthetic import make_ultrafeedback
    (tmp_path/'repo'/'data').mkdir(parents=True)
    make_ultrafeedback(40, seed=9).to_parquet(str(tmp_path/'repo'/'data'/'train-00000-of-00001.parquet'))
    r = notus('validate', tmp_path/'repo', '--json')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['rows_kept'] == 40

def test_all_rows_invalid(tmp_path):
    f = tmp_path/'one.jsonl'
    f.write_text(json.dumps({'source': 's', 'instruction': 'i', 'models': ['a'], 'completions': [
        {'annotations': {a: {'Rating': '3'} for a in ['instruction_following', 'honesty', 'truthfulness', 'helpfulness']},
         'critique': 'c', 'model': 'a', 'overall_score': 1, 'response': 'r'}]}) + '\n')
    r = notus('validate', f, '--json')
    assert r.returncode == 0 and json.loads(r.stdout)['dropped_by_reason'] == {'too_few_completions': 1}
    for verb in ('binarize', 'curate'):
        r = notus(verb, f, '--output', tmp_path/'out')
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'no valid rows' in r.stderr, r.stderr
