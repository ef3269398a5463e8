"""The segment store's wire port and the controller's gRPC port over TLS, in-process on free ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anabranch.client.config import ClientConfig
from anabranch.client.connection import ConnectionPool, RawConnection, TlsVerificationError, next_request_id
from anabranch.client.controller_client import ControllerClient
from anabranch.client.errors import ControllerUnavailableError
from anabranch.controller.service import ControllerService
from anabranch.errors import ConnectionFailedError
from anabranch.protocol.commands import CreateSegment, ReadSegment, SegmentCreated, SegmentRead
from anabranch.segmentstore.service import SegmentStoreService
from anabranch.tls import ServerTls, client_ssl_context
from tests.unit.tls.certs import Pki, make_pki

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def store(tmp_path: Path, pki: Pki) -> AsyncIterator[SegmentStoreService]:
    service = SegmentStoreService(tmp_path / "ss", HOST, 0, container_count=1, tail_read_timeout=0.1,
                                  tls=ServerTls.load(pki.server_cert, pki.server_key))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_wire_round_trip_over_tls(store: SegmentStoreService, pki: Pki) -> None:
    context = client_ssl_context(pki.ca_dir)
    for hostname in ("127.0.0.1", "localhost"):
        conn = await RawConnection.connect(HOST, store.port, ssl_context=context, server_hostname=hostname)
        try:
            seg = f"s/t-{hostname}/0.#epoch.0"
            assert isinstance(await conn.request(CreateSegment(next_request_id(), seg)), SegmentCreated)
            read = await conn.request(ReadSegment(seg, 0, 10, "", next_request_id()))
            assert isinstance(read, SegmentRead) and read.at_tail
        finally:
            await conn.close()


async def test_pool_connects_over_tls(store: SegmentStoreService, pki: Pki) -> None:
    pool = ConnectionPool(connect_timeout=5, ssl_context=client_ssl_context(pki.ca_cert))
    try:
        conn = await pool.get(HOST, store.port)
        assert await pool.get(HOST, store.port) is conn
    finally:
        await pool.close()


async def test_plaintext_client_is_refused(store: SegmentStoreService) -> None:
    with pytest.raises(ConnectionFailedError, match="closed the connection before Hello"):
        await RawConnection.connect(HOST, store.port, timeout=5)


async def test_untrusted_certificate_is_refused_and_not_retriable(store: SegmentStoreService,
                                                                  tmp_path: Path) -> None:
    stranger = make_pki(tmp_path / "stranger")
    with pytest.raises(TlsVerificationError) as caught:
        await RawConnection.connect(HOST, store.port, timeout=5, ssl_context=client_ssl_context(stranger.ca_dir))
    assert caught.value.retriable is False


async def test_wrong_host_name_is_refused(store: SegmentStoreService, pki: Pki) -> None:
    with pytest.raises(TlsVerificationError, match=r"other\.example"):
        await RawConnection.connect(HOST, store.port, timeout=5, ssl_context=client_ssl_context(pki.ca_dir),
                                    server_hostname="other.example")


async def test_pinned_internal_context_ignores_the_host_name(store: SegmentStoreService, pki: Pki) -> None:
    internal = ServerTls.load(pki.server_cert, pki.server_key).internal_client_context()
    conn = await RawConnection.connect(HOST, store.port, timeout=5, ssl_context=internal,
                                       server_hostname="not-in-the-cert.example")
    await conn.close()


async def test_tls_client_against_plaintext_server_fails_cleanly(tmp_path: Path, pki: Pki) -> None:
    async with SegmentStoreService(tmp_path / "plain", HOST, 0, container_count=1) as plain:
        with pytest.raises(ConnectionFailedError, match="does it serve TLS"):
            await RawConnection.connect(HOST, plain.port, timeout=5, ssl_context=client_ssl_context(pki.ca_dir))


async def test_controller_over_tls(store: SegmentStoreService, pki: Pki) -> None:
    tls = ServerTls.load(pki.server_cert, pki.server_key)
    controller = ControllerService(HOST, store.port, host=HOST, port=0, tls=tls,
                                   segment_store_ssl=tls.internal_client_context(), startup_timeout=10)
    await controller.start()
    try:
        config = ClientConfig(f"tls://{HOST}:{controller.port}", trust_store=str(pki.ca_dir), request_timeout=10)
        async with ControllerClient(config) as client:
            assert await asyncio.wait_for(client.create_scope("secure"), 30) is True
        plain = ClientConfig(f"tcp://{HOST}:{controller.port}", request_timeout=2, retry_attempts=1)
        async with ControllerClient(plain) as client:
            with pytest.raises(ControllerUnavailableError):
                await asyncio.wait_for(client.create_scope("plain"), 30)
    finally:
        await controller.stop()
