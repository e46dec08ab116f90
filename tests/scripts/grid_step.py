"""A stand-in step for the executors' tests: prints a line, waits, and exits with the given
code; when that is 0, it first records when it ran and on what.

    python tests/scripts/grid_step.py --device D --out DIR --name NAME [--seconds S] [--exit-code C]
"""
import argparse
import json
import os
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--device")
parser.add_argument("--out", type=Path)
parser.add_argument("--name")
parser.add_argument("--seconds", type=float, default=0.0)
parser.add_argument("--exit-code", type=int, default=0)
args = parser.parse_args()
started = time.time()
print(f"{args.name} on {args.device}", flush=True)
time.sleep(args.seconds)
record = {"device": args.device, "start": started, "end": time.time(), "threads": os.environ.get("OMP_NUM_THREADS"),
          "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
if args.exit_code == 0:
    (args.out / f"{args.name}.json").write_text(json.dumps(record))
raise SystemExit(args.exit_code)
