"""Shared helpers for the clipedit benchmarks (``make bench``).

Everything here is bench-only instrumentation: it observes the real code (handlers, adapters, local
stack) from the outside, by wrapping functions in the benchmark's own process, and never changes
what the code does.

Result protocol: every benchmark script takes ``--json PATH`` and ``--quick``; it writes one JSON
object ``{"name", "rows": [...], "details": {...}, "notes": [...]}`` where each row is one line of
the final table (benchmark, figure, baseline, ratio, target, met).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "clipedit" / "python"
MEDIA_LAYER = ROOT / "layers" / "media" / "python"  # clipedit_media (PyAV): the prepare function's layer
RESULTS_DIR = ROOT / "bench" / "results"
RESULT_PREFIX = "BENCH-RESULT "


def ensure_paths() -> None:
    """Make ``clipedit``, ``local`` and ``bench`` importable however the script was started."""
    for path in (str(LAYER), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a benchmark subprocess: the same interpreter, our code importable."""
    env = dict(os.environ)
    paths = [str(LAYER), str(MEDIA_LAYER), str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra)
    return env


# --- results --------------------------------------------------------------------------------------


def row(benchmark: str, figure: str, baseline: str, ratio: float | None, target: str, met: bool | None,
        ratio_text: str | None = None) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "figure": figure,
        "baseline": baseline,
        "ratio": None if ratio is None else round(ratio, 4),
        "ratio_text": ratio_text if ratio_text is not None else ("-" if ratio is None else f"{ratio:.3f}"),
        "target": target,
        "met": met,
    }


def write_result(path: str | None, name: str, rows: list[dict[str, Any]], details: dict[str, Any],
                 notes: list[str]) -> dict[str, Any]:
    result = {"name": name, "rows": rows, "details": details, "notes": notes,
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = json.dumps(result, indent=2, default=_json_default)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    out = sys.__stdout__
    print("", file=out)
    print(format_table(rows), file=out)
    for note in notes:
        print(f"  note: {note}", file=out)
    out.flush()
    return result


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set):
        return sorted(value)
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    headers = ["benchmark", "figure", "baseline", "ratio", "target", "met?"]
    cells = [[r["benchmark"], r["figure"], r["baseline"], r["ratio_text"], r["target"],
              {True: "yes", False: "NO", None: "-"}[r["met"]]] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(cell, widths)) + " |" for cell in cells]
    return "\n".join([line, rule, *body])


# --- statistics -----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def iso_to_epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- machine --------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["cpu_model"] = model.group(1).strip() if model else platform.processor()
        mhz = re.search(r"^cpu MHz\s*:\s*(.+)$", cpuinfo, re.M)
        if mhz:
            info["cpu_mhz"] = float(mhz.group(1))
    except OSError:
        info["cpu_model"] = platform.processor()
    try:
        meminfo = Path("/proc/meminfo").read_text()
        total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
        if total:
            info["memory_gib"] = round(int(total.group(1)) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        info["free_h"] = subprocess.run(["free", "-h"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import boto3
        import botocore
        import httpx
        import moto

        info["versions"] = {"boto3": boto3.__version__, "botocore": botocore.__version__,
                            "httpx": httpx.__version__, "moto": moto.__version__}
    except Exception:  # noqa: BLE001 - informational only
        pass
    return info


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


# --- memory (no psutil: /proc/self/status) -------------------------------------------------------


def proc_status_kb(field: str) -> int:
    """VmRSS, VmHWM, ... of this process in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples VmRSS every ``interval`` seconds in a thread; ``peak_kb`` is the highest seen."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak_kb = proc_status_kb("VmRSS")
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kb = max(self.peak_kb, proc_status_kb("VmRSS"))
            self.samples += 1

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, proc_status_kb("VmRSS"))


# --- logs -----------------------------------------------------------------------------------------


class LogSink:
    """Stands in for sys.stdout while the local stack runs: the handlers' Powertools JSON logs (which
    go to stdout, as on Lambda, where they become CloudWatch Logs) are counted, not printed.

    Powertools binds its stream when a handler module is imported (first invocation), so install the
    sink before the stack invokes anything.
    """

    def __init__(self, passthrough: Any = None) -> None:
        self.bytes = 0
        self.lines = 0
        self.messages: dict[str, int] = {}
        self._passthrough = passthrough
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        data = text.encode("utf-8", errors="replace")
        with self._lock:
            self.bytes += len(data)
            self.lines += text.count("\n")
            for match in re.finditer(r'"level":"(WARNING|ERROR|CRITICAL)".*?"message":"([^"]{0,80})', text):
                key = f"{match.group(1)}: {match.group(2)}"
                self.messages[key] = self.messages.get(key, 0) + 1
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @contextlib.contextmanager
    def installed(self) -> Iterator["LogSink"]:
        saved = sys.stdout
        sys.stdout = self  # type: ignore[assignment]
        try:
            yield self
        finally:
            sys.stdout = saved


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- sample clip ------------------------------------------------------------------------------------


def make_small_clip(path: Path, *, seconds: float = 3.0, width: int = 1280, height: int = 720, fps: int = 24) -> Path:
    """A valid, low-bitrate clip inside Kling's limits (3-10 s, 720-2160 px, 24-60 fps): a flat grey
    frame with a moving box, H.264 at a high CRF, no audio. About 20-40 KB, so 1,000 uploads cost the
    local S3 little while every stage still handles a real video."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "40"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        base = np.full((height, width, 3), 96, dtype=np.uint8)
        box = 128
        for i in range(int(round(seconds * fps))):
            image = base.copy()
            x = (i * 17) % (width - box)
            top = (height - box) // 2
            image[top:top + box, x:x + box] = 230
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


# --- the emulator's render mode ---------------------------------------------------------------------


def use_copy_render(overrides: dict[str, str]) -> str:
    """Make the Kling emulator return the input bytes instead of re-encoding them.

    Prefers the emulator's own knob ``CLIPEDIT_EMULATOR_RENDER=copy``. If this checkout's emulator
    does not have it yet, falls back to replacing ``local.media.grade_video`` *in this benchmark
    process only* with a byte copy (same facts returned). Returns a note saying which was used.
    """
    from local import kling_emulator

    probe_env = {"CLIPEDIT_EMULATOR_RENDER": "copy"}
    try:
        settings = kling_emulator.EmulatorSettings.from_env(probe_env)
        supported = any(getattr(settings, f.name) == "copy" for f in dataclasses.fields(settings))
    except Exception:  # noqa: BLE001 - an older emulator may reject or ignore it
        supported = False
    if supported:
        overrides["CLIPEDIT_EMULATOR_RENDER"] = "copy"
        return "emulator render: CLIPEDIT_EMULATOR_RENDER=copy (the emulator's knob)"

    media = kling_emulator.media
    if not getattr(media.grade_video, "_bench_copy", False):
        original = media.grade_video

        def copy_render(src: Any, dst: Any, *, keep_audio: bool, look: str = "warm") -> dict[str, Any]:
            import av

            shutil.copyfile(src, dst)
            with av.open(str(dst)) as container:
                stream = container.streams.video[0]
                seconds = float(stream.duration * stream.time_base) if stream.duration else (
                    container.duration / av.time_base if container.duration else 0.0)
                return {"duration_seconds": round(seconds, 3), "frames": stream.frames,
                        "width": stream.codec_context.width, "height": stream.codec_context.height,
                        "has_audio": bool(container.streams.audio)}

        copy_render._bench_copy = True  # type: ignore[attr-defined]
        copy_render._bench_original = original  # type: ignore[attr-defined]
        media.grade_video = copy_render
    return ("emulator render: CLIPEDIT_EMULATOR_RENDER is not in this checkout's emulator yet; the bench "
            "replaced local.media.grade_video with a byte copy in its own process (same effect)")


# --- the local stack --------------------------------------------------------------------------------


def local_stack(name: str, state_dir: Path, **options: Any):  # type: ignore[no-untyped-def]
    """A LocalStack with a distinct resource prefix (moto backends are process-global)."""
    from local.stack import LocalOptions, LocalStack

    return LocalStack(LocalOptions(state_dir=state_dir, name=name, **options))


def template_facts() -> dict[str, Any]:
    from local.template import function_spec, load_template, parameter_defaults

    template = load_template()
    params = parameter_defaults(template)
    return {
        "poll_interval_seconds": int(params.get("PollIntervalSeconds", 30)),
        "submit_max_concurrency": int(params.get("SubmitMaxConcurrency", 5)),
        "memory_mb": {fid: function_spec(template, fid)["memory"] for fid in ("SubmitFunction", "FinalizeFunction")},
        "timeout_s": {fid: function_spec(template, fid)["timeout"] for fid in ("SubmitFunction", "FinalizeFunction")},
        "architectures": template.get("Globals", {}).get("Function", {}).get("Architectures", ["x86_64"]),
        "intake_visibility_timeout_s": int(template["Resources"].get("IntakeQueue", {}).get("Properties", {})
                                           .get("VisibilityTimeout", 30)),
    }


class InvocationTimer:
    """Wraps ``stack.runner.invoke``: times every in-process Lambda invocation and labels the thread
    with what is running (for attributing AWS calls). ``records`` holds one dict per invocation."""

    def __init__(self, stack: Any, classify: Callable[[str, Any], str] | None = None) -> None:
        self.stack = stack
        self.records: list[dict[str, Any]] = []
        self.local = threading.local()
        self._lock = threading.Lock()
        self._classify = classify or (lambda name, event: name)
        self._original = stack.runner.invoke

        def invoke(name: str, event: Any) -> Any:
            kind = self._classify(name, event)
            record: dict[str, Any] = {"function": name, "kind": kind, "copied": False, "ok": True}
            previous = getattr(self.local, "record", None)
            self.local.record = record
            started = time.perf_counter()
            try:
                result = self._original(name, event)
                record["result"] = result if isinstance(result, dict) and len(json.dumps(result, default=str)) < 2000 else None
                return result
            except BaseException:
                record["ok"] = False
                raise
            finally:
                record["seconds"] = time.perf_counter() - started
                self.local.record = previous
                with self._lock:
                    self.records.append(record)

        stack.runner.invoke = invoke

    def current(self) -> dict[str, Any] | None:
        return getattr(self.local, "record", None)


def classify_invocation(name: str, event: Any) -> str:
    """submit | callback | poll | park | expire, from the event shape."""
    if name.endswith("-submit"):
        return "submit"
    if isinstance(event, dict) and "requestContext" in event:
        return "callback"
    if isinstance(event, dict) and event.get("action") == "expire":
        return "expire"
    if isinstance(event, dict) and event.get("action") == "park":
        return "park"  # the poller parks its task token on the job and waits (callback or interval)
    return "poll"


class CopyTimer:
    """Times ``S3ObjectStore.upload_stream`` (the output copy: download stream + multipart upload),
    keyed by the job id in the object's metadata; marks the running invocation as the one that copied."""

    def __init__(self, timer: InvocationTimer | None = None) -> None:
        from clipedit.adapters import s3_storage

        self.by_job: dict[str, float] = {}
        self.bytes_by_job: dict[str, int] = {}
        self._cls = s3_storage.S3ObjectStore
        self._original = self._cls.upload_stream
        original = self._original
        owner = self

        def upload_stream(store: Any, bucket: str, key: str, chunks: Any, **kwargs: Any) -> int:
            started = time.perf_counter()
            size = original(store, bucket, key, chunks, **kwargs)
            job_id = dict(kwargs.get("metadata") or {}).get("job-id", key)
            owner.by_job[job_id] = owner.by_job.get(job_id, 0.0) + time.perf_counter() - started
            owner.bytes_by_job[job_id] = size
            if timer is not None and timer.current() is not None:
                timer.current()["copied"] = True  # type: ignore[index]
            return size

        self._cls.upload_stream = upload_stream  # type: ignore[method-assign]

    def undo(self) -> None:
        self._cls.upload_stream = self._original  # type: ignore[method-assign]


# --- profiling across threads -------------------------------------------------------------------------


class ThreadProfiler:
    """cProfile for every thread started while installed (cProfile alone sees one thread).

    Uses per-thread CPU time as the clock, so blocking waits (long polls, sleeps, the GIL) do not
    count: the figures say where the CPU goes. A thread's profile is merged into one aggregate when
    the thread ends (moto's server starts a thread per request: keeping thousands of profiles
    around would cost gigabytes); threads still running are merged by ``stats()``.
    """

    def __init__(self) -> None:
        self.aggregate: Any = None
        self.threads = 0
        self._live: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._original_run = threading.Thread.run

    def _merge(self, profile: Any) -> None:
        import pstats

        try:
            stats = pstats.Stats(profile)
        except (TypeError, ValueError):  # nothing was recorded
            return
        with self._lock:
            if self.aggregate is None:
                self.aggregate = stats
            else:
                self.aggregate.add(stats)

    def install(self) -> None:
        import cProfile

        profiler = self
        original_run = self._original_run

        def run(thread: threading.Thread) -> None:
            profile = cProfile.Profile(time.thread_time)
            with profiler._lock:
                profiler._live[id(profile)] = profile
                profiler.threads += 1
            profile.enable()
            try:
                original_run(thread)
            finally:
                profile.disable()
                with profiler._lock:
                    profiler._live.pop(id(profile), None)
                profiler._merge(profile)

        threading.Thread.run = run  # type: ignore[method-assign]

    def uninstall(self) -> None:
        threading.Thread.run = self._original_run  # type: ignore[method-assign]

    def stats(self) -> Any:
        with self._lock:
            live = list(self._live.values())
            self._live.clear()
        for profile in live:  # threads still running (daemon pools): their calls so far
            try:
                self._merge(profile)
            except Exception:  # noqa: BLE001 - a profile being written to by its thread
                continue
        return self.aggregate


def top_functions(stats: Any, *, where: Callable[[str], bool], key: str = "cumulative", limit: int = 10) -> list[dict[str, Any]]:
    """Top entries of merged pstats, filtered by file path; times in seconds of CPU."""
    if stats is None:
        return []
    entries = []
    for (filename, line, function), (cc, nc, tt, ct, _callers) in stats.stats.items():
        if not where(filename):
            continue
        entries.append({"function": f"{_short_path(filename)}:{line}({function})", "calls": nc,
                        "tottime_s": round(tt, 3), "cumtime_s": round(ct, 3)})
    entries.sort(key=lambda e: e["cumtime_s" if key == "cumulative" else "tottime_s"], reverse=True)
    return entries[:limit]


def _short_path(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def is_our_code(filename: str) -> bool:
    return (
        "site-packages" not in filename
        and (f"{os.sep}clipedit{os.sep}" in filename or f"{ROOT}{os.sep}functions" in filename
             or f"{ROOT}{os.sep}local" in filename)
    )


# --- AWS API calls -------------------------------------------------------------------------------------


class AwsCallRecorder:
    """Counts every botocore API call made in this process (service, operation, who made it).

    Installed by wrapping ``botocore.client.BaseClient._make_api_call``, which every boto3 client
    (the handlers', the local stack's, moto's own Step Functions->Lambda client) goes through.
    ``actor()`` names the caller: the running Lambda invocation if there is one, else the thread.
    """

    def __init__(self, actor: Callable[[], str]) -> None:
        from botocore.client import BaseClient

        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._actor = actor
        self._cls = BaseClient
        self._original = BaseClient._make_api_call
        original = self._original
        recorder = self

        def _make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            entry: dict[str, Any] = {
                "service": client.meta.service_model.service_name,
                "operation": operation_name,
                "actor": recorder._actor(),
                "params": api_params,
            }
            try:
                response = original(client, operation_name, api_params)
            except Exception as error:  # noqa: BLE001 - recorded, then re-raised
                entry["error"] = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
                with recorder._lock:
                    recorder.calls.append(entry)
                raise
            entry["response"] = response
            with recorder._lock:
                recorder.calls.append(entry)
            return response

        BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]

    def undo(self) -> None:
        self._cls._make_api_call = self._original  # type: ignore[method-assign]


def dynamodb_item_size(item: dict[str, Any]) -> int:
    """Approximate DynamoDB item size in bytes from its wire form (attribute names + values)."""
    return sum(len(name.encode()) + _ddb_value_size(value) for name, value in item.items())


def _ddb_value_size(value: dict[str, Any]) -> int:
    (kind, raw), = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        digits = raw.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(raw) if isinstance(raw, (bytes, bytearray)) else len(raw.encode())
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _ddb_value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _ddb_value_size(v) for k, v in raw.items())
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v)) for v in raw)
    return 8


def run_json_child(args: list[str], *, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a child process that prints one line ``BENCH-RESULT {json}``; return that object."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env or child_env(), cwd=ROOT)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"child {args[-3:]} exited {proc.returncode} without a result:\n{proc.stderr[-2000:]}")


def emit_child_result(result: dict[str, Any]) -> None:
    sys.__stdout__.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.__stdout__.flush()


# --- a function's environment, as the template would set it on AWS -------------------------------------


def template_function_env(logical_id: str, region: str = "us-east-1", account: str = "123456789012") -> dict[str, str]:
    """The function's environment variables from template.yaml (Globals merged), every intrinsic
    resolved to a plausible AWS value (parameter defaults; names, ARNs and URLs made up from the
    logical ids). For benchmarks that load a handler outside the local stack."""
    from local.template import function_spec, load_template, parameter_defaults

    template = load_template()
    resources = template["Resources"]
    params = parameter_defaults(template)
    pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::URLSuffix": "amazonaws.com",
              "AWS::StackName": "clipedit", "AWS::Partition": "aws",
              "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/clipedit/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}

    def ref(name: str) -> str:
        if name in pseudo:
            return pseudo[name]
        if name in params:
            return params[name]
        kind = resources.get(name, {}).get("Type", "")
        slug = "clipedit-" + re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{region}.amazonaws.com/{account}/{slug}"
        if kind in ("AWS::SecretsManager::Secret",):
            return f"arn:aws:secretsmanager:{region}:{account}:secret:{slug}-AbCdEf"
        if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            return f"arn:aws:states:{region}:{account}:stateMachine:{slug}"
        if kind in ("AWS::Serverless::HttpApi",):
            return "abc123defg"
        return slug

    def attr(resource: str, attribute: str) -> str:
        if attribute == "Arn":
            return f"arn:aws:service:{region}:{account}:{ref(resource)}"
        return f"{ref(resource)}-{attribute.lower()}"

    def resolve(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (str, int, float)):
            return str(value)
        if isinstance(value, list):
            return ",".join(resolve(v) for v in value)
        if "Ref" in value:
            return ref(value["Ref"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return attr(resource, attribute)
        if "Fn::Sub" in value:
            text, variables = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in variables:
                    return resolve(variables[name])
                if "." in name and not name.startswith("AWS::"):
                    resource, attribute = name.split(".", 1)
                    return attr(resource, attribute)
                return ref(name)

            return re.sub(r"\$\{([^}!]+)\}", substitute, text)
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            if isinstance(parts, dict):  # !Join [",", !Ref ListParameter]
                return resolve(parts).replace(",", separator)
            return separator.join(resolve(p) for p in parts)
        if "Fn::Select" in value:
            index, items = value["Fn::Select"]
            items = resolve(items).split(",") if not isinstance(items, list) else [resolve(i) for i in items]
            return items[int(index)] if int(index) < len(items) else ""
        if "Fn::Split" in value:
            separator, text = value["Fn::Split"]
            return ",".join(resolve(text).split(separator))
        if "Fn::If" in value:
            return resolve(value["Fn::If"][1])
        raise ValueError(f"cannot resolve {value!r}")

    spec = function_spec(template, logical_id)
    env = {name: resolve(value) for name, value in spec["environment"].items()}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec["memory"])})
    return env


# --- the package set a deployed function sees ------------------------------------------------------------


def _dist_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def package_closure(roots: list[str]) -> set[str]:
    """Installed distributions reachable from ``roots`` through their non-extra requirements."""
    from importlib import metadata

    todo = list(roots)
    seen: set[str] = set()
    while todo:
        name = _dist_key(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement.replace("extra==", "extra =="):
                continue
            todo.append(re.split(r"[<>=!~;\[ (]", requirement.strip(), maxsplit=1)[0])
    return seen


def layer_requirements(requirements: Path = LAYER / "requirements.txt") -> list[str]:
    return [re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0]
            for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#")]


def lambda_package_closure(runtime: tuple[str, ...] = ("boto3",)) -> set[str]:
    """Distributions a deployed function can import: the layer's requirements and the runtime's
    boto3, with their (non-extra) dependencies, from the installed metadata."""
    return package_closure([*layer_requirements(), *runtime])


def top_level_modules(dists: set[str]) -> set[str]:
    """Top-level import names provided by the given installed distributions."""
    from importlib import metadata

    names: set[str] = set()
    for dist in metadata.distributions():
        if _dist_key(dist.metadata["Name"] or "") not in dists:
            continue
        tops = set((dist.read_text("top_level.txt") or "").split())
        if not tops:
            for file in dist.files or []:
                parts = file.parts
                if parts and not parts[0].endswith((".dist-info", ".egg-info", ".data")) and parts[0] != "..":
                    tops.add(parts[0][:-3] if parts[0].endswith(".py") else parts[0])
        names.update(t for t in tops if t and not t.startswith("__"))
    return names


def blocked_top_level_modules(allowed: set[str]) -> list[str]:
    """Top-level modules of installed distributions a deployed function would not have (dev and
    test tools in the venv: moto, pytest, PyAV, rich, cryptography, awscrt, ...)."""
    from importlib import metadata

    allowed_modules: set[str] = set()
    others: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        name = _dist_key(dist.metadata["Name"] or "")
        tops = set((dist.read_text("top_level.txt") or "").split())
        if not tops:
            for file in dist.files or []:
                parts = file.parts
                if parts and not parts[0].endswith((".dist-info", ".egg-info", ".data")) and parts[0] != "..":
                    tops.add(parts[0][:-3] if parts[0].endswith(".py") else parts[0])
        tops = {t for t in tops if t and not t.startswith("__")}
        (allowed_modules.update(tops) if name in allowed else others.setdefault(name, set()).update(tops))
    blocked = set().union(*others.values()) - allowed_modules if others else set()
    # The project's own distribution (installed editable for the CLI) maps `clipedit`, the layer's
    # package, which is deployed; only `clipedit_cli` and the dev tools stay blocked.
    blocked.discard("clipedit")
    return sorted(m for m in blocked if m.isidentifier() and m not in sys.stdlib_module_names)


def import_blocker_code(blocked: list[str]) -> str:
    """Python source that makes the listed top-level modules unimportable (as if not installed)."""
    return (
        "import sys as _sys\n"
        f"_BLOCKED = frozenset({sorted(blocked)!r})\n"
        "class _NotDeployed:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in _BLOCKED:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "_sys.meta_path.insert(0, _NotDeployed())\n"
    )
