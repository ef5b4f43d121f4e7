"""Scoring at scale: wall time, rows per second and peak memory of `rqvalue predict` on N synthetic entities.

  python -m rqvalue.bench.scoring_scale --entities 1000000 --out /tmp/rqvalue_scale

Prepares once (kept in --out): the seeded synthetic LTV generator's feature table for N customers
and a spine of its first --train-rows customers, `rqvalue init` on them, and a small `rqvalue run`
(--train-steps) that pushes a model. Then it times one `rqvalue predict` of every entity as of
--as-of in a child process, sampling the resident memory of that process and all its descendants
(Beam workers included) every 0.2 s, and prints and writes (`<out>/scoring_scale.json`) the
entities scored, seconds per component, rows per second, the CPU seconds the scoring used and the
peak. The load average of the machine before and after is recorded too: other work on the machine
slows the wall-clock numbers (the CPU seconds less so).
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from typing import Dict, List

ROOT = "/proc"


def _children(pid: int) -> List[int]:
    found = []
    for name in os.listdir(ROOT):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(ROOT, name, "stat")) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(name))
    return found


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(os.path.join(ROOT, str(current), "status")) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
        stack += _children(current)
    return total


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(argv: List[str], log_path: str) -> Dict[str, float]:
    """Runs `argv`, logging its output; returns wall seconds, CPU seconds (user + system of it and its
    descendants) and the peak tree RSS in bytes."""
    peak = [0]
    cpu = _children_cpu_seconds()
    with open(log_path, "w") as log:
        started = time.time()
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_bytes(child.pid))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = child.wait()
        done.set()
        sampler.join()
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({code}); see {log_path}")
    return {"seconds": time.time() - started, "cpu_seconds": _children_cpu_seconds() - cpu,
            "peak_rss_bytes": peak[0]}


def prepare(out: str, entities: int, train_rows: int, train_steps: int, seed: int, ttl_days: int) -> str:
    """Feature table, spine, `rqvalue init` and one small run under `out` (once); returns the config path."""
    config = os.path.join(out, "repo", "rqvalue.yaml")
    marker = os.path.join(out, "prepared.json")
    key = {"entities": entities, "train_rows": train_rows, "train_steps": train_steps, "seed": seed,
           "ttl_days": ttl_days}
    if os.path.exists(marker) and json.load(open(marker)) == key:
        return config
    from pipeline.datasets import synthetic
    from rqvalue import cli

    os.makedirs(out, exist_ok=True)
    tables, spine = synthetic.ltv(entities, seed)
    features_path, spine_path = os.path.join(out, "features.parquet"), os.path.join(out, "spine.parquet")
    tables["customer_profile"].to_parquet(features_path, index=False)
    spine.sort_values("customer_id").head(train_rows).to_parquet(spine_path, index=False)
    del tables, spine
    if cli.main(["init", "--features", features_path, "--spine", spine_path, "--entity", "customer_id",
                 "--out", os.path.join(out, "repo"), "--name", "customer_profile", "--ttl-days", str(ttl_days),
                 "--force"]) != 0:
        raise RuntimeError("rqvalue init failed")
    if cli.main(["run", "--config", config, "--output-dir", os.path.join(out, "runs"),
                 "--train-steps", str(train_steps)]) != 0:
        raise RuntimeError("rqvalue run failed")
    with open(marker, "w") as f:
        json.dump(key, f)
    return config


def load_average() -> float:
    return os.getloadavg()[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rqvalue.bench.scoring_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=1_000_000, help="synthetic customers to score")
    parser.add_argument("--train-rows", type=int, default=20_000, help="spine rows the model is trained on")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--as-of", default="2025-01-01", help="scoring time (after the synthetic data)")
    parser.add_argument("--ttl-days", type=int, default=1000, help="the feature view's TTL (all rows count)")
    parser.add_argument("--out", default="/tmp/rqvalue_scale")
    parser.add_argument("--direct-workers", type=int, help="as for rqvalue predict (default: in memory, one worker)")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    config = prepare(out, args.entities, args.train_rows, args.train_steps, args.seed, args.ttl_days)
    predict = [os.path.join(os.path.dirname(sys.executable), "rqvalue"), "predict", "--config", config,
               "--output-dir", os.path.join(out, "runs"), "--as-of", args.as_of]
    if args.direct_workers is not None:
        predict += ["--direct-workers", str(args.direct_workers)]
    load_before = load_average()
    log = os.path.join(out, "predict.log")
    measured = run_measured(predict, log)
    text = open(log).read()
    scored = int(re.search(r"scored (\d+) of", text).group(1))
    components = {name: float(seconds) for name, seconds in re.findall(r"^  (\S+) done \(([\d.]+) s\)", text, re.M)}
    result = {
        "entities": args.entities, "scored": scored, "seconds": round(measured["seconds"], 1),
        "rows_per_second": round(scored / measured["seconds"]), "cpu_seconds": round(measured["cpu_seconds"], 1),
        "cpu_ms_per_row": round(1000 * measured["cpu_seconds"] / scored, 3),
        "peak_rss_gb": round(measured["peak_rss_bytes"] / 2**30, 2), "components_seconds": components,
        "direct_workers": args.direct_workers, "load_average_before": load_before,
        "load_average_after": load_average(), "cpus": os.cpu_count(), "command": " ".join(predict),
    }
    with open(os.path.join(out, "scoring_scale.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
