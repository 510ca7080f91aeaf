"""Training as audience trained a bundle, done with Python's lightgbm: the bundle's parameters,
its fit rows, early stopping on its early-stopping rows (the parts of an `audience train
--split-out` file), and the history read as the Python jobs read it. Shared by
train_pipeline.py, compare_job.py and boosting_floor.py, which time it."""
import lightgbm as lgb
import pandas as pd


def read_like_bundle(data, manifest):
    """The history as the Python jobs read it: pandas read_csv with the bundle's categorical
    features as category dtypes. Returns the frame and the features' names."""
    features = manifest["features"]
    categorical = {f["name"]: "category" for f in features if f["kind"] == "categorical"}
    return pd.read_csv(data, dtype=categorical), [f["name"] for f in features]


def bundle_parameters(manifest):
    """The bundle's LightGBM parameters for lgb.train: the categorical features come from the
    frame's category dtypes, not from categorical_feature."""
    params = dict(manifest["parameters"])
    params.pop("categorical_feature", None)
    return params


def train_like_bundle(X, y, part, manifest):
    """Returns the booster and the held-out rows' mask."""
    params = bundle_parameters(manifest)
    fit, early, hold = part == "fit", part == "early_stopping", part == "holdout"
    train = lgb.Dataset(X[fit], label=y[fit], params=params)
    valid = lgb.Dataset(X[early], label=y[early], reference=train)
    booster = lgb.train(params, train, num_boost_round=manifest["num_rounds"], valid_sets=[valid],
                        callbacks=[lgb.early_stopping(manifest["early_stopping_rounds"],
                                                      first_metric_only=True, verbose=False)])
    return booster, hold
