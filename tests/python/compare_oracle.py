"""Recomputes `audience compare`'s bank report with pandas, scikit-learn and scipy, independently:
the rules rewritten as pandas filters (over the whole history for the base, then the held-out rows),
the model's audience by sorting with rows of equal score counted pro rata (the expected count when
the rows needed are drawn from the tied group at random), AUC by scikit-learn, DeLong by midranks,
deciles as kds computes them (pro rata across a boundary), and the bootstrap by resampling rows and
picking the model's top n' again in every resample.

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

# Rank order; equal scores form groups whose rows are interchangeable.
order = np.argsort(-s, kind="mergesort")
sorted_scores = s[order]
sorted_y = y[order]
starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
ends = np.r_[starts[1:], N]
group_of_position = np.repeat(np.arange(len(starts)), ends - starts)


def expected_cum(weights_in_rank_order):
    """C[k] for k = 0..N: the expected sum over the first k positions, pro rata within groups."""
    group_sum = np.add.reduceat(weights_in_rank_order, starts)
    group_size = (ends - starts).astype(float)
    full = np.r_[0.0, np.cumsum(group_sum)]
    k = np.arange(N + 1)
    g = np.minimum(np.searchsorted(ends, k, side="left"), len(starts) - 1)
    # Positions k inside group g (start <= k <= end) take (k - start) of its rows.
    return full[g] + (k - starts[g]) * group_sum[g] / group_size[g]


C = expected_cum(sorted_y.astype(float))
check("model.distinct_scores", m["distinct_scores"], len(starts))
by_name = {r["name"]: r for r in report["rules"]}
if sorted(by_name) != sorted(RULES):
    mismatches.append(f"rules: {sorted(by_name)}")
rng = np.random.default_rng(1)
E_index = {row: i for i, row in enumerate(E.row_id.to_numpy())}
for name, rule in RULES.items():
    r = by_name[name]
    in_base = rule(df).to_numpy()
    check(f"{name}.base_size", r["base_size"], int(in_base.sum()))
    check(f"{name}.base_share", r["base_share"], in_base.mean())
    in_rule = rule(E).to_numpy()
    n = int(in_rule.sum())
    # The model's top n, pro rata: each row's expected membership.
    weight_sorted = np.zeros(N)
    g = group_of_position[n] if n < N else len(starts) - 1
    weight_sorted[: starts[g]] = 1.0
    if n < N:
        weight_sorted[starts[g] : ends[g]] = (n - starts[g]) / (ends[g] - starts[g])
    else:
        weight_sorted[:] = 1.0
    weight = np.empty(N)
    weight[order] = weight_sorted
    rc, mc = int(y[in_rule].sum()), float((weight * y).sum())
    check(f"{name}.model_conversions (cumulative)", mc, C[n], 1e-9)
    tied = (ends[g] - starts[g]) if n < N and n > starts[g] else 0
    check(f"{name}.tied_at_cut", r["tied_at_cut"], tied)
    check(f"{name}.size", r["size"], n)
    check(f"{name}.share", r["share"], n / N)
    check(f"{name}.rule_conversions", r["rule_conversions"], rc)
    check(f"{name}.model_conversions", r["model_conversions"], mc, 1e-9)
    check(f"{name}.rule_rate", r["rule_rate"], rc / n)
    check(f"{name}.model_rate", r["model_rate"], mc / n, 1e-9)
    check(f"{name}.rule_lift", r["rule_lift"], rc / n / base)
    check(f"{name}.model_lift", r["model_lift"], mc / n / base, 1e-9)
    check(f"{name}.extra_conversions", r["extra_conversions"], mc - rc, 1e-9)
    both = float(weight[in_rule].sum())
    both_conv = float((weight * y)[in_rule].sum())
    check(f"{name}.overlap.both", r["overlap"]["both"], both, 1e-9)
    check(f"{name}.overlap.both_rate", r["overlap"]["both_rate"], both_conv / both if both > 0 else None, 1e-9)
    check(f"{name}.overlap.rule_only_rate", r["overlap"]["rule_only_rate"], (rc - both_conv) / (n - both) if n > both else None, 1e-9)
    check(f"{name}.overlap.model_only_rate", r["overlap"]["model_only_rate"], (mc - both_conv) / (n - both) if n > both else None, 1e-9)
    tpr, fpr = rc / P, (n - rc) / (N - P)
    check(f"{name}.rule_auc", r["rule_auc"], (1 + tpr - fpr) / 2)
    # The rule's AUC is the AUC of its 0/1 membership as a score.
    check(f"{name}.rule_auc (sklearn)", r["rule_auc"], roc_auc_score(y, in_rule.astype(float)))
    # Reach: largest k whose expected precision@k >= the rule's rate.
    k = np.arange(1, N + 1)
    ok = np.nonzero(C[1:] * n >= rc * k - 1e-9)[0]
    check(f"{name}.model_reach_at_rule_rate", r["model_reach_at_rule_rate"], int(ok[-1]) + 1 if len(ok) else 0)
    # Bootstrap by resampling rows, the model's top n' picked again in each resample.
    diffs = []
    for _ in range(4000):
        counts = np.bincount(rng.integers(0, N, N), minlength=N).astype(float)
        n_b = counts[in_rule].sum()
        if n_b == 0:
            continue
        group_rows = np.add.reduceat(counts[order], starts)
        group_conv = np.add.reduceat((counts * y)[order], starts)
        prefix_rows = np.r_[0.0, np.cumsum(group_rows)]
        prefix_conv = np.r_[0.0, np.cumsum(group_conv)]
        j = np.searchsorted(prefix_rows, n_b, side="left")  # first boundary >= n_b
        if prefix_rows[j] == n_b:
            model_conv = prefix_conv[j]
        else:
            model_conv = prefix_conv[j - 1] + (n_b - prefix_rows[j - 1]) * group_conv[j - 1] / group_rows[j - 1]
        diffs.append(model_conv / n_b - (counts * y)[in_rule].sum() / n_b)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    check(f"{name}.rate_diff_ci[0] (bootstrap)", r["rate_diff_ci"][0], lo, 0.006)
    check(f"{name}.rate_diff_ci[1] (bootstrap)", r["rate_diff_ci"][1], hi, 0.006)
    verdict = "model_better" if r["rate_diff_ci"][0] > 0 else "rule_better" if r["rate_diff_ci"][1] < 0 else "no_significant_difference"
    if r["verdict"] != verdict:
        mismatches.append(f"{name}.verdict {r['verdict']} vs interval {r['rate_diff_ci']}")

# kds decile table: np.linspace bins over rank positions; a tied group cut by a boundary is
# shared pro rata (cumulative expected conversions at the bin's ends).
decile_of_position = np.linspace(1, 11, N, False, dtype=int)
wiz = np.sort(y)[::-1]
cum = {"cust": 0, "resp": 0.0, "non": 0.0, "wiz": 0}
for row in report["deciles"]:
    positions = np.flatnonzero(decile_of_position == row["decile"])
    p0, p1 = positions[0], positions[-1] + 1
    resp = C[p1] - C[p0]
    cum["cust"] += p1 - p0
    cum["resp"] += resp
    cum["non"] += (p1 - p0) - resp
    cum["wiz"] += int(wiz[positions].sum())
    k = f"deciles[{row['decile']}]"
    check(k + ".prob_min", row["prob_min"], sorted_scores[p0:p1].min())
    check(k + ".prob_max", row["prob_max"], sorted_scores[p0:p1].max())
    check(k + ".prob_avg", row["prob_avg"], sorted_scores[p0:p1].mean(), 1e-9)
    check(k + ".cnt_cust", row["cnt_cust"], p1 - p0)
    check(k + ".cnt_resp", row["cnt_resp"], resp, 1e-9)
    check(k + ".cnt_resp_wiz", row["cnt_resp_wiz"], int(wiz[positions].sum()))
    check(k + ".resp_rate", row["resp_rate"], resp / (p1 - p0) * 100, 1e-9)
    check(k + ".cum_resp_pct", row["cum_resp_pct"], cum["resp"] * 100 / P, 1e-9)
    check(k + ".cum_non_resp_pct", row["cum_non_resp_pct"], cum["non"] * 100 / (N - P), 1e-9)
    check(k + ".KS", row["KS"], cum["resp"] * 100 / P - cum["non"] * 100 / (N - P), 1e-9)
    check(k + ".lift", row["lift"], (cum["resp"] * 100 / P) / (cum["cust"] * 100 / N), 1e-9)
    check(k + ".cum_resp_pct_wiz", row["cum_resp_pct_wiz"], cum["wiz"] * 100 / P)

print(json.dumps(mismatches, indent=1))
