"""Nothing lost when writing, through the real `notus` command: inputs are never overwritten, options and output
paths are checked before any work, a killed or interrupted run leaves the previous outputs intact (or none) and no
temporary behind once the next run has swept it, a run with no pairs fails, and the bytes do not depend on
`--batch-size` / `--num-proc`."""
import json, os, random, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest

NOTUS = [shutil.which('notus') or str(Path(sys.executable).parent/'notus')]
BIG = int(os.environ.get('NOTUS_TEST_BIG_PROMPTS', 64000))   # large enough that writing takes a while


def notus(*args, cwd=None, check=None, timeout=600):
    r = subprocess.run(NOTUS + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check is not None: assert r.returncode == check, (args, r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    return r


def one_sentence_error(r, *words):
    "Exit 2, one line on stderr, no traceback, containing `words`."
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr
    for w in words: assert w in lines[0], (w, lines[0])
    return lines[0]


def temporaries(folder):
    return sorted(p.name for p in Path(folder).rglob('*') if '~notus-' in p.name or '.notus-' in p.name)


def files(folder):
    "{relative path: bytes} of every file under `folder` (temporaries included)."
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp('small')
    notus('generate-data', d/'uf.parquet', '--prompts', 400, check=0)
    return d/'uf.parquet'


@pytest.fixture(scope='module')
def big(tmp_path_factory):
    d = tmp_path_factory.mktemp('big')
    notus('generate-data', d/'uf.parquet', '--prompts', BIG, '--response-chars', 1000, check=0)   # real-length answers: writing takes a while
    return d/'uf.parquet'


# --- item 1: the input is never the output ------------------------------------------------------------------------

def test_binarize_never_overwrites_its_input(small, tmp_path):
    inp = tmp_path/'in.parquet'; shutil.copy(small, inp)
    (tmp_path/'link.parquet').symlink_to(inp)
    before = inp.read_bytes()
    for out in ['in.parquet', './in.parquet', str(inp), 'link.parquet', 'sub/../in.parquet']:
        r = notus('binarize', 'in.parquet', '--output', out, cwd=tmp_path)
        one_sentence_error(r, 'would overwrite the input')
        assert inp.read_bytes() == before
    r = notus('binarize', 'link.parquet', '--output', 'in.parquet', cwd=tmp_path)   # the input through a link
    one_sentence_error(r, 'would overwrite the input')
    assert inp.read_bytes() == before and temporaries(tmp_path) == []


def test_dataset_folder_is_not_its_own_output(small, tmp_path):
    import datasets
    ds = tmp_path/'dsdir'
    datasets.Dataset.from_parquet(str(small)).save_to_disk(str(ds))
    before = files(ds)
    for out in ['dsdir', './dsdir/', str(ds), 'dsdir/pairs.parquet']:
        one_sentence_error(notus('binarize', 'dsdir', '--output', out, cwd=tmp_path), 'would overwrite the input')
    assert files(ds) == before


def test_curate_never_replaces_the_folder_holding_its_input(small, tmp_path):
    (tmp_path/'data').mkdir(); inp = tmp_path/'data'/'uf.parquet'; shutil.copy(small, inp)
    before = files(tmp_path)
    for out in ['data', './data', str(tmp_path/'data'), '.', 'data/..']:
        r = notus('curate', 'data/uf.parquet', '--output', out, '--no-analysis', cwd=tmp_path)
        one_sentence_error(r, 'would overwrite the input')
    assert files(tmp_path) == before
    (tmp_path/'notes').mkdir(); (tmp_path/'notes'/'todo.txt').write_text('mine')      # a folder notus did not write
    one_sentence_error(notus('curate', 'data/uf.parquet', '--output', 'notes', '--no-analysis', cwd=tmp_path),
                       'not a folder notus wrote')
    assert (tmp_path/'notes'/'todo.txt').read_text() == 'mine'


# --- item 7: arguments checked before any work --------------------------------------------------------------------

@pytest.mark.parametrize('args,words', [
    (['--output', ''], ['path is empty']),
    (['--output', 'x.txt'], ['unsupported output type .txt', '.parquet', '.jsonl']),
    (['--batch-size', '0'], ['--batch-size must be a whole number >= 1']),
    (['--batch-size', '-3'], ['--batch-size must be a whole number >= 1']),
    (['--num-proc', '0'], ['--num-proc must be a whole number >= 1']),
    (['--num-proc', '-2'], ['--num-proc must be a whole number >= 1']),
    (['--test-size', '-0.1'], ['test_size must be']),
    (['--test-size', '2.5'], ['test_size must be']),
    (['--min-margin', '-1'], ['--min-margin']),
    (['--json-report', 'r.txt'], ['unsupported JSON report type .txt']),
    (['--json-report', 'afile.json/r.json'], ['not a writable folder']),
    (['--output', 'p.json', '--json-report', 'p.json'], ['overlap']),
])
def test_binarize_arguments_checked_before_reading(tmp_path, args, words):
    "The input does not exist: had the input been read first, the error would be about the missing file."
    (tmp_path/'afile.json').write_text('{}')
    before = files(tmp_path)
    r = notus('binarize', 'no-such-input.parquet', *args, cwd=tmp_path)
    one_sentence_error(r, *words)
    assert files(tmp_path) == before          # nothing written


def test_bad_json_report_fails_before_pairs_are_written(small, tmp_path):
    (tmp_path/'afile.json').write_text('{}')
    r = notus('binarize', small, '--output', 'p.parquet', '--json-report', 'afile.json/r.json', cwd=tmp_path)
    one_sentence_error(r, 'not a writable folder')
    assert not (tmp_path/'p.parquet').exists()


def test_json_report_in_a_missing_folder_is_created(small, tmp_path):
    notus('binarize', small, '--output', 'p.parquet', '--json-report', 'reports/today/r.json', cwd=tmp_path, check=0)
    rep = json.loads((tmp_path/'reports'/'today'/'r.json').read_text())
    assert rep['rows_out'] > 0 and (tmp_path/'p.parquet').exists()


def test_curate_arguments_checked_before_reading(tmp_path):
    for args, words in [(['--output', ''], ['path is empty']), (['--output', 'o.parquet'], ['unsupported output folder type']),
                        (['--test-size', '-1'], ['test_size must be']), (['--json-report', 'r.md'], ['.json'])]:
        one_sentence_error(notus('curate', 'no-such-input.parquet', *args, cwd=tmp_path), *words)
    assert list(tmp_path.iterdir()) == []


# --- item 4: zero pairs is an error ---------------------------------------------------------------------------------

def test_zero_pairs_fails_and_writes_nothing(small, tmp_path):
    r = notus('binarize', small, '--min-margin', 100, '--output', 'p.parquet', '--json-report', 'r.json', cwd=tmp_path)
    one_sentence_error(r, 'left 0 pairs', 'below_margin')
    assert list(tmp_path.iterdir()) == []


# --- item 8: bytes do not depend on --batch-size / --num-proc -------------------------------------------------------

def test_parquet_bytes_do_not_depend_on_batching_at_64k(big, tmp_path):
    "Page boundaries inside a Parquet column follow the Arrow chunks: one chunk, whatever the batches."
    notus('binarize', big, '--output', 'a.parquet', cwd=tmp_path, check=0)
    notus('binarize', big, '--output', 'b.parquet', '--batch-size', 5000, '--num-proc', 2, cwd=tmp_path, check=0)
    assert (tmp_path/'a.parquet').read_bytes() == (tmp_path/'b.parquet').read_bytes()


@pytest.mark.parametrize('suffix,split', [('.parquet', []), ('.jsonl', []), ('', []), ('.parquet', ['--test-size', '0.1'])])
def test_bytes_do_not_depend_on_batching(small, tmp_path, suffix, split):
    notus('binarize', small, '--output', f'a{suffix}', *split, cwd=tmp_path, check=0)
    notus('binarize', small, '--output', f'b{suffix}', *split, '--batch-size', 37, '--num-proc', 2, cwd=tmp_path, check=0)
    notus('binarize', small, '--output', f'c{suffix}', *split, '--batch-size', 1, cwd=tmp_path, check=0)
    if suffix == '':                     # saved dataset folders (state.json holds a fingerprint of its own)
        same = lambda d: {k: v for k, v in files(tmp_path/d).items() if k != 'state.json'}
        assert same('a') == same('b') == same('c') and same('a')
        return
    for name in (['_train_prefs', '_test_prefs'] if split else ['']):
        a = (tmp_path/f'a{name}{suffix}').read_bytes()
        assert a == (tmp_path/f'b{name}{suffix}').read_bytes() == (tmp_path/f'c{name}{suffix}').read_bytes()
        assert len(a) > 100


# --- item 2: a killed or interrupted run loses nothing --------------------------------------------------------------

def _default_sigint():
    "In the child: Ctrl-C back to its default, so that Python installs its handler (a suite started in the background, `cmd &`, runs with SIGINT ignored, and children inherit that)."
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def start(args, cwd):
    return subprocess.Popen(NOTUS + [str(a) for a in args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def stats(folder):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).rglob('*') if p.is_file()}

def kill_when_writing(proc, folder, delay, sig=signal.SIGKILL, wait_for_output=True):
    "Wait until the files in `folder` start to change (unless not `wait_for_output`), then `delay` seconds more, then send `sig`."
    t0, before = time.time(), stats(folder)
    while wait_for_output and proc.poll() is None and time.time() - t0 < 300:
        try:
            if stats(folder) != before: break
        except FileNotFoundError: break      # a file vanished between listing and stat: it is changing
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is None: proc.send_signal(sig)
    proc.wait(timeout=300)
    return proc


def reference(args, folder):
    "The outputs of an uninterrupted run (in a folder of their own)."
    folder.mkdir()
    notus(*args, cwd=folder, check=0)
    return files(folder)


def sweep(folder):
    "What a later run leaves: sweep temporaries of dead processes, as every notus write does first."
    from notus.core import sweep_temporaries
    for p in list(Path(folder).iterdir()):
        if '~notus-' in p.name: sweep_temporaries(Path(folder)/p.name.split('~notus-')[0].lstrip('.'))


DELAYS = [0.0, 0.1, 0.5, 1.5]


def test_sigkill_new_jsonl_is_absent_or_complete(big, tmp_path):
    args = ['binarize', big, '--output', 'out.jsonl']
    ref = reference(args, tmp_path/'ref')
    seen = set()
    for i, delay in enumerate(DELAYS + [random.uniform(0, 3)]):
        d = tmp_path/f'run{i}'; d.mkdir()
        p = kill_when_writing(start(args, d), d, delay)
        got = {k: v for k, v in files(d).items() if '~notus-' not in k}
        assert got in ({}, ref), (delay, {k: len(v) for k, v in got.items()})
        seen.add('complete' if got else 'absent')
        sweep(d)
        assert temporaries(d) == [], temporaries(d)
    assert 'absent' in seen          # at least one kill landed while writing


def test_sigkill_over_existing_parquet_keeps_old_or_new(big, tmp_path):
    new_args = ['binarize', big, '--output', 'out.parquet', '--strategy', 'mean_rating']
    old_args = ['binarize', big, '--output', 'out.parquet', '--strategy', 'overall_score']
    new, old = reference(new_args, tmp_path/'new'), reference(old_args, tmp_path/'old')
    assert new != old
    seen = set()
    for i, delay in enumerate(DELAYS + [random.uniform(0, 2)]):
        d = tmp_path/f'run{i}'; shutil.copytree(tmp_path/'old', d)
        kill_when_writing(start(new_args, d), d, delay)
        got = {k: v for k, v in files(d).items() if '~notus-' not in k}
        assert got in (old, new), (delay, {k: len(v) for k, v in got.items()})
        seen.add('new' if got == new else 'old')
        sweep(d); assert temporaries(d) == []
    notus(*new_args, cwd=d, check=0)                      # a real next run over a killed one's leftovers
    assert temporaries(d) == [] and files(d) == new
    assert 'old' in seen


def test_sigkill_with_test_size_and_report_keeps_the_set_together(big, tmp_path):
    args = ['binarize', big, '--output', 'out.jsonl', '--test-size', '0.1', '--json-report', 'r.json']
    old_args = ['binarize', big, '--output', 'out.jsonl', '--test-size', '0.1', '--json-report', 'r.json', '--seed', 7]
    new, old = reference(args, tmp_path/'new'), reference(old_args, tmp_path/'old')
    assert set(new) == {'out_train_prefs.jsonl', 'out_test_prefs.jsonl', 'r.json'}
    for i, delay in enumerate(DELAYS):
        d = tmp_path/f'run{i}'; shutil.copytree(tmp_path/'old', d)
        p = kill_when_writing(start(args, d), d, delay)
        got = {k: v for k, v in files(d).items() if '~notus-' not in k}
        assert got in (old, new), (delay, {k: (len(v), v == new.get(k), v == old.get(k)) for k, v in got.items()})
        sweep(d); assert temporaries(d) == []


def test_sigkill_curate_keeps_the_previous_folder(big, tmp_path):
    args = ['curate', big, '--output', 'cur', '--no-analysis']
    new = reference(args, tmp_path/'new')
    old = reference(args + ['--seed', 7], tmp_path/'old')
    strip = lambda fs: {k: v for k, v in fs.items() if not k.endswith(('report.json', 'report.md'))}   # they hold timings
    assert strip(new) != strip(old)
    seen = set()
    for i, delay in enumerate([0.0, 0.05, 0.2, random.uniform(0, 0.5)]):   # seconds after writing starts
        d = tmp_path/f'run{i}'; shutil.copytree(tmp_path/'old', d)
        kill_when_writing(start(args, d), d, delay)
        sweep(d)
        got = files(d)
        assert strip(got) in (strip(old), strip(new)), delay
        assert set(got) == set(old) and temporaries(d) == []      # the folder is whole: splits and reports together
        seen.add('new' if strip(got) == strip(new) else 'old')
    notus(*args, cwd=d, check=0)
    assert temporaries(d) == [] and strip(files(d)) == strip(new)
    assert 'old' in seen


def interrupt(args, folder, sig, old=None, tries=3):
    "Send `sig` while the outputs are being written (over an `old` out.jsonl); a run that finished first is tried again."
    for _ in range(tries):
        for p in Path(folder).iterdir(): shutil.rmtree(p) if p.is_dir() else p.unlink()
        if old is not None: (Path(folder)/'out.jsonl').write_text(old)
        p = kill_when_writing(start(args, folder), folder, 0.0, sig=sig)
        err = p.stderr.read()
        if p.returncode in (130, 143): return p.returncode, err
        assert p.returncode in (0, -sig), (p.returncode, err[-2000:])   # finished before the signal: complete outputs
    pytest.fail(f'every run finished before {sig!r} arrived')


def test_ctrl_c_prints_interrupted_and_leaves_no_partial_file(big, tmp_path):
    rc, err = interrupt(['binarize', big, '--output', 'out.jsonl'], tmp_path, signal.SIGINT, old='old\n')
    assert rc == 130 and 'interrupted' in err, (rc, err[-2000:])
    assert (tmp_path/'out.jsonl').read_text() == 'old\n' and temporaries(tmp_path) == []


def test_sigterm_cleans_up_like_ctrl_c(big, tmp_path):
    rc, err = interrupt(['binarize', big, '--output', 'out.parquet', '--test-size', '0.1'], tmp_path, signal.SIGTERM)
    assert rc == 143 and 'terminated' in err, (rc, err[-2000:])
    assert list(tmp_path.iterdir()) == []
