"""Scores DATA with Python lightgbm from the bundle's model.txt, the way a pandas user would, and
prints the largest difference to audience's scores.

usage: score_parity.py DATA SEP BUNDLE SCORES_CSV
The frame's category columns get categories inferred by pandas from DATA itself; Booster.predict
remaps them with the model file's pandas_categorical line, so unseen values become missing.
"""
import json
import os
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd

from common import feature_frame, manifest, read_table

data, sep, bundle, scores_csv = sys.argv[1:5]
m = manifest(bundle)
booster = lgb.Booster(model_file=os.path.join(bundle, "model.txt"))
df = read_table(data, sep)
X = feature_frame(df, m, categories="infer")
python_pred = booster.predict(X)
ours = pd.read_csv(scores_csv, float_precision="round_trip")["score"].to_numpy()
assert len(ours) == len(python_pred), (len(ours), len(python_pred))
print(json.dumps({
    "rows": len(ours),
    "max_abs_diff": float(np.max(np.abs(python_pred - ours))),
    "pandas_categorical_columns": len(booster.pandas_categorical or []),
}))
