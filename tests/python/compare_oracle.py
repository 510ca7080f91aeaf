"""Recomputes `audience compare`'s bank report with pandas, scikit-learn and scipy, independently:
the rules rewritten as pandas filters, the model's audience by sorting, AUC by scikit-learn, DeLong
by midranks, deciles as kds computes them, the bootstrap by resampling rows.

usage: compare_oracle.py DATA SEP SPLIT_CSV SCORES_CSV REPORT_JSON
Prints a JSON list of mismatches (empty when everything agrees).
"""
import json
import sys

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import log_loss, roc_auc_score

data, sep, split_csv, scores_csv, report_json = sys.argv[1:6]
df = pd.read_csv(data, sep=sep)
df["row_id"] = np.arange(len(df))
df["y01"] = (df["y"] == "yes").astype(int)
df["score"] = pd.read_csv(scores_csv, float_precision="round_trip")["score"].to_numpy()
part = pd.read_csv(split_csv)["part"].to_numpy()
E = df[part == "holdout"].copy()
report = json.load(open(report_json))

RULES = {
    "young_professionals": lambda d: d.age.between(25, 40)
    & d.job.isin(["management", "technician", "admin."])
    & (d["default"] == "no"),
    "previous_success": lambda d: d.poutcome == "success",
    "cash_rich_no_debt": lambda d: (d.balance > 1000) & (d.housing == "no") & (d.loan == "no"),
    "students_and_retired": lambda d: (d.job.isin(["student", "retired"]) | (d.age >= 60))
    & (d.contact == "cellular"),
    "fresh_contacts": lambda d: (d.pdays == -1) & (d.campaign <= 2) & (d.contact == "cellular"),
}

mismatches = []


def check(where, ours, expected, tol=1e-12):
    if ours is None or expected is None:
        if ours is not expected:
            mismatches.append(f"{where}: ours {ours} expected {expected}")
        return
    if abs(ours - expected) > tol * max(1.0, abs(expected)):
        mismatches.append(f"{where}: ours {ours!r} expected {expected!r}")


y = E.y01.to_numpy()
s = E.score.to_numpy()
N, P = len(E), int(y.sum())
base = P / N
m = report["model"]
check("model.eval_rows", m["eval_rows"], N)
check("model.positives", m["positives"], P)
check("model.base_rate", m["base_rate"], base)
check("model.auc", m["auc"], roc_auc_score(y, s))
check("model.log_loss", m["log_loss"], log_loss(y, s), 1e-9)

# DeLong by midranks.
pos, neg = s[y == 1], s[y == 0]
ranks = rankdata(np.concatenate([pos, neg]))
v10 = (ranks[:P] - rankdata(pos)) / (N - P)
v01 = 1 - (ranks[P:] - rankdata(neg)) / P
half = 1.959963984540054 * np.sqrt(v10.var(ddof=1) / P + v01.var(ddof=1) / (N - P))
check("model.auc_ci[0]", m["auc_ci"][0], max(0.0, v10.mean() - half), 1e-10)
check("model.auc_ci[1]", m["auc_ci"][1], min(1.0, v10.mean() + half), 1e-10)

order = E.sort_values(["score", "row_id"], ascending=[False, True], kind="mergesort")
by_name = {r["name"]: r for r in report["rules"]}
if sorted(by_name) != sorted(RULES):
    mismatches.append(f"rules: {sorted(by_name)}")
rng = np.random.default_rng(1)
for name, rule in RULES.items():
    r = by_name[name]
    in_rule = rule(E).to_numpy()
    n = int(in_rule.sum())
    top = set(order.row_id.iloc[:n])
    in_model = E.row_id.isin(top).to_numpy()
    rc, mc = int(y[in_rule].sum()), int(y[in_model].sum())
    check(f"{name}.size", r["size"], n)
    check(f"{name}.share", r["share"], n / N)
    check(f"{name}.rule_conversions", r["rule_conversions"], rc)
    check(f"{name}.model_conversions", r["model_conversions"], mc)
    check(f"{name}.rule_rate", r["rule_rate"], rc / n)
    check(f"{name}.model_rate", r["model_rate"], mc / n)
    check(f"{name}.rule_lift", r["rule_lift"], rc / n / base)
    check(f"{name}.model_lift", r["model_lift"], mc / n / base)
    check(f"{name}.extra_conversions", r["extra_conversions"], mc - rc)
    both = in_rule & in_model
    check(f"{name}.overlap.both", r["overlap"]["both"], int(both.sum()))
    check(f"{name}.overlap.both_rate", r["overlap"]["both_rate"], y[both].mean() if both.any() else None)
    ro, mo = in_rule & ~in_model, in_model & ~in_rule
    check(f"{name}.overlap.rule_only_rate", r["overlap"]["rule_only_rate"], y[ro].mean() if ro.any() else None)
    check(f"{name}.overlap.model_only_rate", r["overlap"]["model_only_rate"], y[mo].mean() if mo.any() else None)
    tpr, fpr = rc / P, (n - rc) / (N - P)
    check(f"{name}.rule_auc", r["rule_auc"], (1 + tpr - fpr) / 2)
    # The rule's AUC is the AUC of its 0/1 membership as a score.
    check(f"{name}.rule_auc (sklearn)", r["rule_auc"], roc_auc_score(y, in_rule.astype(float)))
    # Reach: largest k whose precision@k >= the rule's rate.
    prec = np.cumsum(order.y01.to_numpy()) / np.arange(1, N + 1)
    ok = np.nonzero(prec >= rc / n - 1e-12)[0]
    check(f"{name}.model_reach_at_rule_rate", r["model_reach_at_rule_rate"], int(ok[-1]) + 1 if len(ok) else 0)
    # Bootstrap by resampling rows: the interval should agree within Monte Carlo error.
    diffs = []
    for _ in range(4000):
        i = rng.integers(0, N, N)
        ri, mi, yi = in_rule[i], in_model[i], y[i]
        if ri.any() and mi.any():
            diffs.append(yi[mi].mean() - yi[ri].mean())
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    check(f"{name}.rate_diff_ci[0] (bootstrap)", r["rate_diff_ci"][0], lo, 0.006)
    check(f"{name}.rate_diff_ci[1] (bootstrap)", r["rate_diff_ci"][1], hi, 0.006)
    verdict = "model_better" if r["rate_diff_ci"][0] > 0 else "rule_better" if r["rate_diff_ci"][1] < 0 else "no_significant_difference"
    if r["verdict"] != verdict:
        mismatches.append(f"{name}.verdict {r['verdict']} vs interval {r['rate_diff_ci']}")

# kds decile table: sort by score (ties by id), np.linspace bins.
order = order.reset_index(drop=True)
order["decile"] = np.linspace(1, 11, N, False, dtype=int)
wiz = np.sort(y)[::-1]
wiz_decile = np.linspace(1, 11, N, False, dtype=int)
cum = {"cust": 0, "resp": 0, "non": 0, "wiz": 0}
for row in report["deciles"]:
    d = order[order.decile == row["decile"]]
    cum["cust"] += len(d)
    cum["resp"] += int(d.y01.sum())
    cum["non"] += int((d.y01 == 0).sum())
    cum["wiz"] += int(wiz[wiz_decile == row["decile"]].sum())
    k = f"deciles[{row['decile']}]"
    check(k + ".prob_min", row["prob_min"], d.score.min())
    check(k + ".prob_max", row["prob_max"], d.score.max())
    check(k + ".prob_avg", row["prob_avg"], d.score.mean())
    check(k + ".cnt_cust", row["cnt_cust"], len(d))
    check(k + ".cnt_resp", row["cnt_resp"], int(d.y01.sum()))
    check(k + ".cnt_resp_wiz", row["cnt_resp_wiz"], int(wiz[wiz_decile == row["decile"]].sum()))
    check(k + ".resp_rate", row["resp_rate"], d.y01.mean() * 100)
    check(k + ".cum_resp_pct", row["cum_resp_pct"], cum["resp"] * 100 / P)
    check(k + ".cum_non_resp_pct", row["cum_non_resp_pct"], cum["non"] * 100 / (N - P))
    check(k + ".KS", row["KS"], cum["resp"] * 100 / P - cum["non"] * 100 / (N - P))
    check(k + ".lift", row["lift"], (cum["resp"] * 100 / P) / (cum["cust"] * 100 / N))
    check(k + ".cum_resp_pct_wiz", row["cum_resp_pct_wiz"], cum["wiz"] * 100 / P)

print(json.dumps(mismatches, indent=1))
