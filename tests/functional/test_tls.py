"""TLS to the broker: a CA made here, a private broker with a TLS listener.

The daemon, an agent and pluginsctl connect with ``ssl_ca_file`` (so the
certificate chain and the broker's host name are checked) and run a stack;
a client whose URL names a host the certificate does not is refused.
"""

import datetime
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import kombu
import pytest

from tests import gitrepos
from tests.functional import cluster as cluster_mod
from tests.functional import rabbit as rabbit_mod


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path, key):
    with open(path, 'wb') as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def make_ca(directory):
    """A CA and a server certificate for localhost only (not 127.0.0.1)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = dict(
        not_valid_before=now - datetime.timedelta(minutes=5),
        not_valid_after=now + datetime.timedelta(days=1),
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(
            subject_name=_name('pluginsd test CA'),
            issuer_name=_name('pluginsd test CA'),
            public_key=ca_key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder(
            subject_name=_name('localhost'),
            issuer_name=ca.subject,
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName('localhost')]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        name: os.path.join(directory, f'{name}.pem')
        for name in ('cacert', 'cert', 'key')
    }
    for name, obj in (('cacert', ca), ('cert', cert)):
        with open(paths[name], 'wb') as f:
            f.write(obj.public_bytes(serialization.Encoding.PEM))
    _write_key(paths['key'], key)
    # The broker runs as this user; it must read its key.
    for path in paths.values():
        os.chmod(path, 0o600)
    return paths


@pytest.fixture
def tls_broker(tmp_path):
    if not os.path.exists(rabbit_mod.SERVER):
        pytest.skip('rabbitmq-server is not installed')
    certs = make_ca(str(tmp_path))
    tls_port = rabbit_mod.pick_port()
    broker = rabbit_mod.RabbitBroker(
        tmp_path / 'rabbit', tls=dict(certs, port=tls_port)
    )
    broker.start()
    try:
        yield broker, certs
    finally:
        broker.stop()


@pytest.mark.timeout(180)
def test_daemon_agent_and_cli_over_tls(tmp_path, tls_broker):
    broker, certs = tls_broker
    port = broker.tls['port']
    url = (
        f'rabbit://{broker.user}:{broker.password}@localhost:{port}'
        f'/{broker.vhost}'
    )
    tls = {'ssl': 'True', 'ssl_ca_file': certs['cacert']}
    trace = str(tmp_path / 'trace')
    repos = tmp_path / 'repos'
    plugin = gitrepos.make_repo(
        str(repos / 'hello'),
        {
            'devstack/settings': 'define_plugin hello\n',
            'devstack/plugin.sh': 'echo "$PLUGINSD_HOST|hello|$*" >> '
            '"$TEST_TRACE"\n',
        },
    )
    c = cluster_mod.Cluster(
        tmp_path / 'cluster',
        url,
        [str(repos) + '/'],
        env={'TEST_TRACE': trace},
        oslo_messaging_rabbit=tls,
    )
    c.add_agent('cmp1', 'compute', oslo_messaging_rabbit=tls)
    try:
        c.start()
        local_conf = tmp_path / 'local.conf'
        local_conf.write_text(
            f'[[local|localrc]]\nenable_plugin hello {plugin}\n'
        )
        proc = c.ctl('stack', str(local_conf))
        assert proc.returncode == 0, proc.stderr
        assert [t[:3] for t in gitrepos.read_trace(trace)] == [
            ['cmp1', 'hello', f'stack {phase}']
            for phase in (
                'pre-install',
                'install',
                'post-config',
                'extra',
                'test-config',
            )
        ]
        # The plain port is not what they used: the daemon's connection
        # is on the TLS port.
        connections = broker.ctl('list_connections', 'port', 'ssl')
        assert f'{port}\ttrue' in connections

        # The certificate names localhost, not 127.0.0.1: the same TLS
        # parameters oslo.messaging gives kombu refuse that host.
        for host, ok in (('localhost', True), ('127.0.0.1', False)):
            connection = kombu.Connection(
                f'amqp://{broker.user}:{broker.password}@{host}:{port}/'
                f'{broker.vhost}',
                ssl={
                    'ca_certs': certs['cacert'],
                    'cert_reqs': ssl.CERT_REQUIRED,
                    'server_hostname': host,
                },
                connect_timeout=10,
            )
            try:
                if ok:
                    connection.connect()
                else:
                    with pytest.raises(ssl.SSLCertVerificationError) as err:
                        connection.connect()
                    assert 'IP address mismatch' in str(err.value)
            finally:
                connection.release()
    finally:
        c.stop()
