"""``python -m ops``: reconcile jobs with the provider, list and redrive the dead-letter queue.

Exit codes: 0 nothing wrong (or everything repaired), 1 problems found and not repaired,
2 the stack could not be reached or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from ops.target import TargetError, deployed_environment, local_environment


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack's name (reads its CloudFormation outputs)")
    where.add_argument("--local", action="store_true", help="the local stack started by `make local`")
    parser.add_argument("--region", help="AWS region of --stack (default: your AWS configuration)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True)
    reconcile = commands.add_parser("reconcile", help="list (and with --repair, fix) jobs the provider disagrees with")
    reconcile.add_argument("--repair", action="store_true", help="repair what is found (default: report only)")
    reconcile.add_argument("--stale-after", type=int, default=900, metavar="SECONDS",
                           help="a job untouched this long counts as stuck (default 900)")
    dlq = commands.add_parser("dlq", help="the intake dead-letter queue")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_commands.add_parser("list", help="dead letters and why they failed (consumes nothing)")
    listing.add_argument("--limit", type=int, default=100)
    redrive = dlq_commands.add_parser("redrive", help="move dead letters back to the intake queue")
    redrive.add_argument("--limit", type=int, default=None)
    return parser


def container_for(args: argparse.Namespace) -> Any:
    env = local_environment() if args.local else deployed_environment(args.stack, args.region)
    os.environ.update(env)
    from clipedit.config import Settings
    from clipedit.wiring import Container

    return Container(Settings.from_env())


def run(argv: Sequence[str] | None = None, *, container: Any = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        container = container or container_for(args)
    except TargetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.command == "reconcile":
        from clipedit.usecases.reconcile import summarize

        findings = container.reconcile.run(repair=args.repair, stale_after_seconds=args.stale_after)
        if args.json:
            print(json.dumps({"summary": summarize(findings), "findings": [f.as_dict() for f in findings]}, indent=2))
        else:
            for f in findings:
                mark = "repaired" if f.repaired else "found"
                print(f"{mark:8} {f.job_id} [{f.status}] {f.problem} -> {f.repair}")
            print(f"{len(findings)} finding(s), {sum(f.repaired for f in findings)} repaired")
        return 1 if any(not f.repaired and not f.repair.startswith("none") for f in findings) else 0
    if args.dlq_command == "list":
        letters = container.dead_letters.list(limit=args.limit)
        if args.json:
            print(json.dumps(letters, indent=2))
        else:
            for letter in letters:
                print(f"{letter['message_id']}  {letter['about']}  received {letter['receive_count']}x: {letter['reason']}")
            print(f"{len(letters)} dead letter(s)")
        return 1 if letters else 0
    moved = container.dead_letters.redrive(limit=args.limit)
    print(json.dumps({"redriven": moved}) if args.json else f"{moved} message(s) moved back to the intake queue")
    return 0


if __name__ == "__main__":
    sys.exit(run())
