"""Join tokens and node certificates as values: which token admits a node
now, and which certificate dvn still allows (controller/trust.py)."""

import datetime
import types

import pytest
from cryptography import x509

from controller import trust
from controller.pki import Ca
from ovsdb.pki import new_key_and_request

NOW = 1_800_000_000_000


def token_row(secret="0123456789abcdef", **over):
    values = dict(token_id="abc123", digest=trust.digest(secret), node=[], description="", created_at=NOW - 1000,
                  expires_at=NOW + 60_000, uses=1, used=0, revoked=False)
    values.update(over)
    return types.SimpleNamespace(**values)


def test_a_new_token_has_kubeadms_shape_and_only_its_digest_is_kept():
    token_id, secret = trust.new_token()
    assert trust.split("%s.%s" % (token_id, secret)) == (token_id, secret)
    assert trust.TOKEN.match("%s.%s" % (token_id, secret))
    assert trust.digest(secret) != secret and len(trust.digest(secret)) == 64
    assert len({trust.new_token() for _ in range(100)}) == 100


@pytest.mark.parametrize("text", ["", "abc123", "abc123.", "ABC123.0123456789abcdef", "abc123.0123456789abcde",
                                  "abc123.0123456789abcdef\n", None])
def test_a_malformed_token_is_refused_without_repeating_it(text):
    with pytest.raises(trust.Refused) as err:
        trust.split(text)
    assert not text or text not in str(err.value)


@pytest.mark.parametrize("row,secret,why", [
    (None, "0123456789abcdef", "no join token abc123"),
    (token_row(), "0123456789abcdee", "the secret of join token abc123 is wrong"),
    (token_row(revoked=True), "0123456789abcdef", "join token abc123 was revoked"),
    (token_row(expires_at=NOW), "0123456789abcdef", "join token abc123 expired at 2027-01-15T08:00:00Z"),
    (token_row(uses=2, used=2), "0123456789abcdef", "join token abc123 is used up (2 of 2 admissions)"),
])
def test_each_refusal_of_a_token_says_why_and_never_the_secret(row, secret, why):
    with pytest.raises(trust.Refused) as err:
        trust.check_token(row, "abc123", secret, NOW)
    assert str(err.value) == why and secret not in str(err.value)


def test_a_usable_token_admits():
    trust.check_token(token_row(uses=3, used=2), "abc123", "0123456789abcdef", NOW)
    view = trust.token_view(token_row(uses=3, used=2), NOW)
    assert view["usable"] and "digest" not in view and "secret" not in view


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return Ca(str(tmp_path_factory.mktemp("ca"))).ensure()


def admitted(ca, name):
    request = x509.load_pem_x509_csr(new_key_and_request(name)[1].encode())
    cert = ca.admit(request, name)
    record = types.SimpleNamespace(node=name, serial="%x" % cert.serial_number, revoked=False,
                                   fingerprint=trust.fingerprint(cert))
    return cert, record


def test_an_admitted_certificate_is_allowed_for_its_own_name_only(ca):
    cert, record = admitted(ca, "hv1")
    ca_cert = ca._load()[1]
    assert trust.certificate_verdict(cert, ca_cert, [record], _now(), None) == "hv1"
    assert trust.certificate_verdict(cert, ca_cert, [record], _now(), "hv1") == "hv1"
    with pytest.raises(trust.Refused, match="a certificate of node hv1, presented by one that claims to be hv2"):
        trust.certificate_verdict(cert, ca_cert, [record], _now(), "hv2")


def _now():
    return int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)


def test_a_revoked_unrecorded_or_foreign_certificate_is_refused(ca, tmp_path):
    cert, record = admitted(ca, "hv1")
    ca_cert = ca._load()[1]
    record.revoked = True
    with pytest.raises(trust.Refused, match="is revoked"):
        trust.certificate_verdict(cert, ca_cert, [record], _now())
    with pytest.raises(trust.Refused, match="was not issued by an admission"):
        trust.certificate_verdict(cert, ca_cert, [], _now())
    other = Ca(str(tmp_path)).ensure()
    foreign, foreign_record = admitted(other, "hv1")
    with pytest.raises(trust.Refused, match="not from dvn's CA"):
        trust.certificate_verdict(foreign, ca_cert, [foreign_record], _now())
    with pytest.raises(trust.Refused, match="not valid now"):
        trust.certificate_verdict(cert, ca_cert, [record], _now() + 900 * 24 * 3600 * 1000)


def test_trust_allowed_takes_pem_or_der_and_answers_why_not(ca):
    cert, record = admitted(ca, "hv3")
    nb = types.SimpleNamespace(rows=lambda table: [record] if table == "NodeCertificate" else [])
    t = trust.Trust(nb, ca)
    from cryptography.hazmat.primitives import serialization
    assert t.allowed(cert.public_bytes(serialization.Encoding.DER)) == ("hv3", None)
    assert t.allowed(cert.public_bytes(serialization.Encoding.PEM).decode(), node="hv3") == ("hv3", None)
    assert t.allowed(b"junk")[0] is None
    assert trust.Trust(nb, None).allowed(cert) == (None, "the certificate is not from dvn's CA")


def _cert(node, revoked):
    return types.SimpleNamespace(node=node, revoked=revoked)


@pytest.mark.parametrize("records,revoked", [
    ([], set()),
    ([_cert("hv1", False)], set()),
    ([_cert("hv1", True)], {"hv1"}),
    ([_cert("hv1", True), _cert("hv1", True), _cert("hv2", False)], {"hv1"}),
    ([_cert("hv1", True), _cert("hv1", False)], set()),       # a new token admitted it again
    ([_cert("hv1", False), _cert("hv1", True)], set()),       # (in any order)
])
def test_a_node_is_revoked_when_every_certificate_it_was_issued_is(records, revoked):
    assert trust.revoked_nodes(records) == revoked
