"""LightGBM's own share of a compare job, alone: the fit rows' Dataset and ROUNDS boosting rounds
with the bundle's parameters, nothing watched, timed apart from reading the file. Any job that
trains this model on this machine takes at least this long, so a job's time divided by it is
the most any other job training the same model could be faster: bench (f) prints it beside
each target.
usage: boosting_floor.py DATA.csv SPLIT.csv BUNDLE_DIR ROUNDS"""
import json
import sys
import time

import lightgbm as lgb
import pandas as pd

from bundle_training import bundle_parameters, read_like_bundle

data, split_csv, bundle, rounds = sys.argv[1:]
manifest = json.load(open(f"{bundle}/audience-model.json"))
df, names = read_like_bundle(data, manifest)
fit = pd.read_csv(split_csv)["part"].to_numpy() == "fit"
X = df[names][fit]
y = df[manifest["label"]["column"]].to_numpy()[fit]
del df
params = bundle_parameters(manifest)
start = time.perf_counter()
train = lgb.Dataset(X, label=y, params=params).construct()
built = time.perf_counter()
booster = lgb.train(params, train, num_boost_round=int(rounds))
done = time.perf_counter()
print(json.dumps({"dataset_s": built - start, "boosting_s": done - built,
                  "rounds": booster.current_iteration()}))
