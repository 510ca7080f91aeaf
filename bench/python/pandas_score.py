"""Scoring the way the original SageMaker example does it: pandas read_csv, category dtypes,
Booster.predict, to_csv. usage: pandas_score.py MODEL_TXT DATA.csv OUT.csv ID_COLUMN"""
import sys

import lightgbm as lgb
import pandas as pd

model, data, out, id_column = sys.argv[1:5]
booster = lgb.Booster(model_file=model)
df = pd.read_csv(data)
features = booster.feature_name()
X = df[features]
for column in X.columns:
    if X[column].dtype == object or str(X[column].dtype) in ("str", "string"):
        X[column] = X[column].astype("category")
pd.DataFrame({id_column: df[id_column], "score": booster.predict(X)}).to_csv(out, index=False)
