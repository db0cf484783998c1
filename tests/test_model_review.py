"""The model reviews its data: the tiny recipe trained on pairs with planted swapped labels, its training pairs scored
by the trained model (`notus review score`), and the planted swaps found at the top of the ranking far above the rate
a random ranking finds them at, for every seed. Then the review loop: `review push --from-run` against a live Argilla
server (when one is configured), answers pulled and applied to the run's pairs."""
import json, os, subprocess, sys, uuid
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, '-c', 'from notus.cli import cli; cli()']
RATE, SEEDS = 0.15, (0, 1, 2)
MARGIN = 0.5          # precision@k must beat the random ranking's expected precision (the swap rate) by this much


def _env(**kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith('ARGILLA_')}
    return {**env, 'TQDM_DISABLE': '1', **kw}


def _planted_run(out:Path, seed:int)->Path:
    "Train the tiny recipe with RATE of its training pairs swapped (marked in a `planted` column)."
    import datasets, torch
    from notus.dpo import prepare_pairs, train
    from notus.recipe import load_recipe
    from notus.pairs import swap_pairs
    from notus.data import arrow_table
    r = load_recipe('tiny-cpu', ['training.save_strategy=no', 'training.disable_tqdm=true'])
    dd, _ = prepare_pairs(r.data)
    t = arrow_table(dd['train_prefs'])
    planted = np.random.default_rng(seed).random(t.num_rows) < RATE
    t = swap_pairs(t, planted).append_column('planted', pa.array(planted))
    train(r, pairs=(datasets.Dataset(t), dd['test_prefs']), output_dir=out, sample_prompt=None)
    return out


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('model_review')
    return {s: _planted_run(tmp/f'run{s}', s) for s in SEEDS}


def _score(run:Path, *args):
    r = subprocess.run(CLI + ['review', 'score', str(run), '--json', *args], capture_output=True, text=True, cwd=ROOT, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _main(args, env=None):
    "Run the CLI in this process: (exit status, standard output, standard error)."
    import contextlib, io
    from notus.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main(args)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope='module')
def scored(runs):
    "`notus review score RUN` on each run (the first as a command, the others in this process): its report and the rows it wrote."
    out = {}
    for s, run in runs.items():
        if s == SEEDS[0]: rep = _score(run)
        else:
            rc, so, se = _main(['review', 'score', str(run), '--json'])
            assert rc == 0, se
            rep = json.loads(so)
        out[s] = rep, pq.read_table(rep['output']).to_pylist()
    return out


def test_planted_swaps_rank_first_for_every_seed(scored):
    for seed, (rep, rows) in scored.items():
        planted = [r['planted'] for r in rows]
        k = sum(planted)
        assert rep['heldout_accuracy'] > 0.75, (seed, rep['heldout_accuracy'])     # the model learnt a preference that holds
        assert k > 0
        # precision@k by hand: the k pairs with the highest suspicion (the file's order is not trusted)
        ranked = sorted(range(len(rows)), key=lambda i: -rows[i]['suspicion'])
        precision = sum(planted[i] for i in ranked[:k]) / k
        base = k / len(rows)                   # what a random ranking expects
        assert precision >= base + MARGIN, (seed, precision, base)
        # the model disagrees (negative margin) with most planted pairs and few intact ones
        neg = [r['margin'] < 0 for r in rows]
        assert sum(n and p for n, p in zip(neg, planted)) >= 0.8 * k, seed
        assert sum(n and not p for n, p in zip(neg, planted)) <= 0.1 * (len(rows) - k), seed


def test_scores_file_is_the_run_training_pairs_ranked(runs, scored):
    from notus.review import record_ids, MODEL_REVIEW
    from notus.dpo import TRAIN_PAIRS
    rep, rows = scored[0]
    run = runs[0]
    assert Path(rep['output']) == run/MODEL_REVIEW
    train = pq.read_table(run/TRAIN_PAIRS)
    assert len(rows) == train.num_rows == rep['rows_in'] == rep['scored'] + rep['rows_dropped']
    assert sorted(record_ids(pa.Table.from_pylist(rows))) == sorted(record_ids(train))
    m = [r['margin'] for r in rows]
    assert m == sorted(m)                                            # most doubtful first
    assert rep['disagree'] == sum(x < 0 for x in m)
    for r in rows:
        assert r['suspicion'] == pytest.approx(1 / (1 + np.exp(r['margin'])))
        assert r['margin'] == pytest.approx(r['chosen_reward'] - r['rejected_reward'])
        assert ('prefers the rejected response' in r['reason']) == (r['margin'] < 0), r['reason']
    assert rep['top'][0]['id'] == record_ids(pa.Table.from_pylist(rows[:1]))[0]


def test_margins_match_an_independent_pass(runs, scored):
    "The margins TRL's code path gives equal notus.evaluate's own forward pass on the same pairs."
    import datasets
    from notus.evaluate import load_run, evaluate_pairs
    rep, rows = scored[1]
    policy, ref, tok, recipe = load_run(runs[1])
    t = evaluate_pairs(policy, tok, datasets.Dataset(pa.Table.from_pylist(rows)), ref, recipe.training.beta, 16,
                       recipe.training.max_length)
    np.testing.assert_allclose(t.margin.to_numpy(), [r['margin'] for r in rows], atol=1e-3)


def test_cli_errors_are_one_sentence(runs, tmp_path):
    from notus.review import MODEL_REVIEW
    bare = tmp_path/'bare'; bare.mkdir()
    cases = [(['review', 'score', str(bare)], '--pairs'),                                     # no training pairs kept
             (['review', 'score', str(tmp_path/'nope')], 'not a folder'),
             (['review', 'score', str(runs[0]), '--batch-size', '0'], '--batch-size'),
             (['review', 'score', str(runs[0]), '--output', str(runs[0]/'train_pairs.parquet')], 'overwrite'),
             (['review', 'push', '--from-run', str(bare)], 'notus review score'),                # not scored yet
             (['review', 'push'], '--from-run')]
    for args, says in cases:
        rc, _, err = _main(args)
        assert rc == 2, (args, err[-2000:])
        assert err.count('\n') == 1 and says in err, (args, err)
    # a scored run without a server: the file was found and read; the server is what is missing
    assert (runs[0]/MODEL_REVIEW).exists()
    r = subprocess.run(CLI + ['review', 'push', '--from-run', str(runs[0]), '--top', '5'], capture_output=True, text=True,
                       cwd=ROOT, env=_env())
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'ARGILLA_API_URL' in r.stderr, r.stderr


@pytest.mark.argilla
@pytest.mark.skipif(not os.environ.get('ARGILLA_API_URL'), reason="ARGILLA_API_URL is not set: no Argilla server to test against")
def test_review_loop_on_a_live_server(runs, scored, tmp_path):
    "push --from-run sends the top N by the model's doubt with its reason; the answers, pulled and applied, undo the swaps."
    from notus.review import connect, review_dataset, submit_reviews, record_ids
    rep, rows = scored[2]
    run, name, n = runs[2], f'notus-test-{uuid.uuid4().hex[:10]}', 12
    env = {**os.environ, 'TQDM_DISABLE': '1'}
    owner = connect()
    try:
        r = subprocess.run(CLI + ['review', 'push', '--from-run', str(run), '--top', str(n), '--name', name],
                           capture_output=True, text=True, cwd=ROOT, env=env)
        assert r.returncode == 0, r.stderr
        assert "the pairs' own 'suspicion' column" in r.stdout, r.stdout
        top = rows[:n]
        ids = record_ids(pa.Table.from_pylist(top))
        got = {x.id: x for x in review_dataset(name, owner, create=False).records(with_responses=False)}
        assert set(got) == set(ids)
        for i, row in zip(ids, top):
            assert got[i].fields['reason'] == row['reason']
            assert got[i].metadata['suspicion'] == pytest.approx(row['suspicion'])
        answers = [{'id': i, 'decision': 'swap' if row['planted'] else 'keep'} for i, row in zip(ids, top)]
        assert submit_reviews(answers, name, client=owner) == n
        out = tmp_path/'reviewed.parquet'
        r = subprocess.run(CLI + ['review', 'apply', str(run/'model_review.parquet'), '--output', str(out), '--name', name, '--json'],
                           capture_output=True, text=True, cwd=ROOT, env=env)
        assert r.returncode == 0, r.stderr
        applied = json.loads(r.stdout)
        assert applied['swapped'] == sum(row['planted'] for row in top) and applied['kept'] == n - applied['swapped']
        assert pq.read_table(out).num_rows == len(rows)
    finally:
        review_dataset(name, owner, create=False).delete()
