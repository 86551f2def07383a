"""Load on the production stack: many users signing in, listing transfers and downloading documents.

Usage (from the repository root; needs nginx, PostgreSQL and Redis as for the smoke test)::

    .venv/bin/python bench/load_production.py                          # 50 users, 20 MB, 2 rounds
    .venv/bin/python bench/load_production.py --users 20 --size-mb 5 --rounds 1 --json

This process starts the stack of tests/deploy/stack.py on 127.0.0.1 (nginx with TLS in front of
two gunicorn instances in production mode, PostgreSQL, Redis, moto's S3 server, an SMTP sink),
sets up one sending school, one receiving school with ``--users`` designated teachers (made through
the app's code: enrolling 50 people over HTTPS would only benchmark argon2), and one transfer
carrying a ``--size-mb`` document, uploaded over HTTPS.

A *second process* then drives the load: one thread per user, each from its own loopback address
(127.0.0.10, .11, ...; as schools, each has its own sign-in throttle), all starting together. Per
user: sign in (GET and POST /sign-in), then ``--rounds`` times: list incoming transfers, open the
transfer, ask for a single-use link and download the document over TLS, checking its length and
SHA-256. Meanwhile this process samples the resident memory of every portal process (both gunicorn
masters and their workers) five times a second.

Printed: requests per second over the load phase, p50/p95 latency per kind of request and overall
(a download's latency is until its last byte), download throughput, error count, and the peak
memory of the portal processes (the sampled peak of their sum, and the largest VmHWM of any one).
Loopback only, bounded by ``--users``, ``--rounds`` and ``--deadline`` seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.deploy.stack import (  # noqa: E402  (the repository root must be importable first)
    MIB,
    Account,
    Browser,
    ProductionStack,
    download_link,
    pdf,
    send_transfer,
)

REDIS_DB = 13  # the smoke test uses 12


@dataclass
class Sample:
    """One request as the client saw it."""

    kind: str
    seconds: float
    ok: bool
    nbytes: int = 0


@dataclass(frozen=True)
class Plan:
    """What the load process needs to know (it shares no memory with the stack's process)."""

    base_url: str
    ca_path: str
    transfer_id: int
    document_id: int
    document_size: int
    document_sha256: str
    rounds: int
    deadline: float
    accounts: list[tuple[str, str, str]]  # (email, password, TOTP secret)


def _timed(samples: list[Sample], kind: str, call: Any, check: Any) -> Any:
    started = time.perf_counter()
    try:
        response = call()
        ok, nbytes = check(response)
    except Exception:
        samples.append(Sample(kind, time.perf_counter() - started, False))
        raise
    samples.append(Sample(kind, time.perf_counter() - started, ok, nbytes))
    if not ok:
        raise RuntimeError(f"{kind} answered {getattr(response, 'status_code', '?')}")
    return response


def _user(plan: Plan, index: int, start: threading.Barrier, samples: list[Sample]) -> None:
    email, password, secret = plan.accounts[index]
    browser = Browser(plan.base_url, Path(plan.ca_path), f"127.0.0.{10 + index}")
    account = Account(secret=secret, email=email, password=password)
    start.wait()
    try:
        page = _timed(
            samples, "sign-in page", lambda: browser.get("/sign-in"), lambda r: (r.status_code == 200, 0)
        )
        _timed(
            samples,
            "sign-in",
            lambda: browser.submit(
                page,
                "/sign-in",
                {"email": email, "password": password, "code": account.code()},
                allow_redirects=False,
            ),
            lambda r: (r.status_code == 302, 0),
        )
        for _ in range(plan.rounds):
            if time.monotonic() > plan.deadline:
                break
            _timed(
                samples,
                "list",
                lambda: browser.get("/transfers/incoming"),
                lambda r: (r.status_code == 200, 0),
            )
            started = time.perf_counter()
            link = download_link(browser, plan.transfer_id, plan.document_id)  # GET the page + POST
            samples.append(Sample("open + link", time.perf_counter() - started, True))

            def fetch(path: str = link) -> tuple[bool, int]:
                digest, size = hashlib.sha256(), 0
                with browser.get(path, stream=True, timeout=300) as response:
                    if response.status_code != 200:
                        return False, 0
                    for chunk in response.iter_content(chunk_size=256 * 1024):
                        digest.update(chunk)
                        size += len(chunk)
                whole = size == plan.document_size and digest.hexdigest() == plan.document_sha256
                return whole, size

            _timed(samples, "download", fetch, lambda result: result)
    except Exception:  # counted as an error sample already (or by a failed assertion in a helper)
        if not samples or samples[-1].ok:
            samples.append(Sample("flow", 0.0, False))


def drive(plan: Plan, results: Any) -> None:
    """The load process: one thread per user, all released together; sends back every sample."""
    samples: list[list[Sample]] = [[] for _ in plan.accounts]
    start = threading.Barrier(len(plan.accounts) + 1)
    threads = [
        threading.Thread(target=_user, args=(plan, i, start, samples[i]), daemon=True)
        for i in range(len(plan.accounts))
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=max(1.0, plan.deadline - time.monotonic()))
    elapsed = time.perf_counter() - began
    unfinished = sum(thread.is_alive() for thread in threads)
    results.put(
        {"elapsed": elapsed, "unfinished": unfinished, "samples": [asdict(s) for u in samples for s in u]}
    )


class MemoryWatch:
    """Samples the resident memory of every portal process until stopped."""

    def __init__(self, stack: ProductionStack, interval: float = 0.2) -> None:
        self.stack, self.interval = stack, interval
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_total = max(
                self.peak_total, sum(instance.rss_bytes() for instance in self.stack.instances)
            )

    def peak_single(self) -> tuple[int, int]:
        """(largest VmHWM of any live portal process, how many processes there are)."""
        peaks = []
        for instance in self.stack.instances:
            for process in instance.processes():
                status = Path(f"/proc/{process.pid}/status")
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) * 1024)
        return max(peaks, default=0), len(peaks)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load on the production stack (loopback only).")
    parser.add_argument("--users", type=int, default=50, help="concurrent users (at most 240)")
    parser.add_argument("--size-mb", type=float, default=20.0, help="document size in MB (10**6 bytes)")
    parser.add_argument("--rounds", type=int, default=2, help="list + open + download cycles per user")
    parser.add_argument("--deadline", type=float, default=600.0, help="stop the load after this many seconds")
    parser.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers per instance (default: infra's)"
    )
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: infra's)")
    parser.add_argument(
        "--argon2",
        default="19456,2,1",
        help="argon2id memory KiB,time cost,parallelism (default: production's floor; the portal's own default is 65536,3,4)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 240:
        parser.error("--users must be between 1 and 240 (one loopback address each)")
    size = int(args.size_mb * 1_000_000)
    memory_kib, time_cost, parallelism = (int(part) for part in args.argon2.split(","))
    argon2 = {
        "PORTAL_ARGON2_MEMORY_KIB": str(memory_kib),
        "PORTAL_ARGON2_TIME_COST": str(time_cost),
        "PORTAL_ARGON2_PARALLELISM": str(parallelism),
    }

    with (
        tempfile.TemporaryDirectory(prefix="handover-load-") as workdir,
        ProductionStack(
            Path(workdir),
            redis_db=REDIS_DB,
            upload_limit_bytes=size + 16 * MIB,
            workers=args.workers,
            threads=args.threads,
            settings=argon2,
        ) as stack,
    ):
        setup_started = time.monotonic()
        authority = stack.create_org("--kind", "local_authority", "--name", "Load County", "--la-code", "902")
        sending, receiving = (
            stack.create_org(
                "--kind", "school", "--name", name, "--urn", urn, "--la-code", "902",
                "--establishment-number", number, "--local-authority-id", str(authority),
            )
            for name, urn, number in (("Load Primary", "980001", "2002"), ("Load Academy", "980002", "4002"))
        )  # fmt: skip
        [sender] = stack.enrolled_accounts(sending, "school_staff", ["sender@load-primary.example.org"])
        teachers = stack.enrolled_accounts(
            receiving,
            "designated_teacher",
            [f"teacher{i}@load-academy.example.org" for i in range(args.users)],
        )
        content = pdf(size, b"load")
        browser = stack.browser("127.0.0.9")
        assert browser.sign_in(sender).status_code == 302
        transfer_id = send_transfer(
            browser, receiving_id=receiving, authority_id=authority, documents=[("load.pdf", content)]
        )
        [(document_id,)] = stack.sql("SELECT id FROM documents WHERE transfer_id = %(t)s", t=transfer_id)
        setup_seconds = time.monotonic() - setup_started
        idle_rss = sum(instance.rss_bytes() for instance in stack.instances)

        plan = Plan(
            base_url=stack.base_url,
            ca_path=str(stack.ca_path),
            transfer_id=transfer_id,
            document_id=int(document_id),
            document_size=size,
            document_sha256=hashlib.sha256(content).hexdigest(),
            rounds=args.rounds,
            deadline=time.monotonic() + args.deadline,  # CLOCK_MONOTONIC is system-wide on Linux
            accounts=[(a.email, a.password, a.secret) for a in teachers],
        )
        del content
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        loader = context.Process(target=drive, args=(plan, results), name="handover-load")
        with MemoryWatch(stack) as memory:
            loader.start()
            outcome = results.get(timeout=args.deadline + 120)
            loader.join(timeout=30)
        peak_single, process_count = memory.peak_single()
        figures = summarise(
            outcome, args, size, memory.peak_total, peak_single, process_count, idle_rss, setup_seconds
        )
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_figures(figures)
    return 0 if figures["errors"] == 0 and figures["unfinished_users"] == 0 else 1


def summarise(
    outcome: dict[str, Any],
    args: argparse.Namespace,
    size: int,
    peak_total: int,
    peak_single: int,
    process_count: int,
    idle_rss: int,
    setup_seconds: float,
) -> dict[str, Any]:
    samples = [Sample(**s) for s in outcome["samples"]]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        if sample.ok:
            by_kind[sample.kind].append(sample.seconds)
    # "open + link" is two requests (the transfer page, then the POST that issues the link).
    requests_done = sum(2 if s.kind == "open + link" else 1 for s in samples if s.ok)
    downloaded = sum(s.nbytes for s in samples if s.kind == "download" and s.ok)
    elapsed = outcome["elapsed"]
    all_latencies = [s.seconds for s in samples if s.ok and s.kind != "open + link"]
    return {
        "users": args.users,
        "argon2": args.argon2,
        "rounds": args.rounds,
        "document_mb": size / 1e6,
        "setup_seconds": round(setup_seconds, 1),
        "load_seconds": round(elapsed, 2),
        "requests": requests_done,
        "requests_per_second": round(requests_done / elapsed, 1),
        "downloads": len(by_kind["download"]),
        "download_mb_per_second": round(downloaded / 1e6 / elapsed, 1),
        "errors": sum(1 for s in samples if not s.ok),
        "unfinished_users": outcome["unfinished"],
        "latency_seconds": {
            kind: {"p50": round(statistics.median(v), 3), "p95": round(percentile(v, 0.95), 3), "n": len(v)}
            for kind, v in sorted(by_kind.items())
        }
        | {
            "all (single requests)": {
                "p50": round(statistics.median(all_latencies), 3) if all_latencies else None,
                "p95": round(percentile(all_latencies, 0.95), 3) if all_latencies else None,
                "n": len(all_latencies),
            }
        },
        "portal_processes": process_count,
        "portal_rss_idle_mb": round(idle_rss / MIB, 1),
        "portal_rss_peak_total_mb": round(peak_total / MIB, 1),
        "portal_rss_peak_single_process_mb": round(peak_single / MIB, 1),
    }


def print_figures(f: dict[str, Any]) -> None:
    print(
        f"Handover production stack on 127.0.0.1: {f['users']} users x {f['rounds']} round(s), "
        f"{f['document_mb']:g} MB document, argon2id m,t,p = {f['argon2']}"
    )
    print(f"  setup {f['setup_seconds']} s; load phase {f['load_seconds']} s")
    print(
        f"  {f['requests']} requests, {f['requests_per_second']} requests/s; {f['downloads']} downloads, "
        f"{f['download_mb_per_second']} MB/s; errors {f['errors']}; unfinished users {f['unfinished_users']}"
    )
    print("  latency (s)           p50      p95      n")
    for kind, row in f["latency_seconds"].items():
        print(f"    {kind:20} {row['p50']!s:>7}  {row['p95']!s:>7}  {row['n']:>5}")
    print(
        f"  portal memory ({f['portal_processes']} processes): idle {f['portal_rss_idle_mb']} MB, "
        f"peak {f['portal_rss_peak_total_mb']} MB in all, largest single process {f['portal_rss_peak_single_process_mb']} MB"
    )


if __name__ == "__main__":
    sys.exit(main())
