"""oslo.messaging plumbing shared by the daemon, the agents and the CLI."""

import oslo_messaging as messaging

DAEMON_TOPIC = 'pluginsd'
# Heartbeats and results only: never queued behind planning, bundles, log
# fetches or long polls on DAEMON_TOPIC (its own server and thread pool).
LIVENESS_TOPIC = 'pluginsd-liveness'
# Calls that may take long (a dry-run plan fetches plugins, a log comes
# from a node, a follower's long poll waits for a change): a lane of their
# own, so that none of them holds a thread of DAEMON_TOPIC.
LONG_CALL_TOPIC = 'pluginsd-long-calls'
AGENT_TOPIC = 'pluginsd-agent'

# One version per API, used by its endpoint (the manager's target) and by
# its client (the default cap): tests/unit/test_rpc_api.py ties them.
DAEMON_API_VERSION = '1.4'
AGENT_API_VERSION = '1.1'
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
    """An RPC server; ``start(override_pool_size=N)`` sizes its lane."""
    target = messaging.Target(topic=topic, server=server)
    return messaging.get_rpc_server(
        transport,
        target,
        endpoints,
        executor='threading',
        access_policy=messaging.ExplicitRPCAccessPolicy,
    )


expose = messaging.expose
