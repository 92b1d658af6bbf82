"""docs/reference/codes.md from the domain's tables (``error_codes``, ``provider_errors``) and the
codes the source raises. A raised code the table does not describe yet is listed with the message
it is raised with, so regenerating never drops one; a table entry no longer raised is an error."""

from __future__ import annotations

from clipedit.domain import error_codes, provider_errors
from tools.refs.code_scan import ROOT, raised_codes, source_files
from tools.refs.markdown import banner, code, table

TABLE_FILES = ("domain/error_codes.py", "domain/provider_errors.py")


class StaleCodeTable(Exception):
    pass


def _provider_codes() -> set[str]:
    fal = {rule.code for rule in provider_errors.FAL_ERRORS.values()}
    fal |= {rule.code for rule in provider_errors.FAL_HTTP_FAILURES.values()}
    fal |= {provider_errors.FAL_SERVER_FAILURE.code, provider_errors.FAL_VALIDATION_FAILURE.code}
    return fal | set(provider_errors.TRANSPORT_ERRORS)


def stale_entries() -> list[str]:
    """Codes the domain's table describes that no source file raises or names any more."""
    texts = [path.read_text() for path in source_files(ROOT) if not str(path).endswith(TABLE_FILES)]
    described = [c for section in error_codes.SECTIONS for c in section.codes]
    return sorted(c for c in described
                  if c not in error_codes.BUILT_AT_RUN_TIME and not any(f'"{c}"' in text for text in texts))


def undescribed() -> dict[str, list]:
    described = {c for section in error_codes.SECTIONS for c in section.codes} | _provider_codes()
    return {c: hits for c, hits in sorted(raised_codes(ROOT).items()) if c not in described}


def _fal_rows() -> list[tuple[str, str, str, str]]:
    by_code: dict[str, tuple[provider_errors.FalRule, list[str]]] = {}
    sources = [(f"`{name}`", rule) for name, rule in provider_errors.FAL_ERRORS.items()]
    sources += [(f"HTTP {status}", rule) for status, rule in provider_errors.FAL_HTTP_FAILURES.items()]
    sources += [("other 422 types", provider_errors.FAL_VALIDATION_FAILURE),
                ("other HTTP 5xx", provider_errors.FAL_SERVER_FAILURE)]
    for origin, rule in sources:
        by_code.setdefault(rule.code, (rule, []))[1].append(origin)
    return [(code(c), rule.kind.value, ", ".join(origins), rule.reason) for c, (rule, origins) in by_code.items()]


def render() -> str:
    stale = stale_entries()
    if stale:
        raise StaleCodeTable(f"clipedit/domain/error_codes.py describes codes nothing raises any more: {', '.join(stale)}")
    out = [banner("clipedit/domain/error_codes.py, clipedit/domain/provider_errors.py and the codes the source raises"),
           "# Error codes\n\n",
           "Every code a job's `error_code`, a command or a status API answer can carry, what it means "
           "and what happens. Jobs keep the code with a message saying what to do "
           "(`clipedit status JOB`, the job's events, the batch results file).\n"]
    for section in error_codes.SECTIONS:
        out.append(f"\n## {section.title}\n\n{section.outcome}.\n\n")
        out.append(table(("code", "meaning"), ((code(c), meaning) for c, meaning in section.codes.items())))
    out.append("\n## Provider call failures\n\nWhatever the provider: how the pipeline treats a call that got "
               "no usable answer (kinds: `throttled` and `transient` are retried with backoff, `account` pauses "
               "the provider, `rejected` fails the job).\n\n")
    out.append(table(("code", "kind", "meaning"),
                     ((code(c), rule.kind.value, rule.meaning) for c, rule in provider_errors.TRANSPORT_ERRORS.items())))
    out.append("\n## Kling's codes\n\nA job refused or failed by Kling for good carries `KLING_<code>`; "
               "undocumented 5xxx codes are `transient`, any other undocumented code `rejected`.\n\n")
    out.append(table(("code", "kind", "meaning"),
                     ((code(f"KLING_{n}"), rule.kind.value, rule.meaning) for n, rule in provider_errors.KLING_ERRORS.items())))
    out.append("\n## fal's codes\n\nfal's `error_type` (body or `X-Fal-Error-Type` header), the `type` of each "
               "entry of a 422 `detail` list, or the HTTP status, mapped to one code each.\n\n")
    out.append(table(("code", "kind", "from fal's", "meaning"), _fal_rows()))
    missing = undescribed()
    if missing:
        out.append("\n## Codes without a description yet\n\nRaised in the source but not yet described in "
                   "`clipedit/domain/error_codes.py`; the message is the one the user is given.\n\n")
        out.append(table(("code", "raised in", "message"),
                         ((code(c), hits[0].path, hits[0].message) for c, hits in missing.items())))
    return "".join(out)
