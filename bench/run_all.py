"""``make bench``: run the clipedit benchmarks and print one table.

Each benchmark runs in its own subprocess (one crashing does not stop the others) and writes
``bench/results/<name>.json``; this script then prints the machine, every row (benchmark, figure,
baseline, ratio, target, met?) and each benchmark's notes, and writes everything to
``bench/results/latest.json``. ``--quick`` is a smoke run (copy 10 MB only, 50 uploads, T=2 s...)
and leaves out the load and catalog runs (``--only load --quick`` runs the load with 100 uploads,
``--only catalog --quick`` the catalog with 1,000 rows).

Exit status: 0 when every benchmark ran (missed targets are results, not errors), 1 otherwise. The
load and catalog runs exit 1 when a job was lost or duplicated (the catalog also when its results
file is wrong): its rows are still shown, and the run counts as
failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import RESULTS_DIR, ROOT, child_env, format_table, machine_info, row  # noqa: E402

BENCHMARKS = (
    ("orchestration", "1 orchestration overhead: upload->SUCCEEDED vs the provider's time"),
    ("output_copy", "2 output copy: finalize's HTTP->S3 stream vs upload_file, peak RSS"),
    ("cold_start", "3 cold start: handler import+init vs boto3 + the same clients"),
    ("throughput", "4 throughput: uploads at once through the local stack"),
    ("cost", "5 cost per job on AWS from counted requests"),
    ("load", "4 load (issue 4): 1,000 uploads at once behind the provider concurrency gate"),
    ("prepare", "6 prepare step (issue 12): PyAV crop/scale/encode vs the ffmpeg command line, peak RSS"),
    ("stitch", "7 stitch step (issue 13): PyAV stitch of a 60 s 1080p result vs ffmpeg concat/xfade, peak RSS"),
    ("callback", "8 callback response (issue 15): verify, re-fetch, note done, resume the poller vs the copy on the request path"),
    ("catalog", "16 catalog (issue 16): a 10,000-row catalog end to end, its results file, the expansion's memory"),
)
TIMEOUTS = {"orchestration": 900, "output_copy": 1800, "cold_start": 900, "throughput": 2400, "cost": 900, "load": 2400, "prepare": 900, "stitch": 2400, "callback": 900, "catalog": 7200}
NOT_IN_QUICK = {"load", "catalog"}  # minutes even when small; the throughput smoke run covers the same path


def run(name: str, quick: bool, results: Path, extra: list[str]) -> dict[str, Any]:
    out = results / f"{name}.json"
    out.unlink(missing_ok=True)
    args = [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--json", str(out), *(["--quick"] if quick else []), *extra]
    started = time.monotonic()
    try:
        proc = subprocess.run(args, cwd=ROOT, env=child_env(), timeout=TIMEOUTS[name] * (1 if not quick else 0.5))
        code: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    seconds = time.monotonic() - started
    if isinstance(code, int) and out.exists():  # a result written with a non-zero exit is a failed check
        result = json.loads(out.read_text())
    else:
        result = {"name": name, "rows": [row(f"{name}", f"did not finish ({code})", "-", None, "-", False)],
                  "details": {}, "notes": [f"{name} exited with {code}; see its output above"]}
    result["seconds"] = round(seconds, 1)
    result["exit"] = code
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes and counts")
    parser.add_argument("--only", help="comma-separated subset: " + ",".join(n for n, _ in BENCHMARKS))
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    chosen = [n for n, _ in BENCHMARKS if (n in args.only.split(",") if args.only else not (args.quick and n in NOT_IN_QUICK))]
    args.results.mkdir(parents=True, exist_ok=True)

    machine = machine_info()
    command = " ".join([Path(sys.executable).name, "bench/run_all.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"clipedit benchmarks ({'quick' if args.quick else 'full'}): {', '.join(chosen)}", flush=True)
    print(f"machine: {machine.get('cpu_model')} x{machine.get('cpus')}, {machine.get('memory_gib')} GiB, "
          f"Python {machine.get('python')}", flush=True)
    started = time.time()
    results = []
    for name in chosen:
        title = dict(BENCHMARKS)[name]
        print(f"\n=== {title} ===", flush=True)
        results.append(run(name, args.quick, args.results, []))
        print(f"=== {name}: {results[-1]['seconds']:.0f} s ===", flush=True)

    rows = [r for result in results for r in result["rows"]]
    summary = {
        "command": command, "quick": args.quick, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "total_seconds": round(time.time() - started, 1), "machine": machine, "rows": rows,
        "benchmarks": {r["name"]: r for r in results},
    }
    (args.results / "latest.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")

    print("\n" + "=" * 100)
    print(f"clipedit benchmarks, {summary['started_at']}, {summary['total_seconds'] / 60:.1f} min, "
          f"{machine.get('cpu_model')} x{machine.get('cpus')} / {machine.get('memory_gib')} GiB / Python {machine.get('python')}")
    print(format_table(rows))
    for result in results:
        for note in result.get("notes", []):
            print(f"  [{result['name']}] {note}")
    missed = [r["benchmark"] for r in rows if r["met"] is False]
    print(f"\n{sum(1 for r in rows if r['met'])} targets met, {len(missed)} missed"
          + (": " + "; ".join(missed) if missed else "") + f". Results: {args.results / 'latest.json'}")
    return 0 if all(r["exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
