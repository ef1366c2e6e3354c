"""Download the shells CSV with boto3 (the job's own AWS call), split it for XGBoost."""

import argparse
import os

import boto3
import pandas as pd

parser = argparse.ArgumentParser()
parser.add_argument("--input-data", required=True)
args = parser.parse_args()

bucket, key = args.input_data[len("s3://") :].split("/", 1)
boto3.resource("s3").Bucket(bucket).download_file(key, "shells.csv")
frame = pd.read_csv("shells.csv", header=None)
frame = pd.concat(
    [frame.iloc[:, -1], pd.get_dummies(frame.iloc[:, 0]).astype(float), frame.iloc[:, 1:-1]], axis=1
)
frame = frame.sample(frac=1.0, random_state=0)
cut = int(len(frame) * 0.8)
for name, part in (("train", frame[:cut]), ("validation", frame[cut:])):
    os.makedirs(f"/opt/ml/processing/{name}", exist_ok=True)
    part.to_csv(f"/opt/ml/processing/{name}/{name}.csv", header=False, index=False)
