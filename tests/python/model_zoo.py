"""Trains a zoo of LightGBM models with Python lightgbm and writes, for each, LightGBM's own
predictions on 100k awkward rows (NaN, +-0, +-1e-36, negatives, fractions, huge values, unseen and
negative category codes), so audience's evaluator can be checked against them.

usage: model_zoo.py OUTDIR
Writes OUTDIR/rows.csv (the numeric frame), OUTDIR/rows_text.csv (the same rows with category
labels, for the pandas-categorical model), OUTDIR/models/NAME.txt, OUTDIR/expected/NAME.txt
(one prediction per line, repr precision) and OUTDIR/zoo.json (the list of names).
"""
import json
import os
import sys
import time
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(os.path.join(out, "models"), exist_ok=True)
os.makedirs(os.path.join(out, "expected"), exist_ok=True)
rng = np.random.default_rng(20261125)

CARD = [5, 40, 300]
NAMES = ["x0", "x1", "x2", "c0", "c1", "c2"]


def make(n, awkward):
    x = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.001]
    x[:, 1] = np.round(x[:, 1])  # many exact zeros and integers
    c = np.column_stack([rng.integers(0, k, n) for k in CARD]).astype(float)
    X = np.column_stack([x, c])
    logit = (
        0.8 * x[:, 0]
        - 0.1 * x[:, 1]
        + np.where(c[:, 0] % 2 == 0, 0.7, -0.4)
        + np.sin(c[:, 1])
        + 0.002 * c[:, 2]
        + 0.5 * x[:, 0] * (c[:, 0] == 3)
        - 2.0
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    if awkward:
        specials = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, -5.0, 2.5, 1e300, -1e300, 1e10, -1.0, 7.999999999999999])
        mask = rng.random(X.shape) < 0.15
        X[mask] = rng.choice(specials, mask.sum())
        # Unseen categories: codes beyond each training range.
        for j, k in enumerate(CARD):
            unseen = rng.random(n) < 0.03
            X[unseen, 3 + j] = k + rng.integers(0, 50, unseen.sum())
    return X, y


X, y = make(20000, awkward=False)
X_valid, y_valid = make(5000, awkward=False)
rows, _ = make(100000, awkward=True)
def exact(v):
    return repr(float(v))


def write_predictions(name, pred):
    with open(os.path.join(out, "expected", name + ".txt"), "w") as f:
        f.write("\n".join(exact(v) for v in pred) + "\n")


pd.DataFrame(rows, columns=NAMES).to_csv(os.path.join(out, "rows.csv"), index=False, float_format=exact)

base = {"objective": "binary", "verbosity": -1, "seed": 7, "deterministic": True, "num_threads": 2}
CAT = [3, 4, 5]
ZOO = {
    "default_31_leaves": ({}, 50),
    "stumps": ({"num_leaves": 2}, 100),
    "wide_255_leaves": ({"num_leaves": 255, "min_data_in_leaf": 5}, 30),
    "depth_3": ({"max_depth": 3, "num_leaves": 8}, 100),
    "deep_500_leaves": ({"num_leaves": 500, "max_depth": 14, "min_data_in_leaf": 3}, 8),
    "missing_none": ({"use_missing": False}, 40),
    "zero_as_missing": ({"zero_as_missing": True}, 40),
    "random_forest": ({"boosting": "rf", "bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.8}, 40),
    "categorical_heavy": ({"max_cat_to_onehot": 64, "cat_smooth": 1, "min_data_per_group": 5, "cat_l2": 1}, 60),
    "onehot_categories": ({"max_cat_to_onehot": 400}, 30),
    "small_cat_threshold": ({"max_cat_threshold": 4}, 40),
    "fast_learning": ({"learning_rate": 0.5}, 200),
    "regularised": ({"lambda_l1": 1.0, "lambda_l2": 5.0, "min_gain_to_split": 0.1}, 20),
    "dart": ({"boosting": "dart", "drop_rate": 0.2}, 40),
    "goss": ({"data_sample_strategy": "goss"}, 20),
    "single_leaf_trees": ({"min_gain_to_split": 1e9}, 5),
    "sigmoid_2": ({"sigmoid": 2.0}, 40),
    "cross_entropy": ({"objective": "cross_entropy"}, 40),
    "extra_trees": ({"extra_trees": True}, 60),
    "trees_500": ({"num_leaves": 15, "feature_fraction": 0.7, "learning_rate": 0.03}, 500),
    "numeric_only": ({}, 40),
}
names = []
started = time.time()
for name, (params, rounds) in ZOO.items():
    p = dict(base, **params)
    cat = [] if name == "numeric_only" else CAT
    train = lgb.Dataset(X, label=y, categorical_feature=cat, feature_name=NAMES, free_raw_data=False)
    booster = lgb.train(p, train, num_boost_round=rounds)
    path = os.path.join(out, "models", name + ".txt")
    booster.save_model(path)
    pred = lgb.Booster(model_file=path).predict(rows)
    write_predictions(name, pred)
    names.append(name)
    print(name, f"{time.time() - started:.1f}s", file=sys.stderr)

# A model trained from pandas category columns: its model.txt carries pandas_categorical, and
# scoring maps labels (strings) through it, unseen labels becoming missing.
labels = [[f"{n}_{i}" for i in range(k)] for n, k in zip(["a", "b", "c"], CARD)]
def as_frame(M):
    df = pd.DataFrame(M[:, :3], columns=NAMES[:3])
    for j, n in enumerate(NAMES[3:]):
        codes = M[:, 3 + j]
        k = CARD[j]
        text = [labels[j][int(v)] if v == v and 0 <= v < k and float(v).is_integer()
                else (None if v != v else f"new_{v!r}") for v in codes]
        df[n] = text
    return df
train_df = as_frame(X)
for j, n in enumerate(NAMES[3:]):
    train_df[n] = pd.Categorical(train_df[n], categories=sorted(labels[j]))
booster = lgb.train(dict(base), lgb.Dataset(train_df, label=y), num_boost_round=60)
path = os.path.join(out, "models", "pandas_categorical.txt")
booster.save_model(path)
rows_df = as_frame(rows)
rows_df.to_csv(os.path.join(out, "rows_text.csv"), index=False, float_format=exact)
score_df = rows_df.copy()
for n in NAMES[3:]:
    score_df[n] = score_df[n].astype("category")
pred = lgb.Booster(model_file=path).predict(score_df)
write_predictions("pandas_categorical", pred)
names.append("pandas_categorical")

json.dump(names, open(os.path.join(out, "zoo.json"), "w"))
print(json.dumps({"models": len(names), "rows": len(rows)}))
