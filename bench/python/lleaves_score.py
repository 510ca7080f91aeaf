"""Scoring end to end with lleaves (LLVM-compiled trees): pandas read_csv, category dtypes,
lleaves predict, to_csv. The model is compiled beforehand into CACHE (compile time reported apart).
usage: lleaves_score.py MODEL_TXT CACHE DATA.csv OUT.csv ID_COLUMN"""
import sys

import lleaves
import pandas as pd

model_file, cache, data, out, id_column = sys.argv[1:6]
model = lleaves.Model(model_file=model_file)
model.compile(cache=cache)
df = pd.read_csv(data)
with open(model_file) as f:
    names = next(line for line in f if line.startswith("feature_names=")).split("=", 1)[1].split()
X = df[names]
for column in X.columns:
    if X[column].dtype == object or str(X[column].dtype) in ("str", "string"):
        X[column] = X[column].astype("category")
pd.DataFrame({id_column: df[id_column], "score": model.predict(X)}).to_csv(out, index=False)
