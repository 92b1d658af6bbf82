"""Benchmark 3 - cold start: import + init of each handler in a fresh interpreter, against a fresh
interpreter that only imports boto3 and creates the same clients.

* handler run: ``functions/<name>/app.py`` loaded the way the local runtime (and Lambda) loads it,
  with the function's complete environment, then its container builds what the first invocation
  needs: every ``container.<name>`` the handler's source uses, plus the secrets provider (each
  boto3 client, the httpx clients); nothing touches the network.
* baseline run: ``import boto3`` and one client per AWS service the handler uses, learnt from an
  untimed discovery run of the handler that records every client it creates (a handler creating
  two clients of one service is charged for the second).

Package set as deployed: the venv holds dev tools a Lambda does not (moto, PyAV, rich, click,
cryptography, pyOpenSSL, awscrt...), and some libraries import them when present (httpx its CLI,
botocore awscrt and pyOpenSSL). Every child therefore runs with an import hook that hides every
installed distribution outside the layer's ``requirements.txt`` + boto3 dependency closure.

Start-up as on Lambda: its Python imports ``site`` but runs none of the dev venv's ``.pth`` files (the
project's editable install adds a finder that costs ~15 ms per start here, to handler and baseline
alike); children start with ``-S``, import ``site`` and put site-packages on the path themselves.

Figure: median wall time from spawning the interpreter to the end of init (the child stamps the
wall clock when it is ready; process teardown, which Lambda never pays, is left out) over N runs,
handler and baseline interleaved. In-process import/init and spawn-to-exit are reported too
(spawn-to-exit includes what the handler child does after ready: the first traced invocation's X-Ray
SDK, and the on-demand imports below).

CPU figure (information, beside the wall one): each child also reads its own CPU time when ready
(``time.process_time()``: user + sys since the process started, interpreter start-up included);
the medians and their ratio are reported in a row of their own. On a shared machine a child that
waits for a core inflates its wall time, not its CPU time, so the CPU ratio is the steadier way to
compare two runs; the target stays the wall ratio, as the issue defines it.

prepare: every invocation runs PyAV, so a second row compares it with boto3 + its clients + ``import
av`` too (information; the target row is the one above). Its `focus: auto` clips alone load numpy
and the focus tracker: timed after ready in the handler child and reported in a note.

Bytecode as on Lambda: both layers are built by Makefiles that compile everything they ship to
unchecked-hash ``.pyc`` (``layers/clipedit/python/Makefile`` for SharedLayer, with its dependencies;
``layers/media/python/Makefile`` for MediaLayer: PyAV, numpy, ``clipedit_media``), and the runtime's
boto3 is precompiled; a function's own code (``/var/task``, read-only; ``sam build`` does not compile
it) is compiled at every cold start. The bench reproduces that with a private
``PYTHONPYCACHEPREFIX`` (Python then reads bytecode only there): a first run fills it, the entries
of ``functions/`` (and ``local/``) are then removed, and the measured runs do not write bytecode. A
second set of runs with the function's code cached too shows what compiling ``app.py`` costs. The
shared layer's Makefile also compiles the methods ``@dataclass`` generates (a table beside the
package's bytecode, ``clipedit/dataclass_code.py``); the bench builds it the same way, with the
layer's packages only, into the private prefix, where the package looks for it. One
``-X importtime`` run per handler lists the heaviest top-level imports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import (  # noqa: E402
    ROOT,
    blocked_top_level_modules,
    child_env,
    import_blocker_code,
    lambda_package_closure,
    layer_requirements,
    median,
    package_closure,
    top_level_modules,
    row,
    say,
    template_function_env,
    write_result,
)

TARGET = 1.3

LOGICAL_IDS = {"submit": "SubmitFunction", "finalize": "FinalizeFunction", "status_api": "StatusApiFunction",
               "prepare": "PrepareFunction"}
# Functions with more layers than the shared one: their packages are deployed too.
EXTRA_LAYERS = {"prepare": ROOT / "layers" / "media" / "python"}
# The library a function needs for every invocation beyond boto3 and its clients: prepare decodes and
# encodes every clip with PyAV. A second baseline adds its import, so the ratio can be read both ways.
WORK_LIBRARIES = {"prepare": ["av"]}
# Modules a function imports only for some invocations, timed after ready (not in the ratio):
# numpy and the focus tracker, loaded by the first `focus: auto` clip in a container.
ON_DEMAND = {"prepare": ["clipedit_media.focus"]}
LIBRARY_NAMES = {"av": "PyAV"}


# The handler: loaded like the runtime loads it, then the container attributes the handler's code
# uses (found in its source: ``container.<name>``) are built, plus the secrets provider (the first
# provider call creates it). That is everything the first invocation would otherwise build.
HANDLER_CODE = """
import time
t0 = time.perf_counter()
{blocker}
{preload}
import functools, importlib.util, inspect, json, sys
{discover}
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
t1 = time.perf_counter()
container = module.container
for name in {attributes!r}:
    if isinstance(inspect.getattr_static(type(container), name, None), (functools.cached_property, property)):
        getattr(container, name)
t2 = time.perf_counter()
ready_at = time.time()
cpu_at_ready = time.process_time()  # this process's user+sys CPU since it started (interpreter start-up included)
# What is loaded when ready (before the first invocation loads more, below).
third_party = sorted(m for m in sys.modules if m.partition(".")[0] in {third_party_tops!r}) if created is not None else []
modules_ready = len(sys.modules)
rss_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1])
# Tracing on as deployed: the X-Ray SDK is loaded on the first traced invocation, not at init.
first_trace_s = 0.0
_tracer = getattr(module, "tracer", None)
if {trace} and getattr(_tracer, "active", False):
    t3 = time.perf_counter()
    _tracer._traced_handler(lambda event, context: None, True)
    first_trace_s = time.perf_counter() - t3
# Modules only some invocations import (prepare: numpy and the focus tracker, for focus: auto).
t4 = time.perf_counter()
for name in {on_demand!r}:
    importlib.import_module(name)
on_demand_s = time.perf_counter() - t4
print(json.dumps({{"ready_at": ready_at, "cpu_s": cpu_at_ready, "import_s": t1 - t0, "init_s": t2 - t1, "modules": modules_ready,
                  "clients": created, "third_party": third_party, "rss_kb": rss_kb, "first_trace_s": first_trace_s,
                  "on_demand_s": on_demand_s}}))
"""

# Only in the (untimed) discovery run: record every boto3 client the handler creates.
DISCOVER = """
import botocore.session
created = []
_create_client = botocore.session.Session.create_client
def _recording(self, service_name, *args, **kwargs):
    config = kwargs.get("config")
    signature = getattr(config, "signature_version", None) if config else None
    created.append([service_name, signature if signature is None or isinstance(signature, str) else str(signature)])
    return _create_client(self, service_name, *args, **kwargs)
botocore.session.Session.create_client = _recording
"""

BASELINE_CODE = """
import time
t0 = time.perf_counter()
{blocker}
import json, sys
import boto3
from botocore.config import Config
t1 = time.perf_counter()
clients = [boto3.client(service) for service in {clients!r}]
for name in {imports!r}:
    __import__(name)
t2 = time.perf_counter()
ready_at, cpu_at_ready = time.time(), time.process_time()
rss_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1])
print(json.dumps({{"ready_at": ready_at, "cpu_s": cpu_at_ready, "import_s": t1 - t0, "init_s": t2 - t1, "modules": len(sys.modules),
                  "clients": [], "rss_kb": rss_kb}}))
"""

HANDLERS = {name: ROOT / "functions" / name / "app.py" for name in LOGICAL_IDS}

# The layer's Makefile also compiles the methods ``@dataclass`` generates (clipedit/dataclass_code.py):
# built the same way into the private prefix, with the shared layer's packages only, where
# ``clipedit`` finds it as it finds its .pyc.
LAYER_PACKAGE = ROOT / "layers" / "clipedit" / "python" / "clipedit"
DATACLASS_TABLE_CODE = """
{blocker}
import sys
from clipedit.dataclass_code import main
sys.exit(main())
"""


def handler_attributes(handler: str) -> list[str]:
    import re

    used = re.findall(r"\bcontainer\.([A-Za-z_]\w*)", HANDLERS[handler].read_text())
    # The first provider call builds the secrets provider and the default provider's adapter (its
    # HTTP client): counted here, since a cold start that submits or finalizes pays for them.
    first_call = ["_secrets", "provider"] if handler in ("submit", "finalize") else ["_secrets"]
    return sorted(set(used)) + first_call


BLOCKERS: dict[str, str] = {}  # set in main(): per function, the packages it is not deployed with
THIRD_PARTY_TOPS: list[str] = []  # set in main(): the layer's own dependencies (not the SDK)


def code_for(kind: str, handler: str, clients: list[str] | None = None, discover: bool = False,
             preload: bool = False, imports: list[str] | None = None) -> str:
    if kind == "handler":
        return HANDLER_CODE.format(path=str(HANDLERS[handler]), attributes=handler_attributes(handler),
                                   discover=DISCOVER if discover else "created = None", blocker=BLOCKERS[handler],
                                   preload="import boto3, boto3.dynamodb.types, botocore.config" if preload else "",
                                   third_party_tops=THIRD_PARTY_TOPS, trace=not preload,
                                   on_demand=[] if preload or discover else ON_DEMAND.get(handler, []))
    return BASELINE_CODE.format(clients=clients or [], blocker=BLOCKERS[handler], imports=imports or [])


def steps(handler: str, services: list[str], created: list[list[Any]], third_party: list[str]) -> dict[str, str]:
    """The handler, the baseline, and two steps between them that say where the difference goes."""
    kinds = {
        "handler": code_for("handler", handler),
        "baseline": code_for("baseline", handler, services),
        "+duplicate clients": code_for("baseline", handler, [service for service, _sig in created]),
        "+dependencies": code_for("baseline", handler, [service for service, _sig in created], imports=third_party),
    }
    if handler in WORK_LIBRARIES:
        kinds["baseline+" + "+".join(WORK_LIBRARIES[handler])] = code_for("baseline", handler, services,
                                                                          imports=WORK_LIBRARIES[handler])
    return kinds


def layer_packages(layer: Path) -> set[str]:
    """Top-level packages a layer directory ships itself (not installed from its requirements)."""
    return {path.name for path in layer.iterdir() if (path / "__init__.py").exists()}


def distinct_services(created: list[list[Any]]) -> list[str]:
    return list(dict.fromkeys(service for service, _signature in created))


# Lambda's Python imports site but has none of the dev venv's .pth files: the project's editable
# install runs a finder at every start here (~15 ms: pathlib, importlib.util), which would be added
# to handler and baseline alike and flatter the ratio. Children start with -S, then import site and
# put site-packages on the path themselves, without running any .pth file.
SITE_CODE = "import site, sys\nsys.path.append({site_packages!r})\n"


def run_once(code: str, env: dict[str, str], extra_args: list[str] | None = None) -> dict[str, Any]:
    import sysconfig

    site = SITE_CODE.format(site_packages=sysconfig.get_paths()["purelib"])
    args = [sys.executable, "-S", *(extra_args or []), "-c", site + code]
    spawned = time.time()
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start child failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall  # spawn to exit (includes interpreter teardown)
    result["ready_s"] = result["ready_at"] - spawned  # spawn to initialised: what a cold start costs
    result["stderr"] = proc.stderr
    return result


def drop_our_bytecode(prefix: Path) -> int:
    """Remove the cached bytecode of the functions' own code from the private prefix (what Lambda
    compiles at a cold start); the layers' stays, as they ship it."""
    removed = 0
    mirror = prefix / str(ROOT).lstrip("/")
    # Both layers ship bytecode (their Makefiles compile it); a function's own app.py is compiled
    # at every cold start, as Lambda's /var/task holds no .pyc.
    for sub in ("functions", "local"):
        target = mirror / sub
        if target.exists():
            removed += sum(1 for _ in target.rglob("*.pyc"))
            shutil.rmtree(target)
    return removed


def top_imports(stderr: str, limit: int = 8) -> list[dict[str, Any]]:
    """Top-level imports by cumulative time from ``-X importtime`` output."""
    entries = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # the header line
        name = parts[2]
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        if depth == 0:
            entries.append({"module": name.strip(), "cumulative_ms": int(parts[1]) / 1000})
    entries.sort(key=lambda e: e["cumulative_ms"], reverse=True)
    return entries[:limit]


def measure(handler: str, runs: int, env: dict[str, str], kinds: dict[str, str]) -> dict[str, Any]:
    """Median timings of each kind of child (``kinds``: name -> code), runs interleaved."""
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    names = list(kinds)
    for i in range(runs):
        for kind in (names if i % 2 == 0 else names[::-1]):
            result = run_once(kinds[kind], env)
            result.pop("stderr")
            samples[kind].append(result)
    return summarise(samples, runs)


def summarise(samples: dict[str, list[dict[str, Any]]], runs: int) -> dict[str, Any]:
    """Medians per kind of child, and the handler/baseline ratios.

    ``ratio_ready`` (wall clock, spawn -> ready) is the issue's figure. ``ratio_cpu`` divides the
    children's median CPU time at ready (``time.process_time()``: user + sys of the child itself,
    interpreter start-up included): on a shared machine a child that waits for a core inflates
    its wall time but not its CPU time, so the CPU ratio tells a change from the neighbours' load.
    """
    summary: dict[str, Any] = {}
    for kind, values in samples.items():
        summary[kind] = {key: round(median([v[key] for v in values]), 4)
                         for key in ("ready_s", "cpu_s", "wall_s", "import_s", "init_s")}
        summary[kind]["in_process_s"] = round(median([v["import_s"] + v["init_s"] for v in values]), 4)
        summary[kind]["modules"] = values[-1]["modules"]
        summary[kind]["rss_mb"] = round(median([v["rss_kb"] for v in values]) / 1024, 1)
        summary[kind]["first_trace_s"] = round(median([v.get("first_trace_s", 0.0) for v in values]), 4)
        summary[kind]["on_demand_s"] = round(median([v.get("on_demand_s", 0.0) for v in values]), 4)
    summary["ratio_ready"] = summary["handler"]["ready_s"] / summary["baseline"]["ready_s"]
    summary["ratio_cpu"] = summary["handler"]["cpu_s"] / summary["baseline"]["cpu_s"]
    summary["ratio_wall"] = summary["handler"]["wall_s"] / summary["baseline"]["wall_s"]
    summary["ratio_in_process"] = summary["handler"]["in_process_s"] / summary["baseline"]["in_process_s"]
    summary["runs"] = runs
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="5 runs per kind")
    parser.add_argument("--runs", type=int, help="runs per kind and handler (default 15)")
    parser.add_argument("--only", metavar="FUNCTION[,FUNCTION]",
                        help=f"bench only these functions (of {', '.join(LOGICAL_IDS)})")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 15)
    selected = list(HANDLERS)
    if args.only:
        selected = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(selected) - set(HANDLERS))
        if unknown:
            parser.error(f"unknown function(s) {', '.join(unknown)}; choose from {', '.join(HANDLERS)}")

    global THIRD_PARTY_TOPS
    closure = lambda_package_closure()
    closures = {handler: closure | (package_closure(layer_requirements(EXTRA_LAYERS[handler] / "requirements.txt"))
                                    if handler in EXTRA_LAYERS else set()) for handler in HANDLERS}
    THIRD_PARTY_TOPS = sorted(top_level_modules(set().union(*closures.values()) - package_closure(["boto3"])))
    blocked = blocked_top_level_modules(closure)
    for handler in HANDLERS:
        # A function's extra layer ships our own package beside its requirements (the media layer's
        # clipedit_media): importable there, as deployed, though the venv maps it to the project.
        own = layer_packages(EXTRA_LAYERS[handler]) if handler in EXTRA_LAYERS else set()
        BLOCKERS[handler] = import_blocker_code([m for m in blocked_top_level_modules(closures[handler]) if m not in own])
    prefix = Path(tempfile.mkdtemp(prefix="clipedit-bench-pycache-"))
    rows, notes, details = [], [], {"runs": runs, "handlers": {}}
    try:
        envs: dict[str, dict[str, dict[str, str]]] = {}
        created: dict[str, list[list[Any]]] = {}
        third_party: dict[str, list[str]] = {}
        clients: dict[str, list[str]] = {}
        for handler in selected:  # learn each handler's clients; fill the private cache with bytecode
            # Tracing on as deployed (the template's Tracing: Active; LAMBDA_TASK_ROOT is how
            # Powertools and our HandlerTracer know they run in Lambda).
            warm_env = child_env(**template_function_env(LOGICAL_IDS[handler]), PYTHONPYCACHEPREFIX=str(prefix),
                                 LAMBDA_TASK_ROOT=str(HANDLERS[handler].parent),
                                 AWS_LAMBDA_FUNCTION_NAME=f"clipedit-{handler}")
            warm_env.pop("POWERTOOLS_TRACE_DISABLED", None)
            if handler in EXTRA_LAYERS:
                warm_env["PYTHONPATH"] = os.pathsep.join([warm_env["PYTHONPATH"], str(EXTRA_LAYERS[handler])])
            warm_env.pop("PYTHONDONTWRITEBYTECODE", None)
            envs[handler] = {"warm": warm_env, "cold": dict(warm_env, PYTHONDONTWRITEBYTECODE="1")}
            discovered = run_once(code_for("handler", handler, discover=True), warm_env)
            created[handler] = discovered["clients"]
            clients[handler] = distinct_services(created[handler])
            third_party[handler] = discovered["third_party"]
            for code in steps(handler, clients[handler], created[handler], third_party[handler]).values():
                run_once(code, warm_env)
        if (LAYER_PACKAGE / "dataclass_code.py").exists():  # (a tree from before it has none to build)
            table = subprocess.run([sys.executable, "-c", DATACLASS_TABLE_CODE.format(
                blocker=import_blocker_code(blocked))], capture_output=True, text=True, cwd=ROOT, timeout=120,
                env=child_env(PYTHONPYCACHEPREFIX=str(prefix)))
            if table.returncode != 0:
                raise RuntimeError(f"building the dataclass table failed:\n{table.stderr[-2000:]}")
            details["dataclass_table"] = table.stdout.strip()
        details["clients_created"] = created
        details["baseline_services"] = clients
        details["deployed_packages"] = sorted(closure)
        details["blocked_modules"] = blocked
        details["our_pyc_removed"] = drop_our_bytecode(prefix)
        for handler in selected:
            say(f"cold start: {handler}, {runs} runs each (the function's app.py compiled at import, as on Lambda)")
            cold_env, hot_env = envs[handler]["cold"], envs[handler]["warm"]
            kinds = steps(handler, clients[handler], created[handler], third_party[handler])
            cold = measure(handler, runs, cold_env, kinds)
            say("  " + ", ".join(f"{k} {cold[k]['ready_s'] * 1000:.0f} ms" for k in kinds))
            say(f"  spawn->ready: handler {cold['handler']['ready_s'] * 1000:.0f} ms vs baseline {cold['baseline']['ready_s'] * 1000:.0f} ms "
                f"-> {cold['ratio_ready']:.2f}x (in-process {cold['ratio_in_process']:.2f}x, spawn->exit {cold['ratio_wall']:.2f}x); "
                f"CPU at ready: handler {cold['handler']['cpu_s'] * 1000:.0f} ms vs baseline "
                f"{cold['baseline']['cpu_s'] * 1000:.0f} ms -> {cold['ratio_cpu']:.2f}x; "
                f"first traced invocation +{cold['handler']['first_trace_s'] * 1000:.0f} ms (X-Ray SDK)")
            # The function's app.py cached too (what compiling it costs); written once, then reused.
            run_once(code_for("handler", handler), hot_env)
            hot = measure(handler, max(3, runs // 3), hot_env, {k: kinds[k] for k in ("handler", "baseline")})
            importtime = run_once(code_for("handler", handler, preload=True), cold_env, ["-X", "importtime"])
            imports = [e for e in top_imports(importtime["stderr"], limit=12)
                       if e["module"].partition(".")[0] not in ("boto3", "botocore", "encodings", "site")][:8]
            details["handlers"][handler] = {"our_code_compiled": cold, "our_bytecode_cached": hot, "top_imports": imports,
                                            "initialised": handler_attributes(handler), "third_party_modules": third_party[handler]}
            rows.append(row(
                f"3 cold start {handler} (n={runs})",
                f"handler {cold['handler']['ready_s'] * 1000:.0f} ms to ready (import {cold['handler']['import_s'] * 1000:.0f} + "
                f"init {cold['handler']['init_s'] * 1000:.0f} ms in-process)",
                f"boto3 + the same {len(clients[handler])} service clients {cold['baseline']['ready_s'] * 1000:.0f} ms",
                cold["ratio_ready"], "<= 1.3x", cold["ratio_ready"] <= TARGET,
            ))
            rows.append(row(
                f"3 cold start {handler}, CPU time at ready (n={runs})",
                f"handler {cold['handler']['cpu_s'] * 1000:.0f} ms CPU (user+sys of the child, start-up included)",
                f"boto3 + the same {len(clients[handler])} service clients {cold['baseline']['cpu_s'] * 1000:.0f} ms CPU",
                cold["ratio_cpu"], "information only (robust to a shared machine's load)", None,
            ))
            if handler in WORK_LIBRARIES:
                libraries = " + ".join(LIBRARY_NAMES.get(m, m) for m in WORK_LIBRARIES[handler])
                with_work = cold["baseline+" + "+".join(WORK_LIBRARIES[handler])]
                details["handlers"][handler]["ratio_against_work_libraries"] = cold["handler"]["ready_s"] / with_work["ready_s"]
                rows.append(row(
                    f"3 cold start {handler}, against its media library too (n={runs})",
                    f"handler {cold['handler']['ready_s'] * 1000:.0f} ms to ready",
                    f"boto3 + the same {len(clients[handler])} service clients + import {libraries} "
                    f"{with_work['ready_s'] * 1000:.0f} ms (every {handler} invocation needs {libraries})",
                    cold["handler"]["ready_s"] / with_work["ready_s"], "information only", None,
                ))
            if ON_DEMAND.get(handler):
                notes.append(f"{handler}: imported only when needed, after ready ({', '.join(ON_DEMAND[handler])}: numpy and "
                             f"the focus tracker, for `focus: auto`): +{cold['handler']['on_demand_s'] * 1000:.0f} ms "
                             f"for the first such clip in a container (not in the ratio)")
            heavy = ", ".join(f"{e['module']} {e['cumulative_ms']:.0f} ms" for e in imports[:5])
            notes.append(f"{handler}: heaviest imports beyond the SDK (one -X importtime run, boto3 preloaded): {heavy}")
            notes.append(f"{handler}: where the {(cold['handler']['ready_s'] - cold['baseline']['ready_s']) * 1000:.0f} ms go: "
                         f"duplicate clients {(cold['+duplicate clients']['ready_s'] - cold['baseline']['ready_s']) * 1000:+.0f} ms, "
                         f"layer dependencies' imports ({len(third_party[handler])} modules) "
                         f"{(cold['+dependencies']['ready_s'] - cold['+duplicate clients']['ready_s']) * 1000:+.0f} ms, "
                         f"our code and its objects {(cold['handler']['ready_s'] - cold['+dependencies']['ready_s']) * 1000:+.0f} ms")
            if len(created[handler]) > len(clients[handler]):
                notes.append(f"{handler}: creates {len(created[handler])} boto3 clients for {len(clients[handler])} services: "
                             + ", ".join(f"{s} x{sum(1 for c in created[handler] if c[0] == s)}" for s in clients[handler]
                                         if sum(1 for c in created[handler] if c[0] == s) > 1))
            notes.append(f"{handler}: against boto3 + every client it creates + every third-party module it imports "
                         f"({len(third_party[handler])}; for prepare that includes the media layer's PyAV): "
                         f"{cold['handler']['ready_s'] / cold['+dependencies']['ready_s']:.2f}x")
            notes.append(f"{handler}: tracing is on; the first invocation loads the X-Ray SDK and patches botocore and "
                         f"httpx: +{cold['handler']['first_trace_s'] * 1000:.0f} ms once per container (not in the ratio)")
            notes.append(f"{handler}: with the function's app.py cached too the ratio is {hot['ratio_ready']:.2f}x "
                         f"(handler {hot['handler']['ready_s'] * 1000:.0f} ms to ready); RSS when ready "
                         f"{cold['handler']['rss_mb']} MiB (baseline {cold['baseline']['rss_mb']} MiB)")
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    write_result(args.json, "cold_start", rows, details, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
