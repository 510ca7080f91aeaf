"""Runs each rule of a compare report over the whole history in DuckDB, as the rules would run
against the customer base, and checks the report's scope figures: the rule's size in the base,
its share of it, its people among the held-out rows and their conversions.

usage: scope_oracle.py DATA SEP SPLIT_CSV REPORT_JSON RULES_DIR
Prints {"checked": N, "mismatches": [...]}.
"""
import json
import os
import sys

import duckdb
import numpy as np
import pandas as pd

data, sep, split_csv, report_json, rules_dir = sys.argv[1:6]
history = pd.read_csv(data, sep=sep)
history["row_id"] = np.arange(len(history))
part = pd.read_csv(split_csv)["part"].to_numpy()
held = set(np.nonzero(part == "holdout")[0])
report = json.load(open(report_json))
con = duckdb.connect()
con.register("history", history)

mismatches = []
checked = 0
for r in report["rules"]:
    sql = open(os.path.join(rules_dir, os.path.basename(r["file"]))).read()
    rows = set(con.execute(f"SELECT row_id FROM ({sql}) AS rule").fetchnumpy()["row_id"].tolist())
    in_e = rows & held
    conversions = int((history.loc[sorted(in_e), "y"] == "yes").sum())
    expected = {
        "base_size": len(rows),
        "base_share": len(rows) / len(history),
        "size": len(in_e),
        "share": len(in_e) / len(held),
        "rule_conversions": conversions,
    }
    for key, value in expected.items():
        if abs(r[key] - value) > 1e-12:
            mismatches.append(f"{r['name']}.{key}: ours {r[key]}, DuckDB {value}")
    checked += 1
if report["evaluation"]["base_rows"] != len(history) or report["evaluation"]["rule_scope"] != "history":
    mismatches.append(f"evaluation: {report['evaluation']}")
print(json.dumps({"checked": checked, "mismatches": mismatches}))
