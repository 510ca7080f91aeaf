"""Tree evaluation alone with lleaves on a float64 matrix, at 1 thread and at every core.
usage: lleaves_eval.py MODEL_TXT CACHE DATA.csv REPEATS"""
import json
import os
import sys
import time

import lleaves
import lightgbm as lgb
import numpy as np
import pandas as pd

model_file, cache, data, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = lleaves.Model(model_file=model_file)
model.compile(cache=cache)
booster = lgb.Booster(model_file=model_file)
df = pd.read_csv(data)
X = df[booster.feature_name()]
categorical = iter(booster.pandas_categorical or [])
columns = []
for name in X.columns:
    col = X[name]
    if col.dtype == object or str(col.dtype) in ("str", "string"):
        cats = next(categorical)
        codes = pd.Categorical(col, categories=cats).codes.astype(np.float64)
        codes[codes < 0] = np.nan
        columns.append(codes)
    else:
        columns.append(col.to_numpy(dtype=np.float64))
M = np.ascontiguousarray(np.column_stack(columns))


def best(f):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return min(times), out


cores = os.cpu_count()
t1, a = best(lambda: model.predict(M, n_jobs=1))
tn, b = best(lambda: model.predict(M, n_jobs=cores))
lgb1, c = best(lambda: booster.predict(M, num_threads=1))
print(json.dumps({
    "rows": len(M),
    "lleaves_1_thread_s": t1,
    "lleaves_all_threads_s": tn,
    "python_lightgbm_1_thread_s": lgb1,
    "max_abs_diff_lleaves_vs_lightgbm": float(np.max(np.abs(a - c))),
}))
