"""`notus train` under the real `accelerate launch`, two processes on a CPU (gloo), and the launch configs checked
with accelerate's own classes.

Two-process runs use `recipes/accelerate/cpu_ddp.yaml` (torchrun through accelerate; see the dpo page for why
`--cpu` starts one process). Every file a process writes through Python (`open` for writing, `os.replace` of an
atomic write) is recorded per rank by an audit hook (`sys.addaudithook`, installed by a `sitecustomize.py` that only
these launches see): no file is written by two processes, and only the main process reads the data source.

Bounded in time: the tiny recipe (a few seconds a run), 6 launches, about 2 minutes on 2 busy cores.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from runs import complete_checkpoints

ROOT = Path(__file__).resolve().parents[1]
NOTUS = Path(sys.executable).parent/'notus'
ACCELERATE = Path(sys.executable).parent/'accelerate'
CONFIGS = sorted((ROOT/'recipes'/'accelerate').glob('*.yaml'))
CPU_DDP = ROOT/'recipes'/'accelerate'/'cpu_ddp.yaml'
RECIPE = ROOT/'recipes'/'tiny-cpu.yaml'
TIMEOUT = 240

AUDIT = '''
import os, sys
_log = os.environ.get('NOTUS_TEST_AUDIT')
if _log:
    _busy = []
    def _hook(event, args):
        if _busy or event not in ('open', 'os.rename'): return
        _busy.append(1)
        try:
            if event == 'open':
                path, mode, flags = (list(args) + [None, None])[:3]
                w = (isinstance(mode, str) and any(c in mode for c in 'wax+')) or (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
                kind = 'w' if w else 'r'
            else: path, kind = args[1], 'w'
            if isinstance(path, (str, bytes, os.PathLike)):
                fd = os.open(f"{_log}.{os.environ.get('RANK', 'x')}", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                os.write(fd, f"{kind}\\t{os.fsdecode(path)}\\n".encode()); os.close(fd)
        finally: _busy.pop()
    sys.addaudithook(_hook)
'''

def _env(tmp, audit=None):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    if audit is not None:
        (tmp/'site').mkdir(exist_ok=True)
        (tmp/'site'/'sitecustomize.py').write_text(AUDIT)
        env['PYTHONPATH'] = os.pathsep.join([str(tmp/'site'), env.get('PYTHONPATH', '')])
        env['NOTUS_TEST_AUDIT'] = str(audit)
    return env

def _free_port()->int:
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _launch_cmd(out, *over):
    return [str(ACCELERATE), 'launch', '--config_file', str(CPU_DDP), '--main_process_port', str(_free_port()), str(NOTUS), 'train', str(RECIPE), '--output', str(out),
            '--json-report', str(Path(out).parent/f'{Path(out).name}.json'), *(['--override', *over] if over else [])]

def _run(cmd, tmp, env=None, timeout=TIMEOUT):
    return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, env=env or _env(tmp))

def _record(out): return json.loads((Path(out)/'notus_train.json').read_text())

# --- the configs, through accelerate's own classes -------------------------------------------------------------------------

def _launch_args(path):
    from accelerate.commands.launch import launch_command_parser, _validate_launch_command
    args = launch_command_parser().parse_args(['--config_file', str(path), 'train.py'])
    return _validate_launch_command(args)

@pytest.mark.parametrize('path', CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_with_accelerate(path):
    "Each config loads as accelerate's ClusterConfig, passes `accelerate launch`'s own validation, and every key is one accelerate reads."
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import launch_command_parser
    c = load_config_from_file(str(path))
    assert isinstance(c, ClusterConfig)
    args, defaults, _ = _launch_args(path)
    assert args.num_processes == c.num_processes >= 2
    options = {a.dest for a in launch_command_parser()._actions}
    for sec in ('deepspeed_config', 'fsdp_config'):
        unread = [k for k in (getattr(c, sec) or {}) if k not in options and f'fsdp_{k}' not in options]
        assert not unread, f"{path.name}: {sec} keys that accelerate launch does not read: {unread}"
    # the launcher accelerate picks: torchrun for GPU kinds, DeepSpeed's for DEEPSPEED, never the one-process simple launcher
    assert args.multi_gpu or args.use_deepspeed or args.use_fsdp, path.name

def test_cpu_flag_starts_one_process():
    "Why cpu_ddp.yaml says MULTI_GPU: with --cpu (or MULTI_CPU) accelerate uses its simple launcher, one process without MPI."
    from accelerate.commands.launch import launch_command_parser, _validate_launch_command
    from accelerate.utils.launch import prepare_simple_launcher_cmd_env
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(['--cpu', '--num_processes', '2', 'train.py']))
    assert not args.multi_gpu
    cmd, env = prepare_simple_launcher_cmd_env(args)
    assert cmd[:2] == [sys.executable, 'train.py'] and 'WORLD_SIZE' not in env      # one python process, no ranks

DS_ZERO_KEYS = {'stage', 'offload_optimizer', 'offload_param', 'stage3_gather_16bit_weights_on_model_save', 'overlap_comm',
                'contiguous_gradients', 'reduce_bucket_size', 'stage3_prefetch_bucket_size', 'stage3_param_persistence_threshold',
                'stage3_max_live_parameters', 'stage3_max_reuse_distance', 'sub_group_size', 'round_robin_gradients'}
DS_TOP_KEYS = {'train_batch_size', 'train_micro_batch_size_per_gpu', 'gradient_accumulation_steps', 'gradient_clipping',
               'zero_optimization', 'bf16', 'fp16', 'steps_per_print', 'optimizer', 'scheduler', 'wall_clock_breakdown'}

def _deepspeed_dict(path, micro=8, accumulation=1):
    "The DeepSpeed config accelerate builds from a DEEPSPEED config file, with its 'auto' values filled as the trainer fills them (one process)."
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin
    ds = dict(load_config_from_file(str(path)).deepspeed_config)
    ds.pop('deepspeed_multinode_launcher', None)
    d = DeepSpeedPlugin(**ds).deepspeed_config
    d.update(train_micro_batch_size_per_gpu=micro, gradient_accumulation_steps=accumulation, train_batch_size=micro * accumulation,
             gradient_clipping=1.0, bf16={'enabled': True}, steps_per_print=10**9)
    return d

@pytest.mark.parametrize('path', [p for p in CONFIGS if 'deepspeed' in p.name], ids=lambda p: p.name)
def test_deepspeed_config(path):
    """DeepSpeed's config, as accelerate builds it: its documented keys and values (https://www.deepspeed.ai/docs/config-json/),
    and DeepSpeed's own parser where DeepSpeed is importable (it is not a notus dependency: it needs a GPU to train)."""
    d = _deepspeed_dict(path)
    assert set(d) <= DS_TOP_KEYS, set(d) - DS_TOP_KEYS
    z = d['zero_optimization']
    assert set(z) <= DS_ZERO_KEYS, set(z) - DS_ZERO_KEYS
    assert z['stage'] == 3
    for k in ('offload_optimizer', 'offload_param'):
        assert z[k]['device'] in ('none', 'cpu', 'nvme'), z[k]
    assert ('offload' in path.name) == (z['offload_param']['device'] == 'cpu' == z['offload_optimizer']['device'])
    try: from deepspeed.runtime.config import DeepSpeedConfig
    except Exception: return
    cfg = DeepSpeedConfig(d)
    assert cfg.zero_optimization_stage == 3 and cfg.train_batch_size == 8

# --- two processes on a CPU --------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "One process (8 x 2 accumulation) and two processes (8 each, audited): the same global batch, 16."
    from notus.dpo import read_source
    from notus.pairs import write_pairs
    from notus.recipe import load_recipe
    tmp = tmp_path_factory.mktemp('accelerate')
    src = tmp/'pairs.jsonl'                  # the recipe's pairs as a JSON Lines file, which notus opens through Python (seen by the audit)
    write_pairs(read_source(load_recipe(RECIPE).data)[0], src)
    data = [f'data.source={src}', 'data.format=pairs']
    one = _run([str(NOTUS), 'train', str(RECIPE), '--output', str(tmp/'one'), '--override', *data, 'training.gradient_accumulation_steps=2'], tmp)
    assert one.returncode == 0, one.stderr[-3000:]
    audit = tmp/'audit'
    two = _run(_launch_cmd(tmp/'two', *data), tmp, _env(tmp, audit))
    assert two.returncode == 0, two.stderr[-3000:]
    return tmp, one, two, audit

def test_two_processes_train_together(runs):
    tmp, one, two, _ = runs
    r1, r2 = _record(tmp/'one'), _record(tmp/'two')
    assert (r1['world_size'], r1['global_batch_size'], r1['distributed']) == (1, 16, 'NO')
    assert (r2['world_size'], r2['global_batch_size'], r2['distributed']) == (2, 16, 'MULTI_CPU')
    assert json.loads((tmp/'two.json').read_text())['world_size'] == 2          # --json-report: the same record
    assert r1['global_step'] == r2['global_step'] > 0                         # the same number of optimizer steps
    assert 'on 2 processes' in two.stdout and 'global batch 16' in two.stdout
    assert two.stdout.count('held-out reward accuracy') == 1                  # the main process reports, once
    # the same recipe at the same global batch learns as well
    a1, a2 = r1['metrics']['eval_rewards/accuracies'], r2['metrics']['eval_rewards/accuracies']
    assert a2 >= 0.8 and abs(a1 - a2) <= 0.05, (a1, a2)
    assert r2['metrics']['eval_pairs'] == r1['metrics']['eval_pairs']

def test_files_written_once_and_data_read_once(runs):
    tmp, _, _, audit = runs
    logs = _audit_logs(tmp)
    assert set(logs) == {0, 1}, sorted(tmp.glob('audit.*'))
    out = str((tmp/'two').resolve()) + os.sep
    written = {r: {l.split('\t', 1)[1] for l in ls if l.startswith('w\t') and l.split('\t', 1)[1].startswith(out)} for r, ls in logs.items()}
    assert not written[0] & written[1], written[0] & written[1]
    assert {Path(p).name for p in written[0]} >= {'notus_train.json', 'recipe.yaml', 'README.md'}
    assert not {p for p in written[1] if '/checkpoint-' not in p}, written[1]         # rank 1 writes only its own checkpoint state
    src = str((tmp/'pairs.jsonl').resolve())
    reads = {r: sum(1 for l in ls if l == f'r\t{src}') for r, ls in logs.items()}
    assert reads[0] >= 1 and reads[1] == 0, reads                                   # the data step ran in the main process only

def _audit_logs(tmp): return {int(p.suffix[1:]): p.read_text().splitlines() for p in tmp.glob('audit.*') if p.suffix[1:].isdigit()}

def test_json_report_written_by_main_process_only(runs):
    tmp, *_ = runs
    report = str((tmp/'two.json').resolve())
    writers = {r for r, ls in _audit_logs(tmp).items() if f'w\t{report}' in ls}
    assert writers == {0}, writers

def test_bad_data_ends_the_run(tmp_path):
    "A user error in the main process's data step ends both processes promptly, with notus's one sentence."
    t0 = time.time()
    r = _run(_launch_cmd(tmp_path/'bad', 'data.source=no/such/file.parquet'), tmp_path, timeout=120)
    assert r.returncode != 0 and time.time() - t0 < 120
    assert r.stderr.count('notus train: error: data.source no/such/file.parquet does not exist') == 1, r.stderr[-3000:]
    assert not (tmp_path/'bad'/'notus_train.json').exists()

def _rank_pids(launcher_pid):
    import psutil
    found = {}
    for c in psutil.Process(launcher_pid).children(recursive=True):
        try:
            r = c.environ().get('RANK')
            if r is not None and 'notus' in ' '.join(c.cmdline()): found[int(r)] = c.pid
        except psutil.Error: pass
    return found

def _start_and_wait_for_checkpoint(cmd, out, tmp):
    p = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp), start_new_session=True)
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and not complete_checkpoints(out) and p.poll() is None: time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    return p

def test_a_killed_rank_ends_the_run(tmp_path):
    "SIGKILL to the second process mid-run: the launcher stops the other one and exits non-zero, no hang."
    out = tmp_path/'run'
    p = _start_and_wait_for_checkpoint(_launch_cmd(out, 'training.save_steps=10'), out, tmp_path)
    ranks = _rank_pids(p.pid)
    assert set(ranks) == {0, 1}, ranks
    t0 = time.time()
    os.kill(ranks[1], signal.SIGKILL)
    try: _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0 and time.time() - t0 < 60
    import psutil
    assert not psutil.pid_exists(ranks[0]) or psutil.Process(ranks[0]).status() == psutil.STATUS_ZOMBIE
    assert not (out/'notus_train.json').exists()

def test_resume_after_sigkill_under_the_launcher(runs, tmp_path):
    "SIGKILL to the launcher and its processes after a checkpoint; the same command resumes and ends where an uninterrupted run does."
    tmp, *_ = runs
    full = _record(tmp/'two')
    out = tmp_path/'killed'
    cmd = _launch_cmd(out, 'training.save_steps=10')
    p = _start_and_wait_for_checkpoint(cmd, out, tmp_path)
    ranks = _rank_pids(p.pid)
    assert set(ranks) == {0, 1}, ranks
    os.killpg(p.pid, signal.SIGKILL)                         # the launcher's session: the launcher itself
    for pid in ranks.values():                               # torchrun starts each process in a session of its own
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    p.wait(timeout=30)
    assert not (out/'notus_train.json').exists()
    ckpts = complete_checkpoints(out)
    assert ckpts and ckpts[-1] < full['global_step'], ckpts
    r = _run(cmd, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = _record(out)
    start = int(Path(resumed['resumed_from']).name.split('-')[1])
    assert start >= ckpts[-1] and f'checkpoint-{start}' in r.stdout
    assert r.stdout.count('resuming the unfinished run') == 1                 # said once, by the main process
    assert resumed['world_size'] == 2 and resumed['global_step'] == full['global_step']
    assert resumed['steps_this_run'] == full['global_step'] - start
    for k in ('eval_rewards/accuracies', 'eval_rewards/margins', 'eval_loss'):
        assert resumed['metrics'][k] == pytest.approx(full['metrics'][k], rel=1e-3, abs=1e-4), k
