"Reading and writing preference pairs in every published layout, checked against the raw rows the layouts were built from."
import hashlib, json, os
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, pytest, datasets
from layouts import (LAYOUT_NAMES, PLAIN_LAYOUTS, expected_pairs, generated_rows, real_file, real_rows_available, split_of, source_rows,
                     write_layout)
from notus.core import NotusError
from notus.pairs import (LAYOUTS, message_text, normalize_pairs, pair_texts, read_pairs, swap_pairs, to_layout, write_pairs)

needs_real = pytest.mark.skipif(not real_rows_available(), reason='the shared reference data (../shared/data) is absent')
ROWS = {'generated': generated_rows, 'real': lambda: None}   # None: layouts.py takes the 1,000 real rows
SCORED = {'notus', 'trl_standard', 'trl_conversational', 'trl_implicit_prompt', 'h4_binarized', 'allenai_cleaned'}
RATED = {'notus', 'argilla_flat', 'argilla_cleaned'}   # layouts.py writes ratings as score / 2

def sha(s): return hashlib.sha256(s.encode('utf-8')).hexdigest()

def by_split(ds, exp):
    "Pairs of (read rows, expected rows) per split (one pair for a single Dataset)."
    if isinstance(ds, datasets.DatasetDict): return [(ds[k].to_list(), [e for e in exp if e['split'] == k]) for k in ds]
    return [(ds.to_list(), exp)]

def rows_param(kind):
    if kind == 'real' and not real_rows_available(): pytest.skip('the shared reference data (../shared/data) is absent')
    return ROWS[kind]()

def test_layout_names_are_the_readers():
    assert set(LAYOUT_NAMES) == set(LAYOUTS)

@pytest.mark.parametrize('kind', ['generated', 'real'])
@pytest.mark.parametrize('multi_turn', [False, True])
@pytest.mark.parametrize('name', LAYOUT_NAMES)
def test_every_layout_reads_back_to_the_source_texts(name, multi_turn, kind, tmp_path):
    rows = rows_param(kind)
    path = write_layout(name, tmp_path, rows=rows, multi_turn=multi_turn)
    ds, layout = read_pairs(path)
    assert layout == name
    exp = expected_pairs(name, rows=rows, multi_turn=multi_turn)
    n = 0
    for got, want in by_split(ds, exp):
        assert len(got) == len(want) and len(want) > 0
        for g, w in zip(got, want):
            assert g['prompt'] == w['prompt']
            assert g['chosen'] == [{'content': w['chosen'], 'role': 'assistant'}]
            assert g['rejected'] == [{'content': w['rejected'], 'role': 'assistant'}]
            if name in SCORED: assert (g['chosen_score'], g['rejected_score']) == (w['chosen_score'], w['rejected_score'])
            if name in RATED: assert (g['chosen_rating'], g['rejected_rating']) == (w['chosen_score'] / 2, w['rejected_score'] / 2)
            assert isinstance(g['prompt_id'], str) and len(g['prompt_id']) == 64
        n += len(got)
    assert n == len(exp)
    if multi_turn and name not in PLAIN_LAYOUTS:   # some prompts really have several turns (and a system message)
        turns = [len(e['prompt']) for e in exp]
        assert max(turns) == 4 and 3 in turns and 1 in turns

def test_generated_rows_keep_the_real_quirks():
    rows = generated_rows()
    assert sum(r['chosen'] == '' for r in rows) == 1 and sum(r['rejected'] == '' for r in rows) == 1
    assert any(r['metadata']['score_chosen'] == r['metadata']['score_rejected'] for r in rows)

@needs_real
def test_the_real_file_as_published():
    "The shared file nests the scores in `metadata`; its ties and empty answers come through, nothing is dropped."
    raw = [json.loads(l) for l in open(real_file(), encoding='utf-8') if l.strip()]
    ds, layout = read_pairs(real_file())
    assert layout == 'trl_standard' and len(ds) == len(raw) == 1000
    assert ds['chosen_score'] == [r['metadata']['score_chosen'] for r in raw]
    assert ds['rejected_score'] == [r['metadata']['score_rejected'] for r in raw]
    assert ds['source_index'] == [r['source_index'] for r in raw]
    ties = sum(r['metadata']['score_chosen'] == r['metadata']['score_rejected'] for r in raw)
    assert ties == 111 and int((np.array(ds['chosen_score']) == np.array(ds['rejected_score'])).sum()) == ties
    t = pair_texts(ds)
    assert t.prompt.tolist() == [r['prompt'] for r in raw] and t.chosen.tolist() == [r['chosen'] for r in raw]
    assert (t.chosen == '').sum() == 1 and (t.rejected == '').sum() == 1
    assert t.prompt_id.tolist() == [sha(r['prompt']) for r in raw]

@pytest.mark.parametrize('kind', ['generated', 'real'])
def test_prompt_ids_are_stable(kind, tmp_path):
    "Without a prompt_id column the id is the SHA-256 of the prompt text, whatever the layout; a given one is kept."
    rows = rows_param(kind)
    prompts = [e['prompt'][0]['content'] for e in expected_pairs('trl_standard', rows=rows)]
    for name in ('trl_standard', 'trl_conversational', 'trl_implicit_prompt', 'argilla_flat', 'argilla_cleaned'):
        p = write_layout(name, tmp_path/name, rows=rows)
        assert read_pairs(p)[0]['prompt_id'] == [sha(x) for x in prompts] == read_pairs(p)[0]['prompt_id']
    h4 = read_pairs(write_layout('h4_binarized', tmp_path/'h4', rows=rows))[0]
    assert h4['train_prefs']['prompt_id'] == [sha(x) for i, x in enumerate(prompts) if split_of(i) == 'train_prefs']
    multi = [e['prompt'] for e in expected_pairs('trl_conversational', rows=rows, multi_turn=True)]
    got = read_pairs(write_layout('trl_conversational', tmp_path/'m', rows=rows, multi_turn=True))[0]['prompt_id']
    assert got == [sha('\n\n'.join(m['content'] for m in ms)) for ms in multi]

def test_h4_folder_splits(tmp_path):
    rows = generated_rows()
    path = write_layout('h4_binarized', tmp_path, rows=rows)
    assert sorted(p.name.split('-')[0] for p in (path/'data').iterdir()) == sorted(
        ['train_prefs', 'test_prefs', 'train_sft', 'test_sft', 'train_gen', 'test_gen'])
    dd, layout = read_pairs(path)
    assert isinstance(dd, datasets.DatasetDict) and sorted(dd) == ['test_prefs', 'train_prefs']   # *_sft/*_gen are not read
    assert len(dd['test_prefs']) == sum(split_of(i) == 'test_prefs' for i in range(len(rows)))
    assert len(dd['train_prefs']) + len(dd['test_prefs']) == len(rows)
    sft, _ = read_pairs(path, split='train_sft')                                     # asked by name, it is read
    assert isinstance(sft, datasets.Dataset) and len(sft) == len(dd['train_prefs'])
    with pytest.raises(NotusError, match="has no split 'validation'"): read_pairs(path, split='validation')
    # the same splits as files written by write_pairs ({stem}_{split}.jsonl) in a folder read back the same
    out = tmp_path/'mine'; out.mkdir()
    write_pairs(dd, out/'uf.jsonl')
    back, layout = read_pairs(out)
    assert layout == 'notus' and sorted(back) == sorted(dd)
    assert back['test_prefs'].to_list() == dd['test_prefs'].to_list()

def _frame(ds):
    return ds if not isinstance(ds, datasets.DatasetDict) else datasets.concatenate_datasets([ds[k] for k in sorted(ds)])

@pytest.mark.parametrize('suffix', ['.parquet', '.jsonl', '.json', ''])
def test_write_pairs_round_trips(suffix, tmp_path):
    src, _ = read_pairs(write_layout('notus', tmp_path/'in', rows=generated_rows(), multi_turn=True))
    out = write_pairs(src, tmp_path/f'pairs{suffix}')
    back, layout = read_pairs(out)
    assert layout == 'notus' and back.to_list() == src.to_list()

@pytest.mark.parametrize('layout', LAYOUTS)
def test_write_pairs_exports_each_layout(layout, tmp_path):
    "Exported files carry the card's columns and read back to the same texts."
    rows = generated_rows()
    src, _ = read_pairs(write_layout('notus', tmp_path/'in', rows=rows))
    out = write_pairs(src, tmp_path/'out.jsonl', layout=layout)
    first = json.loads(out.read_text(encoding='utf-8').splitlines()[0])
    want_cols = {'trl_standard': {'prompt', 'chosen', 'rejected'}, 'argilla_flat': {'instruction', 'chosen_response', 'chosen_avg_rating'},
                 'h4_binarized': {'prompt', 'prompt_id', 'messages', 'score_chosen'}, 'argilla_cleaned': {'chosen-rating', 'rejected-model'}}
    assert want_cols.get(layout, set()) <= set(first)
    back, seen = read_pairs(out)
    assert seen == layout
    a, b = pair_texts(back), pair_texts(src)
    assert a[['prompt', 'chosen', 'rejected']].equals(b[['prompt', 'chosen', 'rejected']])
    if layout in ('h4_binarized', 'allenai_cleaned', 'notus'): assert back['prompt_id'] == src['prompt_id']

def test_plain_layouts_refuse_multi_turn(tmp_path):
    src, _ = read_pairs(write_layout('notus', tmp_path/'in', rows=generated_rows(), multi_turn=True))
    out = tmp_path/'std.jsonl'
    with pytest.raises(NotusError, match='pairs have a prompt of several messages'): write_pairs(src, out, layout='trl_standard')
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith('.')]

def test_write_is_atomic(tmp_path):
    "A write that fails half way (here: a value JSON cannot hold, in the second batch of rows) leaves the old file."
    out = tmp_path/'pairs.jsonl'
    out.write_text('old\n')
    n = 6000
    t = pa.table({'prompt': [[{'content': 'q', 'role': 'user'}]] * n, 'chosen': [[{'content': 'a', 'role': 'assistant'}]] * n,
                  'rejected': [[{'content': 'b', 'role': 'assistant'}]] * n,
                  'blob': pa.array([None] * 5000 + [b'\x00'] * 1000, pa.binary())})
    with pytest.raises(TypeError): write_pairs(t, out)
    assert out.read_text() == 'old\n' and sorted(p.name for p in tmp_path.iterdir()) == ['pairs.jsonl']
    dd = datasets.DatasetDict({'train_prefs': datasets.Dataset(t.drop_columns('blob')), 'test_prefs': datasets.Dataset(t)})
    with pytest.raises(TypeError): write_pairs(dd, tmp_path/'uf.jsonl')     # a set of files appears together or not at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ['pairs.jsonl']

def test_write_refuses_bad_outputs(tmp_path):
    src = write_layout('notus', tmp_path, rows=generated_rows())
    pairs, _ = read_pairs(src)
    with pytest.raises(NotusError, match=r'unsupported pairs output type \.csv'): write_pairs(pairs, tmp_path/'p.csv')
    with pytest.raises(NotusError, match='would overwrite the input'): write_pairs(pairs, src, inputs=[src])
    with pytest.raises(NotusError, match='unknown pairs layout'): write_pairs(pairs, tmp_path/'p.jsonl', layout='openai')

@pytest.mark.parametrize('suffix', ['.parquet', '.jsonl'])
def test_bytes_do_not_depend_on_chunking(suffix, tmp_path):
    t = normalize_pairs(pa.Table.from_pylist([dict(r, metadata=None) | r['metadata'] for r in generated_rows()]))[0]
    chunked = pa.concat_tables([t.slice(i, 7) for i in range(0, t.num_rows, 7)])
    assert chunked.column('prompt').num_chunks > 1
    a, b = write_pairs(t, tmp_path/f'a{suffix}'), write_pairs(datasets.Dataset(chunked), tmp_path/f'b{suffix}')
    assert a.read_bytes() == b.read_bytes()

@pytest.mark.parametrize('kind', ['generated', 'real'])
def test_swap_pairs(kind, tmp_path):
    rows = rows_param(kind)
    ds, _ = read_pairs(write_layout('notus', tmp_path, rows=rows))
    exp = expected_pairs('notus', rows=rows)
    mask = np.arange(len(ds)) % 2 == 0
    sw = swap_pairs(ds, mask)
    t = pair_texts(sw)
    assert t.chosen.tolist() == [e['rejected'] if m else e['chosen'] for e, m in zip(exp, mask)]
    assert sw.column('chosen_score').to_pylist() == [e['rejected_score'] if m else e['chosen_score'] for e, m in zip(exp, mask)]
    assert sw.column('chosen_model').to_pylist() == [r if m else c for c, r, m in zip(ds['chosen_model'], ds['rejected_model'], mask)]
    assert sw.column('prompt').to_pylist() == ds['prompt']
    assert swap_pairs(sw, mask).to_pylist() == ds.to_list()
    with pytest.raises(NotusError, match='the mask has'): swap_pairs(ds, mask[:-1])

@pytest.mark.parametrize('kind', ['generated', 'real'])
def test_message_text(kind, tmp_path):
    rows = rows_param(kind)
    path = write_layout('trl_implicit_prompt', tmp_path, rows=rows, multi_turn=True)
    raw = pq.read_table(path).to_pylist()
    ds, _ = read_pairs(path)
    assert list(message_text(ds.data.table.column('prompt'), 'first')) == [r['chosen'][0]['content'] for r in raw]
    assert list(message_text(ds.data.table.column('prompt'), 'last')) == [r['chosen'][-2]['content'] for r in raw]
    assert list(message_text(ds.data.table.column('prompt'), 'all')) == ['\n\n'.join(m['content'] for m in r['chosen'][:-1]) for r in raw]
    assert list(message_text(ds.data.table.column('rejected'))) == [r['rejected'][-1]['content'] for r in raw]
    assert pair_texts(ds, prompt_turns='last').prompt.tolist() == [r['chosen'][-2]['content'] for r in raw]

def _bad_inputs(d:Path):
    "(path, part of the message) for inputs a user may give by mistake."
    (d/'uf.jsonl').write_text(json.dumps({'instruction': 'q', 'completions': [], 'source': 'x'}) + '\n')
    (d/'implicit.jsonl').write_text(json.dumps({'chosen': 'q a', 'rejected': 'q b'}) + '\n')
    (d/'null.jsonl').write_text(json.dumps({'prompt': 'q', 'chosen': 'a', 'rejected': 'b'}) + '\n' + json.dumps({'prompt': 'q', 'chosen': None, 'rejected': 'b'}) + '\n')
    (d/'broken.jsonl').write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chos\n')
    (d/'mixed.jsonl').write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": ["q"], "chosen": "a", "rejected": "b"}\n')
    (d/'surrogate.jsonl').write_text('{"prompt": "\\ud800", "chosen": "a", "rejected": "b"}\n')
    (d/'empty_msgs.jsonl').write_text(json.dumps({'prompt': [{'role': 'user', 'content': 'q'}], 'chosen': [], 'rejected': [{'role': 'assistant', 'content': 'b'}]}) + '\n')
    (d/'notjson.json').write_text('just text')
    (d/'empty.jsonl').write_text('')
    (d/'table.csv').write_text('prompt,chosen,rejected\nq,a,b\n')
    (d/'bad.parquet').write_bytes(b'PAR1 not really')
    (d/'emptydir').mkdir()
    return [(d/'uf.jsonl', 'is no preference-pairs layout: found columns instruction, completions, source'),
            (d/'implicit.jsonl', 'no prompt column'), (d/'null.jsonl', 'row 2 has no chosen'), (d/'broken.jsonl', 'line 2 is not valid JSON'),
            (d/'mixed.jsonl', 'do not share one type per column'), (d/'surrogate.jsonl', 'not valid Unicode'),
            (d/'empty_msgs.jsonl', 'row 1 has no chosen'), (d/'notjson.json', 'is not valid JSON'), (d/'empty.jsonl', 'holds no pairs'),
            (d/'table.csv', 'unsupported pairs file type .csv'), (d/'bad.parquet', 'not a readable Parquet file'),
            (d/'emptydir', 'holds no .parquet, .jsonl or .json files'), (d/'missing.parquet', 'no such file or folder'),
            ('', 'is empty')]

def test_errors_are_one_sentence(tmp_path):
    for path, part in _bad_inputs(tmp_path):
        with pytest.raises(NotusError) as e: read_pairs(path)
        msg = str(e.value)
        assert part in msg, (path, msg)
        assert '\n' not in msg and msg.endswith('.') and msg[0] != ' ', msg
        if str(path): assert Path(path).name in msg    # the message names the file

def test_in_memory_inputs():
    t = pa.table({'prompt': ['q'], 'chosen': ['a'], 'rejected': ['b']})
    for src in (t, datasets.Dataset(t), datasets.Dataset(pa.concat_tables([t, t])).select([1])):
        ds, layout = read_pairs(src)
        assert layout == 'trl_standard' and pair_texts(ds).prompt.tolist() == ['q']
    dd, _ = read_pairs(datasets.DatasetDict({'train': datasets.Dataset(t), 'test': datasets.Dataset(t)}))
    assert sorted(dd) == ['test', 'train']

@pytest.mark.slow
def test_read_pairs_speed(tmp_path, capsys):
    """`read_pairs` costs little beyond Arrow's own parse of the file, at any size (NOTUS_PAIRS_BENCH_ROWS rows, default
    20,000; the figures in the notebook are for 100,000)."""
    import os, time, pyarrow.json as pj
    n = int(os.environ.get('NOTUS_PAIRS_BENCH_ROWS', 20_000))
    src = source_rows()
    rows = [dict(r, prompt=r['prompt'] + f' [{i}]') for i, r in enumerate((src * (n // len(src) + 1))[:n])]
    for name in ('trl_standard', 'trl_implicit_prompt', 'h4_binarized', 'notus'):
        p = write_layout(name, tmp_path/name, rows=rows, multi_turn=True)
        files = [p] if p.is_file() else sorted((p/'data').glob('*_prefs-*'))
        t0 = time.perf_counter()
        for f in files: pq.read_table(f) if f.suffix == '.parquet' else pj.read_json(f, read_options=pj.ReadOptions(block_size=1 << 26))
        parse = time.perf_counter() - t0
        t0 = time.perf_counter(); ds, _ = read_pairs(p); took = time.perf_counter() - t0
        got = len(ds) if isinstance(ds, datasets.Dataset) else sum(len(v) for v in ds.values())
        with capsys.disabled(): print(f'\n{name}: {n} rows, Arrow parse {parse:.2f}s, read_pairs {took:.2f}s')
        assert got == n and took <= 3 * parse + 2.0

def test_other_sources(tmp_path):
    "A JSON array, a hub repository snapshot (data/ plus metadata files), a saved dataset, a hub id that cannot be reached."
    rows = [{'prompt': 'q', 'chosen': 'a', 'rejected': 'b'}, {'prompt': 'r', 'chosen': 'c', 'rejected': ''}]
    (tmp_path/'arr.json').write_text(json.dumps(rows))
    ds, layout = read_pairs(tmp_path/'arr.json')
    assert layout == 'trl_standard' and pair_texts(ds)[['prompt', 'chosen', 'rejected']].values.tolist() == [['q', 'a', 'b'], ['r', 'c', '']]
    repo = write_layout('h4_binarized', tmp_path/'repo', rows=generated_rows())
    (repo/'dataset_infos.json').write_text('{"default": {}}'); (repo/'README.md').write_text('---\nlicense: mit\n---\n')
    (repo/'config.json').write_text('{"not": "pairs"}')
    dd, layout = read_pairs(repo)
    assert layout == 'h4_binarized' and sorted(dd) == ['test_prefs', 'train_prefs']
    dd.save_to_disk(str(tmp_path/'saved'))
    back, layout = read_pairs(tmp_path/'saved')
    assert layout == 'notus' and back['train_prefs'].to_list() == dd['train_prefs'].to_list()
    assert read_pairs(tmp_path/'saved', split='test_prefs')[0].to_list() == dd['test_prefs'].to_list()
    with pytest.raises(NotusError) as e: read_pairs('nobody/no-such-pairs')      # tests run with the hub offline
    assert str(e.value).startswith('nobody/no-such-pairs: the hub') and str(e.value).endswith('.')
    assert 'give a local copy instead' in str(e.value)

def test_an_offline_hub_id_fails_at_once_with_the_way_out(tmp_path):
    "A made-up hub id under HF_HUB_OFFLINE=1: the command returns (no retries) with one sentence naming local files."
    import subprocess, sys
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    for verb in ('validate', 'clean'):
        r = subprocess.run([str(Path(sys.executable).parent/'notus'), verb, 'made-up-org/no-such-data'], capture_output=True,
                           text=True, env=env, timeout=60)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and 'give a local copy instead' in lines[0], (verb, r.stderr)

def test_h4_conversation_without_the_user_turn():
    "A whole-conversation row that holds only the answer takes its prompt from the prompt column."
    t = pa.table({'prompt': ['q'], 'prompt_id': ['1'], 'chosen': [[{'content': 'a', 'role': 'assistant'}]],
                  'rejected': [[{'content': 'b', 'role': 'assistant'}]], 'messages': [[{'content': 'a', 'role': 'assistant'}]]})
    out, layout = normalize_pairs(t)
    assert layout == 'h4_binarized' and out.column('prompt').to_pylist() == [[{'content': 'q', 'role': 'user'}]]

def test_generated_rows_as_published(tmp_path):
    "The generated stand-in, written as the shared real file is (scores nested in `metadata`), reads like it."
    rows = generated_rows()
    path = tmp_path/'trl.jsonl'
    path.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8')
    ds, layout = read_pairs(path)
    assert layout == 'trl_standard' and 'metadata' not in ds.column_names
    assert ds['chosen_score'] == [r['metadata']['score_chosen'] for r in rows]
    assert ds['source_index'] == [r['source_index'] for r in rows]
    assert pair_texts(ds).chosen.tolist() == [r['chosen'] for r in rows]

def test_implicit_prompt_split_without_trl(monkeypatch):
    "Rows whose conversations differ before their last message split as TRL's `extract_prompt` does, with or without TRL."
    import builtins
    from notus.pairs import _extract_prompt
    u = lambda c: {'content': c, 'role': 'user'}; a = lambda c: {'content': c, 'role': 'assistant'}
    cases = [([u('x'), a('A'), a('B')], [u('x'), a('C')]), ([u('q'), a('a')], [u('q'), a('a')]),
             ([u('q'), a('a'), u('r'), a('s')], [u('q'), a('z')])]
    with_trl = [_extract_prompt(c, r) for c, r in cases]
    assert with_trl[0] == {'prompt': [u('x')], 'chosen': [a('A'), a('B')], 'rejected': [a('C')]}
    real = builtins.__import__
    def no_trl(name, *args, **kw):
        if name.split('.')[0] == 'trl': raise ImportError(name)
        return real(name, *args, **kw)
    monkeypatch.setattr(builtins, '__import__', no_trl)
    assert [_extract_prompt(c, r) for c, r in cases] == with_trl
    t = pa.table({'chosen': [cases[0][0]], 'rejected': [cases[0][1]]})
    assert normalize_pairs(t)[0].column('chosen').to_pylist() == [[a('A'), a('B')]]

def test_write_pairs_takes_dicts(tmp_path):
    "A dict of columns is one table; a dict of tables is a set of splits."
    cols = {'prompt': ['q'], 'chosen': ['a'], 'rejected': ['b']}
    out = write_pairs(cols, tmp_path/'one.jsonl')
    assert json.loads(out.read_text()) == cols | {'prompt': 'q', 'chosen': 'a', 'rejected': 'b'}
    paths = write_pairs({'train': pa.table(cols), 'test': pa.table(cols)}, tmp_path/'two.parquet')
    assert sorted(p.name for p in paths.values()) == ['two_test.parquet', 'two_train.parquet']
    dd, layout = read_pairs(tmp_path/'two.parquet')
    assert layout == 'trl_standard' and sorted(dd) == ['test', 'train']

def test_message_text_by_role_matches_a_loop(tmp_path):
    "The user's turns of multi-turn prompts, joined, as a loop over the Python rows finds them."
    ds, _ = read_pairs(write_layout('trl_conversational', tmp_path, multi_turn=True))
    rows = ds.data.table.column('prompt').to_pylist()
    want = [('\n'.join(ms) if (ms := [m['content'] for m in row if m['role'] == 'user']) else None) for row in rows]
    assert list(message_text(ds.data.table.column('prompt'), 'all', role='user', sep='\n')) == want
    assert any(w and '\n' in w for w in want)                    # some prompts hold several user turns
    last = [([m['content'] for m in row if m['role'] == 'assistant'] or [None])[-1] for row in rows]
    assert list(message_text(ds.data.table.column('prompt'), 'last', role='assistant')) == last
