"""Human review against a live Argilla server: push the bundled dataset's pairs, answer as two users (the owner
and an annotator), pull, apply; push twice to prove idempotence; a wrong key is one clear sentence.

Needs ARGILLA_API_URL / ARGILLA_API_KEY (an owner's key): scripts/test.sh starts the local server
(scripts/argilla.sh) and exports them. Each test uses its own dataset and user, deleted afterwards."""
import os, secrets, subprocess, sys, uuid
from collections import Counter
from pathlib import Path
import numpy as np, pandas as pd, pytest

pytestmark = [pytest.mark.argilla, pytest.mark.skipif(
    not os.environ.get('ARGILLA_API_URL'),
    reason="ARGILLA_API_URL is not set: no Argilla server to test against (bash scripts/argilla.sh start; "
           "eval \"$(bash scripts/argilla.sh env)\"; scripts/test.sh does both)")]

ROOT = Path(__file__).resolve().parents[1]


def _texts(col): return [m[0]['content'] for m in col]


@pytest.fixture(scope='module')
def owner():
    from notus.review import connect
    return connect()


@pytest.fixture(scope='module')
def data():
    "The bundled sample, its Notus pairs, and the doubtful ones (critique prefers the rejected response)."
    import datasets, pyarrow as pa
    from notus.data import load_ultrafeedback
    from notus.binarize import binarize
    from notus.review import add_critiques
    ds = load_ultrafeedback()[0]
    pairs = binarize(ds, 'mean_rating')[0]
    df = pairs.to_pandas()
    gap = (df.rejected_score - df.chosen_score).to_numpy()
    doubtful = datasets.Dataset(pairs.data.table.filter(pa.array(gap > 0))).add_column('suspicion', gap[gap > 0].tolist())
    return ds, pairs, add_critiques(doubtful, ds)


@pytest.fixture
def name(owner):
    from notus.review import review_dataset, ReviewServerError
    n = f'notus-test-{uuid.uuid4().hex[:10]}'
    yield n
    try: review_dataset(n, owner, create=False).delete()
    except ReviewServerError: pass


@pytest.fixture(scope='module')
def annotator(owner):
    "A fresh annotator user and a client logged in with its own key."
    import argilla as rg
    from notus.review import connect
    user = rg.User(username=f'notus-annotator-{uuid.uuid4().hex[:8]}', password=secrets.token_hex(12),
                   role='annotator', client=owner).create()
    key = owner.http_client.get(f'/api/v1/users/{user.id}').json()['api_key']
    yield user, connect(api_key=key)
    user.delete()


def test_round_trip_two_reviewers(owner, annotator, data, name, tmp_path):
    from notus.review import (push_for_review, submit_reviews, pull_reviews, apply_reviews, record_ids,
                              review_dataset, ReviewServerError)
    ds, pairs, doubtful = data
    n = len(doubtful)
    assert n >= 12

    # push the doubtful pairs, twice: the second push adds nothing
    r1 = push_for_review(doubtful, name, client=owner, progress=False)
    assert (r1.sent, r1.new, r1.total) == (n, n, n)
    r2 = push_for_review(doubtful, name, client=owner, progress=False)
    assert (r2.sent, r2.new, r2.total) == (n, 0, n)

    # then all the pairs: only the ones not pushed yet are new; exact duplicate pairs are one record
    df = pairs.to_pandas()
    distinct = len(pd.DataFrame({'p': df.prompt_id, 'c': _texts(df.chosen), 'r': _texts(df.rejected)}).drop_duplicates())
    r3 = push_for_review(pairs, name, client=owner, progress=False)
    assert (r3.new, r3.total, r3.duplicates) == (distinct - n, distinct, len(pairs) - distinct)

    # the annotator joins the workspace
    dset = review_dataset(name, owner, create=False)
    user, ann = annotator
    dset.workspace.add_user(user.username)

    # the owner answers every doubtful record: keep, swap, discard in turn (and corrects one rating);
    # the annotator agrees on the first 6, disagrees on the next 6 (ties), and leaves a draft on the 13th
    ids = record_ids(doubtful)
    cycle = ['keep', 'swap', 'discard']
    own = pd.DataFrame({'id': ids, 'decision': [cycle[i % 3] for i in range(n)]})
    own['corrected_rating'] = [2.0] + [np.nan] * (n - 1)
    other = {'keep': 'swap', 'swap': 'discard', 'discard': 'keep'}
    ann_answers = pd.DataFrame({'id': ids[:12], 'decision': [cycle[i % 3] if i < 6 else other[cycle[i % 3]] for i in range(12)]})
    assert submit_reviews(own, name, client=owner) == n
    assert submit_reviews(ann_answers, name, client=ann) == 12
    assert submit_reviews(pd.DataFrame({'id': [ids[12]], 'decision': ['discard']}), name, client=ann, status='draft') == 1

    # pull: only submitted answers, one row per (record, user)
    rv = pull_reviews(name, client=owner, progress=False)
    got = rv.to_pandas()
    assert len(got) == n + 12
    assert Counter(got.user) == {owner.me.username: n, user.username: 12}
    assert not got.duplicated(['id', 'user']).any()
    assert set(got.id) == set(ids)
    mine = got[got.user == owner.me.username].set_index('id').decision.to_dict()
    assert mine == dict(zip(own.id, own.decision))
    assert got.loc[(got.user == owner.me.username) & (got.id == ids[0]), 'corrected_rating'].tolist() == [2.0]

    # expected outcome, by the documented rule: most votes wins, a tie changes nothing
    expect = {i: (cycle[k % 3] if not 6 <= k < 12 else 'tie') for k, i in enumerate(ids)}
    out, rep = apply_reviews(pairs, rv)
    in_ids, out_ids = record_ids(pairs), record_ids(out)
    discard = {i for i, d in expect.items() if d == 'discard'}
    swap = {i for i, d in expect.items() if d == 'swap'}
    assert set(rep.discarded) == discard and set(rep.swapped) == swap
    assert set(rep.ties) == {i for i, d in expect.items() if d == 'tie'}
    assert rep.unreviewed == sum(i not in expect for i in in_ids)
    # nothing lost, nothing duplicated: the output is the input minus the discarded pairs, each exactly once
    assert Counter(out_ids) == Counter(i for i in in_ids if i not in discard)
    assert rep.rows_out == len(out) == len(pairs) - sum(i in discard for i in in_ids)
    # row by row, in order: swapped pairs exchanged, the corrected rating applied, every other pair untouched
    kept_in = [(i, r) for i, r in zip(in_ids, pairs.to_list()) if i not in discard]
    assert [i for i, _ in kept_in] == out_ids
    for (i, o), row in zip(kept_in, out.to_list()):
        want = dict(o)
        if i in swap:
            for c in [c for c in o if c.startswith('chosen')]:
                want[c], want['rejected' + c[6:]] = o['rejected' + c[6:]], o[c]
        if i == ids[0]: want['chosen_rating'] = 2.0    # kept; the owner's rating is the only one on the winning side
        assert row == want

    # the same through the command line: pull to a file, apply from it
    env = {**os.environ}
    cli = [sys.executable, '-c', 'from notus.cli import cli; cli()', 'review']
    pairs_file = tmp_path/'pairs.parquet'
    import pyarrow.parquet as pq
    pq.write_table(pairs.data.table, pairs_file)
    r = subprocess.run(cli + ['pull', name, '--output', str(tmp_path/'rv.parquet')], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(cli + ['apply', str(pairs_file), '--reviews', str(tmp_path/'rv.parquet'),
                              '--output', str(tmp_path/'out.parquet')], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    back = pq.read_table(tmp_path/'out.parquet')              # read through notus.pairs: same rows, the reader's list naming
    assert sorted(back.column_names) == sorted(out.column_names) and back.select(out.column_names).to_pylist() == out.to_list()

    # an annotator may answer but not push
    with pytest.raises(ReviewServerError, match='does not allow'):
        push_for_review(doubtful.select([0]), name, client=ann, workspace=dset.workspace.name, progress=False)


def test_wrong_key_is_one_sentence(owner, name):
    from notus.review import connect, ReviewServerError
    bad = 'notus-wrong-' + secrets.token_hex(6)
    with pytest.raises(ReviewServerError, match='refused the API key') as e:
        connect(api_key=bad)
    assert bad not in str(e.value)
    r = subprocess.run([sys.executable, '-c', 'from notus.cli import cli; cli()', 'review', 'pull', name],
                       capture_output=True, text=True, env={**os.environ, 'ARGILLA_API_KEY': bad}, cwd=ROOT)
    assert r.returncode == 2
    assert 'refused the API key' in r.stderr and 'Traceback' not in r.stderr and bad not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_dataset_and_unknown_ids(owner, name, data):
    from notus.review import pull_reviews, submit_reviews, push_for_review, ReviewServerError
    from notus.data import NotusError
    with pytest.raises(ReviewServerError, match='no dataset'):
        pull_reviews(name, client=owner, progress=False)
    push_for_review(data[2].select([0, 1]), name, client=owner, progress=False)
    with pytest.raises(NotusError, match='not in dataset'):
        submit_reviews([{'id': 'no-such-record', 'decision': 'keep'}], name, client=owner)
    assert len(pull_reviews(name, client=owner, progress=False)) == 0


def _suspicion_by_hand(r):
    "A pair's suspicion from its ratings and scores, written out independently of notus.review (no critiques)."
    cr, rr, cs, rs = (r.get(k) for k in ('chosen_rating', 'rejected_rating', 'chosen_score', 'rejected_score'))
    ev = 0.0
    if cs is not None and cr is not None: ev += max(cs / 2 - cr, 0)
    if cr is not None and rr is not None: ev += max(rr - cr, 0) + (1.0 if cr == rr else 0.0)
    elif cs is not None and rs is not None and cs == rs: ev += 1.0          # no ratings: a tie of the scores
    if cs is not None and rs is not None: ev += max((rs - cs) / 2 - (max(rs / 2 - rr, 0) if rr is not None else 0), 0)    # less the rejected's own inflation
    return min(max(ev / 4, 0), 1)


def _id_by_hand(r):
    import hashlib
    a, b = sorted((r['chosen'][-1]['content'], r['rejected'][-1]['content']))
    return f"{r['prompt_id']}-{r['strategy']}-{hashlib.sha256((a + chr(0) + b).encode()).hexdigest()[:8]}"


def _server_records(owner, name):
    from notus.review import review_dataset
    dset = review_dataset(name, owner, create=False)
    return {r.id: r for r in dset.records(with_responses=False, with_suggestions=False)}


def test_push_top_from_curate_output_ranks_by_suspicion_with_the_reason(owner, name, tmp_path):
    "`notus curate` writes no suspicion column: `review push --top 20` computes one, pushes the 20 most doubtful, says why."
    import pyarrow.parquet as pq
    from notus.review import review_dataset
    out = tmp_path/'cur'
    cli = [sys.executable, '-c', 'from notus.cli import cli; cli()']
    r = subprocess.run(cli + ['curate', '--output', str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    pairs_file = out/'train_prefs.parquet'
    rows = pq.read_table(pairs_file).to_pylist()
    assert 'suspicion' not in rows[0] and len(rows) > 100

    r = subprocess.run(cli + ['review', 'push', str(pairs_file), '--top', '20', '--name', name],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    ranked = [l for l in r.stdout.splitlines() if l.startswith('ranked by ')]
    assert len(ranked) == 1 and 'suspicion computed from' in ranked[0] and 'chosen_score' in ranked[0], r.stdout

    # the 20 most suspicious distinct pairs, by a plain-Python computation over the rows
    seen, want = set(), []
    for s, i in sorted(((_suspicion_by_hand(x), k) for k, x in enumerate(rows)), key=lambda t: -t[0]):
        rid = _id_by_hand(rows[i])
        if rid not in seen: seen.add(rid); want.append((rid, s))
    cut = want[19][1]
    got = _server_records(owner, name)
    assert len(got) == 20
    by_hand = {rid: s for rid, s in want}
    for rid, rec in got.items():
        assert by_hand[rid] >= cut - 1e-9, (rid, by_hand[rid], cut)           # nothing less suspicious than the 20th
        assert rec.metadata['suspicion'] == pytest.approx(by_hand[rid])
    assert sorted(round(v, 9) for v in [rec.metadata['suspicion'] for rec in got.values()]) == sorted(round(s, 9) for _, s in want[:20])
    if want[19][1] > want[20][1] + 1e-9: assert set(got) == {rid for rid, _ in want[:20]}

    # each record says, in words, why it is doubtful, and the words match its numbers
    for rid, rec in got.items():
        reason = rec.fields['reason']
        assert reason and reason.endswith(f"(suspicion {by_hand[rid]:.2f})"), reason
        x = next(x for x in rows if _id_by_hand(x) == rid)
        if x['chosen_score'] / 2 - x['chosen_rating'] >= 1:
            assert f"overall_score {x['chosen_score']:g} but mean rating" in reason, reason
        if x['chosen_rating'] == x['rejected_rating']: assert 'the ratings tie' in reason, reason

    # with --critiques bundled (the sample curate read) the critiques join in and count
    name2 = name + '-c'
    try:
        r = subprocess.run(cli + ['review', 'push', str(pairs_file), '--top', '5', '--name', name2,
                                  '--critiques', 'bundled'], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        assert 'chosen_critique' in next(l for l in r.stdout.splitlines() if l.startswith('ranked by ')), r.stdout
        got2 = _server_records(owner, name2)
        assert len(got2) == 5 and all(rec.fields.get('critique', '').startswith('**Chosen**') for rec in got2.values())
    finally:
        review_dataset(name2, owner, create=False).delete()
