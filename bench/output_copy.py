"""Benchmark 2 - output copy: finalize streaming a provider result from HTTP into S3.

What runs: the real adapters, built by the real composition root (``clipedit.wiring.Container``):
``HttpMediaFetcher.open(url)`` (httpx, 1 MiB chunks) feeding ``S3ObjectStore.upload_stream``
(multipart, 8 MiB parts), exactly the calls ``FinalizeJob`` makes. Baseline: a plain boto3
``upload_file`` of the same bytes from a file on disk (boto3's TransferManager: multipart, 8 MiB
parts, up to 10 threads).

Where things run, so that only the copy is measured:
* moto server (S3) in its own process (``python -m moto.server``): it keeps uploaded objects in
  memory, which must not count; it is reset between runs;
* the result's HTTP server in this (parent) process: it streams deterministic bytes (an 8 MiB
  pseudo-random block, repeated), so a 1 GB source needs no disk;
* each measurement in a fresh child process: imports and clients are set up and warmed with a 1 KB
  copy, then VmHWM is reset to the current RSS (``/proc/self/clear_refs``) and the copy runs; peak
  RSS growth = VmHWM after - VmRSS before (a 5 ms VmRSS sampler double-checks it).

The baseline file is written to a temporary directory and deleted after its size is done; sizes that
do not fit on the disk are skipped with a note (``--sizes`` picks sizes, e.g. ``--sizes 10MB,200MB``).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import (  # noqa: E402
    RssSampler,
    child_env,
    disk_free_bytes,
    emit_child_result,
    median,
    proc_status_kb,
    reset_peak_rss,
    row,
    run_json_child,
    say,
    template_function_env,
    write_result,
)

BLOCK = random.Random(7).randbytes(8 * 1024 * 1024)
WRITE_SLICE = 1024 * 1024
BUCKET = "bench-outputs"
RSS_TARGET_BYTES = 100 * 1000 * 1000
THROUGHPUT_TARGET = 0.8


def parse_size(text: str) -> int:
    text = text.strip().upper()
    for suffix, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000), ("B", 1)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def label(size: int) -> str:
    return f"{size / 1000**3:g} GB" if size >= 1000**3 else f"{size / 1000**2:g} MB"


def generate(size: int):  # type: ignore[no-untyped-def]
    """The deterministic bytes of a blob of ``size`` bytes, as memoryview slices."""
    view = memoryview(BLOCK)
    sent = 0
    while sent < size:
        offset = sent % len(BLOCK)
        n = min(WRITE_SLICE, size - sent, len(BLOCK) - offset)
        yield view[offset:offset + n]
        sent += n


# --- the parent: servers, files, children ------------------------------------------------------------


class BlobServer:
    """GET /blob/<size> streams <size> deterministic bytes with a Content-Length, like a CDN."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                size = int(self.path.rsplit("/", 1)[-1])
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                for piece in generate(size):
                    self.wfile.write(piece)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "BlobServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, size: int) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/blob/{size}"


class MotoServer:
    """moto in server mode in its own process (its memory holds the uploaded objects)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "MotoServer":
        import httpx

        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.endpoint}/moto-api/", timeout=1).status_code < 500:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def reset(self) -> None:
        import httpx

        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=60).raise_for_status()
        self.client().create_bucket(Bucket=BUCKET)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def rss_kb(self) -> int:
        assert self.proc
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def write_file(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        for piece in generate(size):
            fh.write(piece)


def run_child(mode: str, size: int, moto: MotoServer, blobs: BlobServer, file: Path | None) -> dict[str, Any]:
    args = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--size", str(size),
            "--endpoint", moto.endpoint, "--url", blobs.url(size), "--warm-url", blobs.url(1024)]
    if file:
        args += ["--file", str(file)]
    result = run_json_child(args, timeout=1800)
    result["moto_rss_kb_after"] = moto.rss_kb()
    return result


def parent(args: argparse.Namespace) -> int:
    sizes = [parse_size(s) for s in (args.sizes or ("10MB" if args.quick else "10MB,200MB,1GB")).split(",")]
    reps = args.reps or (1 if args.quick else 3)
    notes: list[str] = []
    details: dict[str, Any] = {"runs": [], "part_size_bytes": None}
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="clipedit-bench-copy-"))
    try:
        with BlobServer() as blobs:
            for size in sizes:
                free = disk_free_bytes(tmp)
                if free < size + 512 * 1024 * 1024:
                    notes.append(f"{label(size)} skipped: {free / 1e9:.1f} GB free on {tmp}, the baseline file needs {label(size)} + 0.5 GB")
                    continue
                file = tmp / f"blob-{size}.bin"
                write_file(file, size)
                # Big sizes once each (minutes and GBs of moto memory); small ones several times.
                n = reps if size <= 200 * 1000**2 else 1
                runs: dict[str, list[dict[str, Any]]] = {"finalize": [], "baseline": [], "finalize_crc32": [], "finalize_concurrent": []}
                for i in range(n):
                    order = ("finalize", "baseline") if i % 2 == 0 else ("baseline", "finalize")
                    if args.what_if:
                        order += ("finalize_crc32", "finalize_concurrent")
                    for mode in order:
                        say(f"output copy: {label(size)} {mode} run {i + 1}/{n} ...")
                        # A fresh moto per run: the same (cold) server for every mode, no order effects.
                        with MotoServer() as moto:
                            moto.reset()
                            result = run_child(mode, size, moto, blobs, file if mode == "baseline" else None)
                        say(f"  {result['seconds']:.2f} s (CompleteMultipartUpload {result['complete_s']:.2f} s), "
                            f"{result['mb_per_s']:.1f} MB/s, peak RSS growth "
                            f"{result['growth_kb'] / 1024:.1f} MiB (sampler {result['sampler_growth_kb'] / 1024:.1f} MiB)")
                        runs[mode].append(result)
                        details["runs"].append(result)
                file.unlink()
                fin, base = runs["finalize"], runs["baseline"]
                fin_mbps, base_mbps = median([r["mb_per_s"] for r in fin]), median([r["mb_per_s"] for r in base])
                growth = max(r["growth_kb"] for r in fin) * 1024
                base_growth = max(r["growth_kb"] for r in base) * 1024
                ratio = fin_mbps / base_mbps
                rows.append(row(
                    f"2 output copy {label(size)}: throughput (n={n})",
                    f"finalize stream {fin_mbps:.1f} MB/s",
                    f"upload_file {base_mbps:.1f} MB/s", ratio, ">= 0.8", ratio >= THROUGHPUT_TARGET,
                ))
                fin_parts = median([r["mb_per_s_without_complete"] for r in fin])
                base_parts = median([r["mb_per_s_without_complete"] for r in base])
                rows.append(row(
                    f"2 output copy {label(size)}: throughput without CompleteMultipartUpload",
                    f"finalize stream {fin_parts:.1f} MB/s (complete {median([r['complete_s'] for r in fin]):.2f} s)",
                    f"upload_file {base_parts:.1f} MB/s (complete {median([r['complete_s'] for r in base]):.2f} s)",
                    fin_parts / base_parts, "(diagnostic)", None,
                ))
                for mode, what in (("finalize_crc32", "stream declaring CRC32"),
                                   ("finalize_concurrent", "CRC32 + 4 parts in flight")):
                    if runs[mode]:
                        what_if = median([r["mb_per_s"] for r in runs[mode]])
                        rows.append(row(
                            f"2 output copy {label(size)}: what-if {what}",
                            f"{what_if:.1f} MB/s, peak RSS growth {max(r['growth_kb'] for r in runs[mode]) * 1024 / 1e6:.1f} MB",
                            f"upload_file {base_mbps:.1f} MB/s", what_if / base_mbps, "(what-if)", None,
                        ))
                rows.append(row(
                    f"2 output copy {label(size)}: peak RSS growth",
                    f"finalize {growth / 1e6:.1f} MB",
                    f"upload_file {base_growth / 1e6:.1f} MB", growth / base_growth if base_growth else None,
                    "< 100 MB", growth < RSS_TARGET_BYTES,
                ))
    finally:
        for leftover in tmp.glob("*"):
            leftover.unlink()
        tmp.rmdir()
    notes.append("moto server ran in its own process, a fresh one per run (it keeps objects in memory); each measurement ran in a fresh child; "
                 "the HTTP source of the finalize path runs in the parent and shares the 2 CPUs (a real CDN would not)")
    write_result(args.json, "output_copy", rows, details, notes)
    return 0


# --- the child: one measured copy ---------------------------------------------------------------------


def _time_complete(client: Any, box: dict[str, float]) -> None:
    """Time CompleteMultipartUpload on this client (moto does its heavy lifting there)."""
    original = client.complete_multipart_upload

    def complete(**kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(**kwargs)
        finally:
            box["complete_s"] = box.get("complete_s", 0.0) + time.perf_counter() - started

    client.complete_multipart_upload = complete


def _declare_crc32(client: Any) -> None:
    """What-if: the multipart upload declares CRC32 checksums, as boto3's upload_file does
    (ChecksumAlgorithm on create and parts, each part's ChecksumCRC32 on complete)."""
    create, upload, complete = client.create_multipart_upload, client.upload_part, client.complete_multipart_upload
    crcs: dict[int, str] = {}

    # setdefault: upload_stream itself declares CRC32 since the fix this what-if measured.
    def create_multipart_upload(**kwargs: Any) -> Any:
        kwargs.setdefault("ChecksumAlgorithm", "CRC32")
        return create(**kwargs)

    def upload_part(**kwargs: Any) -> Any:
        kwargs.setdefault("ChecksumAlgorithm", "CRC32")
        response = upload(**kwargs)
        crcs[kwargs["PartNumber"]] = response["ChecksumCRC32"]
        return response

    def complete_multipart_upload(**kwargs: Any) -> Any:
        for part in kwargs["MultipartUpload"]["Parts"]:
            part.setdefault("ChecksumCRC32", crcs[part["PartNumber"]])
        return complete(**kwargs)

    client.create_multipart_upload = create_multipart_upload
    client.upload_part = upload_part
    client.complete_multipart_upload = complete_multipart_upload


def _concurrent_upload_stream(client: Any, in_flight: int = 4):  # type: ignore[no-untyped-def]
    """What-if: ``S3ObjectStore.upload_stream`` with up to ``in_flight`` parts uploading while the
    next part is downloaded, CRC32 declared. Memory stays bounded: (in_flight + 1) parts at most."""
    from concurrent.futures import ThreadPoolExecutor

    from clipedit.adapters.s3_storage import PART_SIZE

    def upload_stream(bucket: str, key: str, chunks: Any, *, content_type: str, metadata: Any) -> int:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type,
                                                   Metadata=dict(metadata), ChecksumAlgorithm="CRC32")["UploadId"]
        slots = threading.BoundedSemaphore(in_flight)
        futures: list[Any] = []
        total = 0
        buffer = bytearray()

        def put(number: int, body: bytes) -> dict[str, Any]:
            try:
                response = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                              Body=body, ChecksumAlgorithm="CRC32")
                return {"PartNumber": number, "ETag": response["ETag"], "ChecksumCRC32": response["ChecksumCRC32"]}
            finally:
                slots.release()

        try:
            with ThreadPoolExecutor(in_flight) as pool:
                def submit(body: bytes) -> None:
                    slots.acquire()
                    futures.append(pool.submit(put, len(futures) + 1, body))

                for chunk in chunks:
                    buffer += chunk
                    total += len(chunk)
                    while len(buffer) >= PART_SIZE:
                        submit(bytes(buffer[:PART_SIZE]))
                        del buffer[:PART_SIZE]
                if buffer or not futures:
                    submit(bytes(buffer))
                parts = [f.result() for f in futures]
            client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                             MultipartUpload={"Parts": parts})
        except BaseException:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return total

    return upload_stream


def child(args: argparse.Namespace) -> int:
    os.environ.update(template_function_env("FinalizeFunction"))  # the function's configuration
    os.environ.update({
        "AWS_ENDPOINT_URL": args.endpoint, "OUTPUTS_BUCKET": BUCKET,
        # As the local stack sets them: the result is served over http from 127.0.0.1 here.
        "RESULT_HOST_ALLOWLIST": "127.0.0.1", "ALLOW_HTTP_FETCH": "true", "ALLOW_PRIVATE_NETWORK_FETCH": "true",
    })
    key = f"edited/bench/{args.child}-{args.size}.mp4"
    box: dict[str, float] = {}
    if args.child.startswith("finalize"):
        from clipedit.adapters import s3_storage
        from clipedit.config import Settings
        from clipedit.wiring import Container

        container = Container(Settings.from_env())
        fetcher, storage = container.fetcher, container.storage
        s3 = storage._client  # noqa: SLF001 - instrumented (timing) and used to verify the object
        if args.child == "finalize_crc32":
            _declare_crc32(s3)
        _time_complete(s3, box)
        upload_stream = _concurrent_upload_stream(s3) if args.child == "finalize_concurrent" else storage.upload_stream

        def copy(url: str, target: str) -> int:
            with fetcher.open(url) as chunks:
                return upload_stream(BUCKET, target, chunks, content_type="video/mp4",
                                     metadata={"job-id": "j-bench", "provider-task-id": "t-bench"})

        copy(args.warm_url, "edited/bench/warmup.mp4")  # imports, connections, code paths
        part_size = s3_storage.PART_SIZE
        run = lambda: copy(args.url, key)  # noqa: E731
    else:
        import boto3

        s3 = boto3.client("s3")
        _time_complete(s3, box)
        warm = Path(args.file).with_suffix(".warm")
        warm.write_bytes(b"x" * 1024)
        s3.upload_file(str(warm), BUCKET, "edited/bench/warmup.mp4")
        warm.unlink()
        part_size = None

        def run() -> int:
            s3.upload_file(args.file, BUCKET, key)
            return args.size

    box.clear()
    gc.collect()
    rss_before = proc_status_kb("VmRSS")
    hwm_reset = reset_peak_rss()
    with RssSampler() as sampler:
        started = time.perf_counter()
        size = run()
        seconds = time.perf_counter() - started
    hwm = proc_status_kb("VmHWM")
    stored = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    if stored != args.size or size != args.size:
        raise SystemExit(f"size mismatch: sent {size}, stored {stored}, expected {args.size}")
    peak = hwm if hwm_reset else sampler.peak_kb
    complete_s = box.get("complete_s", 0.0)
    emit_child_result({
        "mode": args.child, "size": args.size, "seconds": round(seconds, 4),
        "mb_per_s": round(args.size / 1e6 / seconds, 2),
        "complete_s": round(complete_s, 4),
        "mb_per_s_without_complete": round(args.size / 1e6 / max(1e-9, seconds - complete_s), 2),
        "rss_before_kb": rss_before, "peak_kb": peak, "growth_kb": peak - rss_before,
        "sampler_peak_kb": sampler.peak_kb, "sampler_growth_kb": sampler.peak_kb - rss_before,
        "sampler_samples": sampler.samples, "hwm_reset": hwm_reset, "part_size": part_size,
    })
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="10 MB only, one run")
    parser.add_argument("--sizes", help="comma-separated sizes, e.g. 10MB,200MB,1GB")
    parser.add_argument("--reps", type=int, help="runs per mode for sizes up to 200 MB (default 3)")
    parser.add_argument("--no-what-if", dest="what_if", action="store_false",
                        help="skip the what-if runs (the stream declaring CRC32; and with 4 parts in flight)")
    parser.add_argument("--child", choices=["finalize", "finalize_crc32", "finalize_concurrent", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--warm-url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
