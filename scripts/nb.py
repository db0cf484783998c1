"""Round-trip notebooks and percent-format text, keeping cell ids, for editing notebooks in a text editor.

    python scripts/nb.py to-py nbs/00_data.ipynb > /tmp/00_data.py
    python scripts/nb.py from-py /tmp/00_data.py nbs/00_data.ipynb

Cells are separated by lines `# %% #ID` (code) and `# %% [markdown] #ID` (markdown; each line prefixed by `# `).
The id is the notebook's cell id, which nbdev writes into the exported modules (`# %% ../nbs/x.ipynb #ID`), so a
round trip changes nothing but what was edited. A new cell may omit its id: one is generated.
The notebook stays the source of truth: run `nbdev-export` and `nbdev-clean` after writing it.
"""
import sys, json, re, uuid
from pathlib import Path

def to_py(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb['cells']:
        src, cid = ''.join(c['source']), c.get('id') or uuid.uuid4().hex[:8]
        if c['cell_type'] == 'markdown':
            out.append(f'# %% [markdown] #{cid}\n' + '\n'.join(('# ' + l) if l else '#' for l in src.split('\n')))
        else: out.append(f'# %% #{cid}\n' + src)
    return '\n\n'.join(out) + '\n'

def from_py(text):
    cells, cur, kind, cid = [], None, None, None
    def flush():
        if kind is None: return
        lines = cur[:]
        while lines and not lines[-1].strip(): lines.pop()
        if kind == 'markdown': lines = [re.sub(r'^# ?', '', l) for l in lines]
        src = '\n'.join(lines)
        lines = src.split('\n')
        source = [l + '\n' for l in lines[:-1]] + [lines[-1]] if src else []
        c = dict(cell_type=kind, id=cid or uuid.uuid4().hex[:8], metadata={}, source=source)
        if kind == 'code': c.update(execution_count=None, outputs=[])
        cells.append(c)
    for line in text.split('\n'):
        m = re.match(r'^# %%( \[markdown\])?(?:\s+#([0-9A-Za-z_-]+))?\s*$', line)
        if m:
            flush(); kind = 'markdown' if m.group(1) else 'code'; cid = m.group(2); cur = []
        elif kind is not None: cur.append(line)
    flush()
    seen = set()
    for c in cells:                      # a copied cell keeps no duplicate id
        if c['id'] in seen: c['id'] = uuid.uuid4().hex[:8]
        seen.add(c['id'])
    return dict(cells=cells, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
                nbformat=4, nbformat_minor=5)

if __name__ == '__main__':
    cmd, *args = sys.argv[1:]
    if cmd == 'to-py': sys.stdout.write(to_py(args[0]))
    elif cmd == 'from-py': Path(args[1]).write_text(json.dumps(from_py(Path(args[0]).read_text()), indent=1, ensure_ascii=False, sort_keys=True) + '\n')
    else: sys.exit(__doc__)
