"""The runs' own snapshot evaluations (metrics.jsonl: EMA G, 200 selection captions, the
partial ones over 8 seeds) side by side at the steps every arm reached, in the gate study's
rows. Steps count from the arm's start (an --init-from run starts at 0); OFFSET adds the
initial checkpoint's steps to the column heads.

    OFFSET=15000 python research/world_retrain/snapshots.py RUNS/long-k1 RUNS/long-k4
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("table", Path(__file__).parent.parent / "gates" / "table.py")
table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table)


def main() -> None:
    offset = int(os.environ.get("OFFSET", "0"))
    arms = [Path(a) for a in sys.argv[1:]]
    snaps = [{r["step"]: r for r in map(json.loads, (a / "metrics.jsonl").read_text().splitlines())}
             for a in arms]
    steps = sorted(set.intersection(*(set(s) for s in snaps)))
    heads = [f"{a.name} {s + offset:,}" for s in steps for a in arms]
    print("| | " + " | ".join(heads) + " |")
    print("| --- |" + " --- |" * len(heads))
    for label, keys in table.ROWS:
        cells = [" / ".join(f"{snap[s][k]:.2f}" if k in snap[s] else "-" for k in keys)
                 for s in steps for snap in snaps]
        if any(set(c) - set(" /-") for c in cells):
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
