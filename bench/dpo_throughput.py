"""DPO training throughput with TRL's DPOTrainer: tokens/s, peak GPU memory and MFU, per configuration.

A randomly initialised model of a real shape (random weights do not change the cost of a step) is trained for a
few DPO steps on random token pairs of fixed length, in one process, once per configuration:

- `trl-default`: TRL's default DPOConfig (bf16, gradient checkpointing on, reference model kept, the model's
  default attention), only the batch size and step count set;
- the notus grid: bf16, attention sdpa (and flash_attention_2 when installed), gradient checkpointing on/off,
  reference log-probabilities precomputed on/off.

Shapes: `mistral-7b` (Mistral 7B / Zephyr / Notus: hidden 4096, 32 layers, GQA 32/8, vocab 32000) trained with
LoRA r 64 on the attention projections as in recipes/notus-7b-v1-lora.yaml; `1b` (hidden 2048, 22 layers,
GQA 32/4, ~1.1B parameters) fully fine-tuned; `tiny` (hidden 64, 2 layers) for CPU smoke runs.

    python bench/dpo_throughput.py --device cuda --shape mistral-7b --lora     # one H100: ~10 min
    python bench/dpo_throughput.py --device cuda --shape 1b                    # one H100: ~5 min
    python bench/dpo_throughput.py --device cpu --tiny --threads 1             # any CPU, seconds (the test)

Tokens/s counts the tokens of the chosen and rejected sequences the policy trains on per second (median step
time after warm-up steps). MFU is the model FLOPs per second over the GPU's bf16 matmul peak *measured* on the
same device at the start of the run (the CPU's float32 matmul peak with --device cpu). Model FLOPs per token:
forward F = 2 x (parameters in linear layers, lm_head included) + 4 x layers x sequence x hidden (attention
scores and values); a full fine-tune step costs 3F (forward + backward), a LoRA step about 2F (the frozen base
needs activation gradients only), plus F for the reference forward unless it was precomputed. Recomputation by
gradient checkpointing is not counted (model FLOPs, not hardware FLOPs). Reference precomputation happens
before training: its time is reported separately (`precompute_s`), not in tokens/s.

Results go to bench/results/dpo_throughput_<device>_<shape>.json and .md (with machine, date, versions).
"""
import argparse, copy, datetime, gc, importlib.util, json, os, platform, statistics, sys, time, uuid, warnings
from pathlib import Path

SHAPES = {
    'mistral-7b': dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8),
    '1b': dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
               num_attention_heads=32, num_key_value_heads=4),
    'tiny': dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
}

def word_tokenizer(vocab_size):
    "A word-level tokenizer over the words w0..wN: one word is one token, so sequence lengths are exact."
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    specials = ['<unk>', '<s>', '</s>', '<pad>']
    vocab = {t: i for i, t in enumerate(specials)}
    vocab.update({f'w{i}': i + len(specials) for i in range(vocab_size - len(specials))})
    tk = Tokenizer(models.WordLevel(vocab, unk_token='<unk>'))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token='<unk>', bos_token='<s>', eos_token='</s>', pad_token='<pad>')

def random_pairs(n, prompt_len, completion_len, vocab, seed=0):
    "n preference pairs of random words: prompt_len prompt tokens, completion_len tokens per answer (+ EOS added by TRL)."
    import datasets, numpy as np
    rng = np.random.default_rng(seed)
    words = lambda k: [' '.join(f'w{i}' for i in row) for row in rng.integers(0, vocab - 4, (n, k))]
    return datasets.Dataset.from_dict({'prompt': words(prompt_len), 'chosen': words(completion_len), 'rejected': words(completion_len)})

def measure_peak(device):
    "Measured matmul peak, FLOP/s: bf16 8192^2 on a GPU, float32 1024^2 on a CPU (median of timed repeats)."
    import torch
    if device == 'cuda': n, dtype, reps = 8192, torch.bfloat16, 20
    else: n, dtype, reps = 1024, torch.float32, 5
    a = torch.randn(n, n, device=device, dtype=dtype); b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    for _ in range(3): a @ b
    sync(); times = []
    for _ in range(reps):
        t = time.perf_counter(); a @ b; sync(); times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times)

def linear_params(model):
    import torch
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))

def step_flops(model, shape, seq, tokens, lora, precompute):
    "Model FLOPs of one DPO step over `tokens` tokens of sequences of length `seq` (see the module docstring)."
    f = 2 * linear_params(model) + 4 * shape['num_hidden_layers'] * seq * shape['hidden_size']
    return tokens * f * ((2 if lora else 3) + (0 if precompute else 1))

def step_timer(device):
    "A TrainerCallback timing each optimizer step (synchronised on a GPU)."
    import torch
    from transformers import TrainerCallback
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    class StepTimer(TrainerCallback):
        times, t = [], None
        def on_step_begin(self, args, state, control, **kw): sync(); self.t = time.perf_counter()
        def on_step_end(self, args, state, control, **kw): sync(); self.times.append(time.perf_counter() - self.t)
    t = StepTimer(); t.times = []
    return t

def build_model(shape, attn, dtype, device, seed=0):
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig
    cfg = MistralConfig(**shape, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    torch.manual_seed(seed)
    kw = {'dtype': dtype}
    if attn: kw['attn_implementation'] = attn
    with torch.device(device): return AutoModelForCausalLM.from_config(cfg, **kw)

def run_variant(name, a, shape, tok, data, peak, overrides, attn, dtype):
    "Train `a.steps + a.warmup` DPO steps with DPOConfig(**overrides); return the measurements."
    import torch
    from trl import DPOConfig, DPOTrainer
    from peft import LoraConfig
    device = a.device
    out = {'variant': name, 'attn': attn or 'default'}
    kw = dict(output_dir=str(Path(a.workdir)/name), per_device_train_batch_size=a.batch, max_steps=a.steps + a.warmup,
              report_to='none', save_strategy='no', disable_tqdm=True, max_length=a.prompt_len + a.completion_len + 1,
              dataloader_num_workers=0, seed=0, **overrides)
    if device == 'cpu': kw['use_cpu'] = True
    trainer = model = ref = None
    try:
        if device == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            args = DPOConfig(**kw)
            out.update(bf16=bool(args.bf16), gradient_checkpointing=bool(args.gradient_checkpointing),
                       precompute_ref_log_probs=bool(args.precompute_ref_log_probs))
            # a fresh fingerprint: TRL caches precomputed reference log-probs by (data, weights), and every run here
            # starts from the same random weights, so without it later runs would read the first run's cache
            data = data.map(lambda b: b, batched=True, new_fingerprint=uuid.uuid4().hex)
            model = build_model(shape, attn, dtype, device)
            peft = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.0, target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj'],
                              task_type='CAUSAL_LM') if a.lora else None
            if not a.lora and not args.precompute_ref_log_probs:   # a model built in memory: TRL cannot reload it, give a copy
                ref = copy.deepcopy(model).eval().requires_grad_(False)
            timer = step_timer(device)
            t0 = time.perf_counter()
            trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data, processing_class=tok,
                                 peft_config=peft, callbacks=[timer])
            out['init_s'] = round(time.perf_counter() - t0, 2)
            out['precompute_s'] = out['init_s'] if args.precompute_ref_log_probs else None
            trainer.train()
        times = timer.times[a.warmup:]
        step = statistics.median(times)
        tokens = a.batch * 2 * (a.prompt_len + a.completion_len + 1)
        flops = step_flops(trainer.model, shape, a.prompt_len + a.completion_len + 1, tokens, a.lora, bool(args.precompute_ref_log_probs))
        out.update(step_s=round(step, 4), step_s_min=round(min(times), 4), tokens_per_s=round(tokens / step, 1),
                   tflops=round(flops / step / 1e12, 3), mfu=round(flops / step / peak, 4),
                   peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == 'cuda' else None, status='ok')
    except torch.OutOfMemoryError:
        out['status'] = 'OOM'
    finally:
        del trainer, model, ref
        gc.collect()
        if device == 'cuda': torch.cuda.empty_cache()
    return out

def variants(a):
    "(name, DPOConfig overrides, attention implementation) per configuration; the first is TRL's default."
    bf16 = a.device == 'cuda'            # float32 on CPU: the tiny recipe's setting
    attns = ['sdpa'] + (['flash_attention_2'] if a.device == 'cuda' and importlib.util.find_spec('flash_attn') else [])
    out = [('trl-default', {}, None)]
    for attn in attns:
        for gc_ in (True, False):
            for pre in (False, True):
                name = f"{attn}{'-ckpt' if gc_ else ''}{'-precomp' if pre else ''}"
                out.append((name, dict(bf16=bf16, activation_checkpointing=gc_, precompute_ref_log_probs=pre), attn))
    return out

def markdown(res):
    m = res['machine']; c = res['config']
    lines = [f"# DPO throughput: {c['shape']}{' + LoRA r64' if c['lora'] else ' (full fine-tune)'} on {m['device_name']}", '',
             f"{m['date']}; torch {m['torch']}, transformers {m['transformers']}, trl {m['trl']}; "
             f"batch {c['batch']} pairs x 2 x {c['prompt_len'] + c['completion_len'] + 1} tokens; median step of {c['steps']} after "
             f"{c['warmup']} warm-up, median of {c['repeats']} runs per variant; measured matmul peak {m['peak_tflops']:.2f} TFLOP/s "
             f"({m['peak_dtype']}).", '',
             '| variant | attention | bf16 | grad. ckpt | precomputed ref | tokens/s | step (s) | TFLOP/s | MFU | peak GiB | precompute (s) |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in res['rows']:
        if r['status'] != 'ok':
            lines.append(f"| {r['variant']} | {r['attn']} | | | | {r['status']} | | | | | |"); continue
        lines.append(f"| {r['variant']} | {r['attn']} | {r['bf16']} | {r['gradient_checkpointing']} | {r['precompute_ref_log_probs']} | "
                     f"{r['tokens_per_s']:,.0f} | {r['step_s']:.3f} | {r['tflops']:.2f} | {r['mfu']:.1%} | "
                     f"{'' if r['peak_mem_gib'] is None else r['peak_mem_gib']} | {'' if r['precompute_s'] is None else r['precompute_s']} |")
    base = next((r for r in res['rows'] if r['variant'] == 'trl-default' and r['status'] == 'ok'), None)
    best = max((r for r in res['rows'] if r['status'] == 'ok'), key=lambda r: r['tokens_per_s'], default=None)
    if base and best:
        lines += ['', f"Fastest: {best['variant']}, {best['tokens_per_s'] / base['tokens_per_s']:.2f}x TRL's default configuration."]
    return '\n'.join(lines) + '\n'

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    p.add_argument('--shape', choices=list(SHAPES), default=None, help='model shape (default: mistral-7b on cuda, tiny with --tiny)')
    p.add_argument('--tiny', action='store_true', help='tiny shape and short sequences: a smoke run on CPU')
    p.add_argument('--lora', action='store_true', help='train a LoRA adapter (r 64, alpha 16, q/k/v/o) instead of all weights')
    p.add_argument('--batch', type=int, default=None, help='pairs per step (default: 2 for mistral-7b, 4 for 1b, 4 tiny)')
    p.add_argument('--prompt-len', type=int, default=None, help='prompt tokens (default 512; 32 with --tiny)')
    p.add_argument('--completion-len', type=int, default=None, help='tokens per answer before EOS (default 511; 31 with --tiny)')
    p.add_argument('--steps', type=int, default=10, help='timed steps per variant')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps per variant')
    p.add_argument('--repeats', type=int, default=3, help='runs per variant (fresh model and trainer each); the median run is reported')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--out', default=None, help='JSON output (a .md is written next to it)')
    p.add_argument('--workdir', default='/tmp/notus_dpo_bench')
    a = p.parse_args(argv)
    import torch, transformers, trl
    if a.device == 'cuda' and not torch.cuda.is_available(): sys.exit('no CUDA device: use --device cpu --tiny')
    if a.threads: torch.set_num_threads(a.threads)
    a.shape = a.shape or ('tiny' if a.tiny else 'mistral-7b')
    a.prompt_len = a.prompt_len or (32 if a.tiny else 512)
    a.completion_len = a.completion_len or (31 if a.tiny else 511)
    a.batch = a.batch or {'mistral-7b': 2, '1b': 4}.get(a.shape, 4)
    shape = SHAPES[a.shape]
    tok = word_tokenizer(shape['vocab_size'])
    data = random_pairs(a.batch * (a.steps + a.warmup), a.prompt_len, a.completion_len, shape['vocab_size'])
    peak = measure_peak(a.device)
    dtype = torch.bfloat16 if a.device == 'cuda' else torch.float32
    rows = []
    for name, ov, attn in variants(a):
        runs = [run_variant(name, a, shape, tok, data, peak, ov, attn, dtype if name != 'trl-default' else None) for _ in range(a.repeats)]
        ok = sorted((r for r in runs if r['status'] == 'ok'), key=lambda r: r['tokens_per_s'])
        r = ok[len(ok) // 2] if len(ok) == len(runs) else runs[-1]
        if ok: r['tokens_per_s_runs'] = [x['tokens_per_s'] for x in ok]
        print(json.dumps(r), flush=True)
        rows.append(r)
    cpu = f'{platform.machine()} CPU ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end), {torch.get_num_threads()} torch thread(s)'
    machine = {'device_name': torch.cuda.get_device_name() if a.device == 'cuda' else cpu,
               'date': datetime.date.today().isoformat(), 'torch': torch.__version__, 'transformers': transformers.__version__,
               'trl': trl.__version__, 'peak_tflops': peak / 1e12, 'peak_dtype': 'bf16' if a.device == 'cuda' else 'float32'}
    res = {'machine': machine, 'config': {'shape': a.shape, **shape, 'lora': a.lora, 'batch': a.batch, 'prompt_len': a.prompt_len,
                                          'completion_len': a.completion_len, 'steps': a.steps, 'warmup': a.warmup,
                                          'repeats': a.repeats}, 'rows': rows}
    out = Path(a.out or Path(__file__).parent/'results'/f"dpo_throughput_{a.device}_{a.shape}{'_lora' if a.lora else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + '\n')
    out.with_suffix('.md').write_text(markdown(res))
    print(markdown(res))
    return res

if __name__ == '__main__': main()
