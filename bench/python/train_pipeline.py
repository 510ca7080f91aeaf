"""Training end to end the way a Python user would: pandas read_csv, category dtypes, lgb.train
with the same parameters, rows and early stopping as audience, then the holdout AUC.
usage: train_pipeline.py DATA.csv SPLIT.csv BUNDLE_DIR"""
import json
import sys

import pandas as pd
from sklearn.metrics import roc_auc_score

from bundle_training import train_like_bundle

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
booster, hold = train_like_bundle(X, y, part, manifest)
print(json.dumps({"auc": roc_auc_score(y[hold], booster.predict(X[hold], num_iteration=booster.best_iteration)),
                  "best_iteration": booster.best_iteration}))
