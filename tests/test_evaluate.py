"""notus.evaluate against independent computations: reward accuracy and margins recomputed here from plain-torch
log-probabilities of a tiny DPO model and its reference (one sequence at a time, no padding), through the API and
through `notus evaluate`; AlpacaEval and MT-Bench files from `notus generate` checked against the published layouts
(and against Notus 7B v1's real AlpacaEval outputs when this machine has a copy)."""
import contextlib, copy, io, json
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_ALPACA = ROOT.parent/'shared'/'data'/'alpaca_eval_notus-7b-v1_model_outputs.json'
BETA = 0.1

def _logps(model, tok, prompts, completions, max_length):
    "Summed log-probabilities of each completion after its templated prompt, one unpadded sequence at a time."
    import torch
    out = []
    for p, c in zip(prompts, completions):
        pre = tok(tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False), add_special_tokens=False)['input_ids']
        full = tok(tok.apply_chat_template(p + c, tokenize=False), add_special_tokens=False)['input_ids'][:max_length]
        assert full[:len(pre)] == pre
        ids = torch.tensor([full])
        with torch.no_grad(): logits = model(ids).logits[0, :-1].double()
        lp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        out.append(float(lp[len(pre) - 1:].sum()))
    return np.array(out)

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    import torch
    from notus.data import load_ultrafeedback
    from notus.binarize import binarize, split_pairs
    from notus.template import build_tiny_tokenizer, build_tiny_model, tokenizer_texts
    from notus.dpo import train
    torch.set_num_threads(1)
    uf, _ = load_ultrafeedback(None)
    pairs, _ = binarize(uf, 'mean_rating', min_margin=1.0)
    dd = split_pairs(pairs, 0.2)
    tok = build_tiny_tokenizer(tokenizer_texts(dd['train_prefs']))
    ref = build_tiny_model(tok)
    tmp = tmp_path_factory.mktemp('eval')
    res = train('tiny-cpu', pairs=dd, model=copy.deepcopy(ref), tokenizer=tok, output_dir=tmp/'run', sample_prompt=None,
                override={'training.save_strategy': 'no', 'training.num_train_epochs': 1})
    return dict(dd=dd, tok=tok, ref=ref, res=res, tmp=tmp)

@pytest.fixture(scope='module')
def direct(run):
    from transformers import AutoModelForCausalLM
    test, tok = run['dd']['test_prefs'], run['tok']
    pol = AutoModelForCausalLM.from_pretrained(str(run['res'].output_dir)).eval()
    P, C, R = list(test['prompt']), list(test['chosen']), list(test['rejected'])
    rc = BETA * (_logps(pol, tok, P, C, 256) - _logps(run['ref'], tok, P, C, 256))
    rr = BETA * (_logps(pol, tok, P, R, 256) - _logps(run['ref'], tok, P, R, 256))
    return dict(pol=pol, chosen=rc, rejected=rr, margin=rc - rr, correct=rc > rr)

def test_reward_accuracy_matches_direct_computation(run, direct):
    from notus.evaluate import evaluate_pairs, reward_summary
    t = evaluate_pairs(direct['pol'], run['tok'], run['dd']['test_prefs'], run['ref'], BETA, batch_size=7, max_length=256)
    np.testing.assert_allclose(t.chosen_reward, direct['chosen'], atol=2e-4)
    np.testing.assert_allclose(t.rejected_reward, direct['rejected'], atol=2e-4)
    clear = np.abs(direct['margin']) > 1e-3                       # near-ties may flip with float noise
    assert (t.correct.to_numpy()[clear] == direct['correct'][clear]).all()
    assert abs(t.correct.mean() - direct['correct'].mean()) <= (~clear).mean()
    assert direct['correct'].mean() > 0.6                        # the model learnt something: the test can tell
    s = reward_summary(t, 'source')
    for src, g in s.iterrows():
        m = np.array(run['dd']['test_prefs']['source']) == src
        assert g.pairs == m.sum()
        assert abs(g.accuracy - direct['correct'][m].mean()) <= (~clear[m]).mean() + 1e-12
        assert abs(g.margin - direct['margin'][m].mean()) < 1e-3

def test_swapped_labels_invert_accuracy(run, direct):
    from notus.evaluate import evaluate_pairs
    test = run['dd']['test_prefs']
    sw = test.rename_columns({'chosen': 'rejected', 'rejected': 'chosen'})
    t = evaluate_pairs(direct['pol'], run['tok'], sw, run['ref'], BETA, max_length=256)
    np.testing.assert_allclose(t.margin, -direct['margin'], atol=4e-4)

def test_evaluate_cli_finds_the_reference(run, direct):
    from notus.cli import main
    p = run['tmp']/'test.parquet'
    run['dd']['test_prefs'].to_parquet(str(p))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): rc = main(['evaluate', str(run['res'].output_dir), '--pairs', str(p), '--json'])
    assert rc == 0
    got = json.loads(buf.getvalue())
    assert got['pairs'] == len(direct['margin']) and got['beta'] == BETA
    assert abs(got['margin'] - direct['margin'].mean()) < 1e-3
    assert abs(got['accuracy'] - direct['correct'].mean()) <= (np.abs(direct['margin']) <= 1e-3).mean() + 1e-12

# The published layouts: AlpacaEval's model_outputs.json (alpaca_eval reads instruction, output, generator and
# dataset of each item of a JSON list) and FastChat llm_judge's model_answer/*.jsonl (question_id, answer_id,
# model_id, choices: [{index, turns: [one str per turn]}], tstamp).
def _is_alpaca_eval(items):
    assert isinstance(items, list) and items
    for it in items:
        assert set(it) == {'instruction', 'output', 'generator', 'dataset'}, set(it)
        assert all(isinstance(it[k], str) for k in it)
    assert len({it['generator'] for it in items}) == 1

def _is_mt_bench(lines, questions):
    recs = [json.loads(l) for l in lines]
    assert [r['question_id'] for r in recs] == [q['question_id'] for q in questions]
    assert len({r['answer_id'] for r in recs}) == len(recs)
    for r, q in zip(recs, questions):
        assert set(r) == {'question_id', 'answer_id', 'model_id', 'choices', 'tstamp'}
        assert isinstance(r['answer_id'], str) and isinstance(r['model_id'], str) and isinstance(r['tstamp'], float)
        assert isinstance(r['choices'], list) and len(r['choices']) == 1 and r['choices'][0]['index'] == 0
        turns = r['choices'][0]['turns']
        assert len(turns) == len(q['turns']) and all(isinstance(t, str) for t in turns)
    return recs

def test_generate_alpaca_eval_layout(run, tmp_path):
    from notus.cli import main
    evalset = [{'instruction': 'Explain photosynthesis.', 'dataset': 'helpful_base'},
               {'instruction': 'Write a haiku about the sea ¿sí? 🌊', 'dataset': 'koala'},
               {'instruction': 'What is 2 + 2?', 'dataset': 'selfinstruct'}]
    (tmp_path/'alpaca_eval.json').write_text(json.dumps(evalset))
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(['generate', str(run['res'].output_dir), '--prompts', str(tmp_path/'alpaca_eval.json'), '--output',
                   str(tmp_path/'model_outputs.json'), '--generator', 'notus-tiny', '--max-new-tokens', '12', '--batch-size', '2'])
    assert rc == 0
    out = json.loads((tmp_path/'model_outputs.json').read_text(encoding='utf-8'))
    _is_alpaca_eval(out)
    assert [o['instruction'] for o in out] == [e['instruction'] for e in evalset]
    assert [o['dataset'] for o in out] == [e['dataset'] for e in evalset] and out[0]['generator'] == 'notus-tiny'
    from notus.template import generate_reply
    assert out[2]['output'] == generate_reply(run['res'].output_dir, evalset[2]['instruction'], max_new_tokens=12).strip()

@pytest.mark.skipif(not REAL_ALPACA.exists(), reason='no copy of Notus 7B v1 AlpacaEval outputs on this machine')
def test_real_alpaca_eval_file_has_our_layout():
    from notus.evaluate import check_alpaca_eval, alpaca_eval_outputs
    real = json.loads(REAL_ALPACA.read_text())
    _is_alpaca_eval(real)
    check_alpaca_eval(real)
    ours = alpaca_eval_outputs([r['instruction'] for r in real], [r['output'] for r in real], real[0]['generator'],
                               [r['dataset'] for r in real])
    assert ours == real

def test_generate_mt_bench_layout(run, tmp_path):
    from notus.cli import main
    qs = [{'question_id': 81, 'category': 'writing', 'turns': ['Write a travel post about Hawaii.', 'Now in one sentence.']},
          {'question_id': 101, 'category': 'reasoning', 'turns': ['Who is first if you pass the second runner?', 'And the last?']}]
    (tmp_path/'question.jsonl').write_text(''.join(json.dumps(q) + '\n' for q in qs))
    out = tmp_path/'model_answer'/'notus-tiny.jsonl'
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(['generate', str(run['res'].output_dir), '--prompts', str(tmp_path/'question.jsonl'), '--output', str(out),
                   '--generator', 'notus-tiny', '--max-new-tokens', '8'])
    assert rc == 0
    recs = _is_mt_bench(out.read_text().splitlines(), qs)
    assert {r['model_id'] for r in recs} == {'notus-tiny'}

def test_generate_errors_are_one_line(run, tmp_path):
    from notus.cli import main
    (tmp_path/'bad.json').write_text('[{"question": "x"}]')
    for argv in (['generate', str(run['res'].output_dir), '--prompts', str(tmp_path/'bad.json')],
                 ['generate', str(tmp_path/'nope'), '--prompts', str(tmp_path/'bad.json')],
                 ['generate', str(tmp_path), '--prompts', str(tmp_path/'bad.json')],          # a folder, but no model
                 ['evaluate', str(run['res'].output_dir), '--pairs', str(tmp_path/'none.parquet')]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err): rc = main(argv)
        assert rc == 2 and err.getvalue().count('\n') == 1, err.getvalue()
