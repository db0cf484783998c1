"""Benchmark: `notus binarize` against a straightforward per-row Python implementation through `datasets.map`
(the way Argilla's notebook binarized UltraFeedback), side by side in one run, end to end (load + binarize + write).

    python bench/binarize_speed.py                 # 64k prompts, 3 runs each, results in bench/results/
    python bench/binarize_speed.py --prompts 2000 --runs 1 --out /tmp/bench   # quick check

Both use the same per-row rule (chosen = first highest mean rating; rejected = the ⌊u·k⌋-th of the k strictly
lower completions, u drawn from (seed, prompt_id)), so their chosen/rejected choices must be identical: the script
checks that on every prompt.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from datetime import date
from pathlib import Path
import numpy as np, pyarrow.parquet as pq

ASPECTS = ['instruction_following', 'honesty', 'truthfulness', 'helpfulness']

def reference(path, out, seed=42):
    "Per-row Python, datasets.map, as in Argilla's notebook."
    import datasets
    from notus.data import prompt_id
    from notus.binarize import uniform_draws
    ds = datasets.load_dataset('parquet', data_files=str(path), split='train', keep_in_memory=True)
    def row_fn(row):
        means = []
        for c in row['completions']:
            r = [float(c['annotations'][a]['Rating']) for a in ASPECTS if c['annotations'][a]['Rating'] != 'N/A']
            means.append(sum(r) / len(r) if r else None)
        rated = [m for m in means if m is not None]
        empty = {'prompt_id': None, 'prompt': None, 'chosen': None, 'rejected': None, 'chosen_rating': None, 'rejected_rating': None}
        if len(rated) < 2: return empty
        best = max(rated); ci = means.index(best)
        lower = [i for i, m in enumerate(means) if m is not None and m < best]
        if not lower: return empty
        pid = prompt_id(row['instruction'])
        ri = lower[min(int(uniform_draws([pid], seed)[0] * len(lower)), len(lower) - 1)]
        return {'prompt_id': pid, 'prompt': [{'content': row['instruction'], 'role': 'user'}],
                'chosen': [{'content': row['completions'][ci]['response'], 'role': 'assistant'}],
                'rejected': [{'content': row['completions'][ri]['response'], 'role': 'assistant'}],
                'chosen_rating': means[ci], 'rejected_rating': means[ri]}
    out_ds = ds.map(row_fn, remove_columns=ds.column_names, keep_in_memory=True).filter(lambda r: r['prompt_id'] is not None, keep_in_memory=True)
    out_ds.to_parquet(str(out))

def notus_inproc(path, out, seed=42):
    "notus's library path: load (with validation) + binarize + write."
    from notus.data import load_ultrafeedback
    from notus.binarize import binarize, save_pairs
    ds, _ = load_ultrafeedback(path)
    save_pairs(binarize(ds, seed=seed)[0], out)

def _timed(kind, path, out):
    "In a fresh process: import first, then time the work alone (printed as the last line)."
    import datasets, notus.binarize  # noqa: imports are not part of the timed work for either side
    t0 = time.perf_counter()
    (notus_inproc if kind == 'notus' else reference)(path, out)
    print(time.perf_counter() - t0)

def run(kind, path, out):
    "Returns (seconds of the work in-process, seconds of the whole command including interpreter start and imports)."
    cmd = ([str(Path(sys.executable).parent/'notus'), 'binarize', str(path), '--output', str(out)] if kind == 'notus-cli'
           else [sys.executable, __file__, '--timed', kind, str(path), str(out)])
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    return (float(r.stdout.strip().splitlines()[-1]) if kind != 'notus-cli' else wall), wall

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--prompts', type=int, default=64000); ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--out', default=str(Path(__file__).parent/'results')); ap.add_argument('--timed', nargs=3)
    a = ap.parse_args()
    if a.timed: return _timed(*a.timed)
    from notus.synthetic import write_ultrafeedback
    tmp = Path(tempfile.mkdtemp())
    src = tmp/f'uf_{a.prompts}.parquet'
    t0 = time.perf_counter(); write_ultrafeedback(src, a.prompts, seed=0); gen_s = time.perf_counter() - t0
    times, walls = {'notus': [], 'reference': [], 'notus-cli': []}, {'notus': [], 'reference': [], 'notus-cli': []}
    for i in range(a.runs):            # interleaved, so all see the same machine load
        for kind, out in [('notus', 'notus.parquet'), ('reference', 'ref.parquet'), ('notus-cli', 'cli.parquet')]:
            t, w = run(kind, src, tmp/out); times[kind].append(t); walls[kind].append(w)
    n, r = pq.read_table(tmp/'notus.parquet').to_pandas(), pq.read_table(tmp/'ref.parquet').to_pandas()
    txt = lambda col: col.map(lambda m: m[0]['content'])
    same = (len(n) == len(r) and (n.prompt_id.to_numpy() == r.prompt_id.to_numpy()).all()
            and (txt(n.chosen) == txt(r.chosen)).all() and (txt(n.rejected) == txt(r.rejected)).all())
    med = {k: statistics.median(v) for k, v in times.items()}
    medw = {k: statistics.median(v) for k, v in walls.items()}
    res = {'benchmark': 'binarize end to end (load + binarize + write Parquet)', 'date': str(date.today()),
           'machine': f'{os.cpu_count()}-core CPU, {platform.machine()}, Python {platform.python_version()}',
           'prompts': a.prompts, 'completions': 4 * a.prompts, 'pairs': len(n), 'runs': a.runs,
           'seconds_work': times, 'median_seconds_work': med, 'speedup_work': med['reference'] / med['notus'],
           'seconds_whole_command': walls, 'median_seconds_whole_command': medw,
           'speedup_whole_command': medw['reference'] / medw['notus'],
           'identical_choices': bool(same), 'generate_seconds': round(gen_s, 2)}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out/'binarize_speed.json').write_text(json.dumps(res, indent=2))
    (out/'binarize_speed.md').write_text(
        f"# binarize speed ({res['date']})\n\n{res['machine']}; {a.prompts:,} prompts / {4*a.prompts:,} completions; "
        f"median of {a.runs} interleaved runs, each in a fresh process. *Work* = load (notus: with validation) + binarize + "
        f"write Parquet, timed inside the process after imports; *whole command* adds interpreter start and imports "
        f"(`import datasets` alone is about 1.3 s here).\n\n"
        f"| implementation | work, median s | whole command, median s | work runs (s) |\n|---|---|---|---|\n"
        f"| notus (`load_ultrafeedback` + `binarize` + `save_pairs`, vectorised) | {med['notus']:.2f} | {medw['notus']:.2f} | {', '.join(f'{x:.2f}' for x in times['notus'])} |\n"
        f"| per-row Python through `datasets.map` (Argilla notebook style) | {med['reference']:.2f} | {medw['reference']:.2f} | {', '.join(f'{x:.2f}' for x in times['reference'])} |\n"
        f"| `notus binarize` CLI (also computes the overall_score comparison) | - | {medw['notus-cli']:.2f} | - |\n\n"
        f"Speed-up on the work: **{res['speedup_work']:.1f}×**; on the whole command: **{res['speedup_whole_command']:.1f}×**. "
        f"Identical chosen/rejected choices on all {len(n):,} pairs: **{same}**.\n")
    print(json.dumps(res, indent=2))

if __name__ == '__main__': main()
