"""Render docs/reliability.md from what a test run recorded (see ``results.py``); never edit it by hand.

    python -m tests.reliability.summarize [results_dir] [--write docs/reliability.md]

Each row is one scenario: what it does (the fixed description below), how many times it ran and how long
(counted from the recorded test outcomes), and its outcome (pass/fail counts plus the figures the scenario
recorded). A scenario the run did not include says so instead of showing old numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.reliability.results import TESTS_FILE

Rows = list[dict[str, Any]]
INTAKE = "tests/integration/trainer_worker/test_worker_intake.py"


def load(path: Path) -> Rows:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def durations(rows: Rows) -> str:
    values = [r["duration_s"] for r in rows if "duration_s" in r]
    if not values:
        return ""
    median, longest, total = statistics.median(values), max(values), sum(values)
    return f"median {median:.0f} s, max {longest:.0f} s, total {total / 60:.1f} min"


def _states(rows: Rows) -> str:
    states = Counter(r.get("state", r.get("state_after", "")) for r in rows)
    return ", ".join(f"{state} {n}" for state, n in sorted(states.items()))


def worker_death(rows: Rows) -> str:
    points = Counter(r["point"] for r in rows)
    landed = Counter(k["phase_after_kill"] for r in rows for k in r["kills"])
    resumed = sum(1 for r in rows if r["attempts"] > 1 and r["resumed_from"])
    fewer = sum(
        1 for r in rows if r["attempts"] > 1 and r["iters_per_attempt"][str(r["attempts"])] < r["max_iters"]
    )
    models = Counter(r["models"] for r in rows)
    return (
        f"runs ended {_states(rows)}; kill points {dict(points)}; {sum(len(r['kills']) for r in rows)} kills "
        f"landed in {dict(landed)}; resumed from a checkpoint {resumed}; final attempt trained fewer "
        f"iterations than from scratch {fewer}; models per run {dict(models)}"
    )


def restarts(rows: Rows) -> str:
    attempts = Counter(r["attempts"] for r in rows)
    return (
        f"runs ended {_states(rows)}; {sum(len(r['restarts']) for r in rows)} restarts; events per run "
        f"{sorted({r['events'] for r in rows})}; attempts {dict(attempts)}; models per run "
        f"{dict(Counter(r['models'] for r in rows))}"
    )


def commit_publish_crash(rows: Rows) -> str:
    return (
        f"runs ended {_states(rows)}; job row unsent at the crash "
        f"{sum(bool(r['unsent_before_crash']) for r in rows)}"
        f"/{len(rows)}; models per run {dict(Counter(r['models'] for r in rows))}; duplicate-job refusals "
        f"{dict(Counter(r['duplicate_job_refusals'] for r in rows))}"
    )


def redelivery(rows: Rows) -> str:
    return (
        f"{sum(sum(r['injected'].values()) for r in rows)} messages injected; stored run unchanged "
        f"(same etag) "
        f"{sum(r['etag_unchanged'] for r in rows)}/{len(rows)}; models per run "
        f"{dict(Counter(r['models_for_run'] for r in rows))}; job refusals "
        f"{dict(Counter(r['job_refusals'] for r in rows))}"
    )


def stale_completion(rows: Rows) -> str:
    attempts, models = Counter(r["attempts"] for r in rows), Counter(r["models"] for r in rows)
    return f"runs ended {_states(rows)}; attempts {dict(attempts)}; models {dict(models)}"


def load_figures(rows: Rows) -> str:
    parts = []
    for r in rows:
        figures = {
            k: v for k, v in r.items() if k not in ("time", "duration_s") and not isinstance(v, dict | list)
        }
        parts.append(", ".join(f"{k} {v}" for k, v in sorted(figures.items())))
    return "; ".join(parts)


def no_run_left(rows: Rows) -> str:
    return "; ".join(
        f"{r['runs']} runs on the shared stack, non-terminal {r['non_terminal'] or 'none'}" for r in rows
    )


def poison_messages(rows: Rows) -> str:
    cases = [f"{r['case']}: delivered {r['deliveries']} times (max_deliver {r['max_deliver']})" for r in rows]
    return "; ".join(cases)


def poison_runs(rows: Rows) -> str:
    return "; ".join(
        f"{r['case']}: delivered {r['deliveries']} times (max_deliver {r['max_deliver']}), run {r['state']}"
        for r in rows
    )


def concurrent_migrations(rows: Rows) -> str:
    return "; ".join(
        f"{r['service']} on {r['dialect']}: {r['succeeded']}/{r['racers']} migrators succeeded, "
        f"{r['version_rows']} version row"
        for r in rows
    )


def fuzz(report: dict[str, Any]) -> str:
    codes: Counter[str] = Counter()
    for counts in report.get("per_rpc", {}).values():
        codes.update({k: v for k, v in counts.items() if k != "cases"})
    listed = ", ".join(f"{code} {n:,}" for code, n in codes.most_common())
    return (
        f"{report.get('total_cases', 0):,} requests ({report.get('examples_per_rpc')} per RPC) in "
        f"{report.get('seconds')} s; status codes: {listed}"
    )


@dataclass(frozen=True)
class Scenario:
    title: str  # what the scenario does and what a pass asserts
    tests: tuple[str, ...]  # node id prefixes of its tests
    figures: str = ""  # the <figures>.jsonl it records, if any
    summarize: Callable[[Rows], str] | None = None


SCENARIOS = [
    Scenario(
        "Fuzz: hypothesis requests on every RPC of both services (descriptor-driven; superadmin, "
        "user, owner, worker); a pass means no INTERNAL / UNKNOWN / UNAVAILABLE / RESOURCE_EXHAUSTED, "
        "no traceback, both servers healthy and every stored run/model well formed afterwards",
        ("tests/security/test_fuzz_rpcs.py",),
    ),
    Scenario(
        "Authorization matrix: every RPC x broken credentials, wrong roles, owner, superadmin, "
        "another owner's resource; a pass means each answers exactly as specified",
        ("tests/security/test_authorization_matrix.py",),
    ),
    Scenario(
        "Hostile inputs: code, quotes, braces, SQL, escaping dataset refs and artifact keys, configs "
        "that run code; a pass means stored as data or INVALID_ARGUMENT, and no canary file ever appears",
        ("tests/security/test_hostile_inputs.py",),
    ),
    Scenario(
        "Other security tests (worker identity, TLS, config gate, ownership)",
        ("tests/security/",),
    ),
    Scenario(
        "Worker death: the worker holding a run is SIGKILLed (mid-epoch, preparing, evaluating, uploading); "
        "another worker resumes from the last checkpoint after the lease expires",
        ("tests/reliability/test_worker_death.py::test_killed_worker",),
        "worker_death",
        worker_death,
    ),
    Scenario(
        "Restarts mid-run: training_run SIGKILL, nats-server SIGKILL, trained_model SIGTERM, with 3 watchers "
        "replaying from their last resume token",
        ("tests/reliability/test_restarts.py",),
        "restarts",
        restarts,
    ),
    Scenario(
        "Crash between commit and publish (nats-server and training_run killed with the job row "
        "unsent), plus a duplicate job sent to the idle worker",
        ("tests/reliability/test_outbox_and_redelivery.py::test_crash_between_commit_and_publish",),
        "commit_publish_crash",
        commit_publish_crash,
    ),
    Scenario(
        "Duplicate and out-of-order deliveries of every event kind and of the job, on a SUCCEEDED run",
        ("tests/reliability/test_outbox_and_redelivery.py::test_redelivered_and_reordered",),
        "redelivery",
        redelivery,
    ),
    Scenario(
        "A stale attempt's late completion while the next attempt trains",
        ("tests/reliability/test_outbox_and_redelivery.py::test_a_stale_attempts_late_completion",),
        "stale_completion",
        stale_completion,
    ),
    Scenario(
        "Load: concurrent WatchTrainingRun streams and CreateTrainingRun at a fixed rate (client in its own "
        "process); every watcher must get every event of its run and its terminal event",
        ("tests/reliability/test_load.py",),
        "load",
        load_figures,
    ),
    Scenario(
        "No run left non-terminal on the shared stack after all fault-injection scenarios",
        ("tests/reliability/test_worker_death.py::test_no_run_is_left_non_terminal",),
        "no_run_left",
        no_run_left,
    ),
    Scenario(
        "Poison messages (real nats-server, bounded max_deliver + backoff): a message whose handler always "
        "fails is delivered exactly max_deliver times, then terminated with a dead-letter record (subject, "
        "headers, payload, deliveries, reason) and `raven_dead_lettered_messages_total` +1; an unreadable "
        "job is dead-lettered on its first delivery; unanswered deliveries end in JetStream's MAX_DELIVERIES "
        "advisory, captured on the dead-letter stream; consumers provisioned before are updated in place",
        ("tests/integration/test_dead_letters.py",),
        "poison_messages",
        poison_messages,
    ),
    Scenario(
        "Poison messages end their run FAILED (real training_run): a job whose claim fails on every "
        "delivery, an unreadable job, a job whose worker never answers (MAX_DELIVERIES advisory), an event "
        "whose handler raises every time; the run's failure names the reason",
        ("tests/integration/training_run/test_dead_letters.py",),
        "poison_runs",
        poison_runs,
    ),
    Scenario(
        "Poison messages in the worker and the registrar (real worker intake, real registrar): a job "
        "whose claim fails on every delivery is nak'ed with backoff, then dead-lettered on delivery "
        "max_deliver; an unreadable job at once; a completion whose checkpoint can never be read after "
        "max_deliver deliveries, without blocking the next completion",
        (
            f"{INTAKE}::test_a_job_whose_claim_always_fails",
            f"{INTAKE}::test_an_unreadable_job",
            "tests/integration/trained_model/test_registrar_poison.py",
        ),
    ),
    Scenario(
        "Concurrent migrations: 4 processes start migrating one empty database at the same instant (a "
        "barrier), SQLite (file lock) and PostgreSQL (advisory lock); a pass means all succeed and "
        "the schema is at head with one version row",
        ("tests/integration/test_migrations.py::test_concurrent_starts",),
        "concurrent_migrations",
        concurrent_migrations,
    ),
]


def _matches(nodeid: str, scenario: Scenario) -> bool:
    return any(nodeid.startswith(prefix) for prefix in scenario.tests)


def owner_of(nodeid: str) -> Scenario | None:
    """The first scenario a test belongs to (specific rows come before catch-all ones)."""
    return next((s for s in SCENARIOS if _matches(nodeid, s)), None)


def row(scenario: Scenario, tests: Rows, directory: Path) -> str:
    mine = [t for t in tests if owner_of(t["nodeid"]) is scenario]
    if not mine:
        return f"| {scenario.title} | not in this run | — |"
    outcomes = Counter(t["outcome"] for t in mine)
    minutes = sum(t["duration_s"] for t in mine) / 60
    ran = f"{len(mine)} test executions in {minutes:.1f} min"
    outcome = ", ".join(f"{n} {state}" for state, n in sorted(outcomes.items()))
    if scenario.figures and scenario.summarize is not None:
        figures = load(directory / f"{scenario.figures}.jsonl")
        if figures:
            timing = durations(figures)
            ran += f"; {len(figures)} recorded executions" + (f" ({timing})" if timing else "")
            outcome += f". {scenario.summarize(figures)}"
    if scenario.tests == ("tests/security/test_fuzz_rpcs.py",) and (directory / "fuzz_report.json").exists():
        outcome += f". {fuzz(json.loads((directory / 'fuzz_report.json').read_text()))}"
    failed = [t["nodeid"].split("::", 1)[-1] for t in mine if t["outcome"] == "failed"]
    if failed:
        outcome += f". Failed: {', '.join(failed[:5])}"
    return f"| {scenario.title} | {ran} | {outcome} |"


def render(directory: Path, command: str = "") -> str:
    tests = load(directory / TESTS_FILE)
    if not tests:
        raise SystemExit(f"no {TESTS_FILE} in {directory}: run the tests with RAVEN_RELIABILITY_RESULTS set")
    runs = sorted({t.get("runs_per_scenario") or "default" for t in tests})
    first, last = min(t["time"] for t in tests), max(t["time"] for t in tests)
    lines = [
        "# Reliability and security scenarios",
        "",
        "Generated by `python -m tests.reliability.summarize` from the results of one test run; do "
        "not edit by hand (`make reliability` runs the scenarios and rewrites this file).",
        "",
        *([f"Command: `{command}`", ""] if command else []),
        f"Run: {first} to {last}, `RAVEN_RELIABILITY_RUNS` = {', '.join(runs)}, {len(tests)} test executions "
        f"({', '.join(f'{n} {o}' for o, n in sorted(Counter(t['outcome'] for t in tests).items()))}).",
        "",
        "| Scenario | How many times it ran | Outcome |",
        "|---|---|---|",
        *[row(scenario, tests, directory) for scenario in SCENARIOS],
    ]
    unowned = sorted({t["nodeid"] for t in tests if owner_of(t["nodeid"]) is None})
    if unowned:
        lines += ["", f"Also ran (no row): {len(unowned)} tests, e.g. {', '.join(unowned[:5])}."]
    lines += [
        "",
        "Commands: `make reliability` (all scenarios at `RAVEN_RELIABILITY_RUNS=20`, about an hour; "
        "the fault-injection stack is `scripts/stack.py`: nats-server, both services on SQLite, two CPU "
        "workers, 6 s leases).",
        "A shorter pass renders the same way: `RAVEN_RELIABILITY_RESULTS=var/reliability-short "
        "RAVEN_RELIABILITY_RUNS=1 .venv/bin/python -m pytest <tests>` then "
        "`.venv/bin/python -m tests.reliability.summarize var/reliability-short --write "
        "docs/reliability.md`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", nargs="?", default="var/reliability", type=Path)
    parser.add_argument("--write", type=Path, help="write the document there instead of printing it")
    parser.add_argument("--command", default="", help="the command that produced the results, for the header")
    args = parser.parse_args(argv)
    document = render(args.directory, args.command)
    if args.write:
        args.write.write_text(document)
    else:
        sys.stdout.write(document)


if __name__ == "__main__":
    main()
