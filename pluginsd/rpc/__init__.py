"""oslo.messaging plumbing shared by the daemon, the agents and the CLI."""

import logging
import threading

import oslo_messaging as messaging
from oslo_messaging import opts as messaging_opts
import tenacity

from pluginsd import exception

LOG = logging.getLogger(__name__)

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
RABBIT = 'oslo_messaging_rabbit'
ALLOWED_EXMODS = ['pluginsd.exception']
# call_until's backoff, jittered: up to 1, 2, 4 ... 20 s between tries.
RETRY_WAIT_FIRST = 1
RETRY_WAIT_MAX = 20


def set_defaults():
    messaging.set_transport_defaults(control_exchange='pluginsd')


def size_reply_pool(conf, other_threads=0):
    """One pooled broker connection per RPC thread that may reply at once:
    ``[DEFAULT] executor_thread_pool_size`` plus ``other_threads`` (the
    threads of other servers on the same transport).

    Past ``[oslo_messaging_rabbit] rpc_conn_pool_size`` (30), oslo.messaging
    opens a new connection for each reply; under load that handshake times
    out and is retried 15 s later (measured: 500 nodes asking for their
    local.conf at once). Only the default changes: a value set in a
    configuration file wins.
    """
    wanted = {None: 'executor_thread_pool_size', RABBIT: 'rpc_conn_pool_size'}
    for group, opts in messaging_opts.list_opts():  # before the transport
        for opt in opts:
            if wanted.get(group) == opt.name:
                conf.register_opt(opt, group=group)
    threads = conf.executor_thread_pool_size + other_threads
    conf.set_default(
        'rpc_conn_pool_size',
        max(threads, conf[RABBIT].rpc_conn_pool_size),
        group=RABBIT,
    )


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


def call_until(call, time_left, what, stop=None):
    """``call()``, tried again on a timeout while ``time_left()`` > 0.

    For a node's calls during a phase: under load (500 nodes asking at
    once) a reply may come after the call's timeout, and one lost reply
    must not cost the phase. A call that waited so long for the broker
    that the daemon refused it as stale is tried again too: each try is a
    new call, signed anew. ``stop()`` raises to give up early (a cancel).
    """

    def before_sleep(state):
        LOG.warning(
            '%s: %s (try %d); trying again',
            what,
            exception.without_traceback(state.outcome.exception()),
            state.attempt_number,
        )
        if stop:
            stop()

    backoff = tenacity.wait_random_exponential(
        multiplier=RETRY_WAIT_FIRST, max=RETRY_WAIT_MAX
    )
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(
            (messaging.MessagingTimeout, exception.StaleMessage)
        ),
        wait=lambda state: max(min(backoff(state), time_left()), 0),
        stop=lambda state: time_left() <= 0,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(call)


def stop_servers(servers):
    """Stop RPC servers together (their in-flight calls go on: ``wait()``).

    Each listener stops only when its poll times out (up to 5 s in
    oslo.messaging): one after another, the waits add up.
    """
    stoppers = [
        threading.Thread(target=server.stop, name='rpc-server-stop')
        for server in servers
    ]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()


expose = messaging.expose
