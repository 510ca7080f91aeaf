"""Training as audience trained a bundle, done with Python's lightgbm: the bundle's parameters,
its fit rows, early stopping on its early-stopping rows (the parts of an `audience train
--split-out` file). Shared by train_pipeline.py and compare_job.py, which time it."""
import lightgbm as lgb


def train_like_bundle(X, y, part, manifest):
    """Returns the booster and the held-out rows' mask."""
    params = dict(manifest["parameters"])
    params.pop("categorical_feature", None)
    fit, early, hold = part == "fit", part == "early_stopping", part == "holdout"
    train = lgb.Dataset(X[fit], label=y[fit], params=params)
    valid = lgb.Dataset(X[early], label=y[early], reference=train)
    booster = lgb.train(params, train, num_boost_round=manifest["num_rounds"], valid_sets=[valid],
                        callbacks=[lgb.early_stopping(manifest["early_stopping_rounds"],
                                                      first_metric_only=True, verbose=False)])
    return booster, hold
