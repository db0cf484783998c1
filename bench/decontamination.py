"""Benchmark: does `notus.clean.decontaminate` find benchmark prompts planted into real preference pairs, and
does it leave the real prompts alone?

The real AlpacaEval (805 prompts), MT-Bench (80 questions, both turns) and TruthfulQA (817 questions) prompts are
planted, as the prompts of extra pairs, into the 1,000 real `trl-lib/ultrafeedback_binarized` pairs of the shared
reference folder, four ways: exactly; with case, whitespace and punctuation changed; with a sentence added
before; with a sentence added after (and, measured without a goal, with one word of the longest turn replaced).
MT-Bench questions are planted as two-turn conversations (first question,
an answer, second question). The script reports the recall per kind of change and per benchmark, the share of
the 1,000 untouched real prompts flagged (false positives, each listed for inspection), the time, and a small grid
over the n-gram length and the containment threshold.

    python bench/decontamination.py                       # real files; results in bench/results/decontamination.{json,md}
    python bench/decontamination.py --generated --out /tmp # the generated stand-in (no reference files needed)

Without the reference folder (or with `--generated`) it runs on a generated equivalent: the bundled UltraFeedback
sample's prompts as the real prompts and made-up questions as the benchmark.
"""
import argparse, json, platform, re, sys, time
from datetime import date
from pathlib import Path
import numpy as np, pyarrow as pa

KINDS = ('exact', 'normalised', 'sentence_before', 'sentence_after')
EXTRA = ('word_changed',)   # measured, no goal: one word of a longer turn replaced (a near copy)
GOALS = {'exact': 0.99, 'normalised': 0.99, 'sentence_before': 0.9, 'sentence_after': 0.9, 'false_positive_rate': 0.005}
SENTENCES = ['Please answer the following question.', 'I need help with this for a school project.',
             'Answer as briefly as you can.', 'Thanks in advance for your help!', 'Explain your reasoning step by step.',
             'My teacher asked me this today and I could not answer it.', 'Please be as detailed as possible.',
             'Reply in plain English, without jargon.']

def perturb(text:str, rng)->str:
    "The same prompt with its case, whitespace and punctuation changed (words unchanged)."
    t = [text.upper, text.lower, text.title, lambda: text.swapcase()][rng.integers(4)]()
    t = re.sub(r' ', lambda m: [' ', '  ', '\n', ' \t '][rng.integers(4)], t, count=0)
    t = re.sub(r'[?.!,;:]', lambda m: ['', m.group(0) * 2, ' ' + m.group(0), m.group(0)][rng.integers(4)], t)
    return '  ' + t.strip() + ['', '?', '!!', ' ...'][rng.integers(4)] + '\n'

def plant(text, kind:str, rng):
    "Turns of the planted prompt: `text` is one prompt or a list of turns (MT-Bench)."
    turns = [text] if isinstance(text, str) else list(text)
    if kind == 'normalised': turns = [perturb(t, rng) for t in turns]
    elif kind == 'sentence_before': turns[0] = SENTENCES[rng.integers(len(SENTENCES))] + ' ' + turns[0]
    elif kind == 'sentence_after': turns[-1] = turns[-1] + ' ' + SENTENCES[rng.integers(len(SENTENCES))]
    elif kind == 'word_changed':
        k = int(np.argmax([len(t.split()) for t in turns])); w = turns[k].split()
        w[len(w) // 2] = 'banana'; turns[k] = ' '.join(w)
    return turns

def messages(turns:list)->list:
    "A user / assistant / user ... conversation from the user turns."
    out = []
    for i, t in enumerate(turns):
        if i: out.append({'content': 'Here is my answer to your first question.', 'role': 'assistant'})
        out.append({'content': t, 'role': 'user'})
    return out

def real_inputs():
    "The real pairs (normalised table) and the real benchmarks, or None when the reference files are absent."
    from notus.core import shared_file
    from notus.pairs import read_pairs, normalize_pairs
    names = {'pairs': 'trl-lib_ultrafeedback_binarized_1000.jsonl', 'alpaca_eval': 'alpaca_eval_notus-7b-v1_model_outputs.json',
             'mt_bench': 'mt_bench_question.jsonl', 'truthfulqa': 'TruthfulQA.csv'}
    paths = {k: shared_file(v) for k, v in names.items()}
    if not all(paths.values()): return None
    from notus.clean import load_benchmark_prompts
    ds, _ = read_pairs(paths['pairs'])
    mt = [json.loads(l)['turns'] for l in paths['mt_bench'].read_text().splitlines() if l.strip()]
    bench = {'alpaca_eval': load_benchmark_prompts(paths['alpaca_eval']), 'mt_bench': mt,
             'truthfulqa': load_benchmark_prompts(paths['truthfulqa'])}
    return normalize_pairs(ds)[0], bench, 'real'

def generated_inputs(seed:int=0):
    "Stand-in: the bundled sample's pairs, and made-up benchmark questions from words those prompts do not use."
    from notus.data import load_ultrafeedback
    from notus.binarize import binarize
    from notus.pairs import normalize_pairs
    from notus.clean import user_text
    pairs, _ = binarize(load_ultrafeedback()[0])
    t = normalize_pairs(pairs)[0]
    rng = np.random.default_rng(seed)
    syll = ['ka', 'lo', 'mi', 'ru', 'te', 'sa', 'vo', 'ne', 'di', 'pa', 'zu', 'fe']
    words = list({''.join(rng.choice(syll, 3)) for _ in range(3000)})
    q = lambda k: ' '.join(rng.choice(words, k)).capitalize() + '?'
    bench = {'alpaca_eval': [q(rng.integers(3, 40)) for _ in range(300)], 'mt_bench': [[q(rng.integers(6, 30)), q(rng.integers(4, 20))] for _ in range(40)],
             'truthfulqa': [q(rng.integers(5, 15)) for _ in range(300)]}
    assert not set(' '.join(user_text(t.column('prompt')).to_pylist()).lower().split()) & set(words)
    return t, bench, 'generated'

def planted_table(t:pa.Table, bench:dict, per_kind:int, seed:int)->tuple:
    "The real table plus `per_kind` planted pairs per kind (benchmarks in proportion); and their (kind, benchmark)."
    rng = np.random.default_rng(seed)
    sizes = {k: len(v) for k, v in bench.items()}; total = sum(sizes.values())
    prompts, ids, labels = [], [], []
    for kind in KINDS + EXTRA:
        for name, size in sizes.items():
            m = max(1, round(per_kind * size / total))
            for j in rng.choice(size, min(m, size), replace=False):
                prompts.append(messages(plant(bench[name][j], kind, rng))); ids.append(f'planted-{kind}-{name}-{j}'); labels.append((kind, name))
    donors = t.take(pa.array(rng.integers(0, t.num_rows, len(prompts))))
    donors = donors.set_column(donors.column_names.index('prompt'), 'prompt', pa.array(prompts, t.schema.field('prompt').type))
    donors = donors.set_column(donors.column_names.index('prompt_id'), 'prompt_id', pa.array(ids, pa.string()))
    return pa.concat_tables([t, donors]), ids, labels

def flat(bench:dict)->dict:
    "Benchmark prompts as lists of strings (both MT-Bench turns)."
    return {k: [p for x in v for p in ([x] if isinstance(x, str) else x)] for k, v in bench.items()}

def measure(t:pa.Table, bench:dict, per_kind:int=100, seed:int=0, n:int=8, min_containment:float=0.8, examples:bool=True, min_words:int=3)->dict:
    "Recall per kind and per benchmark, false positives on the untouched prompts, and the time of `decontaminate`."
    from notus.clean import decontaminate, user_text, contamination
    table, ids, labels = planted_table(t, bench, per_kind, seed)
    fb = flat(bench)
    t0 = time.perf_counter(); _, rep = decontaminate(table, fb, n=n, min_containment=min_containment, min_words=min_words); secs = time.perf_counter() - t0
    dropped = {i for v in rep.dropped.values() for i in v}
    hit = np.array([i in dropped for i in ids])
    kinds = np.array([k for k, _ in labels]); names = np.array([b for _, b in labels])
    recall = {k: float(hit[kinds == k].mean()) for k in KINDS + EXTRA}
    by_bench = {f'{k}/{b}': float(hit[(kinds == k) & (names == b)].mean()) for k in KINDS + EXTRA for b in bench}
    real_ids = set(t.column('prompt_id').to_pylist())
    fp = sorted(dropped & real_ids)
    out = {'n': n, 'min_containment': min_containment, 'pairs_in': table.num_rows, 'planted': len(ids),
           'planted_per_kind': {k: int((kinds == k).sum()) for k in KINDS + EXTRA}, 'untouched': t.num_rows,
           'recall': recall, 'recall_by_benchmark': by_bench, 'false_positives': len(fp),
           'false_positive_rate': len(fp) / t.num_rows, 'seconds_decontaminate': round(secs, 3), 'dropped_by_reason': rep.counts}
    if examples:
        missed = [ids[i] for i in np.flatnonzero(~hit & np.isin(kinds, KINDS))][:20]
        allp = [p for v in fb.values() for p in v]
        pt = dict(zip(table.column('prompt_id').to_pylist(), user_text(table.column('prompt')).to_pylist()))
        fps = [pt[i] for i in fp]
        share, which = contamination(fps, allp, n) if fps else ([], [])
        out['false_positive_examples'] = [{'prompt': p[:300], 'benchmark_prompt': allp[w][:300], 'containment': round(float(s), 3)}
                                          for p, s, w in zip(fps, share, which)]
        out['missed_examples'] = [{'id': i, 'prompt': pt[i][:300]} for i in missed]
    return out

def goals_met(r:dict)->dict:
    return {**{k: r['recall'][k] >= GOALS[k] for k in KINDS}, 'false_positive_rate': r['false_positive_rate'] <= GOALS['false_positive_rate']}

def markdown(res:dict)->str:
    m = res['main']
    lines = [f"# Decontamination: recall on planted benchmark prompts, false positives on real prompts ({res['data']} data)", '',
             f"{res['date']}, {res['machine']}. `python bench/decontamination.py`. {m['untouched']} untouched real pairs plus "
             f"{m['planted']} planted ones ({', '.join(f'{k}: {v}' for k, v in m['planted_per_kind'].items())}); benchmarks: "
             + ', '.join(f"{k} ({v} prompts)" for k, v in res['benchmark_sizes'].items()) + '.', '',
             f"Defaults: {m['n']}-grams, containment >= {m['min_containment']} (share of a benchmark prompt's n-grams found in the prompt).", '',
             '| kind of copy | recall | goal |', '|---|---|---|']
    lines += [f"| {k} | {m['recall'][k]:.3f} | >= {GOALS[k]} |" for k in KINDS]
    lines += [f"| {k} (a near copy, measured for information) | {m['recall'][k]:.3f} | - |" for k in EXTRA]
    lines += [f"| false positives on untouched prompts | {m['false_positives']} / {m['untouched']} = {m['false_positive_rate']:.2%} | <= {GOALS['false_positive_rate']:.1%} |", '',
              f"All goals met: **{all(res['goals_met'].values())}**. `decontaminate` on {m['pairs_in']} pairs against "
              f"{sum(res['benchmark_sizes'].values())} benchmark prompts: {m['seconds_decontaminate']} s.", '',
              '## Recall by benchmark', '', '| kind/benchmark | recall |', '|---|---|']
    lines += [f"| {k} | {v:.3f} |" for k, v in m['recall_by_benchmark'].items()]
    lines += ['', '## Grid (n-gram length x containment threshold)', '',
              '| n | containment | exact | normalised | sentence before | sentence after | one word changed | false positives |', '|---|---|---|---|---|---|---|---|']
    lines += [f"| {g['n']} | {g['min_containment']} | " + ' | '.join(f"{g['recall'][k]:.3f}" for k in KINDS + EXTRA) + f" | {g['false_positives']} ({g['false_positive_rate']:.2%}) |" for g in res['grid']]
    lines += ['', "Near copies (one word of the prompt replaced) are the hard case: a changed word removes up to n of a prompt's "
              "n-grams, and a benchmark prompt shorter than n words must appear whole. Shorter n-grams and lower thresholds catch "
              "more of them, but also flag real prompts that merely share a long phrase with a benchmark prompt (see the false "
              "positives column); the defaults favour no false positives. Pass `n`/`min_containment` to `decontaminate` to trade one for the other."]
    if m.get('false_positive_examples'):
        lines += ['', '## Untouched prompts flagged', '', '| prompt | closest benchmark prompt | containment |', '|---|---|---|']
        cell = lambda s: s.replace('|', '\\|').replace('\n', ' ')[:160]
        lines += [f"| {cell(e['prompt'])} | {cell(e['benchmark_prompt'])} | {e['containment']} |" for e in m['false_positive_examples']]
    if m.get('missed_examples'):
        lines += ['', '## Planted prompts missed', ''] + [f"- `{e['id']}`: {e['prompt'][:160]!r}" for e in m['missed_examples']]
    return '\n'.join(lines) + '\n'

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--per-kind', type=int, default=200, help='planted prompts per kind of change')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--generated', action='store_true', help='use the generated stand-in even when the real files exist')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'), help='folder for decontamination.{json,md}')
    a = ap.parse_args(argv)
    inp = None if a.generated else real_inputs()
    t, bench, kind = inp or generated_inputs(a.seed)
    main_r = measure(t, bench, a.per_kind, a.seed)
    grid = [measure(t, bench, a.per_kind, a.seed, n, c, examples=False) for n in (5, 8, 13) for c in (0.5, 0.8, 1.0)]
    res = {'data': kind, 'date': str(date.today()), 'machine': f"{platform.machine()}, {platform.python_version()}",
           'benchmark_sizes': {k: len(v) for k, v in flat(bench).items()}, 'goals': GOALS, 'main': main_r,
           'goals_met': goals_met(main_r), 'grid': grid}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    stem = 'decontamination' if kind == 'real' else 'decontamination_generated'
    from notus.core import atomic_paths
    with atomic_paths([out/f'{stem}.json', out/f'{stem}.md']) as (j, m):
        j.write_text(json.dumps(res, indent=2)); m.write_text(markdown(res))
    print(markdown(res))
    return res

if __name__ == '__main__': main()
