"""DPO training end to end: `notus train recipes/tiny-cpu.yaml` (binarize -> train -> save -> reload -> generate), the
held-out reward accuracy recomputed here from the saved model, the shuffled-label control, the GPU recipes validated
without a GPU or network, and BOS/EOS placement in what the trainer really feeds the model."""
import dataclasses, json, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTUS = Path(sys.executable).parent/'notus'
TINY = ROOT/'recipes'/'tiny-cpu.yaml'
BIG = ['notus-7b-v1', 'zephyr-7b-beta', 'notus-7b-v1-lora', 'notux-8x7b-v1']

def _train(tmp, name, *override):
    out, report = tmp/name, tmp/f'{name}.json'
    cmd = [str(NOTUS), 'train', str(TINY), '--output', str(out), '--json-report', str(report)]
    if override: cmd += ['--override', *override]
    t0 = time.time()
    r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(report.read_text()), time.time() - t0, r

def _completion_logps(model, tok, prompts, completions, max_length):
    "Sum of log-probabilities of each completion's tokens after its templated prompt (computed here, not by TRL)."
    import torch
    out = []
    for p, c in zip(prompts, completions):
        pre = tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)['input_ids']
        full = tok.apply_chat_template(p + c, tokenize=True, return_dict=True)['input_ids'][:max_length]
        assert full[:len(pre)] == pre
        ids = torch.tensor([full])
        with torch.no_grad(): logits = model(ids).logits[0, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        out.append(float(lp[len(pre) - 1:].sum()))
    return np.array(out)

@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tiny')
    res, secs, r = _train(tmp, 'tiny')
    return tmp, res, secs, r

def test_tiny_recipe_end_to_end(tiny_run):
    tmp, res, secs, r = tiny_run
    assert secs < 120, secs
    out = Path(res['output_dir'])
    if not out.is_absolute(): out = tmp/out
    m = res['metrics']
    assert m['eval_rewards/accuracies'] >= 0.9, m
    assert m['eval_rewards/margins'] > 0.5, m
    assert m['eval_pairs'] >= 40 and m['train_pairs'] >= 150, m
    assert 'held-out reward accuracy' in r.stdout and 'sample answer' in r.stdout
    # saved: weights as safetensors, the tokenizer with the Zephyr chat template, the recipe as run
    assert (out/'model.safetensors').exists() and not list(out.glob('pytorch_model*'))
    assert (out/'recipe.yaml').exists() and (out/'notus_train.json').exists()
    # a complete record: the held-out pairs, the trainer's metrics files, a model card that names what was trained
    assert {'heldout.parquet', 'train_results.json', 'eval_results.json', 'trainer_state.json', 'README.md'} <= {p.name for p in out.iterdir()}
    card = (out/'README.md').read_text()
    assert 'fine-tuned version of [None]' not in card and 'mean_rating' in card
    assert f"| held-out reward accuracy | {m['eval_rewards/accuracies']:.3f} |" in card
    assert 'FutureWarning' not in r.stderr
    ev = subprocess.run([str(NOTUS), 'evaluate', str(out), '--json'], cwd=tmp, capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr[-3000:]
    ev = json.loads(ev.stdout)
    assert ev['pairs'] == m['eval_pairs'] and abs(ev['accuracy'] - m['eval_rewards/accuracies']) <= 0.1, (ev, m)
    # reload and generate with the chat template
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from notus.template import ZEPHYR_CHAT_TEMPLATE, generate_reply
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == ZEPHYR_CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True).eval()
    reply = generate_reply(model, 'Explain photosynthesis to a ten-year-old.', tok, max_new_tokens=16)
    assert isinstance(reply, str) and reply.strip()
    assert reply == res['sample'][:len(reply)]            # the run's own sample came from the same reloaded model

def test_heldout_accuracy_recomputed(tiny_run):
    "Reward accuracy on the held-out pairs, recomputed from the saved policy and a rebuilt reference."
    tmp, res, _, _ = tiny_run
    out = Path(res['output_dir']); out = out if out.is_absolute() else tmp/out
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from notus.recipe import load_recipe
    from notus.template import build_tiny_model
    from notus.dpo import load_pairs
    recipe = load_recipe(out/'recipe.yaml')
    tok = AutoTokenizer.from_pretrained(out)
    policy = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True).eval()
    ref = build_tiny_model(tok, **dataclasses.asdict(recipe.tiny)).eval()
    test = load_pairs(recipe.data)['test_prefs']
    beta, L = recipe.training.beta, recipe.training.max_length
    r = {}
    for side in ('chosen', 'rejected'):
        r[side] = beta * (_completion_logps(policy, tok, test['prompt'], test[side], L) - _completion_logps(ref, tok, test['prompt'], test[side], L))
    acc, margin = float((r['chosen'] > r['rejected']).mean()), float((r['chosen'] - r['rejected']).mean())
    assert acc >= 0.9 and margin > 0.5, (acc, margin)
    assert acc == pytest.approx(res['metrics']['eval_rewards/accuracies'], abs=0.02)
    assert margin == pytest.approx(res['metrics']['eval_rewards/margins'], rel=0.02)

def test_shuffled_labels_stay_near_chance(tiny_run, tmp_path):
    _, real, _, _ = tiny_run
    ctl, _, _ = _train(tmp_path, 'control', 'data.shuffle_labels=true')
    m = ctl['metrics']
    assert 0.25 <= m['eval_rewards/accuracies'] <= 0.75, m
    assert abs(m['eval_rewards/margins']) < 0.5, m
    assert m['eval_rewards/accuracies'] < real['metrics']['eval_rewards/accuracies'] - 0.2

@pytest.mark.parametrize('name', BIG)
def test_gpu_recipes_load_and_validate(name):
    "The 7B and 8x7B recipes build their config objects here: no GPU, no network, no unknown key."
    from trl import DPOConfig, ModelConfig
    from notus.recipe import load_recipe, has_gpu
    r = load_recipe(name, dry_run=not has_gpu())
    assert isinstance(r.training, DPOConfig) and isinstance(r.model, ModelConfig)
    t = r.training
    assert (t.beta, t.learning_rate, t.lr_scheduler_type, t.seed, t.max_length, t.bf16) == (0.1, 5e-7, 'linear', 42, 1024, True)
    assert t.gradient_checkpointing and r.data.max_prompt_length == 512
    assert r.global_batch_size() == 64 and r.trust_remote_code is False
    if r.uses_peft:
        pc = r.peft_config()
        assert (pc.r, pc.lora_alpha, r.launch.num_processes) == (64, 16, 1)
    else:
        assert r.launch.num_processes == 8 and r.launch.accelerate_config

def test_recipe_numbers():
    from notus.recipe import load_recipe
    n, z, x = (load_recipe(k, dry_run=True) for k in ('notus-7b-v1', 'zephyr-7b-beta', 'notux-8x7b-v1'))
    assert (n.training.optim, n.training.num_train_epochs, n.training.warmup_steps, n.data.test_size) == ('rmsprop', 3, 0.1, 2000)
    assert n.model.model_name_or_path == z.model.model_name_or_path == 'alignment-handbook/zephyr-7b-sft-full'
    assert (n.data.strategy, z.data.strategy) == ('mean_rating', 'overall_score')
    assert (x.model.model_name_or_path, x.chat_template, x.training.num_train_epochs) == ('mistralai/Mixtral-8x7B-Instruct-v0.1', 'mistral-inst', 1)
    assert (x.training.adam_beta1, x.training.adam_beta2, x.training.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert (n.reported['eval_rewards/accuracies'], x.reported['eval_rewards/accuracies']) == (0.80, 0.81)

def test_accelerate_configs():
    from accelerate.commands.config.config_args import ClusterConfig
    kinds = {}
    for p in sorted((ROOT/'recipes'/'accelerate').glob('*.yaml')):
        c = ClusterConfig.from_yaml_file(str(p))                  # refuses unknown keys
        if p.stem == 'cpu_ddp': assert (c.num_processes, c.mixed_precision) == (2, 'no'), p   # two CPU processes (tests/test_accelerate.py)
        else: assert c.num_processes == 8 and c.mixed_precision == 'bf16', p
        kinds[p.stem] = str(c.distributed_type)
    assert 'DEEPSPEED' in kinds['deepspeed_zero3'] and 'FSDP' in kinds['fsdp']
    assert ClusterConfig.from_yaml_file(str(ROOT/'recipes'/'accelerate'/'deepspeed_zero3_offload.yaml')).deepspeed_config['offload_param_device'] == 'cpu'

def test_cli_check_and_errors(tmp_path, capsys):
    from notus.cli import main
    assert main(['train', str(ROOT/'recipes'/'notus-7b-v1.yaml'), '--check']) == 0
    assert 'accelerate launch --config_file' in capsys.readouterr().out
    bad = tmp_path/'bad.yaml'
    bad.write_text(TINY.read_text().replace('learning_rate:', 'learnig_rate:'))
    assert main(['train', str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'learnig_rate' in section training" in err and 'learning_rate' in err and 'Traceback' not in err
    assert main(['train', str(TINY), '--override', 'training.max_prompt_length=512']) == 2
    assert 'data.max_prompt_length' in capsys.readouterr().err

def test_tokenizer_without_chat_template(tmp_path):
    from transformers import PreTrainedTokenizerFast
    from notus.data import NotusError
    from notus.template import build_tiny_tokenizer
    from notus.dpo import train
    tok = build_tiny_tokenizer(['hello world'] * 10, 300)
    bare = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, bos_token='<s>', eos_token='</s>', pad_token='<pad>')
    with pytest.raises(NotusError, match='no chat template'):
        train('tiny-cpu', tokenizer=bare, output_dir=tmp_path/'x')

def test_no_duplicated_bos_or_eos(tmp_path):
    "Every tokenized training pair of the tiny recipe starts with one BOS, and each completion holds one EOS, none doubled."
    from trl import DPOTrainer
    from notus.recipe import load_recipe
    from notus.template import tokenizer_texts
    from notus.dpo import load_pairs, load_tokenizer, load_model, reference_model, truncate_prompts
    recipe = load_recipe('tiny-cpu', [f'training.output_dir={tmp_path}'])
    dd = load_pairs(recipe.data)
    for template in ('zephyr', 'mistral-inst'):
        recipe.chat_template = template
        tok = load_tokenizer(recipe, tokenizer_texts(dd['train_prefs']))
        train_ds = truncate_prompts(dd['train_prefs'], tok, recipe.data.max_prompt_length, recipe.training.max_length)
        model = load_model(recipe, tok)
        trainer = DPOTrainer(model=model, ref_model=reference_model(model, recipe), args=recipe.training,
                             train_dataset=train_ds.select_columns(['prompt', 'chosen', 'rejected']), processing_class=tok)
        ds = trainer.train_dataset
        bos, eos = tok.bos_token_id, tok.eos_token_id
        assert len(ds) == len(dd['train_prefs'])
        for p, c, r in zip(ds['prompt_ids'], ds['chosen_ids'], ds['rejected_ids']):
            assert p[0] == bos and p.count(bos) == 1, template
            for comp in (c, r):
                seq = p + comp
                assert seq.count(bos) == 1 and comp.count(eos) == 1, template
                assert not any(a == b == eos for a, b in zip(seq, seq[1:])), template
            assert p.count(eos) == 1 if template == 'zephyr' else p.count(eos) == 0   # the user turn's own EOS in Zephyr's template


def test_clean_runs_across_splits(tmp_path):
    "data.clean on a DatasetDict removes a prompt that was copied from train into test (cleaning split by split would not)."
    import datasets
    from notus.dpo import load_pairs
    from notus.binarize import binarize, split_pairs
    from notus.pairs import write_pairs
    from notus.data import load_ultrafeedback
    ds, _ = load_ultrafeedback()
    sp = split_pairs(binarize(ds)[0], 0.2)
    sp['test_prefs'] = datasets.concatenate_datasets([sp['test_prefs'], sp['train_prefs'].select(range(5))])
    write_pairs(sp, tmp_path/'pairs')
    dd = load_pairs({'source': str(tmp_path/'pairs'), 'format': 'pairs', 'clean': True})
    assert not set(dd['train_prefs']['prompt_id']) & set(dd['test_prefs']['prompt_id'])
    assert len(dd['train_prefs']) > 150 and len(dd['test_prefs']) > 20

@pytest.mark.parametrize('override,says', [
    ('training.num_train_epochs=-1', 'training.num_train_epochs must be positive'),
    ('training.use_cpu=maybe', 'training.use_cpu must be true or false'),
    ('training.per_device_train_batch_size=0', 'per_device_train_batch_size must be at least 1'),
    ('data.source=missing/pairs.parquet', 'does not exist'),
    ('data.test_size=10000', 'test_size'),
])
def test_recipe_values_refused(override, says, capsys, tmp_path, monkeypatch):
    "Values that cannot train stop both --check and a real run with one sentence and exit 2, before any work."
    from notus.cli import main
    monkeypatch.chdir(tmp_path)
    for extra in (['--check'], ['--output', 'never-written']):
        assert main(['train', str(TINY), *extra, '--override', override]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count('\n') == 1 and 'Traceback' not in err, err
        assert not Path('never-written').exists()

def test_check_runs_the_data_step(tmp_path, capsys):
    "--check reads, counts and splits the pairs: an empty pairs file is refused; the counts add up."
    from notus.cli import main
    import datasets
    empty = tmp_path/'empty.parquet'
    datasets.Dataset.from_dict({'prompt': ['x'], 'chosen': ['a'], 'rejected': ['b']}).select([]).to_parquet(str(empty))
    assert main(['train', str(TINY), '--check', '--override', f'data.source={empty}', 'data.format=pairs']) == 2
    assert 'no pairs' in capsys.readouterr().err
    rep = tmp_path/'check.json'
    assert main(['train', str(TINY), '--check', '--json-report', str(rep)]) == 0
    d = json.loads(rep.read_text())['data']
    assert d['checked'] and d['read'] == d['train'] + d['test'] + d['dropped_by_clean'] + d['capped'] and d['test'] > 0
    assert f"{d['read']:,} pairs read from bundled" in capsys.readouterr().out

def test_finished_run_is_not_called_unfinished(tiny_run):
    "Running again into a finished run's folder says it is finished and keeps its record; another recipe there is refused."
    tmp, res, _, _ = tiny_run
    out = Path(res['output_dir']); out = out if out.is_absolute() else tmp/out
    record = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    cmd = [str(NOTUS), 'train', str(TINY), '--output', str(out)]
    r = subprocess.run(cmd + ['--json'], cwd=tmp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'finished run of this recipe; nothing to do' in r.stderr and 'unfinished' not in r.stdout + r.stderr
    again = json.loads(r.stdout)
    assert (again['metrics'], again['global_step']) == (res['metrics'], res['global_step'])
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()} == record     # nothing rewritten
    r = subprocess.run(cmd + ['--override', 'training.learning_rate=1e-4'], cwd=tmp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'a finished run of a different recipe' in r.stderr and 'unfinished' not in r.stderr, r.stderr
    import shutil
    copy = tmp/'fresh_copy'; shutil.copytree(out, copy)                # --fresh starts over (on a copy: other tests read the run)
    r = subprocess.run([str(NOTUS), 'train', str(TINY), '--output', str(copy), '--fresh', '--json', '--override', 'training.max_steps=2'],
                       cwd=tmp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    fresh = json.loads(r.stdout)
    assert (fresh['global_step'], fresh['steps_this_run'], fresh['resumed_from']) == (2, 2, None), fresh
