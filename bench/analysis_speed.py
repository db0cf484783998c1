"""Speed of the dataset analysis (`notus.analysis`) on a 64k-prompt UltraFeedback file (256k completions).

The file is generated once with `notus.synthetic.write_ultrafeedback(path, 64000)` (the size of the real
openbmb/UltraFeedback) and reused. Two measurements, each the median of several runs:

- in-process, per phase: load + validate, the tidy view, the summary tables, the seven plots (drawn and saved as
  PNG), the report, and separately the mismatch sections (strategy disagreement before/after the repair,
  detector, suspicious records);
- end to end: `notus analyze FILE --output DIR` in a fresh process (imports included), with and without
  `--no-mismatch`, as a user runs it.

    python bench/analysis_speed.py                 # 64k prompts, 3 runs: about a minute on a 2-core CPU
    python bench/analysis_speed.py --prompts 8000 --runs 1

Results go to bench/results/analysis_speed.json and .md (machine, date, versions, every run's times).
"""
import argparse, datetime, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def phases(path, out):
    "One in-process run: seconds per phase."
    from notus.data import load_ultrafeedback, completions_frame
    from notus import analysis as A
    from notus.report import save_figure, write_report
    Path(out).mkdir(parents=True, exist_ok=True)
    t, r = time.perf_counter(), {}
    def lap(k):
        nonlocal t
        now = time.perf_counter(); r[k] = now - t; t = now
    ds, _ = load_ultrafeedback(path); lap('load + validate')
    cf = completions_frame(ds, text=True); lap('tidy view')
    tables = A.analysis_tables(cf); lap('tables')
    for name, fn in [('aspect_ratings', A.plot_aspect_ratings), ('mean_rating', A.plot_mean_rating),
                     ('overall_score', A.plot_overall_score), ('na_rates', A.plot_na_rates), ('joint', A.plot_joint),
                     ('models', A.plot_models), ('sources', A.plot_sources)]:
        save_figure(fn(cf), Path(out)/f'{name}.png')
    lap('plots (7, saved as PNG)')
    secs = A.analysis_sections(cf, out); write_report(secs, out); lap('tables + plots + report again (analysis_sections)')
    from notus.mismatch import mismatch_sections
    mismatch_sections(ds, out, cf=cf); lap('mismatch sections')
    r['analysis (load to plots)'] = sum(r[k] for k in ['load + validate', 'tidy view', 'tables', 'plots (7, saved as PNG)'])
    return r

def cli(path, out, *extra):
    t = time.perf_counter()
    p = subprocess.run([str(Path(sys.executable).parent/'notus'), 'analyze', str(path), '--output', str(out), *extra],
                       capture_output=True, text=True, env={**os.environ, 'MPLBACKEND': 'Agg'})
    if p.returncode: raise SystemExit(p.stderr)
    return time.perf_counter() - t

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--prompts', type=int, default=64000)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--data', default=None, help='UltraFeedback file to reuse (default: generated in a temp dir)')
    ap.add_argument('--out', default=str(ROOT/'bench'/'results'/'analysis_speed'))
    a = ap.parse_args()
    os.environ.setdefault('MPLBACKEND', 'Agg')
    tmp = Path(tempfile.mkdtemp())
    path = Path(a.data) if a.data else tmp/f'uf{a.prompts}.parquet'
    if not path.exists():
        from notus.synthetic import write_ultrafeedback
        t = time.perf_counter(); write_ultrafeedback(path, a.prompts); print(f'generated {path} in {time.perf_counter() - t:.1f} s', flush=True)
    runs = []
    for i in range(a.runs):
        runs.append(phases(path, tmp/f'in{i}')); print(json.dumps({k: round(v, 3) for k, v in runs[-1].items()}), flush=True)
    e2e = {'notus analyze --no-mismatch': [cli(path, tmp/f'c{i}', '--no-mismatch') for i in range(a.runs)],
           'notus analyze (with mismatch)': [cli(path, tmp/f'm{i}') for i in range(a.runs)]}
    print(json.dumps(e2e), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    med.update({k: statistics.median(v) for k, v in e2e.items()})
    import notus, pandas, pyarrow, matplotlib, seaborn
    res = {'benchmark': 'analysis_speed', 'prompts': a.prompts, 'completions': a.prompts * 4, 'runs': a.runs,
           'date': datetime.date.today().isoformat(),
           'machine': f'{platform.machine()} CPU, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end',
           'versions': {m.__name__: m.__version__ for m in (notus, pandas, pyarrow, matplotlib, seaborn)},
           'median_s': {k: round(v, 3) for k, v in med.items()},
           'runs_s': [{k: round(v, 3) for k, v in r.items()} for r in runs], 'cli_runs_s': {k: [round(x, 3) for x in v] for k, v in e2e.items()}}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix('.json').write_text(json.dumps(res, indent=2) + '\n')
    lines = [f"# Analysis speed: {a.prompts:,} prompts ({a.prompts * 4:,} completions) on {res['machine']}", '',
             f"{res['date']}; " + ', '.join(f'{k} {v}' for k, v in res['versions'].items()) + f"; median of {a.runs} runs.", '',
             '| step | seconds (median) |', '|---|---|'] + [f'| {k} | {v:.2f} |' for k, v in med.items()]
    out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))

if __name__ == '__main__': main()
