"""Shared helpers for the Python oracles: read a bundle's manifest and build the frame LightGBM sees."""
import json
import os

import numpy as np
import pandas as pd


def manifest(bundle):
    with open(os.path.join(bundle, "audience-model.json")) as f:
        return json.load(f)


def read_table(path, sep):
    # Round-trip float parsing: pandas' default parser can be 1 ulp off.
    return pd.read_csv(path, sep=sep, float_precision="round_trip", encoding="utf-8-sig")


def feature_frame(df, m, categories="bundle"):
    """The model's features in order: numeric as float64, categorical as pandas categories.

    categories="bundle" fixes each category list to the bundle's vocabulary (codes = ours);
    categories="infer" lets pandas infer them from the data, as a user's own code would.
    """
    out = pd.DataFrame(index=df.index)
    for f in m["features"]:
        col = df[f["name"]]
        if f["kind"] == "categorical":
            if f.get("numeric_categories"):
                values = pd.to_numeric(col)
                vocab = [int(v) if float(v).is_integer() else float(v) for v in f["categories"]]
            else:
                values = col.astype(object).where(col.notna(), None)
                values = values.map(lambda v: v if v is None else str(v))
                vocab = f["categories"]
            if categories == "bundle":
                out[f["name"]] = pd.Categorical(values, categories=vocab)
            else:
                out[f["name"]] = pd.Series(values, index=df.index, dtype="category")
        else:
            out[f["name"]] = pd.to_numeric(col).astype(np.float64)
    return out


def labels(df, m):
    positive = [v.strip().lower() for v in m["label"]["positive"]]
    return df[m["label"]["column"]].astype(str).str.strip().str.lower().isin(positive).astype(int).to_numpy()
