"""Trains Python lightgbm on exactly the rows and parameters audience used; prints holdout AUCs.

usage: train_parity.py DATA SEP BUNDLE SPLIT_CSV SCORES_CSV
SCORES_CSV is `audience score` on DATA with the bundle, so our holdout predictions can be compared.
"""
import json
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from common import feature_frame, labels, manifest, read_table

data, sep, bundle, split_csv, scores_csv = sys.argv[1:6]
m = manifest(bundle)
df = read_table(data, sep)
X = feature_frame(df, m)
y = labels(df, m)
part = pd.read_csv(split_csv)["part"].to_numpy()
fit, early, hold = (part == "fit"), (part == "early_stopping"), (part == "holdout")

params = dict(m["parameters"])
params.pop("categorical_feature", None)  # given by name to the Dataset instead
cat_names = [f["name"] for f in m["features"] if f["kind"] == "categorical"]
train = lgb.Dataset(X[fit], label=y[fit], categorical_feature=cat_names, params=params, free_raw_data=False)
valid = lgb.Dataset(X[early], label=y[early], reference=train, categorical_feature=cat_names, free_raw_data=False)
booster = lgb.train(
    params,
    train,
    num_boost_round=m["num_rounds"],
    valid_sets=[valid],
    callbacks=[lgb.early_stopping(m["early_stopping_rounds"], first_metric_only=True, verbose=False)],
)
python_pred = booster.predict(X[hold], num_iteration=booster.best_iteration)
ours = pd.read_csv(scores_csv, float_precision="round_trip")["score"].to_numpy()[hold]
print(json.dumps({
    "python_auc": roc_auc_score(y[hold], python_pred),
    "our_auc_recomputed": roc_auc_score(y[hold], ours),
    "python_best_iteration": booster.best_iteration,
    "max_abs_prediction_diff": float(np.max(np.abs(python_pred - ours))),
}))
