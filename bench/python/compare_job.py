"""`audience compare` done the way a Python analyst would: pandas read_csv with category dtypes,
lgb.train with the same parameters, rows and early stopping, DuckDB for the rules (over the whole
history, as compare runs them with a random split), scikit-learn for the AUC, numpy for each
rule's comparison with the model's top n of the holdout, a paired bootstrap of the same size
(the model's top n re-picked per resample) and the deciles.

The split comes from SPLIT.csv (audience train --split-out with the same settings, made before
the timing starts) so that both sides train on the same rows and their AUCs can be compared to
the last digits; the features, their kinds and the parameters from the bundle compare saved.
usage: compare_job.py DATA.csv SPLIT.csv BUNDLE_DIR RESAMPLES RULE.sql..."""
import json
import sys
import time

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from bundle_training import read_like_bundle, train_like_bundle

data, split_csv, bundle, resamples, *rules = sys.argv[1:]
phases = {}
clock = time.perf_counter()


def phase(name):
    global clock
    now = time.perf_counter()
    phases[name] = now - clock
    clock = now


resamples = int(resamples)
manifest = json.load(open(f"{bundle}/audience-model.json"))
label = manifest["label"]["column"]
id_column = manifest["id"]["column"]
df, names = read_like_bundle(data, manifest)
part = pd.read_csv(split_csv)["part"].to_numpy()
phase("read_s")
X = df[names]
y = df[label].to_numpy()
booster, hold = train_like_bundle(X, y, part, manifest)
phase("train_s")
scores = booster.predict(X[hold], num_iteration=booster.best_iteration)
y_hold = y[hold]
auc = roc_auc_score(y_hold, scores)
phase("score_auc_s")

# The rules, over the whole history.
con = duckdb.connect()
con.register("history", df)
hold_ids = df[id_column].to_numpy()[hold]
position = pd.Series(np.arange(len(hold_ids)), index=hold_ids)
order = np.argsort(-scores, kind="stable")
sorted_labels = y_hold[order]
cum = np.concatenate([[0], np.cumsum(sorted_labels)])
rng = np.random.default_rng(42)
rule_rows = []
out_rules = []
for rule in rules:
    sql = open(rule).read().strip().rstrip(";")
    ids = con.execute(f"SELECT DISTINCT {id_column} FROM ({sql})").fetchnumpy()[id_column]
    rows = position.reindex(ids).dropna().to_numpy().astype(np.int64)
    n = len(rows)
    in_top = np.zeros(len(y_hold), dtype=bool)
    in_top[order[:n]] = True
    rule_rows.append(rows)
    out_rules.append({"size": n, "rule_conversions": int(y_hold[rows].sum()),
                      "model_conversions": int(cum[n]), "overlap": int(in_top[rows].sum())})
phase("rules_s")
# Paired bootstrap: each resample draws |E| rows with replacement; a rule's audience is the drawn
# copies of its people, the model's the top n' of the resample (n' the rule's size in it).
diffs = [[] for _ in rules]
for _ in range(resamples):
    copies = np.bincount(rng.integers(0, len(y_hold), len(y_hold)), minlength=len(y_hold))
    ranked = copies[order]
    ranked_cum = np.cumsum(ranked)
    conv_cum = np.cumsum(ranked * sorted_labels)
    for i, rows in enumerate(rule_rows):
        size = copies[rows].sum()
        if size == 0:
            continue
        conv = (copies[rows] * y_hold[rows]).sum()
        cut = np.searchsorted(ranked_cum, size)
        model = conv_cum[cut - 1] if cut > 0 else 0
        diffs[i].append((model - conv) / size)
for r, d in zip(out_rules, diffs):
    r["interval"] = list(np.percentile(d, [2.5, 97.5])) if d else None
phase("bootstrap_s")
deciles = pd.DataFrame({"s": scores, "y": y_hold}).assign(
    d=lambda t: pd.qcut(-t["s"].rank(method="first"), 10, labels=False)).groupby("d")["y"].agg(["count", "sum"])
print(json.dumps({"auc": auc, "best_iteration": booster.best_iteration, "holdout_rows": int(hold.sum()),
                  "audience_sizes": [r["size"] for r in out_rules], "rules": out_rules,
                  "deciles": deciles.to_numpy().tolist(), "phases": phases}))
