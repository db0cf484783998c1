"""Helpers the training tests share, independent of notus's own code (they check it)."""
import json
from pathlib import Path

def complete_checkpoints(out)->list:
    "Steps of the checkpoints in `out` whose trainer_state.json reads (a checkpoint being written has none yet)."
    found = []
    for p in Path(out).glob('checkpoint-*'):
        try: json.loads((p/'trainer_state.json').read_text()); found.append(int(p.name.split('-')[1]))
        except (OSError, ValueError): pass
    return sorted(found)
