"The `notus` command as a user runs it: help, version, typed options, --json, --json-report, errors, missing extras."
import json, os, subprocess, sys, time
from pathlib import Path
import pytest
import notus
from notus.cli import VERBS

ROOT = Path(__file__).resolve().parents[1]
NOTUS = Path(sys.executable).parent/'notus'

def notus_(*args, env=None, timeout=300):
    "Run the real `notus` command; returns the completed process (text stdout/stderr)."
    e = {**os.environ, **(env or {})}
    return subprocess.run([str(NOTUS), *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=e, timeout=timeout)

def verb_names():
    "Every verb and sub-action, as typed: ['validate', ..., 'review push', ...]."
    names = []
    for v, spec in VERBS.items():
        names.append(v)
        if isinstance(spec, dict): names += [f'{v} {a}' for a in spec]
    return names

@pytest.mark.parametrize('verb', verb_names())
def test_help_of_every_verb(verb):
    r = notus_(*verb.split(), '--help')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f'usage: notus {verb}'), r.stdout[:200]
    assert r.stderr == ''

def test_version():
    r = notus_('--version')
    assert (r.returncode, r.stdout.strip()) == (0, f'notus {notus.__version__}')

@pytest.mark.parametrize('args', [(), ('--help',)])
def test_bare_notus_and_help_list_every_verb_with_its_description(args):
    r = notus_(*args)
    assert r.returncode == 0, r.stderr
    from notus.cli import load_verb
    flat = ' '.join(r.stdout.split())
    for v, spec in VERBS.items():
        if isinstance(spec, str):    # the verb, then the first words of its docstring
            doc = ' '.join((load_verb(spec).__doc__ or '').split()[:3])
            assert f' {v} {doc}' in flat, (v, doc)
        else: assert f" {v} {'|'.join(spec)}:" in flat, v

def test_unknown_verb():
    r = notus_('frobnicate')
    assert r.returncode == 2
    assert "unknown verb 'frobnicate'" in r.stderr and 'validate' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

def test_int_option_is_typed(tmp_path):
    out = tmp_path/'rows.jsonl'
    r = notus_('generate-data', out, '--prompts', '7', '--json')
    assert r.returncode == 0, r.stderr
    assert len(out.read_text().splitlines()) == 7
    r = notus_('generate-data', tmp_path/'x.jsonl', '--prompts', 'seven')
    assert r.returncode == 2 and "invalid int value: 'seven'" in r.stderr
    assert not (tmp_path/'x.jsonl').exists()

def test_bool_flag_both_ways(tmp_path):
    "A file with invalid rows: --strict stops at the first, --no-strict (the default) drops and counts them."
    rows = tmp_path/'rows.jsonl'
    assert notus_('generate-data', rows, '--prompts', '40', '--invalid-rate', '0.25').returncode == 0
    strict = notus_('validate', rows, '--strict')
    assert strict.returncode == 2 and len(strict.stderr.strip().splitlines()) == 1, strict.stderr
    lax = notus_('validate', rows, '--no-strict', '--json')
    assert lax.returncode == 0, lax.stderr
    rep = json.loads(lax.stdout)
    assert rep['rows_in'] == 40 and 0 < rep['rows_dropped'] < 40

def _pairs(path, prompts):
    path.write_text(''.join(json.dumps({'prompt': p, 'chosen': f'a good answer to {p}', 'rejected': f'a worse answer to {p}',
                                        'score_chosen': 8.0, 'score_rejected': 4.0}) + '\n' for p in prompts))
    return path

def test_list_option(tmp_path):
    "Two benchmark files after one --benchmark: the prompts of both are removed."
    prompts = [f'Question number {i}: what is {i} plus {i}?' for i in range(6)]
    src = _pairs(tmp_path/'pairs.jsonl', prompts)
    (tmp_path/'alpaca_eval.json').write_text(json.dumps([{'instruction': prompts[0], 'dataset': 'x'}]))
    (tmp_path/'question.jsonl').write_text(json.dumps({'question_id': 1, 'category': 'x', 'turns': [prompts[1], 'And then?']}) + '\n')
    r = notus_('clean', src, '--output', tmp_path/'clean.jsonl', '--benchmark', tmp_path/'alpaca_eval.json',
               tmp_path/'question.jsonl', '--json')
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep['rows_in'], rep['rows_out']) == (6, 4), rep
    kept = [json.loads(l) for l in (tmp_path/'clean.jsonl').read_text().splitlines()]
    assert len(kept) == 4 and not any(prompts[0] in json.dumps(k) or prompts[1] in json.dumps(k) for k in kept)

def test_sub_action_has_its_own_options():
    subs = {v: spec for v, spec in VERBS.items() if isinstance(spec, dict)}
    if not subs: pytest.skip('no verb has sub-actions in this version')
    assert 'review' in subs
    push, pull = notus_('review', 'push', '--help'), notus_('review', 'pull', '--help')
    assert push.returncode == pull.returncode == 0
    assert '--top' in push.stdout and '--top' not in pull.stdout
    r = notus_('review', 'pull', '--top', '3')
    assert r.returncode == 2 and 'unrecognized arguments: --top' in r.stderr

def _json_runs(tmp):
    "Every verb that runs on the bundled sample, with arguments that write into `tmp`."
    return {
        'validate': [],
        'generate-data': [tmp/'rows.jsonl', '--prompts', '20'],
        'analyze': ['--output' if 'output' in _params('analyze') else '--out', tmp/'analysis'],
        'mismatch': ['--top', '3'],
        'binarize': ['--output', tmp/'pairs.parquet'],
        'curate': ['--output' if 'output' in _params('curate') else '--out', tmp/'curate'],
        'train': ['tiny-cpu', '--check'],
        'experiment': [ROOT/'experiments'/'critique-vs-ratings-cpu.yaml', '--check'],
    }

def _params(verb):
    import inspect
    from notus.cli import load_verb
    return inspect.signature(load_verb(VERBS[verb])).parameters

@pytest.mark.parametrize('verb', ['validate', 'generate-data', 'analyze', 'mismatch', 'binarize', 'curate', 'clean', 'train', 'experiment'])
def test_json_on_stdout(verb, tmp_path):
    "`--json`: stdout is one JSON document, whatever the verb prints for people (that goes to stderr)."
    if verb == 'clean': args = [_pairs(tmp_path/'pairs.jsonl', [f'prompt {i}?' for i in range(5)]), '--output', tmp_path/'c.parquet']
    else: args = _json_runs(tmp_path)[verb]
    r = notus_(verb, *args, '--json')
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert isinstance(rep, dict) and rep, r.stdout[:300]

def test_json_report_is_checked_before_any_work(tmp_path):
    out = tmp_path/'rows.jsonl'
    r = notus_('generate-data', out, '--prompts', '5', '--json-report', tmp_path/'report.txt')
    assert r.returncode == 2 and 'unsupported JSON report type .txt' in r.stderr, r.stderr
    assert not out.exists()

@pytest.mark.parametrize('verb', ['validate', 'binarize'])
def test_json_report_into_a_missing_folder_is_created(verb, tmp_path):
    "The CLI layer (validate) does what binarize, which writes its own report, does: the folder is created."
    rep = tmp_path/'new'/'deeper'/'report.json'
    args = ['--output', tmp_path/'pairs.parquet'] if verb == 'binarize' else []
    r = notus_(verb, *args, '--json-report', rep)
    assert r.returncode == 0, r.stderr
    d = json.loads(rep.read_text())
    assert d and (verb != 'validate' or d['rows_in'] == 300), d

def test_no_progress_bars_when_stderr_is_not_a_terminal(tmp_path):
    rows = tmp_path/'rows.jsonl'
    assert notus_('generate-data', rows, '--prompts', '10').returncode == 0
    r = notus_('validate', rows)
    assert r.returncode == 0
    assert 'Generating' not in r.stderr and '%|' not in r.stderr, r.stderr

def test_offline_hub_id_fails_at_once_with_a_hint():
    t = time.time()
    r = notus_('validate', 'some-org/some-dataset', env={'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'local copy' in r.stderr and '.parquet' in r.stderr
    assert time.time() - t < 15

BLOCK = '''
import sys
class Block:
    "Refuse {names}, as if they were not installed."
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {names!r}: raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
for m in list(sys.modules):
    if m.split('.')[0] in {names!r}: del sys.modules[m]
from notus.cli import main
sys.exit(main({argv!r}))
'''

def test_missing_extra_is_named(tmp_path):
    "Training without the train extra (torch, transformers, trl blocked at import): one line naming the extra."
    argv = ['train', str(ROOT/'recipes'/'tiny-cpu.yaml'), '--output-dir' if 'output_dir' in _params('train') else '--output', str(tmp_path/'run')]
    code = BLOCK.format(names={'torch', 'transformers', 'trl', 'peft', 'accelerate'}, argv=argv)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert 'pip install "notus[train]"' in r.stderr, r.stderr[-2000:]
    assert 'Traceback' not in r.stderr

def test_train_is_quiet(tmp_path):
    "A tiny training run: no transformers FutureWarning, no progress bars, when stderr is not a terminal."
    r = notus_('train', 'tiny-cpu', '--output', tmp_path/'run')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'FutureWarning' not in r.stderr and 'warnings.warn' not in r.stderr, r.stderr[-2000:]
    assert '%|' not in r.stderr, r.stderr[-2000:]
