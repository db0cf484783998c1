"""The package's structure: imports point one way (notebook order is dependency order), no import circles,
and no module reaches into another module's private names."""
import ast, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/'notus'

def _modules() -> dict:
    "module name -> (notebook it is exported from, parsed tree)."
    out = {}
    for p in sorted(PKG.glob('*.py')):
        if p.name.startswith('_'): continue
        src = p.read_text()
        m = re.search(r'File to edit: \.\./nbs/(\S+?\.ipynb)', src)
        out[p.stem] = (m.group(1) if m else None, ast.parse(src))
    return out

def _imports(tree, me:str):
    "(imported notus module, names imported from it) for every import in a module, top level or inside functions."
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1: mod = f'notus.{mod}' if mod else 'notus'
            if mod == 'notus': yield from ((a.name, []) for a in node.names)
            elif mod.startswith('notus.'): yield mod.split('.')[1], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('notus.'): yield a.name.split('.')[1], []

def _graph(mods) -> dict:
    return {m: {d for d, _ in _imports(t, m) if d in mods and d != m} for m, (_, t) in mods.items()}

def _cycles(g) -> list:
    "Every import circle, as a list of modules (Tarjan's strongly connected components of size > 1)."
    idx, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        idx[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in g[v]:
            if w not in idx: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    for v in g:
        if v not in idx: visit(v)
    return out

def test_cycle_finder_finds_a_circle():
    assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert _cycles({'a': {'b'}, 'b': set()}) == []

def test_no_import_circles():
    assert _cycles(_graph(_modules())) == []

def test_imports_follow_notebook_order():
    "A module imports only modules whose notebooks come earlier in the story (the cli, on top, dispatches by name)."
    mods = _modules()
    back = [(m, d) for m, ds in _graph(mods).items() for d in ds
            if mods[m][0] and mods[d][0] and mods[d][0] > mods[m][0]]
    assert not back, f"imports running back up the notebook order (module, imported): {back}"

def test_no_private_names_across_modules():
    mods = _modules()
    bad = [(m, d, n) for m, (_, t) in mods.items() for d, names in _imports(t, m) if d != m
           for n in names if n.startswith('_')]
    assert not bad, f"modules importing another module's private names (module, from, name): {bad}"
