"""``rediss://``: the Redis broker over TLS, against a real redis-server with TLS on."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinach import Engine, RedisBroker

from .helpers import SignalRecorder
from .support.redis_server import RedisServer, free_port


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, its own authority, and its key."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[RedisServer, int, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    tls_port = free_port()
    server = RedisServer(
        extra_args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                    "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                    "--tls-auth-clients", "no"],
    )  # fmt: skip
    with server:
        yield server, tls_port, cert


def test_a_rediss_url_runs_jobs_over_tls(tls_server):
    server, tls_port, cert = tls_server
    url = f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
    engine = Engine(RedisBroker(url), namespace="tls")
    plain = RedisBroker(server.url)  # the same server, seen through its plain port
    plain.set_namespace("tls")
    recorder = SignalRecorder(engine.namespace)
    engine.task(lambda x: None, name="over-tls")
    try:
        engine.schedule("over-tls", 1)
        assert plain.queue_lengths() == {"spinach": 1}
        engine.start_workers(number=1, block=False)
        recorder.wait_for_count("job_finished", 1)
    finally:
        engine.stop_workers()
        recorder.close()
    assert recorder.of("job_finished")[0].status == "SUCCEEDED"
    assert plain.queue_lengths() == {} and plain.workers() == []
    plain.stop()


def test_a_certificate_that_is_not_trusted_is_refused(tls_server):
    _, tls_port, _ = tls_server
    broker = RedisBroker(f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=required")
    with pytest.raises(RedisBroker.connection_errors, match="certificate"):
        broker.queue_lengths()
    broker.stop()
