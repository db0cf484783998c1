"""Build the notus docs site and README.md without Quarto.

    python scripts/build_docs.py --out site            # execute every notebook, build the site into site/
    python scripts/build_docs.py --out site --no-exec  # faster: run only what show_doc needs (no plots)
    python scripts/build_docs.py --readme              # regenerate README.md from nbs/index.ipynb

Where Quarto is installed, `nbdev-docs` builds the Quarto site from `_quarto.yml` as usual. This script is the
fallback that needs only the Python packages of the dev extra. Each notebook goes through nbdev's own docs
processors (`nbdev.processors.FilterDefaults`: frontmatter, added `show_doc` cells for exported functions,
hidden and exported cells removed, links to the API), in its own process and with the notebooks folder as
working directory, as `nbdev-test` runs it. With execution on (the default), every code cell is run, except
cells with `#| eval: false` or a flag of `--skip-flags` (default `notest slow`, the project's `tst_flags`), so
that cell outputs and plots appear; a notebook whose execution fails fails the build, naming the notebook and
the cell. The processed notebooks become Markdown pages (show_doc signatures, tables, images; Quarto cell options
`echo`, `output`, `include`, `warning: false` and `code-fold` are honoured), which mkdocs-material turns into a
static site with the navigation of `_quarto.yml`'s sidebar (notebooks it does not list are appended), a table of
contents per page, and client-side search (`search/search_index.json`). Pages open from disk; search needs the
site served (`python -m http.server -d site`): browsers refuse its web worker on file:// pages.
Executed notebooks are cached in `_proc/docs-cache`, keyed by the notebook, the package and this script.
"""
from __future__ import annotations
import argparse, base64, hashlib, html, json, os, re, shutil, subprocess, sys, tempfile, textwrap, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE_VERSION = '1'

# ---------------------------------------------------------------------------------------------------------------
# Processing and executing one notebook (runs in a child process: `--exec-one`)

_SHOWDOC = re.compile(r'^show_doc', re.M)       # a show_doc cell, as nbdev recognises one

def process_nb(path:Path, execute:bool=True, skip_flags=('notest', 'slow'), cell_timeout:int|None=None) -> dict:
    "Run nbdev's docs processors on the notebook at `path` (executing all its cells if `execute`); returns the notebook dict."
    from fastcore.nbio import read_nb, nb2dict
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.processors import FilterDefaults, exec_show_docs
    # `_skip_cell` is private, but it is the very predicate `nbdev-test` uses to choose the cells it runs
    # (frontmatter `skip_exec`, `#| eval: false`, skip flags); a copy could let the docs build and the tests
    # disagree on which cells run. Everything else here is nbdev's public API.
    from nbdev.test import _skip_cell
    from execnb.shell import CaptureShell
    path = Path(path).absolute()
    cfg = get_config(path.parent)
    if cell_timeout is None: cell_timeout = cfg.get('cell_timeout') or None

    class exec_all:
        "Like nbdev's `exec_show_docs`, but runs every code cell that `nbdev-test` would run."
        def __init__(self, nb): self.nb = nb
        def begin(self):
            self.k = CaptureShell(path, profile=bool(cfg.get('exec_profile')))
            self.k.run_cell('from nbdev.showdoc import show_doc')
            self.skip = _skip_cell(self.nb, list(skip_flags))
        def __call__(self, cell):
            if cell.cell_type != 'code' or self.skip(cell) or 'nbdev_export()' in cell.source: return
            self.k.cell(cell, timeout=cell_timeout)
            if self.k.exc:
                tb = self.k.prettytb(fname=path.name)
                raise RuntimeError(f"{path.name}: this cell failed:\n{cell.source}\n{tb}")

    class exec_docs(exec_show_docs):
        """nbdev's `exec_show_docs` (exported cells, imports, show_doc), where only a failing show_doc fails the build:
        other cells may need cells that this mode does not run (a cell that mixes imports with code, say)."""
        def __call__(self, cell):
            try: super().__call__(cell)
            except Exception:
                if _SHOWDOC.search(cell.source): raise RuntimeError(f"{path.name}: this cell failed:\n{cell.source}\n{self.k.prettytb(fname=path.name)}")
                self.k.exc, cell.outputs = None, []

    class Procs(FilterDefaults):
        def base_procs(self):
            return [(exec_all if execute else exec_docs) if p is exec_show_docs else p for p in super().base_procs()]

    nb = read_nb(path)
    nb.path_ = str(path)
    with working_directory(path.parent): Procs()(nb)
    d = nb2dict(nb)
    d['metadata']['notus_docs'] = {'frontmatter': dict(getattr(nb, 'frontmatter_', {}) or {})}
    return d

def _exec_one(src, dst, execute, skip_flags, cell_timeout=None):
    "Child-process entry: process `src`, write JSON to `dst`; on failure write the error to `dst.err` and exit 1."
    os.environ['IN_TEST'] = '1'
    for k in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE'): os.environ.setdefault(k, '1')
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    try: d = process_nb(Path(src), execute=execute, skip_flags=skip_flags, cell_timeout=cell_timeout)
    except BaseException as e:
        Path(str(dst) + '.err').write_text(f"{e}\n"); sys.stderr.write(f"{e}\n"); sys.exit(1)
    Path(dst).write_text(json.dumps(d, default=str))

# ---------------------------------------------------------------------------------------------------------------
# Which notebooks, in which order

def _sidebar_items(contents):
    "Flatten Quarto sidebar `contents` into a nested list of ('section', title, items) / ('page', href)."
    out = []
    for c in contents or []:
        if isinstance(c, str): out.append(('page', c))
        elif isinstance(c, dict) and 'section' in c: out.append(('section', c['section'], _sidebar_items(c.get('contents'))))
        elif isinstance(c, dict) and 'href' in c: out.append(('page', c['href']))
    return out

def read_quarto(quarto_yml:Path) -> dict:
    import yaml
    return yaml.safe_load(Path(quarto_yml).read_text()) if quarto_yml and Path(quarto_yml).exists() else {}

def notebook_tree(nbs:Path, quarto:dict) -> list:
    "The notebooks in `nbs` as a nav tree: the sidebar's order and sections, then notebooks it does not list."
    present = {p.name: p for p in sorted(nbs.glob('*.ipynb')) if not p.name.startswith(('_', '.'))}
    seen = set()
    def walk(items):
        res = []
        for it in items:
            if it[0] == 'page':
                name = Path(it[1]).name
                if name in present and name not in seen: seen.add(name); res.append(present[name])
            else:
                sub = walk(it[2])
                if sub: res.append((it[1], sub))
        return res
    sidebar = (quarto.get('website') or {}).get('sidebar') or {}
    if isinstance(sidebar, list): sidebar = sidebar[0] if sidebar else {}
    tree = walk(_sidebar_items(sidebar.get('contents')))
    return tree + [p for n, p in present.items() if n not in seen]

def flat(tree) -> list:
    return [p for it in tree for p in (flat(it[1]) if isinstance(it, tuple) else [it])]

def page_name(nb:Path) -> str:
    "The page name nbdev/Quarto give a notebook: `00_data.ipynb` -> `data`."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.name.lower())[:-len('.ipynb')]

# ---------------------------------------------------------------------------------------------------------------
# Executing many notebooks, with a cache

def _cache_key(nb:Path, execute:bool, skip_flags) -> str:
    h = hashlib.sha256()
    h.update(f'{CACHE_VERSION} {execute} {sorted(skip_flags)}'.encode())
    h.update(Path(__file__).read_bytes()); h.update(nb.read_bytes())
    for f in ('pyproject.toml',):
        if (ROOT/f).exists(): h.update((ROOT/f).read_bytes())
    lib = ROOT/'notus'
    if lib.exists():
        for p in sorted(lib.rglob('*')):
            if p.is_file() and '__pycache__' not in p.parts: h.update(str(p.relative_to(lib)).encode()); h.update(p.read_bytes())
    return h.hexdigest()[:20]

class BuildError(Exception): pass

def process_all(nbs:list[Path], execute=True, jobs=2, cache:Path|None=None, skip_flags=('notest', 'slow'),
                cell_timeout:int|None=None, timeout:int=3600, log=print) -> dict[Path, dict]:
    "Process (and execute) `nbs`, `jobs` at a time, each in its own process; raise `BuildError` naming every failed notebook."
    res, failed = {}, []
    def one(nb):
        key = _cache_key(nb, execute, skip_flags)
        hit = cache/f'{nb.stem}-{key}.json' if cache else None
        if hit and hit.exists(): return nb, json.loads(hit.read_text()), None, 0.0
        t0 = time.time()
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)/'nb.json'
            cmd = [sys.executable, __file__, '--exec-one', str(nb), str(out), '--skip-flags', ' '.join(skip_flags)]
            if not execute: cmd.append('--no-exec')
            if cell_timeout: cmd += ['--cell-timeout', str(cell_timeout)]
            try: r = subprocess.run(cmd, cwd=nb.parent, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired: return nb, None, f'timed out after {timeout}s', time.time()-t0
            if r.returncode != 0:
                err = Path(str(out) + '.err')
                return nb, None, (err.read_text() if err.exists() else (r.stderr.strip() or r.stdout.strip()))[-8000:], time.time()-t0
            d = json.loads(out.read_text())
        if hit:
            hit.parent.mkdir(parents=True, exist_ok=True)
            for old in hit.parent.glob(f'{nb.stem}-*.json'): old.unlink()
            hit.write_text(json.dumps(d))
        return nb, d, None, time.time()-t0
    with ThreadPoolExecutor(max(1, jobs)) as ex:
        for nb, d, err, dt in ex.map(one, nbs):
            if err: failed.append((nb, err)); log(f'  FAILED {nb.name} ({dt:.1f}s)')
            else: res[nb] = d; log(f'  {nb.name}: ' + (f'{dt:.1f}s' if dt else 'cached'))
    if failed:
        msg = '\n\n'.join(f'--- {nb.name} ---\n{err}' for nb, err in failed)
        raise BuildError(f"docs build failed: {', '.join(nb.name for nb, _ in failed)} did not execute\n\n{msg}")
    return res

# ---------------------------------------------------------------------------------------------------------------
# A processed notebook as Markdown

_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')
_opt = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_mime_order = ['text/markdown', 'image/svg+xml', 'image/png', 'image/jpeg', 'image/gif', 'text/html', 'text/latex', 'text/plain']
_callouts = {'note': 'note', 'tip': 'tip', 'warning': 'warning', 'important': 'danger', 'caution': 'warning'}

def _txt(v): return ''.join(v) if isinstance(v, list) else (v or '')

def _cell_opts(src:str):
    "Split leading `#| key: value` Quarto option lines from code."
    opts, lines = {}, src.split('\n')
    while lines and (m := _opt.match(lines[0])): opts[m.group(1)] = m.group(2).strip('"\''); lines.pop(0)
    while lines and lines[0].strip().startswith('#|'): lines.pop(0)   # bare directives (`#| hide`)
    return opts, '\n'.join(lines).strip('\n')

def _stream_text(t:str) -> str:
    "Terminal text as it ends up on screen: no ANSI codes, carriage returns (progress bars) resolved."
    t = _ansi.sub('', t)
    return '\n'.join(l.rsplit('\r', 1)[-1] if '\r' in l.rstrip('\r') else l.rstrip('\r') for l in t.split('\n')).rstrip('\n')

_tqdm = re.compile(r'^[^|\n]*?\d+%\|[^|]*\|\s*\d+/\d+\s*\[[^\]]*\]')
_site_pkgs = re.compile(r'[^\s:"\']*/site-packages/')

_progress = re.compile(r'^[^\n]*?:\s*(\d+%\|[^\n]*|\d+ \w+ \[[^\]]*\])\s*$')   # "Map: 100%|...", "Generating train split: 300 examples [...]"
_warning = re.compile(r'^\S+:\d+: \w*Warning: ')

def _drop_warnings(lines:list) -> list:
    "Lines without Python warnings (`file:line: XWarning: msg` and the source line printed under it)."
    out, skip = [], False
    for l in lines:
        if _warning.match(l): skip = True; continue
        if skip and l.startswith((' ', '\t')): continue
        skip = False; out.append(l)
    return out

def _stderr_text(t:str) -> str:
    "stderr for a reader: progress bars and library warnings dropped, library paths shortened to `site-packages/...`."
    orig = _drop_warnings(t.split('\n'))
    lines = [_progress.sub('', _tqdm.sub('', l)) for l in orig]
    t = '\n'.join(l for l, o in zip(lines, orig) if l.strip() or not o.strip())
    return _site_pkgs.sub('site-packages/', t).replace(str(ROOT) + '/', '').strip('\n')

def _fence(body:str, info:str='') -> str:
    ticks = '`' * max(3, max((len(m) for m in re.findall(r'`+', body)), default=0) + 1)
    return f'{ticks}{info}\n{body}\n{ticks}'

def _quarto_divs(md:str) -> str:
    "Quarto fenced divs: callouts become admonitions, other `:::` fences are dropped."
    out, stack = [], []
    for line in md.split('\n'):
        m = re.match(r'^\s*(:{3,})\s*(\{.*\}|\S+)?\s*$', line)
        if m and m.group(2):
            c = re.search(r'callout-(\w+)', m.group(2))
            kind = _callouts.get(c.group(1), 'note') if c else None
            title = re.search(r'title="([^"]*)"', m.group(2))
            stack.append(kind is not None)
            if kind: out.append(f'!!! {kind}' + (f' "{title.group(1)}"' if title else '')); out.append('')
            continue
        if m and stack: stack.pop(); out.append(''); continue
        out.append(('    ' + line if line else '') if any(stack) else line)
    return '\n'.join(out)

def _style_strip(h:str) -> str: return re.sub(r'<style[^>]*>.*?</style>\s*', '', h, flags=re.S)

class MdWriter:
    "Turn a processed notebook into Markdown for mkdocs (`site=True`) or GitHub (README)."
    def __init__(self, files_dir:Path, files_rel:str, site:bool=True, link_map=None):
        self.files_dir, self.files_rel, self.site, self.link_map, self.n_img = files_dir, files_rel, site, link_map, 0

    def links(self, md:str) -> str: return self.link_map(md) if self.link_map else md

    def image(self, mime, data, meta) -> str:
        ext = {'image/png': 'png', 'image/jpeg': 'jpg', 'image/gif': 'gif', 'image/svg+xml': 'svg'}[mime]
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.n_img += 1
        name = f'output_{self.n_img}.{ext}'
        raw = _txt(data).encode() if ext == 'svg' else base64.b64decode(_txt(data))
        (self.files_dir/name).write_bytes(raw)
        w = (meta or {}).get('width')
        src = f'{self.files_rel}/{name}'
        return f'<img src="{src}" alt="cell output"' + (f' width="{w}"' if w else '') + '>'

    def output(self, o, opts:dict) -> str|None:
        ot = o.get('output_type')
        if ot == 'stream':
            t = _stream_text(_txt(o.get('text')))
            if o.get('name') == 'stderr': t = '' if opts.get('warning') == 'false' else _stderr_text(t)
            if not t.strip(): return None
            return _fence(t, ('{.text .nb-out .nb-stderr}' if o.get('name') == 'stderr' else '{.text .nb-out}') if self.site else '')
        if ot == 'error': return _fence(_ansi.sub('', '\n'.join(o.get('traceback', []))), '{.text .nb-out .nb-stderr}' if self.site else '')
        data, meta = o.get('data', {}), o.get('metadata', {})
        mime = next((m for m in _mime_order if m in data), None)
        if mime is None: return None
        v = _txt(data[mime])
        if mime == 'text/markdown': return self.links(v.strip())
        if mime.startswith('image/'): return self.image(mime, v, meta.get(mime))
        if mime == 'text/html':
            v = _style_strip(v).strip()
            return f'<div class="nb-output" markdown="0">\n{v}\n</div>' if self.site else v
        if mime == 'text/latex': return v.strip()
        return _fence(_ansi.sub('', v).rstrip('\n'), '{.text .nb-out}' if self.site else '')

    def cell(self, c) -> str|None:
        src = _txt(c.get('source'))
        if c['cell_type'] == 'markdown': return _quarto_divs(self.links(src.strip())) if self.site else self.links(src.strip())
        if c['cell_type'] == 'raw': return None
        opts, code = _cell_opts(src)
        if opts.get('include') == 'false': return None
        parts = []
        if code.strip() and opts.get('echo') != 'false':
            block = _fence(code, 'python')
            if self.site and opts.get('code-fold') in ('show', 'true'):
                summary = opts.get('code-summary', 'Code')
                block = ('???+' if opts['code-fold'] == 'show' else '???') + f' example "{summary}"\n\n' + textwrap.indent(block, '    ')
            parts.append(block)
        if opts.get('output') != 'false':
            outs = [self.output(o, opts) for o in c.get('outputs', [])]
            parts += [o for o in outs if o]
        return '\n\n'.join(parts) if parts else None

    def page(self, nb:dict) -> tuple[str, str]:
        "Markdown of the whole notebook and its title."
        fm = nb['metadata'].get('notus_docs', {}).get('frontmatter', {})
        title, desc = fm.get('title'), fm.get('description')
        head = []
        if title: head.append(f'# {title}')
        if desc: head.append(f'> {desc}' if not self.site else f'{desc}\n{{ .nb-description }}')
        body = [m for m in (self.cell(c) for c in nb['cells']) if m]
        if not self.site and len(body) and body[0].startswith('<!--'): head.insert(1, body.pop(0))
        return '\n\n'.join(head + body).strip() + '\n', title

# ---------------------------------------------------------------------------------------------------------------
# The site

EXTRA_CSS = """
.md-grid { max-width: 76rem; }
.nb-output table.dataframe th, .nb-output table.dataframe td { white-space: nowrap; }
.nb-description { font-size: 1.05rem; color: var(--md-default-fg-color--light); margin-top: -0.6rem; }
.nb-output { overflow-x: auto; margin: 0 0 1em 0; font-size: 0.72rem; }
.nb-output table.dataframe { border-collapse: collapse; }
.nb-output table.dataframe th, .nb-output table.dataframe td { padding: 0.2em 0.6em; border-bottom: 1px solid var(--md-default-fg-color--lightest); text-align: right; }
.md-typeset .nb-out { margin-top: -0.6em; }
.md-typeset .nb-out pre > code { background: none; border-left: 2px solid lightsalmon; }
.md-typeset .nb-stderr pre > code { background: #fff8f4; }
.nb-output { border-left: 2px solid lightsalmon; padding-left: 0.6em; }
.md-typeset img[alt="cell output"] { max-width: 100%; height: auto; }
.md-typeset h3[id] code, .md-typeset h3[id] { word-break: break-word; }
"""

_MATH = re.compile(r'<(span|div) class="arithmatex">\\(\(|\[)(.*?)\\(\)|\])</\1>', re.S)

def render_math(page:str) -> str:
    """Replace the TeX that `pymdownx.arithmatex` leaves in a page (`\\(...\\)`, `\\[...\\]`) by MathML, which
    browsers render natively: the site needs no math script from a CDN and shows formulas offline."""
    from latex2mathml.converter import convert
    def sub(m):
        tex = html.unescape(m.group(3))
        try: return convert(tex, display='block' if m.group(2) == '[' else 'inline')
        except Exception as e: raise BuildError(f'cannot render the formula {tex!r}: {e}') from None
    return _MATH.sub(sub, page)

def mkdocs_config(quarto:dict, nav:list, extra_css:list[str]) -> dict:
    w = quarto.get('website') or {}
    cfg = {
        'site_name': w.get('title') or 'notus',
        'site_description': w.get('description', ''),
        'docs_dir': 'docs',
        'use_directory_urls': False,          # page names as Quarto's: data.html
        'nav': nav,
        'theme': {'name': 'material', 'font': False, 'language': 'en',
                  'features': ['navigation.sections', 'navigation.top', 'toc.follow', 'search.highlight',
                               'search.suggest', 'content.code.copy'],
                  'palette': [{'scheme': 'default', 'primary': 'indigo', 'accent': 'indigo'}]},
        'plugins': ['search', 'offline'],     # offline: search also works when the site is opened from disk
        'markdown_extensions': ['tables', 'attr_list', 'md_in_html', 'admonition', 'pymdownx.details',
                                {'toc': {'permalink': True}}, 'pymdownx.superfences',
                                {'pymdownx.highlight': {'use_pygments': True}}, 'pymdownx.inlinehilite',
                                {'pymdownx.arithmatex': {'generic': True}}],
        'extra_css': extra_css,
        'validation': {'links': {'not_found': 'warn', 'anchors': 'warn'}},
    }
    if w.get('repo-url'): cfg['repo_url'] = w['repo-url']
    if w.get('site-url'): cfg['site_url'] = w['site-url']
    return cfg

def _link_mapper(doc_url:str, names:set[str]):
    "Rewrite nbdev's absolute doc links (`{doc_url}/data.html#x`) to the local pages (`data.md#x`)."
    if not doc_url: return None
    pat = re.compile(re.escape(doc_url.rstrip('/')) + r'/([\w.-]+)\.html(#[\w.-]*)?')
    def sub(m): return f'{m.group(1)}.md{m.group(2) or ""}' if m.group(1) in names else m.group(0)
    return lambda md: pat.sub(sub, md)

def doc_url() -> str:
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    return (cfg.get('doc_host') or '').rstrip('/') + (cfg.get('doc_baseurl') or '').rstrip('/')

def build_site(out:Path, nbs:Path, quarto_yml:Path, execute=True, jobs=2, cache:Path|None=None,
               skip_flags=('notest', 'slow'), strict=False, keep_src:Path|None=None, cell_timeout:int|None=None, log=print) -> Path:
    "Build the static site for the notebooks in `nbs` into `out`; returns `out`."
    t0 = time.time()
    quarto = read_quarto(quarto_yml)
    tree = notebook_tree(nbs, quarto)
    nb_list = flat(tree)
    if not nb_list: raise BuildError(f'no notebooks in {nbs}')
    names = {}
    for nb in nb_list:
        n = page_name(nb)
        if n in names: raise BuildError(f'{nb.name} and {names[n].name} would both be the page {n}.html')
        names[n] = nb
    log(f'processing {len(nb_list)} notebooks ' + ('(executing)' if execute else '(show_doc only)'))
    done = process_all(nb_list, execute=execute, jobs=jobs, cache=cache, skip_flags=skip_flags, cell_timeout=cell_timeout, log=log)
    work = Path(keep_src) if keep_src else Path(tempfile.mkdtemp(prefix='notus-docs-'))
    if work.exists(): shutil.rmtree(work)
    docs = work/'docs'; docs.mkdir(parents=True)
    (docs/'stylesheets').mkdir()
    (docs/'stylesheets'/'notus.css').write_text(EXTRA_CSS)
    links = _link_mapper(doc_url(), set(names))
    titles = {}
    for nb in nb_list:
        n = page_name(nb)
        md, title = MdWriter(docs/f'{n}_files', f'{n}_files', site=True, link_map=links).page(done[nb])
        (docs/f'{n}.md').write_text(md)
        titles[nb] = title or n
    def nav(items):
        return [{it[0]: nav(it[1])} if isinstance(it, tuple) else
                {('Home' if page_name(it) == 'index' else titles[it]): f'{page_name(it)}.md'} for it in items]
    import yaml
    cfg = mkdocs_config(quarto, nav(tree), ['stylesheets/notus.css'])
    (work/'mkdocs.yml').write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    out = Path(out).absolute()
    cmd = [sys.executable, '-m', 'mkdocs', 'build', '-q', '-f', str(work/'mkdocs.yml'), '-d', str(out)]
    if strict: cmd.append('--strict')
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    if r.returncode: raise BuildError(f'mkdocs build failed:\n{r.stdout}\n{r.stderr}')
    if r.stderr.strip(): log(r.stderr.strip())
    shim = out/'javascripts'/'iframe-worker-shim.js'     # the offline search's worker shim, served by the site itself
    shim.parent.mkdir(exist_ok=True); shutil.copy(Path(__file__).parent/'docs_assets'/'iframe-worker-shim.js', shim)
    for page in out.rglob('*.html'):          # math rendered at build time (MathML), no script from a CDN
        text = page.read_text()
        new = render_math(text) if 'arithmatex' in text else text
        rel = os.path.relpath(shim, page.parent)
        new = new.replace('https://unpkg.com/iframe-worker/shim', rel)
        if new != text: page.write_text(new)
    if not keep_src: shutil.rmtree(work, ignore_errors=True)
    log(f'site built in {time.time()-t0:.1f}s: {out/"index.html"}')
    return out

# ---------------------------------------------------------------------------------------------------------------
# README

def make_readme(dest:Path, nbs:Path, index='index.ipynb', execute=True, cache:Path|None=None, cell_timeout:int|None=None, log=print) -> Path:
    "Write README.md (GitHub Markdown) at `dest` from the processed and executed `index` notebook."
    nb = nbs/index
    d = process_all([nb], execute=execute, jobs=1, cache=cache, cell_timeout=cell_timeout, log=log)[nb]
    dest = Path(dest)
    w = MdWriter(dest.parent/'README_files', 'README_files', site=False)
    md, _ = w.page(d)
    md = md.replace('<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->',
                    f'<!-- WARNING: THIS FILE WAS AUTOGENERATED FROM nbs/{index} BY scripts/build_docs.py --readme! DO NOT EDIT! -->')
    dest.write_text(md)
    log(f'wrote {dest}')
    return dest

# ---------------------------------------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('\n\n', 1)[1])
    p.add_argument('--out', default=None, help='build the site into this folder (default: site, unless --readme alone)')
    p.add_argument('--readme', nargs='?', const=str(ROOT/'README.md'), default=None,
                   help='write README.md from nbs/index.ipynb (to the given path; default README.md at the repo root)')
    p.add_argument('--no-exec', action='store_true', help="don't run every cell, only what show_doc needs (no outputs, no plots)")
    p.add_argument('--nbs', default=None, help='notebooks folder (default: nbdev nbs_path)')
    p.add_argument('--quarto', default=None, help='Quarto config with the sidebar (default: <nbs>/_quarto.yml, then ./_quarto.yml)')
    p.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1), help='notebooks executed at once')
    p.add_argument('--cache', default=str(ROOT/'_proc'/'docs-cache'), help='cache of executed notebooks')
    p.add_argument('--no-cache', action='store_true', help='execute every notebook again')
    p.add_argument('--skip-flags', default='notest slow', help='cells with these directives are not executed')
    p.add_argument('--cell-timeout', type=int, default=None, help='seconds a cell may run (default: cell_timeout of [tool.nbdev])')
    p.add_argument('--strict', action='store_true', help='fail on mkdocs warnings (broken links)')
    p.add_argument('--keep-src', default=None, help='keep the generated mkdocs project (Markdown + mkdocs.yml) here')
    p.add_argument('--exec-one', nargs=2, metavar=('NB', 'JSON'), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    flags = tuple(a.skip_flags.split())
    if a.exec_one: return _exec_one(*a.exec_one, execute=not a.no_exec, skip_flags=flags, cell_timeout=a.cell_timeout)
    if a.nbs: nbs = Path(a.nbs).absolute()
    else:
        from nbdev.config import get_config
        nbs = Path(get_config(ROOT).nbs_path)
    quarto = Path(a.quarto) if a.quarto else next((q for q in (nbs/'_quarto.yml', ROOT/'_quarto.yml') if q.exists()), None)
    cache = None if a.no_cache else Path(a.cache)
    out = a.out or (None if a.readme else 'site')
    try:
        if a.readme: make_readme(Path(a.readme), nbs, execute=not a.no_exec, cache=cache, cell_timeout=a.cell_timeout)
        if out: build_site(Path(out), nbs, quarto, execute=not a.no_exec, jobs=a.jobs, cache=cache, skip_flags=flags,
                           strict=a.strict, keep_src=a.keep_src, cell_timeout=a.cell_timeout)
    except BuildError as e:
        sys.stderr.write(f'{e}\n'); sys.exit(1)

if __name__ == '__main__': main()
