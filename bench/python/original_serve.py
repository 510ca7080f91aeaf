"""The original example's serving stack, as the alternative to `audience container serve`:
Flask under gunicorn (as the SageMaker scikit-learn image runs it) with the example's input_fn,
predict_fn and output_fn (../shared/reference/original-example.md), on the same model.txt.
input_fn is generalised from "the first 9 columns are categorical" to the model's own categorical
columns (from its pandas_categorical line), so both servers answer the same payloads.

gunicorn -w N -b 127.0.0.1:PORT 'original_serve:app'   with MODEL_FILE=<bundle>/model.txt
"""
import os

import flask
import lightgbm
import pandas as pd

model = lightgbm.Booster(model_file=os.environ["MODEL_FILE"])
categorical = set(int(i) for i in os.environ.get("CATEGORICAL", "").split(",") if i != "")
app = flask.Flask(__name__)


def input_fn(request_body_str, request_content_type):
    data_lst = request_body_str.split("\n")
    request = [list(i.split(",")) for i in data_lst[:-1]]
    df = pd.DataFrame(request)
    for idx in range(len(df.columns)):
        df[idx] = df[idx].astype("category") if idx in categorical else pd.to_numeric(df[idx], errors="coerce")
    return df


def predict_fn(request, model):
    return model.predict(request)


def output_fn(response, response_content_type):
    return "\n".join(str(i) for i in response)


@app.route("/ping")
def ping():
    return ""


@app.route("/invocations", methods=["POST"])
def invocations():
    df = input_fn(flask.request.get_data(as_text=True), flask.request.content_type)
    return output_fn(predict_fn(df, model), None) + "\n"
