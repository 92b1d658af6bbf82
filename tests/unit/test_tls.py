"""The shared TLS context (cold start, issue 16): certifi's bundle is read at the first handshake,
not when a client is built, and certificates and host names are checked from the first one on."""

from __future__ import annotations

import datetime
import ssl

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clipedit.adapters.tls import TrustOnFirstUseContext, shared_ssl_context


def self_signed_server(tmp_path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cdn.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("cdn.example.com")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return server


def handshake(client_context: ssl.SSLContext, server_context: ssl.SSLContext,
              hostname: str = "cdn.example.com") -> None:
    """A TLS handshake over memory buffers (no socket); raises what the client's checks raise."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        try:
            client.do_handshake()
            return
        except ssl.SSLWantReadError:
            pass
        s_in.write(c_out.read())
        try:
            server.do_handshake()
        except ssl.SSLWantReadError:
            pass
        c_in.write(s_out.read())
    raise AssertionError("the handshake neither finished nor failed")  # pragma: no cover


def test_the_context_checks_certificates_and_host_names_and_loads_no_bundle_when_built():
    context = TrustOnFirstUseContext(ssl.PROTOCOL_TLS_CLIENT)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    shared = shared_ssl_context()
    assert shared is shared_ssl_context()  # one per process
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname


def test_the_first_handshake_loads_certifis_bundle_and_still_refuses_an_unknown_issuer(tmp_path):
    context = TrustOnFirstUseContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(context, self_signed_server(tmp_path))
    expected = ssl.create_default_context(cafile=certifi.where()).cert_store_stats()["x509_ca"]
    assert expected > 50
    assert context.cert_store_stats()["x509_ca"] == expected


def test_what_the_store_holds_is_trusted_for_its_own_host_name_only(tmp_path):
    server = self_signed_server(tmp_path)
    context = TrustOnFirstUseContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=tmp_path / "cert.pem")
    handshake(context, server)  # certifi's bundle is added on top; the server's own issuer is trusted
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(context, server, hostname="other.example.com")
