"""Throughput and peak memory of raw versus encrypted put/get, per object store.

Usage (from the repository root)::

    .venv/bin/python bench/storage_throughput.py                 # 1 GiB local, 256 MiB S3 (moto)
    .venv/bin/python bench/storage_throughput.py --size-mib 64 --s3-size-mib 32

Four phases per store, each in its own subprocess so each peak resident set (VmHWM, or
ru_maxrss off Linux) is that phase's alone: raw put, raw get, encrypt+put (EncryptingReader: Cobblestone-256 and
SHA-256) and get+decrypt (decrypt_stream, with the size and digest check). Before a local
get the object's pages are dropped from the page cache, so gets read the disk. The input is
generated as a stream (one random 1 MiB block repeated), never built in memory.

The S3 store is moto's server, run inside this (parent) process: moto keeps every object in
memory, so its own footprint grows with the object and is reported separately; the phases'
peaks are the portal side only. Goals (issue): encryption costs at most 20% of raw throughput
on the local store; peak memory under 150 MB whatever the size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[1]
PHASES = ("raw-put", "raw-get", "enc-put", "dec-get")
CONTEXT = b"handover/v1/transfer:bench/document:1"


class GeneratedStream:
    """``size`` bytes produced on demand: a random 1 MiB block, repeated."""

    def __init__(self, size: int) -> None:
        self._block = os.urandom(MIB)
        self._remaining = size

    def read(self, size: int = -1, /) -> bytes:
        size = min(self._remaining, MIB if size < 0 else size, MIB)
        self._remaining -= size
        return self._block if size == MIB else self._block[:size]


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux's VmHWM where there is one: ``ru_maxrss`` of a child carries over the parent's peak
    from before ``exec`` (here, moto's server holding objects), which would blame the phase for
    memory it never touched.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def evict_from_page_cache(path: Path) -> None:
    """Drop the object's (clean, fsynced) pages so a get reads the disk, not memory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_phase(args: argparse.Namespace) -> dict[str, Any]:
    """One phase, in this (child) process; returns what the parent prints."""
    from portal.crypto import EncryptingReader, decrypt_stream, new_data_key
    from portal.storage import iter_chunks, new_object_key, store_from_url

    store = store_from_url(args.store_url)
    size = args.size_mib * MIB
    if args.phase.endswith("get") and args.store_url.startswith("file://"):
        evict_from_page_cache(Path(args.store_url.removeprefix("file://")) / args.key)
    # Imports (the portal package pulls in Flask and SQLAlchemy) and the client, before any data.
    result: dict[str, Any] = {"phase": args.phase, "rss_before_mib": peak_rss_mib()}
    started = time.perf_counter()
    if args.phase == "raw-put":
        key = new_object_key()
        result["bytes"] = store.put(key, GeneratedStream(size))
        result["key"] = key
    elif args.phase == "enc-put":
        key, data_key = new_object_key(), new_data_key()
        reader = EncryptingReader(GeneratedStream(size), data_key, CONTEXT)
        store.put(key, reader)
        result.update(
            bytes=reader.plaintext_size,
            key=key,
            data_key=data_key.hex(),
            sha256=reader.plaintext_sha256,
        )
    elif args.phase == "raw-get":
        total = 0
        with store.open(args.key) as stream:
            for chunk in iter_chunks(stream):
                total += len(chunk)
        result["bytes"] = total
    else:
        total = 0
        with store.open(args.key) as stream:
            for piece in decrypt_stream(
                iter_chunks(stream),
                bytes.fromhex(args.data_key),
                CONTEXT,
                expected_size=size,
                expected_sha256=args.sha256,
            ):
                total += len(piece)
        result["bytes"] = total
    result["seconds"] = time.perf_counter() - started
    if args.phase.endswith("get"):
        store.delete(args.key)  # keep the disk (or moto's memory) from holding every copy
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def spawn_phase(phase: str, store_url: str, size_mib: int, extra: dict[str, str]) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--store-url",
        store_url,
        "--size-mib",
        str(size_mib),
    ]
    for name, value in extra.items():
        command += [f"--{name.replace('_', '-')}", value]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def bench_store(name: str, store_url: str, size_mib: int, repeat: int) -> list[dict[str, Any]]:
    """Every phase ``repeat`` times; the median speed and the largest peak of each phase."""
    runs: dict[str, list[dict[str, Any]]] = {phase: [] for phase in PHASES}
    for _ in range(repeat):
        raw_put = spawn_phase("raw-put", store_url, size_mib, {})
        raw_get = spawn_phase("raw-get", store_url, size_mib, {"key": raw_put["key"]})
        enc_put = spawn_phase("enc-put", store_url, size_mib, {})
        dec_get = spawn_phase(
            "dec-get",
            store_url,
            size_mib,
            {"key": enc_put["key"], "data_key": enc_put["data_key"], "sha256": enc_put["sha256"]},
        )
        for row in (raw_put, raw_get, enc_put, dec_get):
            assert row["bytes"] == size_mib * MIB, row
            runs[row["phase"]].append(row)
    rows = []
    for phase, results in runs.items():
        speeds = sorted(size_mib / result["seconds"] for result in results)
        rows.append(
            {
                "store": name,
                "size_mib": size_mib,
                "phase": phase,
                "mib_per_s": statistics.median(speeds),
                "spread": f"{speeds[0]:.0f}-{speeds[-1]:.0f}",
                "peak_rss_mib": max(result["peak_rss_mib"] for result in results),
                "rss_before_mib": max(result["rss_before_mib"] for result in results),
            }
        )
    return rows


@contextmanager
def moto_s3() -> Iterator[str]:
    """A moto server in this process, a bucket, and fake credentials for the children."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto accepts anything
        AWS_DEFAULT_REGION="eu-west-2",
        AWS_EC2_METADATA_DISABLED="true",
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="eu-west-2")
        client.create_bucket(
            Bucket="handover-bench", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
        yield f"s3://handover-bench/bench?endpoint_url={endpoint}&region=eu-west-2&addressing=path"
    finally:
        server.stop()


def print_report(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'store':<6} {'size':>9} {'phase':<12} {'MiB/s':>7} {'(range)':>11} "
        f"{'peak RSS':>10} {'(before data)':>14}"
    )
    labels = {
        "raw-put": "put (raw)",
        "raw-get": "get (raw)",
        "enc-put": "encrypt+put",
        "dec-get": "get+decrypt",
    }
    for row in rows:
        print(
            f"{row['store']:<6} {row['size_mib']:>5} MiB {labels[row['phase']]:<12} "
            f"{row['mib_per_s']:>7.0f} {row['spread']:>11} "
            f"{row['peak_rss_mib']:>7.1f} MB {row['rss_before_mib']:>11.1f} MB"
        )
    print()
    for store in dict.fromkeys(row["store"] for row in rows):
        speed = {row["phase"]: row["mib_per_s"] for row in rows if row["store"] == store}
        put_ratio = speed["enc-put"] / speed["raw-put"]
        get_ratio = speed["dec-get"] / speed["raw-get"]
        print(
            f"{store}: encrypted/raw throughput  put {put_ratio:.2f}  get {get_ratio:.2f}  "
            f"(goal on the local store: >= 0.80)"
        )
    peak = max(row["peak_rss_mib"] for row in rows)
    print(f"largest peak RSS of any phase: {peak:.1f} MB (goal: < 150 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="object size for the local store")
    parser.add_argument("--s3-size-mib", type=int, default=256, help="object size for moto's S3 (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each phase (median reported)")
    parser.add_argument("--dir", type=Path, default=None, help="directory for the local store")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--store-url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--data-key", help=argparse.SUPPRESS)
    parser.add_argument("--sha256", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(run_phase(args)))
        return

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="handover-bench-") as directory:
        print(f"local store in {directory}, {args.size_mib} MiB object", flush=True)
        rows += bench_store("local", f"file://{directory}/objects", args.size_mib, args.repeat)
    if args.s3_size_mib:
        print(f"moto S3 (in-process server), {args.s3_size_mib} MiB object", flush=True)
        with moto_s3() as url:
            rows += bench_store("s3", url, args.s3_size_mib, args.repeat)
        print(
            f"moto keeps objects in memory: this parent process (the moto server) peaked at "
            f"{peak_rss_mib():.0f} MB; the figures above are the portal side only.",
            flush=True,
        )
    print()
    print_report(rows)


if __name__ == "__main__":
    main()
