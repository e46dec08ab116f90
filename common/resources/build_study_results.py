"""Ship the study's published probe results with the project (run once by a maintainer).

Input: study_results.csv (../shared/data/study_results/ in the development tree): the
per-run numbers of raw_results/ in chrispla/limited-music-representations (commit
a77ec5edd83bed4d0897bee2555226cceb8dd2d4), one row per number, columns task, model,
subset, probe, condition, metric, value, support, values exactly as the JSON files give
them. Output, beside this file: study_results.csv.gz, the same bytes, compressed. The
project reads only that file at run time (common/evaluation/reference.py maps its names to ours).

    python common/resources/build_study_results.py ../shared/data/study_results/study_results.csv
"""
import gzip
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(source):
    data = Path(source).read_bytes()
    with gzip.GzipFile(HERE / "study_results.csv.gz", "wb", mtime=0) as f:
        f.write(data)
    rows = data.decode().splitlines()[1:]
    print(f"{len(rows)} numbers, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1])
