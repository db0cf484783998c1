"""Cleaning pairs of every published layout, with a per-step account that adds up; ties and empty answers counted
against a plain-Python count of the raw rows; TruthfulQA found by its text when the pairs have no `source`;
decontamination goals on the real benchmarks (and on a generated stand-in that always runs); the CLI path."""
import contextlib, csv, importlib.util, io, json
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, pytest
import datasets
from layouts import LAYOUT_NAMES, write_layout, source_rows, real_rows_available, generated_rows
from notus.core import shared_file
from notus.clean import clean_pairs, user_text, STEPS
from notus.pairs import read_pairs

ROOT = Path(__file__).resolve().parents[1]
HAVE_REAL = real_rows_available() and all(shared_file(f) for f in (
    'TruthfulQA.csv', 'alpaca_eval_notus-7b-v1_model_outputs.json', 'mt_bench_question.jsonl'))
real_only = pytest.mark.skipif(not HAVE_REAL, reason='the shared reference data folder is absent')
SOURCE_LAYOUTS = {'notus', 'allenai_cleaned', 'argilla_flat', 'argilla_cleaned'}   # layouts that carry `source`

def _bench():
    spec = importlib.util.spec_from_file_location('decontamination_bench', ROOT/'bench'/'decontamination.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def plain_counts(rows:list)->dict:
    "Ties, then empty chosen, then empty rejected among the rest, counted over the raw rows in plain Python."
    out = {'tie': 0, 'empty_chosen': 0, 'empty_rejected': 0}
    for r in rows:
        md = r.get('metadata') or {}
        if md['score_chosen'] == md['score_rejected']: out['tie'] += 1
        elif not r['chosen'].strip(): out['empty_chosen'] += 1
        elif not r['rejected'].strip(): out['empty_rejected'] += 1
    return out

def _read_for_clean(name, path):
    "What a user cleans: the file/folder itself; for the hub folder, its two preference splits."
    if name != 'h4_binarized': return path
    dd, _ = read_pairs(path)
    return datasets.DatasetDict({k: dd[k] for k in ('train_prefs', 'test_prefs')})

@pytest.mark.parametrize('multi_turn', [False, True])
@pytest.mark.parametrize('name', LAYOUT_NAMES)
def test_clean_each_layout(name, multi_turn, tmp_path):
    path = write_layout(name, tmp_path, multi_turn=multi_turn)
    src = _read_for_clean(name, path)
    out, rep = clean_pairs(src)
    rep.check()                                          # per step and overall: in = out + dropped, steps chained
    rows = source_rows()
    assert rep.rows_in == len(rows)
    n_out = sum(len(v) for v in out.values()) if isinstance(out, datasets.DatasetDict) else len(out)
    assert rep.rows_out == n_out == rep.rows_in - sum(rep.counts.values())
    expect = plain_counts(rows)
    for k, v in expect.items(): assert rep.counts.get(k, 0) == v, (k, rep.counts)
    ran = [s.step for s in rep.steps]
    assert ran[:2] == ['drop_ties', 'drop_degenerate'] and ran[-1] == 'dedupe'
    assert set(ran) | set(rep.skipped) == set(STEPS) and not set(ran) & set(rep.skipped)
    assert 'no benchmark prompts' in rep.skipped['decontaminate']
    if name in SOURCE_LAYOUTS: assert 'drop_sources' in ran
    else: assert 'truthfulqa=' in rep.skipped['drop_sources']
    # every dropped pair is named by a prompt id of the input, and none of them is in the output
    read, _ = read_pairs(path)
    ids_in = set(read['prompt_id']) if not isinstance(read, datasets.DatasetDict) else {i for v in read.values() for i in v['prompt_id']}
    ids_out = set(out['prompt_id']) if not isinstance(out, datasets.DatasetDict) else {i for v in out.values() for i in v['prompt_id']}
    dropped = rep.dropped_ids()
    assert len(dropped) == rep.rows_in - rep.rows_out and set(dropped) <= ids_in
    assert not {i for i in rep.dropped_ids('tie')} & ids_out
    d = rep.to_dict(ids=True)
    assert d['layout'] == name or (name == 'h4_binarized' and d['layout'] == 'notus')   # a DatasetDict comes in normalised
    assert json.dumps(d)

@real_only
def test_real_file_ties_and_empties():
    "111 ties, 1 empty chosen, 1 empty rejected in the real trl-lib rows, counted against the raw JSON."
    f = shared_file('trl-lib_ultrafeedback_binarized_1000.jsonl')
    raw = [json.loads(l) for l in f.read_text(encoding='utf-8').splitlines() if l.strip()]
    assert plain_counts(raw) == {'tie': 111, 'empty_chosen': 1, 'empty_rejected': 1}
    out, rep = clean_pairs(f)
    assert rep.layout == 'trl_standard'
    assert {k: rep.counts.get(k, 0) for k in ('tie', 'empty_chosen', 'empty_rejected')} == plain_counts(raw)
    kept, rep2 = clean_pairs(f, keep_ties=True, keep_empty=True)
    assert 'drop_ties' in rep2.skipped and not {'tie', 'empty_chosen', 'empty_rejected'} & set(rep2.counts)
    assert len(kept) >= len(out) + 100   # a kept tie can still go for another reason (identical answers, duplicate prompt)

def _planted_trl(tmp_path, questions, every=10):
    "TRL-standard pairs whose every `every`-th prompt is a TruthfulQA question (some with a sentence around it)."
    rows = [dict(r) for r in source_rows(200)]
    planted = {}
    for k, i in enumerate(range(3, len(rows), every)):
        q = questions[(k * 37) % len(questions)]
        rows[i]['prompt'] = [q, f'Please answer carefully. {q}', f'{q.upper()} Thanks!'][k % 3]
        planted[i] = rows[i]['prompt']
    path = tmp_path/'trl.jsonl'
    with open(path, 'w', encoding='utf-8') as fh:
        for r in rows: fh.write(json.dumps(r, ensure_ascii=False) + '\n')
    return path, planted

def _check_truthfulqa(path, planted, tqa):
    out, rep = clean_pairs(path, truthfulqa=tqa, keep_ties=True, keep_empty=True)
    read, _ = read_pairs(path)
    texts = user_text(pa.array(read['prompt'])).to_pylist()
    ids = read['prompt_id']
    assert set(rep.dropped_ids('truthfulqa_question')) == {ids[i] for i in planted}
    assert 'drop_sources' not in rep.skipped and 'TruthfulQA' in rep.steps[[s.step for s in rep.steps].index('drop_sources')].note
    assert not set(user_text(pa.array(out['prompt'])).to_pylist()) & set(planted.values())
    rep.check()

@real_only
def test_truthfulqa_fallback_real(tmp_path):
    tqa = shared_file('TruthfulQA.csv')
    with open(tqa, encoding='utf-8') as fh: questions = [r['Question'] for r in csv.DictReader(fh)]
    assert len(questions) == 817
    path, planted = _planted_trl(tmp_path, questions)
    _check_truthfulqa(path, planted, tqa)

def test_truthfulqa_fallback_generated(tmp_path):
    "A CSV in TruthfulQA's own layout with made-up questions: always runs."
    questions = [f'What happens to a {w} left out in the {p} for a whole week?' for w in ('zorbl', 'quimp', 'flarn', 'drezz')
                 for p in ('snarf', 'blomp', 'trizz', 'vunk', 'glep')]
    tqa = tmp_path/'TruthfulQA.csv'
    with open(tqa, 'w', newline='', encoding='utf-8') as fh:
        w = csv.writer(fh); w.writerow(['Type', 'Category', 'Question', 'Best Answer', 'Correct Answers', 'Incorrect Answers', 'Source'])
        for q in questions: w.writerow(['Adversarial', 'Misconceptions', q, 'Nothing.', 'Nothing', 'It explodes', 'made up'])
    path, planted = _planted_trl(tmp_path, questions)
    _check_truthfulqa(path, planted, tqa)

@real_only
def test_decontamination_goals_real():
    b = _bench()
    t, bench, kind = b.real_inputs()
    assert kind == 'real' and {k: len(v) for k, v in b.flat(bench).items()} == {'alpaca_eval': 805, 'mt_bench': 160, 'truthfulqa': 817}
    r = b.measure(t, bench, per_kind=200, seed=1)
    assert sum(r['planted_per_kind'].values()) >= 400 and r['untouched'] == 1000
    assert all(b.goals_met(r).values()), (r['recall'], r['false_positive_rate'], r.get('missed_examples'))

def test_decontamination_goals_generated():
    b = _bench()
    t, bench, kind = b.generated_inputs(seed=3)
    r = b.measure(t, bench, per_kind=100, seed=3)
    assert all(b.goals_met(r).values()), (r['recall'], r['false_positive_rate'])
    # the measure can fail: benchmark prompts shorter than n words matched only as whole prompts miss their copies with a sentence added
    worse = b.measure(t, bench, per_kind=100, seed=3, min_words=10**6, examples=False)
    assert not all(b.goals_met(worse).values()) and worse['recall']['sentence_before'] < 0.9 and worse['recall']['exact'] == 1.0

def test_dedupe_across_splits():
    "A DatasetDict is cleaned as one: a prompt in train and again in test is dropped once, and the splits come back."
    msg = lambda s, role: [{'content': s, 'role': role}]
    def split(prompts, tag):
        return datasets.Dataset.from_list([{'prompt_id': f'{tag}{i}', 'prompt': msg(p, 'user'), 'chosen': msg(f'good {i}', 'assistant'),
                                            'rejected': msg(f'bad {i}', 'assistant'), 'chosen_rating': 5.0, 'rejected_rating': 2.0}
                                           for i, p in enumerate(prompts)])
    dd = datasets.DatasetDict({'train_prefs': split(['Name a prime number.', 'Describe the moon in one line.'], 'a'),
                               'test_prefs': split(['name a prime NUMBER!', 'Give me a synonym of happy.'], 'b')})
    out, rep = clean_pairs(dd)
    assert rep.dropped_ids('duplicate_prompt') == ['b0'] and rep.rows_out == 3
    assert {k: len(v) for k, v in out.items()} == {'train_prefs': 2, 'test_prefs': 1}

def test_no_dataset_select_on_the_data_path(monkeypatch, tmp_path):
    "Cleaning never goes through `Dataset.select`/`flatten_indices` (quadratic on nested columns)."
    path = write_layout('notus', tmp_path, rows=200)
    ds, _ = read_pairs(path)
    def refuse(*a, **k): raise AssertionError('Dataset.select/flatten_indices on the cleaning path')
    monkeypatch.setattr(datasets.Dataset, 'select', refuse); monkeypatch.setattr(datasets.Dataset, 'flatten_indices', refuse)
    out, rep = clean_pairs(ds)
    assert rep.rows_in == 200 and rep.rows_out == len(out) < 200

def test_binarize_clean_cli(tmp_path):
    from notus.cli import main
    out, rep = tmp_path/'pairs.parquet', tmp_path/'report.json'
    so = io.StringIO()
    with contextlib.redirect_stdout(so): rc = main(['binarize', '--clean', '--output', str(out), '--json-report', str(rep)])
    assert rc in (0, None), so.getvalue()
    r = json.loads(rep.read_text())
    c = r['clean']
    assert c['rows_in'] == c['rows_out'] + sum(c['dropped_by_reason'].values())
    assert c['rows_out'] == pq.read_metadata(out).num_rows and c['dropped_by_reason'].get('source_truthful_qa', 0) > 0
    assert [s['step'] for s in c['steps']][:2] == ['drop_ties', 'drop_degenerate']

def _run_clean(*args):
    "`notus clean ARGS` through the command line entry point: (exit code, output)."
    from notus.cli import main, VERBS
    if 'clean' not in VERBS: pytest.skip('the clean verb is not registered in notus.cli')
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se): rc = main([str(a) for a in args])
    return rc or 0, so.getvalue() + se.getvalue()

def test_clean_cli_function(tmp_path):
    "clean_cli on a TRL standard file with TruthfulQA questions: pairs and JSON report written, counts add up."
    from notus.clean import clean_cli
    questions = ['What colour is the zorbl of a quimp after sunset on a Tuesday?']
    path, planted = _planted_trl(tmp_path, questions, every=50)
    tqa = tmp_path/'tqa.csv'; tqa.write_text('Type,Category,Question\nAdversarial,Misc,"' + questions[0] + '"\n')
    out, rep = tmp_path/'out.jsonl', tmp_path/'rep.json'
    with contextlib.redirect_stdout(io.StringIO()): d = clean_cli(str(path), str(out), truthfulqa=str(tqa), json_report=str(rep))
    r = json.loads(rep.read_text())
    assert r['rows_in'] == 200 == r['rows_out'] + sum(r['dropped_by_reason'].values())
    assert r['dropped_by_reason']['truthfulqa_question'] == len(planted) and len(r['dropped_prompt_ids']['truthfulqa_question']) == len(planted)
    assert sum(1 for l in out.read_text(encoding='utf-8').splitlines() if l.strip()) == r['rows_out'] == d['rows_out']
    from notus.core import NotusError
    with pytest.raises(NotusError, match='missing'): clean_cli(str(tmp_path/'missing.jsonl'), str(tmp_path/'o.parquet'))
    before = path.read_bytes()
    with pytest.raises(NotusError): clean_cli(str(path), str(path))
    assert path.read_bytes() == before

def test_clean_cli_errors(tmp_path):
    "One sentence and exit 2: a missing input, an output that is the input, no pair left."
    path = write_layout('trl_standard', tmp_path, rows=20)
    rc, out = _run_clean('clean', tmp_path/'missing.jsonl', '--output', tmp_path/'o.parquet')
    assert rc == 2 and 'missing.jsonl' in out and 'Traceback' not in out
    rc, out = _run_clean('clean', path, '--output', path)
    assert rc == 2 and 'Traceback' not in out and path.read_text()
    rc, out = _run_clean('clean', path, '--output', tmp_path/'o.parquet', '--json-report', tmp_path/'r.json')
    assert rc == 0 and (tmp_path/'o.parquet').exists() and json.loads((tmp_path/'r.json').read_text())['rows_in'] == 20
