"""Training end to end the way a Python user would: pandas read_csv, category dtypes, lgb.train
with the same parameters, rows and early stopping as audience, then the holdout AUC.
usage: train_pipeline.py DATA.csv SPLIT.csv BUNDLE_DIR"""
import json
import sys

import lightgbm as lgb
import pandas as pd
from sklearn.metrics import roc_auc_score

data, split_csv, bundle = sys.argv[1:4]
manifest = json.load(open(f"{bundle}/audience-model.json"))
df = pd.read_csv(data)
part = pd.read_csv(split_csv)["part"].to_numpy()
names = [f["name"] for f in manifest["features"]]
X = df[names].copy()
for f in manifest["features"]:
    if f["kind"] == "categorical":
        X[f["name"]] = X[f["name"]].astype("category")
y = df[manifest["label"]["column"]].to_numpy()
params = dict(manifest["parameters"])
params.pop("categorical_feature", None)
fit, early, hold = part == "fit", part == "early_stopping", part == "holdout"
train = lgb.Dataset(X[fit], label=y[fit], params=params)
valid = lgb.Dataset(X[early], label=y[early], reference=train)
booster = lgb.train(params, train, num_boost_round=manifest["num_rounds"], valid_sets=[valid],
                    callbacks=[lgb.early_stopping(manifest["early_stopping_rounds"], first_metric_only=True, verbose=False)])
print(json.dumps({"auc": roc_auc_score(y[hold], booster.predict(X[hold], num_iteration=booster.best_iteration)),
                  "best_iteration": booster.best_iteration}))
