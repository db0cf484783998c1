"""The output of `notus binarize` (Parquet and JSON Lines) loads with `datasets.load_dataset` and trains for one step
in TRL's real DPOTrainer on a tiny local model."""
import copy, subprocess, sys
from pathlib import Path
import pytest

NOTUS = str(Path(sys.executable).parent/'notus')

@pytest.mark.parametrize('suffix,builder', [('parquet', 'parquet'), ('jsonl', 'json')])
def test_binarize_output_trains_one_dpo_step(tmp_path, suffix, builder):
    import torch, datasets
    from trl import DPOConfig, DPOTrainer
    from notus.template import build_tiny_tokenizer, build_tiny_model, tokenizer_texts
    out = tmp_path/f'pairs.{suffix}'
    r = subprocess.run([NOTUS, 'binarize', '--seed', '3', '--output', str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    pairs = datasets.load_dataset(builder, data_files=str(out), split='train')
    assert {'prompt', 'chosen', 'rejected'} <= set(pairs.column_names) and len(pairs) > 200
    assert pairs[0]['prompt'][0]['role'] == 'user' and pairs[0]['chosen'][0]['role'] == 'assistant'
    pairs = pairs.select(range(16)).select_columns(['prompt', 'chosen', 'rejected'])
    tok = build_tiny_tokenizer(tokenizer_texts(pairs), vocab_size=400)
    torch.set_num_threads(1)
    model = build_tiny_model(tok)
    before = copy.deepcopy(model.state_dict())
    args = DPOConfig(output_dir=str(tmp_path/'run'), max_steps=1, per_device_train_batch_size=4, beta=0.1,
                     learning_rate=1e-2, bf16=False, use_cpu=True, gradient_checkpointing=False, report_to=[],
                     save_strategy='no', logging_steps=1, max_length=256)
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=pairs, processing_class=tok)
    res = trainer.train()
    assert res.global_step == 1 and res.training_loss > 0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())   # the step changed the weights
