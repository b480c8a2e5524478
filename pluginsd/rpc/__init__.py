"""oslo.messaging plumbing shared by the daemon, the agents and the CLI."""

import concurrent.futures
import functools
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
DAEMON_API_VERSION = '1.5'
AGENT_API_VERSION = '1.2'
EMBEDDED_URL = 'kombu+memory:////'
RABBIT = 'oslo_messaging_rabbit'
POOL_OPTS = ('rpc_conn_pool_size', 'conn_pool_min_size')
ALLOWED_EXMODS = ['pluginsd.exception']
# call_until's backoff, jittered: up to 1, 2, 4 ... 20 s between tries.
RETRY_WAIT_FIRST = 1
RETRY_WAIT_MAX = 20
# After each message, oslo.messaging's AMQP listeners wait 1 ms, then 2,
# 4 ... up to 5 s for the next, waking each time to pass on the acks of
# notification listeners (RPC messages are acked on receipt, in the
# listener). At the 17.7 messages/s of 500 idle nodes that re-polling was
# 40 % of a no-op server's CPU (bench/noop_server.py: 5.5 % of a core,
# 3.3 % with 50 ms). A message still arrives at once: a delivery ends the
# wait.
LISTENER_FIRST_WAIT = 0.05
# oslo.messaging's threading executor is futurist's pool: it starts a new
# thread for each message until the pool is full, and each of its idle
# threads wakes up once a second to see whether it should stop. The
# standard library's pool hands work to an idle thread first, and an idle
# thread sleeps until there is work or the pool shuts down. At 500
# simulated nodes (2 RPC threads each) those wake-ups, slowed by the
# contention of a loaded machine, were 30 % of the agents' CPU.
WORKER_POOL = functools.partial(
    concurrent.futures.ThreadPoolExecutor, thread_name_prefix='rpc-worker'
)


def set_defaults():
    messaging.set_transport_defaults(control_exchange='pluginsd')
    _wait_less_often_between_messages()


def _wait_less_often_between_messages():
    try:
        from oslo_messaging._drivers import amqpdriver
    except ImportError:  # another oslo.messaging: keep its own waits
        return
    first = getattr(amqpdriver, 'ACK_REQUEUE_EVERY_SECONDS_MIN', None)
    if isinstance(first, float) and first < LISTENER_FIRST_WAIT:
        amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MIN = LISTENER_FIRST_WAIT


def size_send_pool(conf, size, keep=None):
    """Allow at least ``size`` pooled broker connections that send, and keep
    ``keep`` of them open (all by default): call before the transport is
    made.

    oslo.messaging opens a pooled connection when a thread first needs one
    and closes the idle ones past ``[oslo_messaging_rabbit]
    conn_pool_min_size`` (2) after ``conn_pool_ttl``: the next burst of
    calls opens them again, all at once. Only the defaults change: values
    set in a configuration file win.
    """
    for group, opts in messaging_opts.list_opts():
        for opt in opts:
            if group == RABBIT and opt.name in POOL_OPTS:
                conf.register_opt(opt, group=group)
    rabbit = conf[RABBIT]
    conf.set_default(
        'rpc_conn_pool_size', max(size, rabbit.rpc_conn_pool_size), RABBIT
    )
    keep = size if keep is None else keep
    conf.set_default(
        'conn_pool_min_size',
        min(max(keep, rabbit.conn_pool_min_size), rabbit.rpc_conn_pool_size),
        RABBIT,
    )


def size_reply_pool(conf, other_threads=0):
    """One pooled broker connection per RPC thread that may reply at once:
    ``[DEFAULT] executor_thread_pool_size`` plus ``other_threads`` (the
    threads of other servers on the same transport).

    Past ``[oslo_messaging_rabbit] rpc_conn_pool_size`` (30), oslo.messaging
    opens a new connection for each reply; under load that handshake times
    out and is retried 15 s later (measured: 500 nodes asking for their
    local.conf at once).
    """
    for group, opts in messaging_opts.list_opts():  # before the transport
        for opt in opts:
            if group is None and opt.name == 'executor_thread_pool_size':
                conf.register_opt(opt)
    size_send_pool(conf, conf.executor_thread_pool_size + other_threads)


def open_send_pool(conf, transport):
    """Open the pool's kept connections now, one after another.

    Without this, the first burst of replies (500 nodes asking for their
    local.conf as a run starts) opens them all at the same instant on a
    loaded controller, and their handshakes time out (measured: 27 daemon
    threads reconnecting at once, the broker logging handshake_timeout).
    oslo.messaging has no public way to fill its pool: this uses the
    driver's own pooled-connection context, and does nothing on a driver
    without one. Like an RPC server's start, it waits for a broker that is
    down.
    """
    get_connection = getattr(
        getattr(transport, '_driver', None), '_get_connection', None
    )
    if get_connection is None:
        return 0
    held = []
    try:
        for _ in range(conf[RABBIT].conn_pool_min_size):
            held.append(get_connection())
    finally:
        for connection in held:
            connection.close()  # back into the pool, open
    return len(held)


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
    rpc_server = messaging.get_rpc_server(
        transport,
        target,
        endpoints,
        executor='threading',
        access_policy=messaging.ExplicitRPCAccessPolicy,
    )
    # oslo.messaging makes its pool from this class at start (with
    # max_workers only) and uses submit() and shutdown(wait=True): the
    # standard library's pool has both. A private attribute: another
    # oslo.messaging, or another executor, is left alone.
    executor = getattr(rpc_server, '_executor_cls', None)
    if getattr(executor, '__module__', '').startswith('futurist'):
        rpc_server._executor_cls = WORKER_POOL
    return rpc_server


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
