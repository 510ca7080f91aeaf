"""moto_server whose SageMaker jobs really run, for the AWS client's end-to-end tests.

moto answers the S3 and SageMaker APIs but never runs a job: DescribeTrainingJob says Completed
at once and no model.tar.gz appears. This harness starts moto's server on a free loopback port
and makes training and transform jobs behave as the service does with our container image:

- CreateTrainingJob: InProgress, secondary status Starting -> Downloading -> Training ->
  Uploading -> Completed (or Failed with the first 1024 characters of /opt/ml/output/failure).
  The channels are downloaded from moto's S3 into an /opt/ml tree, `audience container train`
  runs on it as `docker run IMAGE train` would, and the model folder is tarred to
  <S3OutputPath>/<job>/output/model.tar.gz.
- CreateTransformJob: the model's ModelDataUrl is extracted into /opt/ml/model, `audience
  container serve` starts on a free port, each input object is split by line into MultiRecord
  payloads of at most MaxPayloadInMB, and DataProcessing (InputFilter, JoinSource, OutputFilter)
  is applied as AWS documents it (an implementation independent of audience's own), writing
  <S3OutputPath>/<file>.out.
- Every Create* request is recorded, as sent, in <work>/requests/<Operation>-<name>.json (moto
  rewrites some fields, e.g. MetricDefinitions, in its own Describe answers).

Usage: sagemaker_emulator.py --audience BIN --work DIR [--enforce-auth]. Prints `PORT <n>` when
ready and stops when its standard input closes (so a test that dies takes it along).
"""

import argparse
import copy
import csv
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from datetime import datetime, timezone

parser = argparse.ArgumentParser()
parser.add_argument("--audience", required=True)
parser.add_argument("--work", required=True)
parser.add_argument("--enforce-auth", action="store_true")
args = parser.parse_args()

if args.enforce_auth:
    # moto checks every request's credentials against its IAM once this many have passed.
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"

import boto3  # noqa: E402
from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: E402
from moto.sagemaker import models as sm  # noqa: E402

os.makedirs(os.path.join(args.work, "requests"), exist_ok=True)
MODELS = {}  # model name -> CreateModel request
PORT = None


def now():
    return datetime.now(timezone.utc)


def record(operation, name, request):
    path = os.path.join(args.work, "requests", f"{operation}-{name}.json")
    with open(path, "w") as f:
        json.dump(request, f, indent=1, sort_keys=True, default=str)


def s3():
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{PORT}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def split_uri(uri):
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key


def objects_under(client, uri):
    bucket, prefix = split_uri(uri)
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return bucket, prefix, sorted(keys)


def transition(job, status, message):
    now_ = now()
    for t in job.secondary_status_transitions:
        t.setdefault("EndTime", now_)
    job.secondary_status_transitions.append(
        {"Status": status, "StartTime": now_, "StatusMessage": message}
    )
    job.secondary_status = status
    job.last_modified_time = now_


# --- training -------------------------------------------------------------------------------

def run_training(job, request):
    client = s3()
    root = os.path.join(args.work, "jobs", job.training_job_name)
    opt = os.path.join(root, "opt_ml")
    try:
        time.sleep(0.3)  # a client polling quickly sees the job start
        transition(job, "Downloading", "Downloading input data")
        channels = {}
        for channel in request["input_data_config"]:
            name = channel["ChannelName"]
            bucket, prefix, keys = objects_under(
                client, channel["DataSource"]["S3DataSource"]["S3Uri"]
            )
            for key in keys:
                relative = key[len(prefix):].lstrip("/") or os.path.basename(key)
                target = os.path.join(opt, "input", "data", name, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                client.download_file(bucket, key, target)
            entry = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                     "RecordWrapperType": "None"}
            if channel.get("ContentType"):
                entry["ContentType"] = channel["ContentType"]
            channels[name] = entry
        config = os.path.join(opt, "input", "config")
        os.makedirs(config, exist_ok=True)
        os.makedirs(os.path.join(opt, "model"), exist_ok=True)
        with open(os.path.join(config, "hyperparameters.json"), "w") as f:
            json.dump(request["hyper_parameters"] or {}, f)
        with open(os.path.join(config, "inputdataconfig.json"), "w") as f:
            json.dump(channels, f)
        with open(os.path.join(config, "resourceconfig.json"), "w") as f:
            json.dump({"current_host": "algo-1", "hosts": ["algo-1"],
                       "network_interface_name": "eth1"}, f)
        transition(job, "Training", "Training image download completed. Training in progress.")
        with open(os.path.join(root, "log.txt"), "w") as log:
            code = subprocess.call(
                [args.audience, "container", "train"],
                env={**os.environ, "AUDIENCE_OPT_ML": opt,
                     "TRAINING_JOB_NAME": job.training_job_name},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        if code != 0:
            failure = os.path.join(opt, "output", "failure")
            reason = open(failure).read() if os.path.exists(failure) else f"exit code {code}"
            job.failure_reason = reason[:1024]
            transition(job, "Failed", "Training job failed")
            job.training_job_status = "Failed"
            return
        transition(job, "Uploading", "Uploading generated training model")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            model = os.path.join(opt, "model")
            for name in sorted(os.listdir(model)):
                tar.add(os.path.join(model, name), arcname=name)
        bucket, key = split_uri(job.model_artifacts["S3ModelArtifacts"])
        client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        transition(job, "Completed", "Training job completed")
        job.training_end_time = now()
        job.training_job_status = "Completed"
    except Exception as e:  # the job fails; the harness goes on
        job.failure_reason = f"emulator: {e}"
        job.training_job_status = "Failed"


original_create_training_job = sm.SageMakerModelBackend.create_training_job


def create_training_job(self, **kwargs):
    request = copy.deepcopy(kwargs)
    record("CreateTrainingJob", kwargs["training_job_name"], request)
    job = original_create_training_job(self, **kwargs)
    job.training_job_status = "InProgress"
    job.secondary_status = "Starting"
    job.secondary_status_transitions = [
        {"Status": "Starting", "StartTime": now(), "StatusMessage": "Launching requested ML instances"}
    ]
    job.final_metric_data_list = []
    job.training_end_time = None
    threading.Thread(target=run_training, args=(job, request), daemon=True).start()
    return job


sm.SageMakerModelBackend.create_training_job = create_training_job

# --- models ---------------------------------------------------------------------------------

original_create_model = sm.SageMakerModelBackend.create_model


def create_model(self, **kwargs):
    record("CreateModel", kwargs["model_name"], copy.deepcopy(kwargs))
    MODELS[kwargs["model_name"]] = copy.deepcopy(kwargs)
    return original_create_model(self, **kwargs)


sm.SageMakerModelBackend.create_model = create_model

# --- transform ------------------------------------------------------------------------------

def parse_filter(text):
    """AWS's CSV JSONPath subset: `$` or `$[i, a:b, ...]`, inclusive slice ends, negatives."""
    text = text.strip()
    if text == "$":
        return None
    assert text.startswith("$[") and text.endswith("]"), text
    items = []
    for part in text[2:-1].split(","):
        part = part.strip()
        if ":" in part:
            a, b = part.split(":")
            items.append(("slice", int(a) if a.strip() else None, int(b) if b.strip() else None))
        else:
            items.append(("index", int(part)))
    return items


def apply_filter(items, row):
    if items is None:
        return list(row)
    n = len(row)
    out = []
    for item in items:
        if item[0] == "index":
            i = item[1] + n if item[1] < 0 else item[1]
            if not 0 <= i < n:
                raise ValueError(f"index {item[1]} outside a row of {n}")
            out.append(row[i])
        else:
            a = 0 if item[1] is None else (item[1] + n if item[1] < 0 else item[1])
            b = n - 1 if item[2] is None else (item[2] + n if item[2] < 0 else item[2])
            out.extend(row[max(a, 0):min(b, n - 1) + 1])
    return out


def csv_row(line):
    return next(csv.reader([line]))


def csv_line(fields):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def run_transform(job, request):
    client = s3()
    root = os.path.join(args.work, "jobs", job.transform_job_name)
    opt = os.path.join(root, "opt_ml")
    server = None
    try:
        model = MODELS[request["model_name"]]["primary_container"]
        bucket, key = split_uri(model["ModelDataUrl"])
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            tar.extractall(os.path.join(opt, "model"), filter="data")
        limit_mb = request.get("max_payload_in_mb") or 6
        server = subprocess.Popen(
            [args.audience, "container", "serve", "--host", "127.0.0.1", "--port", "0"],
            env={**os.environ, "AUDIENCE_OPT_ML": opt, "SAGEMAKER_BATCH": "true",
                 "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(limit_mb)},
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )
        address = server.stdout.readline().split("serving on ")[1].split()[0]
        url = f"http://{address}/invocations"
        dp = request.get("data_processing") or {}
        input_filter = parse_filter(dp.get("InputFilter", "$"))
        output_filter = parse_filter(dp.get("OutputFilter", "$"))
        join = dp.get("JoinSource", "None") == "Input"
        source = request["transform_input"]["DataSource"]["S3DataSource"]["S3Uri"]
        out_bucket, out_prefix = split_uri(request["transform_output"]["S3OutputPath"])
        in_bucket, _, keys = objects_under(client, source)
        for key in keys:
            text = client.get_object(Bucket=in_bucket, Key=key)["Body"].read().decode()
            lines = [l for l in text.split("\n") if l != ""]
            batches, current, size = [], [], 0
            for line in lines:
                sent = csv_line(apply_filter(input_filter, csv_row(line)))
                if current and size + len(sent) + 1 > limit_mb * 1024 * 1024:
                    batches.append(current)
                    current, size = [], 0
                current.append((line, sent))
                size += len(sent) + 1
            if current:
                batches.append(current)
            out = []
            for batch in batches:
                payload = "".join(sent + "\n" for _, sent in batch).encode()
                req = urllib.request.Request(url, data=payload, method="POST",
                                             headers={"Content-Type": "text/csv", "Accept": "text/csv"})
                answer = urllib.request.urlopen(req, timeout=600).read().decode()
                results = answer.rstrip("\n").split("\n")
                assert len(results) == len(batch), (len(results), len(batch))
                for (line, _), result in zip(batch, results):
                    row = (csv_row(line) if join else []) + csv_row(result)
                    out.append(csv_line(apply_filter(output_filter, row)) + "\n")
            name = os.path.basename(key) + ".out"
            client.put_object(Bucket=out_bucket, Key=out_prefix.rstrip("/") + "/" + name,
                              Body="".join(out).encode())
        job.transform_job_status = "Completed"
    except Exception as e:
        job.failure_reason = f"emulator: {e}"
        job.transform_job_status = "Failed"
    finally:
        if server is not None:
            server.terminate()
            server.wait()


original_create_transform_job = sm.SageMakerModelBackend.create_transform_job


def create_transform_job(self, **kwargs):
    request = copy.deepcopy(kwargs)
    record("CreateTransformJob", kwargs["transform_job_name"], request)
    job = original_create_transform_job(self, **kwargs)
    job.transform_job_status = "InProgress"
    threading.Thread(target=run_transform, args=(job, request), daemon=True).start()
    return job


sm.SageMakerModelBackend.create_transform_job = create_transform_job

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
PORT = server.get_host_and_port()[1]
print(f"PORT {PORT}", flush=True)
sys.stdin.read()  # until the test closes our standard input (or dies)
server.stop()
