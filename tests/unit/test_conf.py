"""Configuration objects stay independent of each other; defaults agree."""

from pluginsd import conf as pluginsd_conf
from pluginsd import rpc


def test_an_override_does_not_leak_into_another_config():
    # oslo.config keeps overrides on the OptGroup object; two configs built
    # from the same modules must not share one (the all-in-one tests make
    # several configs in one process).
    first, second = pluginsd_conf.new_conf(), pluginsd_conf.new_conf()
    for conf in (first, second):
        conf([], default_config_files=[])
    for group, name, value in [
        ('runner', 'extras_dir', '/tmp/extras'),
        ('agent', 'dest', '/srv/dest'),
        ('security', 'key_file', '/tmp/k.key'),
        ('daemon', 'phase_timeout', 7),
    ]:
        default = getattr(getattr(second, group), name)
        first.set_override(name, value, group=group)
        assert getattr(getattr(first, group), name) == value
        assert getattr(getattr(second, group), name) == default


def test_the_daemon_pools_a_broker_connection_per_replying_thread(tmp_path):
    conf = pluginsd_conf.new_conf()
    conf([], default_config_files=[])
    rpc.size_reply_pool(conf, 24)
    rabbit = conf.oslo_messaging_rabbit
    assert rabbit.rpc_conn_pool_size == 64 + 24
    assert rabbit.conn_pool_min_size == 64 + 24  # all kept open
    rpc.size_reply_pool(conf, 24)  # again (a restart in-process): the same
    assert (rabbit.rpc_conn_pool_size, rabbit.conn_pool_min_size) == (88, 88)
    # A value from a configuration file wins.
    path = tmp_path / 'p.conf'
    path.write_text('[oslo_messaging_rabbit]\nrpc_conn_pool_size = 12\n')
    conf = pluginsd_conf.new_conf()
    conf(['--config-file', str(path)], default_config_files=[])
    rpc.size_reply_pool(conf, 24)
    assert conf.oslo_messaging_rabbit.rpc_conn_pool_size == 12
    # Never more kept than allowed (oslo.messaging refuses that).
    assert conf.oslo_messaging_rabbit.conn_pool_min_size == 12


def test_a_node_keeps_its_senders_connections_open():
    conf = pluginsd_conf.new_conf()
    conf([], default_config_files=[])
    rpc.size_send_pool(conf, 5)
    rabbit = conf.oslo_messaging_rabbit
    assert (rabbit.rpc_conn_pool_size, rabbit.conn_pool_min_size) == (30, 5)
    rpc.size_send_pool(conf, 40, keep=6)
    assert (rabbit.rpc_conn_pool_size, rabbit.conn_pool_min_size) == (40, 6)


def test_the_pool_is_opened_before_the_first_burst():
    conf = pluginsd_conf.new_conf()
    conf([], default_config_files=[])
    rpc.size_send_pool(conf, 4)
    transport = rpc.get_transport(conf, url=rpc.EMBEDDED_URL)
    try:
        assert rpc.open_send_pool(conf, transport) == 4
        # Open and idle in the pool: the next four sends open nothing.
        pool = transport._driver._connection_pool
        assert (pool._current_size, len(pool._items)) == (4, 4)
    finally:
        transport.cleanup()


def test_one_missed_heartbeat_loses_no_node_by_default():
    conf = pluginsd_conf.new_conf()
    conf([], default_config_files=[])
    # Neutron's pair: a heartbeat every 30 s, lost after 75 s of silence.
    assert conf.agent.heartbeat_interval == 30
    assert conf.daemon.agent_down_time >= 2 * conf.agent.heartbeat_interval
