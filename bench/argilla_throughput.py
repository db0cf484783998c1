"""Start-up time of the local Argilla stack and push / answer / pull throughput of `notus.review` for 1,000 records.

The benchmark starts its own stack with `scripts/argilla.sh` (a temporary data directory and ports 6911 / 9211 /
6391, so a stack already running for the tests is left alone; the server's virtual environment .argilla-venv is
reused, created by the first start if missing) and measures:

- start-up: a cold start (empty data directory: database migration, default user, then the server, worker and
  noida-db until GET /api/v1/me answers) and a warm start (stop, then start on the same data), as wall time of
  `bash scripts/argilla.sh start`; and the memory of the running stack (proportional set size);
- throughput, each run on a fresh dataset: `push_for_review` of 1,000 pairs (all new), the same push again (all
  updates), `submit_reviews` of 1,000 answers, `pull_reviews` of the 1,000 answered records, in records/s.

    python bench/argilla_throughput.py                 # 3 runs of each: about 6 minutes on a 2-core CPU
    python bench/argilla_throughput.py --records 200 --runs 1

Results go to bench/results/argilla_throughput.json and .md (machine, date, versions, every run).
"""
import argparse, datetime, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTS = {'NOTUS_ARGILLA_PORT': '6911', 'NOTUS_ES_PORT': '9211', 'NOTUS_REDIS_PORT': '6391'}


def stack(cmd, data_dir):
    "Run `scripts/argilla.sh cmd` against the benchmark's stack; returns (seconds, stdout)."
    env = {**os.environ, 'NOTUS_ARGILLA_DIR': str(data_dir), **PORTS}
    t = time.perf_counter()
    p = subprocess.run(['bash', str(ROOT/'scripts'/'argilla.sh'), cmd], capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if p.returncode: raise SystemExit(f'argilla.sh {cmd} failed:\n{p.stderr[-3000:]}')
    return dt, p.stdout


def memory_gib(data_dir):
    "Proportional set size (shared pages split between processes) of every process in the stack's sessions."
    total = 0
    for f in Path(data_dir).glob('*.pid'):
        pids = subprocess.run(['ps', '-o', 'pid=', '--sid', f.read_text().strip()], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try: rollup = Path(f'/proc/{pid}/smaps_rollup').read_text()
            except OSError: continue
            total += sum(int(l.split()[1]) for l in rollup.splitlines() if l.startswith('Pss:'))
    return total / 2**20


def make_pairs(n):
    "n distinct preference pairs from generated UltraFeedback rows."
    from notus.synthetic import make_ultrafeedback
    from notus.binarize import binarize
    from notus.review import record_ids
    pairs = binarize(make_ultrafeedback(int(n * 1.3) + 20, seed=1), 'mean_rating')[0]
    seen, keep = set(), []
    for k, i in enumerate(record_ids(pairs)):      # distinct pairs: a duplicated row is one record
        if i not in seen: seen.add(i); keep.append(k)
    pairs = pairs.select(keep[:n])
    assert len(pairs) == n, (len(pairs), n)
    return pairs


def throughput(pairs, run):
    import pandas as pd
    from notus.review import connect, push_for_review, submit_reviews, pull_reviews, review_dataset, record_ids
    client = connect()
    name = f'bench-{run}-{int(time.time())}'
    n, r = len(pairs), {}
    t = time.perf_counter(); rep = push_for_review(pairs, name, client=client, progress=False); r['push (new)'] = time.perf_counter() - t
    assert (rep.new, rep.total) == (n, n), rep
    t = time.perf_counter(); rep = push_for_review(pairs, name, client=client, progress=False); r['push again (updates)'] = time.perf_counter() - t
    assert (rep.new, rep.total) == (0, n), rep
    answers = pd.DataFrame({'id': record_ids(pairs), 'decision': ['keep', 'swap', 'discard'] * (n // 3) + ['keep'] * (n % 3)})
    t = time.perf_counter(); assert submit_reviews(answers, name, client=client) == n; r['submit answers'] = time.perf_counter() - t
    t = time.perf_counter(); rv = pull_reviews(name, client=client, progress=False); r['pull'] = time.perf_counter() - t
    assert len(rv) == n
    review_dataset(name, client, create=False).delete()
    return {k: n / v for k, v in r.items()}, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--records', type=int, default=1000)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--out', default=str(ROOT/'bench'/'results'/'argilla_throughput'))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='notus-argilla-bench-'))
    pairs = make_pairs(a.records)
    cold, warm, mem, runs, secs = [], [], [], [], []
    try:
        for i in range(a.runs):                       # cold starts, each on an empty data directory
            d = tmp/f'cold{i}'
            dt, _ = stack('start', d); cold.append(dt); print(f'cold start {dt:.1f} s', flush=True)
            if i < a.runs - 1: stack('stop', d)
        d = tmp/f'cold{a.runs - 1}'
        for i in range(a.runs):                       # warm starts: stop, start on the same data
            stack('stop', d); dt, _ = stack('start', d); warm.append(dt); print(f'warm start {dt:.1f} s', flush=True)
        time.sleep(2); mem.append(memory_gib(d))
        key = (d/'api_key').read_text().strip()
        os.environ.update({'ARGILLA_API_URL': f"http://127.0.0.1:{PORTS['NOTUS_ARGILLA_PORT']}", 'ARGILLA_API_KEY': key})
        for i in range(a.runs):
            rps, s = throughput(pairs, i); runs.append(rps); secs.append(s)
            print(json.dumps({k: round(v, 1) for k, v in rps.items()}), flush=True)
        mem.append(memory_gib(d))
    finally:
        for p in tmp.glob('cold*'): stack('stop', p)
        shutil.rmtree(tmp, ignore_errors=True)
    import argilla, notus, datasets
    server = subprocess.run([str(ROOT/'.argilla-venv'/'bin'/'python'), '-c', 'from importlib.metadata import version; print(version("argilla-server"))'],
                            capture_output=True, text=True).stdout.strip()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    res = {'benchmark': 'argilla_throughput', 'records': a.records, 'runs': a.runs, 'date': datetime.date.today().isoformat(),
           'machine': f'{platform.machine()} CPU, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end',
           'stack': 'argilla-server + noida-db (Elasticsearch 8 and Redis emulation) + SQLite, all on 127.0.0.1',
           'versions': {'argilla-server': server, 'argilla (SDK)': argilla.__version__, 'notus': notus.__version__, 'datasets': datasets.__version__},
           'startup_s': {'cold (median)': round(statistics.median(cold), 2), 'warm (median)': round(statistics.median(warm), 2),
                         'cold runs': [round(x, 2) for x in cold], 'warm runs': [round(x, 2) for x in warm]},
           'memory_gib': {'after start': round(mem[0], 2), 'after the runs': round(mem[-1], 2)},
           'records_per_s_median': {k: round(v, 1) for k, v in med.items()},
           'runs_records_per_s': [{k: round(v, 1) for k, v in r.items()} for r in runs],
           'runs_s': [{k: round(v, 3) for k, v in r.items()} for r in secs]}
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix('.json').write_text(json.dumps(res, indent=2) + '\n')
    lines = [f"# Local Argilla stack: start-up and review throughput ({a.records:,} records) on {res['machine']}", '',
             f"{res['date']}; " + ', '.join(f'{k} {v}' for k, v in res['versions'].items()) + f"; {res['stack']}; "
             f"median of {a.runs} runs. The CPU is shared with other work, so expect some spread.", '',
             '| start-up | seconds (median) | runs |', '|---|---|---|',
             f"| cold (empty data directory: migrate, default user, start) | {res['startup_s']['cold (median)']:.1f} | {', '.join(f'{x:.1f}' for x in cold)} |",
             f"| warm (existing data) | {res['startup_s']['warm (median)']:.1f} | {', '.join(f'{x:.1f}' for x in warm)} |", '',
             f"Memory of the stack (proportional set size, all processes): {mem[0]:.2f} GiB after start, {mem[-1]:.2f} GiB after the runs.", '',
             f'| operation ({a.records:,} records) | records/s (median) | seconds (median) |', '|---|---|---|'] + \
            [f"| {k} | {v:,.0f} | {statistics.median(s[k] for s in secs):.2f} |" for k, v in med.items()]
    out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__': main()
