"""The study's table from each arm's eval.jsonl (`dmgan eval --metrics oracle compositional`);
a column of comma-joined arms shows their mean (e.g. two seeds).

    python research/gates/table.py RUNS_FOLDER full no-writing-gate no-response-gate no-memory
    python research/gates/table.py RUNS_FOLDER full,full-seed1 no-memory,no-memory-seed1
"""

import json
import sys
from pathlib import Path

ROWS = [
    ("fully specified: colour / shape / size / position", ["colour", "shape", "size", "position"]),
    ("fully specified: all / two objects all", ["all", "two_object_all"]),
    ("partial: objects found / every said attribute", ["objects_found", "all_said"]),
    ("single object / two objects / counting", ["single_object", "two_object", "counting"]),
    ("colours / positions / colour attribution", ["colours", "positions", "colour_attribution"]),
    ("unsaid TV distance: size / colour / place",
     ["unsaid_tv_size", "unsaid_tv_colour", "unsaid_tv_position"]),
    ("unsaid varying over seeds: size / colour / place",
     ["unsaid_varies_size", "unsaid_varies_colour", "unsaid_varies_position"]),
    ("diversity ratio", ["diversity_ratio"]),
    ("held-out pairs: colour / shape / all", ["held_out_colour", "held_out_shape", "held_out_all"]),
]


def main() -> None:
    runs, arms = Path(sys.argv[1]), sys.argv[2:]
    values = {}
    for column in arms:
        each = []
        for arm in column.split(","):
            rows = [json.loads(x) for x in (runs / arm / "eval.jsonl").read_text().splitlines()]
            each.append({r["metric"]: r["value"] for r in rows})
        values[column] = {k: sum(e[k] for e in each) / len(each)
                          for k in each[0] if all(k in e for e in each)}
    print("| | " + " | ".join(arms) + " |")
    print("| --- |" + " --- |" * len(arms))
    for label, keys in ROWS:
        cells = [" / ".join(f"{values[a][k]:.3f}" if k in values[a] else "-" for k in keys)
                 for a in arms]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
