"""Reference forward passes and CPU time of the critique-vs-ratings experiment without and with the reference cache.

The CPU experiment (experiments/critique-vs-ratings-cpu.yaml: four strategies, four tiny DPO runs from the same
start) is run four times, each into a fresh folder:

- `live`: no cache, the recipe as it is (the reference model runs on every training batch, every epoch);
- `precomputed`: no cache, TRL's `precompute_ref_log_probs` (every run computes all its sequences once);
- `cache-cold`: the runs share one new cache (`notus.refcache`): each run computes only sequences no earlier run saw;
- `cache-warm`: the same cache, filled by `cache-cold`, for another experiment from the same start (DPO beta 0.05
  instead of 0.1, as a hyperparameter ablation would): nothing is computed.

(Changing the pairs of the tiny experiment changes its tokenizer, which the tiny recipe trains on the training
text, and so its start model: a new cache context. Runs 2 to 4 of `cache-cold` are the changed-data case: other
pairs of the same prompts on the same start model.)

For each it records the reference forward passes (sequences through the reference model), the seconds spent in
them where notus measures them, the training seconds of the four runs, and the experiment's wall and process CPU
time. Results: bench/results/refcache_experiment.json and .md.

    python bench/refcache_experiment.py          # ~5 min on one CPU thread
"""
import os
os.environ.setdefault("TQDM_DISABLE", "1")   # no progress bars in the log
import argparse, copy, datetime, json, os, platform, resource, shutil, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def cpu_seconds()->float:
    "User + system CPU seconds of this process so far."
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def variants(cfg:dict)->list:
    "(name, experiment dict, shares the cache with the previous variant) per way of getting the reference log-probs."
    live = {**cfg, 'reference_cache': False}
    pre = {**cfg, 'reference_cache': False, 'override': {**cfg.get('override', {}), 'training.precompute_ref_log_probs': True}}
    beta = {**cfg, 'override': {**cfg.get('override', {}), 'training.beta': 0.05}}
    return [('live', live, False), ('precomputed', pre, False), ('cache-cold', cfg, False), ('cache-warm', beta, True)]

def main(argv=None):
    import yaml
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--experiment', default=str(ROOT/'experiments'/'critique-vs-ratings-cpu.yaml'))
    p.add_argument('--out', default=str(ROOT/'bench'/'results'/'refcache_experiment.json'))
    p.add_argument('--only', nargs='+', default=None, help='run only these variants (names as above)')
    a = p.parse_args(argv)
    import torch
    from notus.experiment import run_experiment
    cfg = yaml.safe_load(Path(a.experiment).read_text())
    cfg['recipe'] = str(Path(a.experiment).parent/cfg['recipe']) if (Path(a.experiment).parent/cfg['recipe']).exists() else cfg['recipe']
    work = Path(tempfile.mkdtemp(prefix='notus_refcache_bench_'))
    rows = []
    try:
        cache = work/'cache'
        for name, c, shared in variants(cfg):
            if a.only and name not in a.only: continue
            c = {**c, **({'reference_cache': str(cache)} if c.get('reference_cache', True) is not False else {})}
            if not shared: shutil.rmtree(cache, ignore_errors=True)
            t0, c0 = time.perf_counter(), cpu_seconds()
            res = run_experiment(c, output_dir=work/name, progress=False)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            tr, rf = res.training, res.info['reference_forward']
            row = {'variant': name, 'train_pairs': int(tr.train_pairs.sum()), 'test_pairs': int(tr.test_pairs.sum()),
                   'reference_forward': {'live': rf['live'], 'precomputed': rf['precomputed']}[name] if name in ('live', 'precomputed') else rf['cached'],
                   'reference_seconds': rf.get('seconds'), 'train_seconds': round(float(tr.seconds.sum()), 1),
                   'wall_seconds': round(wall, 1), 'cpu_seconds': round(cpu, 1),
                   'accuracy_own': [round(float(res.results.query('trained_on == evaluated_on & trained_on == @s').accuracy.item()), 3)
                                    for s in res.info['strategies']],
                   'per_run_computed': tr.ref_computed.tolist(), 'per_run_sequences': tr.ref_precomputed.tolist()}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    machine = {'cpu': f'{platform.machine()} CPU ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)',
               'torch_threads': torch.get_num_threads(), 'date': datetime.date.today().isoformat(), 'torch': torch.__version__}
    res = {'machine': machine, 'experiment': Path(a.experiment).name, 'rows': rows}
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + '\n')
    out.with_suffix('.md').write_text(markdown(res))
    print(markdown(res))

def markdown(res:dict)->str:
    m = res['machine']
    lines = [f"# Reference log-prob cache: {res['experiment']}", '',
             f"{m['date']}; {m['cpu']}; {m['torch_threads']} torch thread(s); torch {m['torch']}. Four tiny DPO runs (one per "
             "strategy) from the same start per variant; a reference forward pass is one sequence (prompt + one completion) "
             "through the reference model.", '',
             '| variant | training pairs | held-out pairs | reference forward passes | seconds in them | training s (4 runs) | wall s | CPU s | own held-out accuracy |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in res['rows']:
        lines.append(f"| {r['variant']} | {r['train_pairs']:,} | {r['test_pairs']:,} | {r['reference_forward']:,} | "
                     f"{'' if r['reference_seconds'] is None else r['reference_seconds']} | {r['train_seconds']} | {r['wall_seconds']} | "
                     f"{r['cpu_seconds']} | {', '.join(map(str, r['accuracy_own']))} |")
    by = {r['variant']: r for r in res['rows']}
    if {'live', 'precomputed', 'cache-cold'} <= set(by):
        l, p, c = by['live'], by['precomputed'], by['cache-cold']
        lines += ['', f"With the cache the four runs make {c['reference_forward']:,} reference forward passes instead of "
                  f"{p['reference_forward']:,} (precomputed per run, {1 - c['reference_forward'] / p['reference_forward']:.0%} fewer) or "
                  f"{l['reference_forward']:,} (live reference, {1 - c['reference_forward'] / l['reference_forward']:.0%} fewer); "
                  f"training took {c['train_seconds']} s against {p['train_seconds']} s and {l['train_seconds']} s "
                  f"(CPU {c['cpu_seconds']} s against {p['cpu_seconds']} s and {l['cpu_seconds']} s for the whole experiment)."]
    if 'cache-cold' in by:
        c = by['cache-cold']
        lines += ['', "Per run with the cache (strategies in the experiment's order): " + ', '.join(
                  f"{k:,} of {n:,}" for k, n in zip(c['per_run_computed'], c['per_run_sequences'])) + " sequences computed."]
    if 'cache-warm' in by:
        w = by['cache-warm']
        lines += ['', f"Another experiment from the same start (beta 0.05) on the filled cache: {w['reference_forward']:,} reference "
                  f"forward passes of {sum(w['per_run_sequences']):,} sequences; CPU {w['cpu_seconds']} s."]
    return '\n'.join(lines) + '\n'

if __name__ == '__main__': sys.exit(main())
