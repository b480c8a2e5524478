"""Talking to the daemon from the CLI: bounded waits, errors in plain words.

Every call is bounded by ``--timeout``, connecting included: the broker is
probed first (a TCP connection; then, once the operator key is found, it
must answer the AMQP header, where oslo.messaging would wait forever), the
RPC call itself may reconnect only a few times, and a :class:`Deadline`
ends the process if the first answer is late all the same.
"""

import os
import re
import socket
import sys
import threading
import time

import oslo_messaging as messaging

from pluginsd import exception
from pluginsd import rpc

AMQP_PORT = 5672
AMQP_HEADER = b'AMQP\x00\x00\x09\x01'
# Connection attempts oslo.messaging may make for one call once the broker
# answered the probe (a broker restarting under us).
CALL_RETRIES = 2


class BrokerUnreachable(exception.PluginsdException):
    pass


class DaemonTimeout(exception.PluginsdException):
    pass


def process_age():
    """Seconds since this process started (0 where /proc cannot say).

    --timeout bounds the whole wait the user sees, start-up included.
    """
    try:
        with open('/proc/self/stat') as f:
            # Field 22, after the parenthesised command name.
            started = int(f.read().rpartition(')')[2].split()[19])
        with open('/proc/uptime') as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started / os.sysconf('SC_CLK_TCK'))
    except (OSError, ValueError, IndexError):
        return 0.0


class Deadline:
    """Ends this process with a one-line error unless met in time.

    oslo.messaging's call timeout counts only the wait for the reply:
    connecting and declaring the reply queue come on top, and take seconds
    on a loaded machine. This bounds the whole wait the user sees.
    """

    def __init__(self, seconds, message, exit_code):
        self._message = message  # a callable: the error to print
        self._exit_code = exit_code
        self._reported = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self):
        if self._reported.acquire(blocking=False):
            try:
                # One line, as cliff prints the errors of commands.
                sys.stderr.write(f'{self._message()}\n')
                sys.stderr.flush()
            finally:
                os._exit(self._exit_code)

    def met(self):
        # Blocks for good once the deadline has fired: the process is
        # leaving with that error, and says nothing else.
        self._reported.acquire()
        self._timer.cancel()


def url_source(conf):
    """Where transport_url came from, for messages: a file, or nowhere."""
    if conf is None:
        return 'transport_url of the caller'
    try:
        where = conf.get_location('transport_url')
    except Exception:  # an oslo.config too old to say
        where = None
    if where is not None and where.detail:
        return f'transport_url from {where.detail}'
    if where is not None and where.location.name == 'opt_default':
        if conf.config_file:
            return 'transport_url not set in ' + ', '.join(conf.config_file)
        return 'transport_url not set and no config file (--config-file)'
    return 'transport_url from the environment or command line'


def broker_hosts(conf):
    url = messaging.TransportURL.parse(conf, conf.transport_url)
    hosts = [
        (h.hostname or 'localhost', h.port or AMQP_PORT) for h in url.hosts
    ]
    return url.transport, hosts or [('localhost', AMQP_PORT)]


def probe_broker(conf, deadline, greet=False):
    """Raise BrokerUnreachable unless some broker host takes a connection
    (and, with ``greet``, answers the AMQP header as a broker does).
    """
    scheme, hosts = broker_hosts(conf)
    if scheme not in ('rabbit', 'amqp', 'kombu+amqp', 'kombu+rabbit'):
        return  # kombu+memory (all-in-one) and others: nothing to probe
    greet = greet and scheme in ('rabbit', 'kombu+rabbit')
    greet = greet and not _uses_tls(conf)
    errors = []
    for host, port in hosts:
        left = max(0.1, deadline - time.monotonic())
        try:
            with socket.create_connection((host, port), timeout=left) as s:
                if greet:
                    _expect_amqp_greeting(s, deadline)
                return
        except TimeoutError:
            errors.append('it took the connection but said nothing in time')
        except OSError as e:
            errors.append(e.strerror or str(e))
    where = ', '.join(f'{h}:{p}' for h, p in hosts)
    raise BrokerUnreachable(
        f'cannot reach the broker at {where} ({url_source(conf)}): '
        f'{errors[-1]}'
    )


def _uses_tls(conf):
    try:
        return bool(conf.oslo_messaging_rabbit.ssl)
    except Exception:  # the rabbit options are not registered
        return False


def _expect_amqp_greeting(sock, deadline):
    """A broker answers the AMQP 0-9-1 header at once (Connection.Start).

    Something that takes the connection and says nothing (a broker too
    busy to answer, another service on the port) would hold oslo.messaging
    past any timeout: it is said here instead.
    """
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    sock.sendall(AMQP_HEADER)
    if not sock.recv(1):
        raise OSError('it closed the connection at once')


# Requests a daemon that is only slow may still carry out after the
# caller gave up waiting: what to look at before asking again.
MAY_STILL_HAPPEN = {
    'start_run': 'the run may still start (pluginsctl run list shows it)',
    'retry_run': 'the run may still be retried (pluginsctl run show RUN)',
    'cancel_run': 'the run may still be cancelled (pluginsctl run show RUN)',
    'delete_run': 'the run may still be deleted (pluginsctl run list)',
    'accept_node': 'the node may still be accepted (pluginsctl node list)',
    'reject_node': 'the node may still be rejected (pluginsctl node list)',
    'delete_node': 'the node may still be deleted (pluginsctl node list)',
}


def explain(error, conf, timeout, method=None):
    """A one-line PluginsdException for an error of an RPC call."""
    if isinstance(error, (BrokerUnreachable, DaemonTimeout)):
        return error
    text = str(error)
    if isinstance(error, messaging.MessagingTimeout):
        message = (
            f'the daemon did not answer within {timeout:g} s: is pluginsd '
            f'running on topic {rpc.DAEMON_TOPIC} ({url_source(conf)})?'
        )
        if method in MAY_STILL_HAPPEN:
            message += f' If it is only busy, {MAY_STILL_HAPPEN[method]}.'
        return DaemonTimeout(message)
    if 'PRECONDITION_FAILED' in text and 'durable' in text:
        # The daemon declared its exchange and queues durable and we did not
        # (or the other way round): the broker refuses the redeclaration.
        current = re.search(r"current is '(\w+)'", text)
        want = current.group(1) if current else 'true'
        return exception.ConfigError(
            reason='the broker has the exchanges with another durability '
            'than this configuration: set [oslo_messaging_rabbit] '
            f'amqp_durable_queues = {want} as in the daemon\'s configuration'
        )
    if isinstance(error, messaging.MessageDeliveryFailure):
        _, hosts = broker_hosts(conf)
        where = ', '.join(f'{h}:{p}' for h, p in hosts)
        return BrokerUnreachable(
            f'cannot talk to the broker at {where} ({url_source(conf)}): '
            + first_part(text)
        )
    return exception.PluginsdException(exception.without_traceback(text))


def first_part(text):
    text = exception.without_traceback(text)
    return text.splitlines()[0] if text else text


def missing_key(path):
    """The error for a missing operator key: every request (reads too)
    says what is missing and how to make it.
    """
    return exception.ConfigError(
        reason=f'no operator key at {path} ([security] operator_key_file): '
        f'make one with "pluginsd-manage key create --output {path}" and '
        f'have an admin add "reader:{path}.pub" (or admin:) to the '
        "daemon's [security] operator_keys"
    )
