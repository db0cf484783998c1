"""The docs fallback (scripts/build_docs.py): a page per notebook with its API on it, search, sidebar order, plots,
failing notebooks named, and README.md in step with nbs/index.ipynb."""
import ast, html, json, re, shutil, subprocess, sys
from pathlib import Path
import nbformat, pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'scripts'/'build_docs.py'
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))

def _build(*args, cwd=ROOT, timeout=1500):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)

def _page(nb:Path) -> str:
    "nbdev's page name for a notebook, written out independently of the builder: `00a_synthetic.ipynb` -> `synthetic`."
    return re.sub(r'^\d+[a-z0-9]*_', '', nb.stem.lower())

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "The site and README built once, with every notebook executed (fresh cache, shared by README and site)."
    tmp = tmp_path_factory.mktemp('docs')
    r = _build('--out', tmp/'site', '--readme', tmp/'README.md', '--cache', tmp/'cache')
    assert r.returncode == 0, f"docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return tmp

def _text(h:str) -> str: return html.unescape(re.sub(r'<[^>]+>', '', h))

def _api(module:Path) -> list[str]:
    "Public functions and classes of a generated module: names in `__all__` defined by `def`/`class` at top level."
    tree = ast.parse(module.read_text())
    names = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                  and any(getattr(t, 'id', None) == '__all__' for t in n.targets)), [])
    defs = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return [n for n in names if n in defs and not n.startswith('_')]

def _default_exp(nb:Path) -> str|None:
    for c in nbformat.read(nb, as_version=4).cells:
        if c.cell_type == 'code' and (m := re.search(r'^#\|\s*default_exp\s+(\S+)', c.source, re.M)): return m.group(1)

def test_every_notebook_has_a_page(built):
    missing = [nb.name for nb in NBS if not (built/'site'/f'{_page(nb)}.html').exists()]
    assert not missing, f"no page for {missing}"

@pytest.mark.parametrize('nb', [nb for nb in NBS if _default_exp(nb)], ids=lambda p: p.stem)
def test_page_shows_the_module_api(built, nb):
    "Each exported public function or class has its show_doc on the notebook's page: a heading and its signature."
    mod = ROOT/'notus'/(_default_exp(nb).replace('.', '/') + '.py')
    names = _api(mod)
    assert names, f"{mod.name} exports no functions: nothing to check"
    page = (built/'site'/f'{_page(nb)}.html').read_text()
    bad = []
    for name in names:
        m = re.search(rf'<h3 id="{re.escape(name.lower())}">(.*?)</h3>(.*?)(?=<h[1-3][ >]|$)', page, re.S)
        code = re.search(r'<code>(.*?)</code>', m.group(2), re.S) if m else None
        if not (m and name in _text(m.group(1)) and code and re.match(rf'\s*(async\s+)?(def|class)\s+{re.escape(name)}\b', _text(code.group(1)))):
            bad.append(name)
    assert not bad, (f"{nb.name}: no rendered signature on {_page(nb)}.html for {bad} (give each its own "
                     "`show_doc` cell: a cell displays only its last expression)")

def test_search_index(built):
    idx = json.loads((built/'site'/'search'/'search_index.json').read_text())
    locs = {d['location'] for d in idx['docs']}
    pages = {loc.split('#')[0] for loc in locs}
    assert {f'{_page(nb)}.html' for nb in NBS} <= pages
    assert 'synthetic.html#make_ultrafeedback' in locs        # function sections are indexed on their own

def _sidebar_order(quarto_yml:Path, present:list[str]) -> list[str]:
    def walk(items):
        for it in items or []:
            if isinstance(it, str): yield Path(it).name
            elif isinstance(it, dict): yield from walk(it.get('contents'))
    listed = [n for n in walk(yaml.safe_load(quarto_yml.read_text())['website']['sidebar']['contents']) if n in present]
    return listed + sorted(n for n in present if n not in listed)

def test_navigation_follows_quarto_sidebar(built):
    nav = re.search(r'<nav class="md-nav md-nav--primary".*?</nav>\s*</div>', (built/'site'/'index.html').read_text(), re.S).group(0)
    hrefs = list(dict.fromkeys(h for h in re.findall(r'href="([\w.-]+\.html)"', nav)))
    expected = [f'{_page(Path(n))}.html' for n in _sidebar_order(ROOT/'_quarto.yml', [nb.name for nb in NBS])]
    assert hrefs == expected

def _norm(s:str) -> str:
    s = re.sub(r'0x[0-9a-f]{6,}', '0x...', s)                      # object addresses
    return '\n'.join(l.rstrip() for l in s.strip().splitlines())

def test_readme_up_to_date(built):
    committed = (ROOT/'README.md').read_text()
    assert _norm((built/'README.md').read_text()) == _norm(committed), \
        "README.md is not what nbs/index.ipynb gives: run python scripts/build_docs.py --readme and commit README.md"
    blocks = re.findall(r'```bash\n(.*?)```', committed, re.S)
    cmds = [l.split('#')[0].strip() for b in blocks for l in b.splitlines() if l.split('#')[0].strip()]
    assert cmds == ['bash scripts/demo.sh', 'bash scripts/test.sh']

def _outputs(page:str) -> str:
    "Text of a page's cell outputs (not of its code)."
    return '\n'.join(_text(m) for m in re.findall(r'<div class="[^"]*nb-out[^"]*">(.*?)</pre>', page, re.S))

def _pages(built): return {p.name: p.read_text() for p in (built/'site').glob('*.html')}

def test_math_rendered_offline(built):
    "Formulas are MathML in the page (rendered by the browser), never TeX source, and no page loads a script from a CDN."
    pages = _pages(built)
    assert pages['evaluate.html'].count('<math ') >= 3
    for name, page in pages.items():
        body = _text(re.sub(r'<(script|math|code|pre)\b.*?</\1>', '', page, flags=re.S))
        assert not re.search(r'\\\(|\\\[|\$\$|\\pi_', body), f"raw TeX on {name}"
        assert not re.search(r'<script[^>]+src="https?://', page), f"{name} loads a script from the network"

def test_internal_anchors_resolve(built):
    "Every link to a page of the site, with or without #anchor, points to a page and an id that exist."
    pages = _pages(built)
    ids = {n: set(re.findall(r'\sid="([^"]+)"', p)) for n, p in pages.items()}
    dead = []
    for name, page in pages.items():
        for href in re.findall(r'href="([^"]+)"', page):
            if re.match(r'^(\w+:|//|/)', href) or not re.match(r'^([\w.-]+\.html)?(#.*)?$', href): continue
            target, _, anchor = href.partition('#')
            target = target or name
            if target not in pages or (anchor and html.unescape(anchor) not in ids[target]): dead.append(f'{name} -> {href}')
    assert not dead, f"dead internal links: {dead}"

def test_rendered_outputs_are_quiet(built):
    "Library warnings and datasets' progress lines do not reach the rendered pages."
    for name, page in _pages(built).items():
        outs = _outputs(page)
        assert 'FutureWarning' not in outs and 'Generating train split' not in outs, name

def _browser():
    return next((b for b in ('chromium-headless-shell', 'chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)

def test_pages_in_a_browser(built):
    """Every page rendered by a headless browser (screenshots kept for people to look at): no visible traceback,
    raw TeX or raw Markdown table in what the reader sees."""
    b = _browser()
    if b is None: pytest.skip("no headless Chromium (Debian: apt-get install chromium-headless-shell)")
    shots = ROOT/'_proc'/'screenshots'; shots.mkdir(parents=True, exist_ok=True)
    bad = []
    for page in sorted((built/'site').glob('*.html')):
        args = [b, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--window-size=1280,1600']
        url = page.as_uri()
        subprocess.run(args + [f'--screenshot={shots/(page.stem + ".png")}', url], capture_output=True, timeout=120)
        dom = subprocess.run(args + ['--dump-dom', url], capture_output=True, text=True, timeout=120).stdout
        assert '<body' in dom, f"the browser rendered nothing for {page.name}"
        seen = _text(re.sub(r'<(script|style|math|code|pre)\b.*?</\1>', ' ', dom, flags=re.S))
        outs = _outputs(dom)
        for what, pat, txt in [('a traceback', r'Traceback \(most recent call last\)', outs),
                               ('raw TeX', r'\\\(|\\\[|\$\$', seen),
                               ('a raw Markdown table', r'(?m)^\s*\|?\s*:?-{3,}:?\s*\|', seen + '\n' + outs)]:
            if re.search(pat, txt): bad.append(f'{page.name}: {what}')
        assert (shots/(page.stem + '.png')).stat().st_size > 10_000, f"blank screenshot of {page.name}"
    assert not bad, f"pages that show {bad} (screenshots in {shots})"

# A small project of its own: plots, show_doc of a documented function, a notebook the sidebar does not list,
# and a notebook that fails.

def _nb(path, *cells):
    nb = nbformat.v4.new_notebook(metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}})
    nb.cells = [nbformat.v4.new_markdown_cell(c[3:]) if c.startswith('md:') else nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)

@pytest.fixture
def fixture_nbs(tmp_path):
    nbs = tmp_path/'nbs'; nbs.mkdir()
    _nb(nbs/'index.ipynb', 'md:# Fixture\n\n> A tiny site.', 'md:Welcome.')
    _nb(nbs/'01_plots.ipynb', 'md:# Plots\n\n> A page with a plot.',
        'import matplotlib.pyplot as plt\nfrom nbdev.showdoc import show_doc',
        '#| exec_doc\ndef area(r:float, # the radius\n        )->float:\n    "Area of a circle of radius `r`."\n    return 3.14159*r*r',
        'show_doc(area)',
        'fig, ax = plt.subplots(figsize=(3, 2))\nax.plot([0, 1], [0, 1]);',
        'print("printed", area(1.0))',
        'md:The area is $\\pi r^2$, or\n\n$$A(r) = \\pi r^2.$$',
        'import sys, warnings\nwarnings.warn("an old API", FutureWarning)\n'
        'print("Generating train split: 300 examples [00:00, 3512.21 examples/s]", file=sys.stderr)\n'
        'print("a message for the reader", file=sys.stderr)')
    _nb(nbs/'02_broken.ipynb', 'md:# Broken', 'x = 1', 'raise ValueError("planted failure")')
    _nb(nbs/'zz_extra.ipynb', 'md:# Extra', '1 + 1')
    (tmp_path/'_quarto.yml').write_text(yaml.safe_dump({'website': {'title': 'fixture', 'sidebar': {'contents': [
        'index.ipynb', {'section': 'S', 'contents': ['00_missing.ipynb', '01_plots.ipynb', '02_broken.ipynb']}]}}}))
    return tmp_path

def test_failing_notebook_fails_the_build(fixture_nbs):
    t = fixture_nbs
    r = _build('--nbs', t/'nbs', '--quarto', t/'_quarto.yml', '--out', t/'site', '--no-cache', cwd=t)
    assert r.returncode == 1
    assert '02_broken.ipynb' in r.stderr and 'planted failure' in r.stderr
    assert '01_plots.ipynb' not in r.stderr.split('\n')[0]     # only the broken notebook is named as failed
    assert not (t/'site'/'index.html').exists()

def test_plots_show_doc_and_order(fixture_nbs):
    t = fixture_nbs
    (t/'nbs'/'02_broken.ipynb').unlink()
    r = _build('--nbs', t/'nbs', '--quarto', t/'_quarto.yml', '--out', t/'site', '--no-cache', cwd=t)
    assert r.returncode == 0, r.stderr
    page = (t/'site'/'plots.html').read_text()
    imgs = re.findall(r'<img src="(plots_files/[^"]+\.png)"', page)
    assert len(imgs) == 1 and (t/'site'/imgs[0]).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'printed 3.14159' in _text(page)
    assert re.search(r'<h3 id="area">', page) and 'the radius' in _text(page)
    assert page.count('<math ') == 2 and 'display="block"' in page and '\\pi' not in page    # MathML, not TeX
    outs = _outputs(page)
    assert 'a message for the reader' in outs and 'FutureWarning' not in outs and 'Generating train split' not in outs
    nav = re.search(r'<nav class="md-nav md-nav--primary".*?</nav>\s*</div>', (t/'site'/'index.html').read_text(), re.S).group(0)
    assert list(dict.fromkeys(re.findall(r'href="([\w.-]+\.html)"', nav))) == ['index.html', 'plots.html', 'zz_extra.html']

def test_no_exec_keeps_show_doc_only(fixture_nbs):
    "--no-exec runs only what show_doc needs (as nbdev does): signatures render, the plot and prints do not, nothing fails."
    t = fixture_nbs
    r = _build('--nbs', t/'nbs', '--quarto', t/'_quarto.yml', '--out', t/'site', '--no-cache', '--no-exec', cwd=t)
    assert r.returncode == 0, r.stderr
    page = (t/'site'/'plots.html').read_text()
    assert re.search(r'<h3 id="area">', page) and '<img' not in page and 'printed 3.14159' not in _text(page)
    assert (t/'site'/'broken.html').exists()
    _nb(t/'nbs'/'03_baddoc.ipynb', 'md:# Bad doc', 'from nbdev.showdoc import show_doc', 'show_doc(no_such_function)')
    r = _build('--nbs', t/'nbs', '--quarto', t/'_quarto.yml', '--out', t/'site2', '--no-cache', '--no-exec', cwd=t)
    assert r.returncode == 1 and '03_baddoc.ipynb' in r.stderr.split('\n')[0] and 'no_such_function' in r.stderr
