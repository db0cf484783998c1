"""GPU smoke test of DPO training: a few steps of 7B-shaped LoRA DPO and 1B-shaped full DPO from random weights.

For whoever has a CUDA machine: nothing is downloaded. The models are Mistral-shaped and randomly initialised
(random weights cost the same per step as trained ones), the tokenizer is a word-level one built on the spot
(one word is one token, so sequence lengths are exact), and the pairs are random words. Each model is trained
for `--steps` timed steps after `--warmup` untimed ones, once per way of getting the reference log-probs:

- `live`: the reference model runs a forward pass on every step (TRL's default; the LoRA run disables its adapter);
- `precomputed`: TRL's `precompute_ref_log_probs` computes them once before training;
- `cache-cold`: notus's per-sequence cache (`notus.refcache`, `launch.reference_cache` in a recipe), empty:
  every sequence is computed once and written;
- `cache-warm`: the same again on the filled cache: nothing is computed, the values are read from disk.

    python bench/gpu_smoke.py                 # a CUDA machine: 7B LoRA + 1B full, ~10 min on one H100
    python bench/gpu_smoke.py --tiny          # any CPU, seconds (what tests/test_gpu_smoke.py runs)

Per run it writes tokens/s (chosen + rejected tokens trained on per second, median step after warm-up), peak GPU
memory (`torch.cuda.max_memory_allocated`), the reference step's seconds and sequences computed, and MFU:

    MFU = 6 x N x tokens / (step seconds x peak FLOP/s)

with N the parameters of the model's linear layers (lm_head included, embeddings not: a lookup costs no
FLOPs) and the peak the dense bf16 tensor-core figure of the detected GPU from NVIDIA's data sheets
(`PEAK_BF16`: H100 SXM 989 TFLOP/s, H100 PCIe 756, H100 NVL 835, H200 989, A100 312); on a GPU not in the table, and on a CPU,
the peak is a measured matmul (bf16 8192^2 on a GPU, float32 1024^2 on a CPU) and the JSON says so. 6N is the
usual full fine-tuning count (forward 2N, backward 4N); it ignores attention FLOPs and the reference forward
(2N more per token in `live`), so `live` pays for its reference forward in a lower MFU, and a LoRA step, whose
frozen base needs no weight gradients, does less work than 6N.

Results: bench/results/gpu_smoke_<device>.json and .md (machine, date, versions).
"""
import argparse, datetime, gc, json, os, platform, shutil, statistics, sys, time, warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dpo_throughput import SHAPES, word_tokenizer, random_pairs, build_model, step_timer, measure_peak  # noqa: E402

PEAK_BF16 = {'H100 PCIe': 756e12, 'H100 NVL': 835e12, 'H100': 989e12, 'H200': 989e12, 'GH200': 989e12, 'A100': 312e12}   # dense bf16, FLOP/s
MODES = ('live', 'precomputed', 'cache-cold', 'cache-warm')

def peak_flops(device:str)->tuple:
    "(peak FLOP/s, where it comes from): the data-sheet bf16 peak of a known GPU, else a measured matmul."
    import torch
    if device == 'cuda':
        name = torch.cuda.get_device_name()
        for k, v in PEAK_BF16.items():           # the most specific names first ('H100 PCIe' before 'H100')
            if k in name: return v, f'data sheet, {k} dense bf16'
    return measure_peak(device), f"measured {'bf16' if device == 'cuda' else 'float32'} matmul"

def base_params(model)->int:
    "N: weights of the linear layers (lm_head included), LoRA adapters left out."
    import torch
    return sum(m.weight.numel() for k, m in model.named_modules() if isinstance(m, torch.nn.Linear) and 'lora_' not in k)

def runs(a)->list:
    "(name, shape, LoRA) of the model runs: the 7B LoRA and the 1B full fine-tune (two tiny ones with --tiny)."
    if a.tiny: return [('tiny-lora', 'tiny', True), ('tiny-full', 'tiny', False)]
    return [('mistral-7b-lora', 'mistral-7b', True), ('1b-full', '1b', False)]

def run_one(a, run:str, shape_name:str, lora:bool, mode:str, tok, data, peak:float, cache_dir:Path)->dict:
    "Train `a.warmup + a.steps` DPO steps with the reference log-probs got as `mode` says; return the measurements."
    import copy, torch
    from trl import DPOConfig, DPOTrainer
    from peft import LoraConfig
    from notus.refcache import cached_dpo_trainer, cache_totals
    shape, dev = SHAPES[shape_name], a.device
    out = {'run': run, 'shape': shape_name, 'lora': lora, 'mode': mode}
    seq = a.prompt_len + a.completion_len + 1
    kw = dict(output_dir=str(Path(a.workdir)/f'{run}-{mode}'), per_device_train_batch_size=a.batch, max_steps=a.steps + a.warmup,
              report_to='none', save_strategy='no', disable_tqdm=True, max_length=seq, dataloader_num_workers=0, seed=0,
              bf16=dev == 'cuda', activation_checkpointing=not a.tiny, precompute_ref_log_probs=mode != 'live')
    if dev == 'cpu': kw['use_cpu'] = True
    trainer = model = ref = None
    try:
        if dev == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            args = DPOConfig(**kw)
            model = build_model(shape, 'sdpa', torch.bfloat16 if dev == 'cuda' else torch.float32, dev)
            peft = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.0, target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj'],
                              task_type='CAUSAL_LM') if lora else None
            if not lora and mode == 'live': ref = copy.deepcopy(model).eval().requires_grad_(False)   # an in-memory model: TRL cannot reload it
            cls, extra = (cached_dpo_trainer(), {'reference_cache': cache_dir}) if mode.startswith('cache') else (DPOTrainer, {})
            timer = step_timer(dev)
            t0 = time.perf_counter()
            trainer = cls(model=model, ref_model=ref, args=args, train_dataset=data, processing_class=tok, peft_config=peft,
                          callbacks=[timer], **extra)
            out['init_s'] = round(time.perf_counter() - t0, 2)
            st = cache_totals(trainer.ref_cache_stats) if mode.startswith('cache') else None
            out['ref_sequences_computed'] = (st['computed'] if st else 2 * len(data) if mode == 'precomputed'
                                             else 2 * a.batch * (a.steps + a.warmup))
            out['ref_seconds'] = st['seconds'] if st else (out['init_s'] if mode == 'precomputed' else None)
            trainer.train()
        times = timer.times[a.warmup:]
        step = statistics.median(times)
        tokens = a.batch * 2 * seq
        n = base_params(trainer.model)
        out.update(params_linear=n, step_s=round(step, 6), tokens_per_s=round(tokens / step, 1),
                   mfu=round(6 * n * tokens / (step * peak), 4),
                   peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if dev == 'cuda' else None, status='ok')
    except torch.OutOfMemoryError:
        out['status'] = 'OOM'
    finally:
        del trainer, model, ref
        gc.collect()
        if dev == 'cuda': torch.cuda.empty_cache()
    return out

def markdown(res:dict)->str:
    m, c = res['machine'], res['config']
    lines = [f"# GPU smoke: DPO from random weights on {m['device_name']}", '',
             f"{m['date']}; torch {m['torch']}, transformers {m['transformers']}, trl {m['trl']}; batch {c['batch']} pairs x 2 x "
             f"{c['prompt_len'] + c['completion_len'] + 1} tokens; median of {c['steps']} steps after {c['warmup']} warm-up; "
             f"MFU = 6 N tokens / (step time x {m['peak_tflops']:.3g} TFLOP/s, {m['peak_source']}).", '',
             '| run | reference log-probs | tokens/s | step (s) | MFU | peak GiB | ref. sequences computed | ref. seconds |',
             '|---|---|---|---|---|---|---|---|']
    for r in res['rows']:
        if r['status'] != 'ok': lines.append(f"| {r['run']} | {r['mode']} | {r['status']} | | | | | |"); continue
        lines.append(f"| {r['run']} | {r['mode']} | {r['tokens_per_s']:,.0f} | {r['step_s']:.3f} | {r['mfu']:.1%} | "
                     f"{'' if r['peak_mem_gib'] is None else r['peak_mem_gib']} | {r['ref_sequences_computed']:,} | "
                     f"{'' if r['ref_seconds'] is None else r['ref_seconds']} |")
    return '\n'.join(lines) + '\n'

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tiny', action='store_true', help='tiny shapes and short sequences on the CPU: the smoke test of this script')
    p.add_argument('--device', choices=['cuda', 'cpu'], default=None, help='default: cpu with --tiny, else cuda')
    p.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES), help='ways of getting the reference log-probs')
    p.add_argument('--batch', type=int, default=None, help='pairs per step (default 2; 4 with --tiny)')
    p.add_argument('--prompt-len', type=int, default=None, help='prompt tokens (default 512; 16 with --tiny)')
    p.add_argument('--completion-len', type=int, default=None, help='tokens per answer before EOS (default 511; 15 with --tiny)')
    p.add_argument('--steps', type=int, default=5, help='timed steps per run')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps per run')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--out', default=None, help='JSON output (a .md is written next to it)')
    p.add_argument('--workdir', default=None, help='scratch folder for trainer output and the cache (default: a temporary one)')
    a = p.parse_args(argv)
    import tempfile, torch, transformers, trl
    a.device = a.device or ('cpu' if a.tiny else 'cuda')
    if a.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('gpu_smoke: no CUDA device here; run it on a GPU machine, or with --tiny on a CPU.')
    if a.threads: torch.set_num_threads(a.threads)
    a.prompt_len = a.prompt_len or (16 if a.tiny else 512)
    a.completion_len = a.completion_len or (15 if a.tiny else 511)
    a.batch = a.batch or (4 if a.tiny else 2)
    keep = a.workdir is not None                   # a given scratch folder is kept for inspection
    work = Path(a.workdir or tempfile.mkdtemp(prefix='notus_gpu_smoke_')); a.workdir = str(work)
    peak, source = peak_flops(a.device)
    rows = []
    try:
        for run, shape_name, lora in runs(a):
            tok = word_tokenizer(SHAPES[shape_name]['vocab_size'])
            data = random_pairs(a.batch * (a.steps + a.warmup), a.prompt_len, a.completion_len, SHAPES[shape_name]['vocab_size'])
            cache = work/f'{run}-cache'
            for mode in a.modes:
                r = run_one(a, run, shape_name, lora, mode, tok, data, peak, cache)
                print(json.dumps(r), flush=True)
                rows.append(r)
    finally:
        if not keep: shutil.rmtree(work, ignore_errors=True)
    cpu = f'{platform.machine()} CPU ({os.cpu_count()} cores), {torch.get_num_threads()} torch thread(s)'
    machine = {'device_name': torch.cuda.get_device_name() if a.device == 'cuda' else cpu, 'date': datetime.date.today().isoformat(),
               'torch': torch.__version__, 'transformers': transformers.__version__, 'trl': trl.__version__,
               'peak_flops': peak, 'peak_tflops': round(peak / 1e12, 3), 'peak_source': source}
    res = {'machine': machine, 'config': {'tiny': a.tiny, 'batch': a.batch, 'prompt_len': a.prompt_len, 'completion_len': a.completion_len,
                                          'steps': a.steps, 'warmup': a.warmup, 'modes': a.modes,
                                          'mfu': '6 x linear-layer parameters x tokens / (median step s x peak FLOP/s)'}, 'rows': rows}
    out = Path(a.out or HERE/'results'/f"gpu_smoke_{a.device}{'_tiny' if a.tiny else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + '\n')
    out.with_suffix('.md').write_text(markdown(res))
    print(markdown(res))
    return 0 if all(r['status'] == 'ok' for r in rows) else 1

if __name__ == '__main__': sys.exit(main())
