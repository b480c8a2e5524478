"""Process plumbing for the daemon and the agent: config, logs, signals.

pluginsd runs its services on plain threads (no eventlet, no worker
processes), so this replaces oslo.service's launcher with the few things it
did for us: SIGTERM/SIGINT stop cleanly, SIGHUP reloads mutable options,
systemd hears READY=1 / STOPPING=1 when it started us with Type=notify.
"""

import gc
import logging as py_logging
import os
import signal
import socket
import sys
import threading
import time

from oslo_config import cfg
from oslo_log import log as logging

from pluginsd import conf as pluginsd_conf
from pluginsd import exception
from pluginsd import rpc
from pluginsd import version

LOG = logging.getLogger(__name__)


def private_files():
    """Files and directories this process makes are 0600 and 0700.

    They hold local.conf copies (passwords), logs, keys and state; the
    user's umask does not matter. Bash sessions set DevStack's umask 022
    for what plugins install (driver.sh), as stack.sh does.
    """
    os.umask(0o077)


def prepare(argv, prog, setup_logging=True):
    """Parse the command line and config files; set up logging."""
    private_files()
    conf = cfg.ConfigOpts()
    pluginsd_conf.register_all(conf)
    logging.register_options(conf)
    rpc.set_defaults()
    conf(argv, project='pluginsd', prog=prog, version=version.VERSION)
    if setup_logging:
        logging.setup(conf, 'pluginsd')
    py_logging.getLogger('oslo.messaging._drivers.impl_rabbit').setLevel(
        py_logging.WARNING
    )
    py_logging.getLogger('amqp').addFilter(_closing_channel_noise)
    return conf


def _closing_channel_noise(record):
    """Drop py-amqp's warning at every clean stop ("Received method ...
    during closing channel 1. This method will be ignored"): the broker's
    answer to a close it asked for, nothing to act on.
    """
    return 'during closing channel' not in str(record.msg)


def sd_notify(state):
    address = os.environ.get('NOTIFY_SOCKET')
    if not address:
        return
    if address.startswith('@'):
        address = '\0' + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError as e:
            LOG.warning('sd_notify %s failed: %s', state, e)


def freeze_startup_objects():
    """Keep what the start made out of the garbage collector's walks.

    Modules, options, connections and threads live as long as the process;
    frozen, every later collection walks only what the work makes
    (measured with bench/bench.py: about a tenth of the agents' CPU).
    """
    gc.collect()
    gc.freeze()


def serve(conf, service):
    """Run ``service`` until SIGTERM or SIGINT; SIGHUP reloads the config.

    The handlers only set flags: reloading (file reads, logging, locks)
    happens in this loop, never inside a signal handler, which may have
    interrupted a thread holding any lock.
    """
    stop = threading.Event()
    wake = threading.Event()
    reload = threading.Event()

    def on_stop(signum, _frame):
        stop.set()
        wake.set()

    def on_hup(_signum, _frame):
        reload.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    service.start()
    freeze_startup_objects()
    conf.log_opt_values(LOG, py_logging.DEBUG)
    sd_notify('READY=1')
    status = 0
    while True:
        wake.wait(1.0)
        wake.clear()
        if stop.is_set():
            LOG.info('Stop signal received: stopping')
            break
        if reload.is_set():
            reload.clear()
            LOG.info('SIGHUP: reloading mutable options')
            conf.mutate_config_files()
        if service.broker.down_too_long():
            LOG.error(
                'The message broker has been unreachable for more than '
                '%s s ([DEFAULT] broker_down_exit_after): exiting',
                conf.broker_down_exit_after,
            )
            status = 1
            break
    sd_notify('STOPPING=1')
    service.stop()
    return status


class BrokerWatch:
    """When did a message last reach the broker? Services report it."""

    def __init__(self, conf):
        self.conf = conf
        self.last_ok = time.monotonic()

    def ok(self):
        self.last_ok = time.monotonic()

    def down_too_long(self):
        limit = self.conf.broker_down_exit_after
        return bool(limit) and time.monotonic() - self.last_ok > limit


def run_main(main):
    """Run a service main; bad configuration is one clear line, exit 2."""
    try:
        sys.exit(main())
    except (exception.PluginsdException, cfg.Error) as e:
        print(f'{os.path.basename(sys.argv[0])}: {e}', file=sys.stderr)
        sys.exit(2)
