"""Preference-pair files laid out the way each published dataset card documents them, for tests.

Every file is built here from plain Python rows (dicts, `json`, `pyarrow.Table.from_pylist`), never through
`notus.pairs`, so the reader is tested against the layouts as published, not against itself. The rows are the 1,000
real `trl-lib/ultrafeedback_binarized` pairs of the shared reference data when it is present
(`notus.core.shared_file`), else a small generated equivalent with the same quirks (ties, one empty chosen, one empty
rejected, non-ASCII text, newlines). `multi_turn=True` gives some rows an earlier user turn and assistant answer (and
some a system message) before the turn being answered.

    from layouts import LAYOUT_NAMES, write_layout, expected_pairs
    path = write_layout('h4_binarized', tmp_path)             # a folder with data/train_prefs-00000-of-00001.parquet ...
    pairs, layout = notus.pairs.read_pairs(path)
"""
from __future__ import annotations
import hashlib, json
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq

LAYOUT_NAMES = ('notus', 'trl_standard', 'trl_conversational', 'trl_implicit_prompt', 'h4_binarized', 'allenai_cleaned',
                'argilla_flat', 'argilla_cleaned')
REAL_FILE = 'trl-lib_ultrafeedback_binarized_1000.jsonl'
SOURCES = ('evol_instruct', 'false_qa', 'flan_v2_niv2', 'sharegpt', 'truthful_qa', 'ultrachat')
MODELS = ('gpt-4', 'llama-2-13b-chat', 'wizardlm-70b', 'ultralm-65b', 'falcon-40b-instruct', 'starchat')
H4_SPLITS = ('train_prefs', 'test_prefs', 'train_sft', 'test_sft', 'train_gen', 'test_gen')
PLAIN_LAYOUTS = ('trl_standard', 'argilla_flat')   # plain text: earlier turns can only be written into the prompt text
FILE_NAMES = {'notus': 'notus.parquet', 'trl_standard': 'trl_standard.jsonl', 'trl_conversational': 'trl_conversational.jsonl',
              'trl_implicit_prompt': 'trl_implicit_prompt.parquet', 'h4_binarized': 'h4_binarized',
              'allenai_cleaned': 'allenai_cleaned.jsonl', 'argilla_flat': 'argilla_flat.jsonl',
              'argilla_cleaned': 'argilla_cleaned.parquet'}

def real_file() -> Path | None:
    "The real trl-lib pairs file, or None when the shared reference data is absent."
    from notus.core import shared_file
    return shared_file(REAL_FILE)

def real_rows_available() -> bool: return real_file() is not None

def generated_rows(n:int=40) -> list:
    "A small stand-in for the real rows: TRL standard pairs with their quirks (ties, empty answers, non-ASCII text)."
    topics = ['recursion', 'photosynthesis', 'the French Revolution', 'Bayes\' rule', 'TCP handshakes', 'sourdough bread',
              'la tortilla española', '日本の四季', 'black holes', 'compound interest']
    rows = []
    for i in range(n):
        t = topics[i % len(topics)]
        prompt = [f'Explain {t} to a beginner.', f'Write a haiku about {t}.', f'What are three facts about {t}?\nAnswer in a list.',
                  f'¿Qué es {t}? Responde en español, por favor.'][i % 4] + f' (#{i})'
        chosen = f'Here is a clear answer about {t}: first the core idea, then an example, then a summary. "Quoted" part {i}.'
        rejected = f'{t} is a thing. Not sure.' if i % 3 else f'I cannot help with {t}.'
        sc, sr = float(10 - i % 4), float(2 + i % 5)
        if i % 9 == 0: sr = sc                                      # a tie, as 111 of the real rows are
        if i == 5: chosen = ''                                       # one empty chosen, one empty rejected, as in the real file
        if i == 7: rejected = ''
        rows.append({'prompt': prompt, 'chosen': chosen, 'rejected': rejected, 'source_index': 1000 + i,
                     'metadata': {'score_chosen': sc, 'score_rejected': sr}})
    return rows

def source_rows(rows=None) -> list:
    "The rows the layouts are built from: `rows` itself (a list), the first `rows` (an int) or all of the real or generated rows."
    if isinstance(rows, list): return rows
    f = real_file()
    if f is not None:
        with open(f, encoding='utf-8') as fh: src = [json.loads(l) for l in fh if l.strip()]
    else: src = generated_rows()
    return src if rows is None else src[:rows]

def _scores(r) -> tuple:
    md = r.get('metadata') or {}
    return float(r.get('score_chosen', md.get('score_chosen'))), float(r.get('score_rejected', md.get('score_rejected')))

def prompt_messages(r:dict, i:int, multi_turn:bool=False) -> list:
    "The conversation before the answer of row `i`: one user turn, or with `multi_turn` (rows 1, 4, 7, ...) earlier turns too."
    user = {'content': r['prompt'], 'role': 'user'}
    if not multi_turn or i % 3 != 1: return [user]
    earlier = [{'content': f'Before that, a quick one: what does row {i} of this list mean?', 'role': 'user'},
               {'content': f'Row {i} is one preference pair: a prompt with a better and a worse answer.', 'role': 'assistant'}]
    system = [{'content': 'You are a helpful, honest assistant.', 'role': 'system'}] if i % 2 == 0 else []
    return system + earlier + [user]

def transcript(messages:list) -> str:
    "Earlier turns written into one prompt text, as plain-text layouts carry conversations."
    if len(messages) == 1: return messages[0]['content']
    return '\n\n'.join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)

def split_of(i:int) -> str:
    "The H4 preference split of row `i` (every fifth row is a test row)."
    return 'test_prefs' if i % 5 == 0 else 'train_prefs'

def expected_pairs(name:str, rows=None, multi_turn:bool=False) -> list:
    """What reading `write_layout(name, ...)` must give, one dict per row in file order: `prompt` (messages), `chosen`,
    `rejected` (answer texts), `chosen_score`, `rejected_score`, `split` (the H4 split of the row)."""
    out = []
    for i, r in enumerate(source_rows(rows)):
        msgs = prompt_messages(r, i, multi_turn)
        if name in PLAIN_LAYOUTS: msgs = [{'content': transcript(msgs), 'role': 'user'}]
        sc, sr = _scores(r)
        out.append({'prompt': msgs, 'chosen': r['chosen'], 'rejected': r['rejected'], 'chosen_score': sc, 'rejected_score': sr,
                    'split': split_of(i)})
    return out

def _sha(s:str) -> str: return hashlib.sha256(s.encode('utf-8')).hexdigest()

def _row(name:str, r:dict, i:int, multi_turn:bool) -> dict:
    "One row of `name`'s layout, with the columns its dataset card lists."
    msgs = prompt_messages(r, i, multi_turn)
    sc, sr = _scores(r)
    a = lambda text: {'content': text, 'role': 'assistant'}
    src, mc, mr = SOURCES[i % len(SOURCES)], MODELS[i % len(MODELS)], MODELS[(i + 2) % len(MODELS)]
    if name == 'trl_standard':
        return {'prompt': transcript(msgs), 'chosen': r['chosen'], 'rejected': r['rejected'], 'score_chosen': sc, 'score_rejected': sr}
    if name == 'trl_conversational':
        return {'prompt': msgs, 'chosen': [a(r['chosen'])], 'rejected': [a(r['rejected'])], 'score_chosen': sc, 'score_rejected': sr}
    if name == 'trl_implicit_prompt':
        return {'chosen': msgs + [a(r['chosen'])], 'rejected': msgs + [a(r['rejected'])], 'score_chosen': sc, 'score_rejected': sr}
    if name in ('h4_binarized', 'allenai_cleaned'):
        first_user = next(m['content'] for m in msgs if m['role'] == 'user')
        row = {'prompt': first_user, 'prompt_id': _sha(first_user), 'chosen': msgs + [a(r['chosen'])],
               'rejected': msgs + [a(r['rejected'])], 'messages': msgs + [a(r['chosen'])], 'score_chosen': sc, 'score_rejected': sr}
        return row | ({'source': src} if name == 'allenai_cleaned' else {})
    if name == 'argilla_flat':
        return {'source': src, 'instruction': transcript(msgs), 'chosen_response': r['chosen'], 'chosen_avg_rating': sc / 2,
                'chosen_model': mc, 'rejected_response': r['rejected'], 'rejected_avg_rating': sr / 2, 'rejected_model': mr}
    if name == 'argilla_cleaned':
        return {'source': src, 'prompt': msgs[-1]['content'], 'chosen': msgs + [a(r['chosen'])], 'chosen-rating': sc / 2,
                'chosen-model': mc, 'rejected': msgs + [a(r['rejected'])], 'rejected-rating': sr / 2, 'rejected-model': mr}
    if name == 'notus':
        return {'prompt_id': _sha('\n\n'.join(m['content'] for m in msgs)), 'prompt': msgs, 'chosen': [a(r['chosen'])],
                'rejected': [a(r['rejected'])], 'chosen_rating': sc / 2, 'rejected_rating': sr / 2, 'chosen_score': sc,
                'rejected_score': sr, 'chosen_model': mc, 'rejected_model': mr, 'source': src, 'strategy': 'mean_rating'}
    raise ValueError(f'unknown layout {name!r}; choose one of {", ".join(LAYOUT_NAMES)}')

def _write_jsonl(rows:list, path:Path):
    with open(path, 'w', encoding='utf-8') as f:
        for r in rows: f.write(json.dumps(r, ensure_ascii=False) + '\n')

def write_layout(name:str, out_dir, rows=None, multi_turn:bool=False) -> Path:
    """Write the source rows in layout `name` under `out_dir`; return the file or folder to pass to `read_pairs`.
    `h4_binarized` is a folder laid out as the hub repository: `data/{split}-00000-of-00001.parquet` for its six splits
    (`*_prefs` by `split_of`; `*_sft` and `*_gen` repeat the same prompts, as on the hub)."""
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    built = [_row(name, r, i, multi_turn) for i, r in enumerate(source_rows(rows))]
    path = out_dir/(FILE_NAMES[name] if not multi_turn else FILE_NAMES[name].replace('.', '_multi.', 1) if '.' in FILE_NAMES[name]
                    else FILE_NAMES[name] + '_multi')
    if name == 'h4_binarized':
        (path/'data').mkdir(parents=True, exist_ok=True)
        for sp in H4_SPLITS:
            part = 'test_prefs' if sp.startswith('test') else 'train_prefs'
            sel = [b for i, b in enumerate(built) if split_of(i) == part]
            pq.write_table(pa.Table.from_pylist(sel), path/'data'/f'{sp}-00000-of-00001.parquet')
        return path
    if path.suffix == '.parquet': pq.write_table(pa.Table.from_pylist(built), path)
    else: _write_jsonl(built, path)
    return path
