"""What the AWS-hosts proxy costs a job's AWS calls (issue 30).

    python benchmarks/aws_proxy.py [--requests 200] [--megabytes 64]

Starts a throwaway emulator (own state folder, free port, loopback only) and times the
same calls made directly to it (``endpoint_url``, as the project's own clients do) and
through the proxy (``HTTPS_PROXY`` to ``s3.amazonaws.com``, as a job's boto3 does):
a small GetObject on a kept-alive connection, the first call of a new client (a new
tunnel and TLS handshake), and a large download. Prints medians and the overhead.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

from pipelines.core.aws import AwsConnection, emulator_credentials
from pipelines.emulator import Emulator

BUCKET = "proxy-benchmark"
_PROXY = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from pipelines.emulator.aws_proxy import AwsHostsProxy\n"
    "from pipelines.emulator.tls import TlsFiles\n"
    "proxy = AwsHostsProxy(TlsFiles.in_dir(Path(sys.argv[1])), int(sys.argv[2]), log=print)\n"
    "print(proxy.start().url, flush=True)\n"
    "time.sleep(3600)\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client(connection: AwsConnection, proxy_url: str | None):
    key = emulator_credentials(connection.ca_bundle)
    session = boto3.Session(
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        region_name="us-east-1",
    )
    if proxy_url is None:
        return session.client(
            "s3",
            endpoint_url=connection.endpoint_url,
            verify=str(connection.ca_bundle),
            config=Config(s3={"addressing_style": "path"}),
        )
    return session.client(
        "s3",
        verify=str(connection.ca_bundle),
        config=Config(proxies={"https": proxy_url}),
    )


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as temp:
        emulator = Emulator(Path(temp) / "state", free_port())
        info, _ = emulator.start()
        try:
            connection = AwsConnection.for_emulator(
                info.endpoint, emulator.tls.ca_cert, "us-east-1"
            )
            admin = connection.client("s3")
            admin.create_bucket(Bucket=BUCKET)
            admin.put_object(Bucket=BUCKET, Key="small", Body=b"x" * 1024)
            admin.put_object(Bucket=BUCKET, Key="large", Body=os.urandom(args.megabytes << 20))
            # In a process of its own, as in a run: the worker hosts it, the job calls.
            proxy = subprocess.Popen(
                [sys.executable, "-c", _PROXY, str(emulator.tls.ca_cert.parent), str(info.port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                proxy_url = proxy.stdout.readline().strip()
                rows = []
                for label, url in (("direct", None), ("proxy", proxy_url)):
                    s3 = client(connection, url)
                    s3.get_object(Bucket=BUCKET, Key="small")["Body"].read()  # warm
                    kept = []
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        s3.get_object(Bucket=BUCKET, Key="small")["Body"].read()
                        kept.append(time.perf_counter() - started)
                    first = []
                    for _ in range(max(5, args.requests // 20)):
                        fresh = client(connection, url)
                        started = time.perf_counter()
                        fresh.get_object(Bucket=BUCKET, Key="small")["Body"].read()
                        first.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    s3.download_file(BUCKET, "large", str(Path(temp) / f"large-{label}"))
                    large = time.perf_counter() - started
                    rows.append((label, median_ms(kept), median_ms(first), large))
            finally:
                proxy.kill()
                proxy.wait()
        finally:
            emulator.stop()

    print(
        f"{'':8} {'GetObject 1 KiB':>16} {'first call':>12} {f'{args.megabytes} MiB download':>18}"
    )
    for label, kept, first, large in rows:
        rate = args.megabytes / large
        print(f"{label:8} {kept:13.2f} ms {first:9.2f} ms {large:11.2f} s ({rate:.0f} MiB/s)")
    (_, d_kept, d_first, d_large), (_, p_kept, p_first, p_large) = rows
    print(
        f"proxy overhead: {p_kept - d_kept:+.2f} ms per kept-alive request, "
        f"{p_first - d_first:+.2f} ms per new connection, "
        f"{(p_large / d_large - 1) * 100:+.0f}% on the download"
    )


if __name__ == "__main__":
    main()
