"""oslo.messaging plumbing shared by the daemon, the agents and the CLI."""

import oslo_messaging as messaging

DAEMON_TOPIC = 'pluginsd'
AGENT_TOPIC = 'pluginsd-agent'
EMBEDDED_URL = 'kombu+memory:////'
ALLOWED_EXMODS = ['pluginsd.exception']


def set_defaults():
    messaging.set_transport_defaults(control_exchange='pluginsd')


def get_transport(conf, url=None):
    set_defaults()
    return messaging.get_rpc_transport(
        conf, url=url, allowed_remote_exmods=ALLOWED_EXMODS
    )


def get_client(
    transport, topic, version, version_cap=None, timeout=None, retry=None
):
    target = messaging.Target(topic=topic, version=version)
    return messaging.get_rpc_client(
        transport,
        target,
        version_cap=version_cap,
        timeout=timeout,
        retry=retry,
    )


def get_server(transport, topic, server, endpoints):
    target = messaging.Target(topic=topic, server=server)
    return messaging.get_rpc_server(
        transport,
        target,
        endpoints,
        executor='threading',
        access_policy=messaging.ExplicitRPCAccessPolicy,
    )


expose = messaging.expose
