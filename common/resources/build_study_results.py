"""Ship the study's published probe results with the project (run once by a maintainer).

Input: the numbers of raw_results/ in github.com/chrispla/limited-music-representations at
commit a77ec5edd83bed4d0897bee2555226cceb8dd2d4, collected into one long CSV, a row per
number: columns task, model, subset, probe, condition, metric, value, support, values
exactly as the JSON files give them. Each file is
raw_results/<dataset>/<dataset>[_key]_<model>_<subset>_model-<k>/<condition>_metrics.json:
task mtat_tagging, tinysol_instrument or beatport_key; model and subset as the folder names
them (vgg, mae, 0 = untrained; chroma has no subset: na); probe model-0 -> slp and model-1
-> mlp; MTAT's roc_auc and average_precision, and from the scikit-learn reports of TinySOL
and Beatport the micro-average F1 as accuracy, macro recall, macro and weighted F1, and
Beatport's weighted_accuracy as weighted_accuracy_micro and _macro; support is the test
split's size (empty for MTAT). Output, beside this file: study_results.csv.gz, the same
bytes, compressed. The project reads only that file at run time
(common/evaluation/reference.py maps its names to ours).

    python common/resources/build_study_results.py study_results.csv
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
