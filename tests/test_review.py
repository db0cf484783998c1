"""notus.review without a server: every published pairs layout is ranked by suspicion with a reason on each record
(checked against a plain-Python computation on the raw rows), and `notus review apply` reads any layout through the
real CLI; `review push` fails in one sentence when no server is configured, after accepting `--critiques bundled`."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pyarrow.parquet as pq, pytest
from layouts import LAYOUT_NAMES, source_rows, write_layout
from notus.pairs import read_pairs
from notus.review import record_ids, review_frame

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, '-c', 'from notus.cli import cli; cli()']


def _by_hand(cr, rr, cs, rs):
    "The documented pair suspicion, in plain Python (None: missing)."
    ev = 0.0
    if cs is not None and cr is not None: ev += max(cs / 2 - cr, 0)
    if cr is not None and rr is not None: ev += max(rr - cr, 0) + (1.0 if cr == rr else 0.0)
    elif cs is not None and rs is not None and cs == rs: ev += 1.0          # no ratings: a tie of the scores
    if cs is not None and rs is not None: ev += max((rs - cs) / 2 - (max(rs / 2 - rr, 0) if rr is not None else 0), 0)
    return min(max(ev / 4, 0), 1)


@pytest.mark.parametrize('name', LAYOUT_NAMES)
def test_every_layout_is_ranked_with_a_reason(tmp_path, name):
    pairs, layout = read_pairs(write_layout(name, tmp_path))
    if hasattr(pairs, 'keys'): pairs = pairs['train_prefs'] if 'train_prefs' in pairs else next(iter(pairs.values()))
    rf = review_frame(pairs, top=15)
    cols = pairs.column_names
    assert len(rf) == 15 and rf.id.is_unique and set(rf.id) <= set(record_ids(pairs))
    assert rf.attrs['ranked_by'] and all(isinstance(r, str) and r for r in rf.reason)
    have = [c for c in ('chosen_rating', 'rejected_rating', 'chosen_score', 'rejected_score') if c in cols]
    if not have:
        assert rf.attrs['ranked_by'].startswith('file order') and rf.suspicion.isna().all()
        return
    assert 'suspicion computed from' in rf.attrs['ranked_by']
    rows = pairs.to_pandas()
    g = lambda r, c: (None if pd.isna(r[c]) else float(r[c])) if c in rows.columns else None
    want = sorted((_by_hand(g(r, 'chosen_rating'), g(r, 'rejected_rating'), g(r, 'chosen_score'), g(r, 'rejected_score'))
                   for _, r in rows.iterrows()), reverse=True)
    got = rf.suspicion.to_numpy()
    assert (np.diff(got) <= 1e-12).all()
    assert got[0] == pytest.approx(want[0]) and got[-1] >= want[14] - 1e-9        # the 15 most suspicious (distinct) pairs
    for r in rf.itertuples(): assert r.reason.endswith(f'(suspicion {r.suspicion:.2f})')


def test_apply_reads_any_layout_through_the_cli(tmp_path):
    "A TRL standard file (plain strings): swap one pair, discard one, by record id; the output has them applied."
    src = write_layout('trl_standard', tmp_path)
    pairs, _ = read_pairs(src)
    ids = record_ids(pairs)
    rv = pd.DataFrame({'id': [ids[0], ids[1]], 'user': ['u', 'u'], 'decision': ['swap', 'discard']})
    rv.to_parquet(tmp_path/'rv.parquet')
    r = subprocess.run(CLI + ['review', 'apply', str(src), '--reviews', str(tmp_path/'rv.parquet'),
                              '--output', str(tmp_path/'out.parquet'), '--json-report', str(tmp_path/'r.json')],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    raw = [json.loads(l) for l in src.read_text().splitlines()]
    out = pq.read_table(tmp_path/'out.parquet').to_pylist()
    assert len(out) == len(raw) - 1
    assert out[0]['chosen'][-1]['content'] == raw[0]['rejected'] and out[0]['rejected'][-1]['content'] == raw[0]['chosen']
    assert out[1]['chosen'][-1]['content'] == raw[2]['chosen']
    rep = json.loads((tmp_path/'r.json').read_text())
    assert (rep['swapped'], rep['discarded'], rep['rows_in'], rep['rows_out']) == (1, 1, len(raw), len(raw) - 1)
    r = subprocess.run(CLI + ['review', 'apply', str(src), '--reviews', str(tmp_path/'rv.parquet'), '--output', str(src)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr     # never over its input


def test_push_accepts_bundled_critiques_and_needs_a_server(tmp_path):
    src = write_layout('notus', tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith('ARGILLA_')}
    r = subprocess.run(CLI + ['review', 'push', str(src), '--top', '5', '--critiques', 'bundled'],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 2 and 'no Argilla server configured' in r.stderr and 'Traceback' not in r.stderr, r.stderr
