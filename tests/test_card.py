"""The dataset card `notus curate` writes: `datasets.load_dataset` reads the folder through it (right splits and rows),
its YAML header parses (PyYAML and huggingface_hub's DatasetCard), its numbers are the data's, a broken card fails
`check_card` (and `load_dataset` where it relies on the broken part), and the pairs train one step in TRL's real
DPOTrainer as the card says."""
import json, re, shutil, subprocess, sys
from pathlib import Path
import pytest, yaml
import pyarrow.parquet as pq
from notus.core import NotusError, shared_file

NOTUS = str(Path(sys.executable).parent/'notus')
ALPACA, MT_BENCH, TQA = 'alpaca_eval_notus-7b-v1_model_outputs.json', 'mt_bench_question.jsonl', 'TruthfulQA.csv'

def _header(text:str)->dict:
    m = re.match(r'---\n(.*?)\n---\n', text, re.S)
    assert m, 'the card has no YAML header'
    return yaml.safe_load(m.group(1))

def _rows(folder:Path)->dict:
    "Rows per split file, from the Parquet footers (not through notus)."
    return {f.stem: pq.ParquetFile(f).metadata.num_rows for f in sorted(folder.glob('*.parquet'))}

@pytest.fixture(scope='module')
def planted(tmp_path_factory):
    "A benchmark file of prompts that survive cleaning: 3 copied as they are, 2 with their last word cut."
    from notus.curate import curate
    from notus.pairs import pair_texts
    d = tmp_path_factory.mktemp('plain')
    curate(out=d/'out', seed=3, progress=False, analysis=False)
    pt = pair_texts(pq.read_table(d/'out'/'train_prefs.parquet'))
    long = list(pt[pt.prompt.str.split().str.len() >= 10].prompt.drop_duplicates().iloc[:5])
    assert len(long) == 5
    exact, cut = long[:3], [p.rsplit(' ', 1)[0] for p in long[3:]]
    f = d/'planted.txt'; f.write_text('\n'.join(exact + cut) + '\n')
    return f, exact, cut

@pytest.fixture(scope='module')
def curated(tmp_path_factory, planted):
    "`notus curate` on the bundled sample with the planted benchmark (and the real benchmarks when present), no analysis."
    out = tmp_path_factory.mktemp('cur')/'uf_pairs'
    bench = [str(planted[0])] + [str(p) for p in (shared_file(ALPACA), shared_file(MT_BENCH), shared_file(TQA)) if p]
    r = subprocess.run([NOTUS, 'curate', '--output', str(out), '--seed', '3', '--no-analysis', '--benchmark', *bench],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'README.md' in r.stdout
    return out, json.loads((out/'report.json').read_text()), (out/'README.md').read_text()

def test_load_dataset_reads_the_folder_with_its_card(curated):
    import datasets
    out, rep, _ = curated
    ds = datasets.load_dataset(str(out))
    assert set(ds) == set(rep['splits']) == {'train_prefs', 'test_prefs'}
    assert {k: len(v) for k, v in ds.items()} == _rows(out) == rep['splits']
    assert {'prompt', 'chosen', 'rejected'} <= set(ds['train_prefs'].column_names)
    assert ds['train_prefs'][0]['chosen'][-1]['role'] == 'assistant'

def test_header_parses_and_says_what_the_hub_needs(curated):
    from huggingface_hub import DatasetCard
    out, rep, text = curated
    h = _header(text)
    card = DatasetCard.load(out/'README.md')
    assert card.data.to_dict() == h                                     # the hub's parser reads what PyYAML reads
    n = sum(_rows(out).values())
    assert n < 1000 and h['size_categories'] == ['n<1K']               # the hub's bucket for 258-ish pairs
    assert h['license'] == 'mit' and h['language'] == ['en'] and 'text-generation' in h['task_categories']
    assert h['source_datasets'] == ['original'] and 'synthetic' in h['tags']   # the bundled sample is generated
    files = h['configs'][0]['data_files']
    assert h['configs'][0]['config_name'] == 'default'
    assert sorted(f['path'] for f in files) == sorted(p.name for p in out.glob('*.parquet'))
    assert {s['name']: s['num_examples'] for s in h['dataset_info']['splits']} == _rows(out)
    assert [f['name'] for f in h['dataset_info']['features']] == pq.read_schema(out/'train_prefs.parquet').names

def test_card_numbers_are_the_datas(curated, planted):
    from notus.pairs import pair_texts
    out, rep, text = curated
    assert 'seed 3' in text and '`mean_rating`' in text
    v, b = rep['validation'], rep['binarize']
    assert f"| validate (rows) | {v['rows_in']} | {v['rows_kept']} |" in text
    assert f"| binarize (prompts → pairs) | {b['rows_in']} | {b['pairs_out']} |" in text
    for s in rep['clean']['steps']: assert f"| clean: {s['step']} (pairs) | {s['rows_in']} | {s['rows_out']} |" in text
    assert f"**{rep['comparison']['share_chosen_differs']:.1%}**" in text
    # length bias, counted the slow way from the files
    ch, rj = [], []
    for f in out.glob('*.parquet'):
        t = pq.read_table(f).to_pylist()
        ch += [len(r['chosen'][-1]['content']) for r in t]; rj += [len(r['rejected'][-1]['content']) for r in t]
    share = sum(c > r for c, r in zip(ch, rj)) / len(ch)
    assert f"longer than the rejected one in **{share:.1%}**" in text
    # decontamination: the planted prompts are gone, and the card says how each matched
    f, exact, cut = planted
    left = {p for f_ in out.glob('*.parquet') for p in pair_texts(pq.read_table(f_)).prompt}
    assert not left & set(exact)
    removed = rep['clean']['dropped_by_reason']['contaminated_planted']
    row = re.search(r'\| planted \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|', text)
    assert row, text
    n_bench, n_removed, n_equal, n_gram = map(int, row.groups())
    assert (n_bench, n_removed) == (5, removed) and n_equal >= 3 and n_gram >= 2 and n_equal + n_gram == removed
    if shared_file(ALPACA):
        n = len(json.loads(shared_file(ALPACA).read_text()))
        assert re.search(rf'\| alpaca_eval_notus-7b-v1_model_outputs \| {n} \|', text)
    if shared_file(MT_BENCH):
        n = sum(len(json.loads(l)['turns']) for l in shared_file(MT_BENCH).read_text().splitlines() if l.strip())
        assert re.search(rf'\| mt_bench_question \| {n} \|', text)
    if shared_file(TQA):
        import pandas as pd
        n = int(pd.read_csv(shared_file(TQA))['Question'].notna().sum())
        assert re.search(rf'\| TruthfulQA \| {n} \|', text)

def test_mismatch_findings_without_the_analysis_match_the_analysis(curated, tmp_path):
    "--no-analysis computes the findings itself; they are the numbers the analysis writes to mismatch.json."
    from notus.curate import curate
    out, rep, text = curated
    curate(out=tmp_path/'a', seed=3, progress=False)
    m = json.loads((tmp_path/'a'/'analysis'/'mismatch.json').read_text())
    for band, n in m['bands'].items(): assert re.search(rf'\| {band} \| {n} \|', text), band
    assert f"on {m['disagreement_repaired']['share_chosen_differs']:.1%} after" in text
    part = lambda t: t.split('In the input, ')[1].split('## Decontamination')[0]     # the input's findings (not the pairs')
    assert part((tmp_path/'a'/'README.md').read_text()) == part(text)

def test_license_is_given_or_inherited(tmp_path):
    from notus.curate import curate
    from notus.card import check_card
    curate(out=tmp_path/'o', progress=False, analysis=False, license='cc-by-4.0')
    h = check_card(tmp_path/'o')
    assert h['license'] == 'cc-by-4.0'
    assert 'was given' in (tmp_path/'o'/'README.md').read_text()
    uf = tmp_path/'in'/'uf.parquet'; uf.parent.mkdir()
    shutil.copy(Path(__import__('notus').__file__).parent/'assets'/'ultrafeedback_sample.parquet', uf)
    curate(uf, tmp_path/'o2', progress=False, analysis=False)
    h2 = check_card(tmp_path/'o2')
    assert h2['license'] == 'mit' and h2['source_datasets'] == ['openbmb/UltraFeedback']
    text = (tmp_path/'o2'/'README.md').read_text()
    assert 'inherited from [openbmb/UltraFeedback]' in text
    assert 'a local file, `uf.parquet`' in text and str(tmp_path) not in text     # no path of this machine in the card

@pytest.fixture
def copy(curated, tmp_path):
    out = tmp_path/'copy'; shutil.copytree(curated[0], out)
    return out, (out/'README.md').read_text()

def test_card_without_header_fails(copy):
    from notus.card import check_card
    out, text = copy
    (out/'README.md').write_text(text.split('\n---\n', 1)[1])
    with pytest.raises(NotusError, match='no YAML header'): check_card(out)

def test_wrong_data_files_fail_check_and_load(copy):
    import datasets
    from notus.card import check_card
    out, text = copy
    assert 'path: test_prefs.parquet' in text
    (out/'README.md').write_text(text.replace('path: test_prefs.parquet', 'path: test.parquet'))
    with pytest.raises(NotusError, match='test.parquet, which is not in'): check_card(out)
    with pytest.raises(Exception): datasets.load_dataset(str(out))
    (out/'README.md').write_text(text.replace('  - split: test_prefs\n    path: test_prefs.parquet\n', ''))
    with pytest.raises(NotusError, match='not in data_files'): check_card(out)

def test_wrong_row_counts_fail_check_and_load(copy, curated):
    import datasets
    from datasets.exceptions import NonMatchingSplitsSizesError
    from notus.card import check_card
    out, text = copy
    n = curated[1]['splits']['train_prefs']
    (out/'README.md').write_text(text.replace(f'num_examples: {n}\n', f'num_examples: {n + 1}\n'))
    with pytest.raises(NotusError, match='do not match'): check_card(out)
    with pytest.raises(NonMatchingSplitsSizesError): datasets.load_dataset(str(out))

def test_card_pairs_train_one_dpo_step(curated, tmp_path):
    "What the card's TRL section says: load_dataset(folder), then DPOTrainer on train_prefs (extra columns and all)."
    import copy as cp, torch, datasets
    from trl import DPOConfig, DPOTrainer
    from notus.template import build_tiny_tokenizer, build_tiny_model, tokenizer_texts
    ds = datasets.load_dataset(str(curated[0]))
    train = ds['train_prefs'].select(range(16))
    tok = build_tiny_tokenizer(tokenizer_texts(train), vocab_size=400)
    torch.set_num_threads(1)
    model = build_tiny_model(tok)
    before = cp.deepcopy(model.state_dict())
    args = DPOConfig(output_dir=str(tmp_path/'run'), max_steps=1, per_device_train_batch_size=4, learning_rate=1e-2, bf16=False,
                     use_cpu=True, gradient_checkpointing=False, report_to=[], save_strategy='no', max_length=128)
    res = DPOTrainer(model=model, ref_model=cp.deepcopy(model), args=args, train_dataset=train, processing_class=tok).train()
    assert res.global_step == 1
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())

def test_card_cli_rewrites_and_checks(copy, capsys):
    "The card written again from report.json (a new license) still loads; --check reads it back; a broken one fails."
    import datasets
    from notus.card import card_cli
    out, text = copy
    r = card_cli(str(out), license='apache-2.0')
    assert r['license'] == 'apache-2.0' and _header((out/'README.md').read_text())['license'] == 'apache-2.0'
    assert {k: len(v) for k, v in datasets.load_dataset(str(out)).items()} == _rows(out)
    assert card_cli(str(out), check=True)['splits'] == _rows(out)
    assert 'wrote' in capsys.readouterr().out
    (out/'README.md').write_text(text.replace('path: train_prefs.parquet', 'path: elsewhere.parquet'))
    with pytest.raises(NotusError, match='elsewhere.parquet'): card_cli(str(out), check=True)
    (out/'report.json').unlink()
    with pytest.raises(NotusError, match='no report.json'): card_cli(str(out))
