"""The private RabbitMQ broker fixture works with oslo.messaging, cleans up."""

import os
import socket
import threading
import time

from oslo_config import cfg
import oslo_messaging
from oslo_messaging import opts as om_opts
from oslo_messaging._metrics import client as metrics_client
from oslo_messaging._tracing import client as tracing_client
from oslo_messaging.rpc import dispatcher
import pytest

from tests.functional import rabbit as rabbit_mod


def make_conf(**rabbit_opts):
    conf = cfg.ConfigOpts()
    conf([])
    # oslo.messaging 18.x registers these only on the global cfg.CONF, yet
    # RPCClient reads them from the transport's conf (NoSuchOptError
    # otherwise).
    conf.register_opts(
        tracing_client.oslo_messaging_tracing, group='oslo_messaging_tracing'
    )
    conf.register_opts(
        metrics_client.oslo_messaging_metrics, group='oslo_messaging_metrics'
    )
    # The driver reads its options when the transport is built, so register
    # and override them before get_rpc_transport.
    for group, opts in om_opts.list_opts():
        if group == 'oslo_messaging_rabbit':
            conf.register_opts(opts, group=group)
    for name, value in rabbit_opts.items():
        conf.set_override(name, value, group='oslo_messaging_rabbit')
    return conf


class Endpoint:
    def __init__(self):
        self.received = []
        self.lock = threading.Lock()

    def ping(self, ctxt, value):
        return f'pong {value}'

    def record(self, ctxt, n):
        with self.lock:
            self.received.append(n)


def rpc_server(transport, topic, endpoint):
    return oslo_messaging.get_rpc_server(
        transport,
        oslo_messaging.Target(topic=topic, server='s1'),
        [endpoint],
        executor='threading',
        access_policy=dispatcher.DefaultRPCAccessPolicy,
    )


@pytest.mark.timeout(180)
def test_rpc_call(rabbit):
    transport = oslo_messaging.get_rpc_transport(make_conf(), url=rabbit.url)
    server = rpc_server(transport, 'fixture-ping', Endpoint())
    server.start()
    try:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic='fixture-ping'), timeout=30
        )
        assert client.call({}, 'ping', value='x') == 'pong x'
    finally:
        rabbit_mod.stop_server(server)
        rabbit_mod.close_transport(transport)


def queue_messages(rabbit, vhost, queue):
    out = rabbit.ctl('list_queues', '-q', '-p', vhost, 'name', 'messages')
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == queue:
            return int(fields[1])
    return None


@pytest.mark.timeout(180)
def test_durable_cast_survives_restart(rabbit, rabbit_vhost):
    topic, count = 'fixture-durable', 5
    conf = make_conf(amqp_durable_queues=True)
    vhost = rabbit_vhost.rsplit('/', 1)[1]

    # A cast to a topic without a queue is dropped: let a server declare it.
    transport = oslo_messaging.get_rpc_transport(conf, url=rabbit_vhost)
    try:
        server = rpc_server(transport, topic, Endpoint())
        server.start()
        # the durable queue stays (amqp_auto_delete=False)
        server.stop()
        server.wait()
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=topic)
        )
        for n in range(count):
            client.cast({}, 'record', n=n)
        # Publishing is asynchronous: make sure they sit in the queue before
        # the restart, so a loss can only be the restart's fault.
        deadline = time.monotonic() + 30
        while queue_messages(rabbit, vhost, topic) != count:
            assert time.monotonic() < deadline, 'casts never reached the queue'
            time.sleep(0.5)
    finally:
        rabbit_mod.close_transport(transport)

    rabbit.restart()

    endpoint = Endpoint()
    transport = oslo_messaging.get_rpc_transport(conf, url=rabbit_vhost)
    server = rpc_server(transport, topic, endpoint)
    server.start()
    try:
        deadline = time.monotonic() + 60
        while len(endpoint.received) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(endpoint.received) == list(range(count))
    finally:
        rabbit_mod.stop_server(server)
        rabbit_mod.close_transport(transport)


def broker_processes(broker):
    """Live processes of this broker.

    beam's command line does not carry the node name (rabbit starts
    distribution itself from RABBITMQ_NODENAME), so `pgrep -f NODE` would
    find nothing even while it runs: look in the environment instead.
    """
    needle = f'RABBITMQ_NODENAME={broker.node}\0'.encode()
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/environ', 'rb') as f:
                environ = f.read() + b'\0'
            with open(f'/proc/{pid}/stat', 'rb') as f:
                zombie = f.read().rsplit(b')', 1)[1].split()[0] == b'Z'
        except OSError:
            continue
        if needle in environ and not zombie and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def listen_addresses(port):
    """Addresses listening on TCP port, from /proc/net/tcp{,6}."""
    found = set()
    for name in ('tcp', 'tcp6'):
        try:
            with open(f'/proc/net/{name}') as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, hexport = local.split(':')
            if state == '0A' and int(hexport, 16) == port:  # 0A = LISTEN
                found.add(addr)
    return found


LOOPBACK = {'0100007F', '00000000000000000000000001000000'}  # 127.0.0.1, ::1


@pytest.mark.timeout(180)
def test_stop_leaves_nothing_behind(tmp_path):
    if not os.path.exists(rabbit_mod.SERVER):
        pytest.skip(f'{rabbit_mod.SERVER} is missing')
    broker = rabbit_mod.RabbitBroker(tmp_path)
    try:
        broker.start()
        assert broker_processes(broker)  # so the final check is not vacuous
        for port in (broker.port, broker.epmd_port, broker.dist_port):
            addresses = listen_addresses(port)
            assert addresses and addresses <= LOOPBACK, (port, addresses)

        broker.kill()  # a crash, then recovery on the same dir
        assert not broker.running
        broker.start()
        broker.stop()
        broker.stop()  # idempotent
    finally:
        broker.stop()

    assert broker_processes(broker) == []
    with pytest.raises(OSError):  # the private epmd is gone too
        socket.create_connection(
            ('127.0.0.1', broker.epmd_port), timeout=2
        ).close()
