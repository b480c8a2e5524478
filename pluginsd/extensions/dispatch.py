"""Turn what happens in the daemon into extension events and notifications.

Extensions get plain event objects (:mod:`pluginsd.extensions.events`);
services that are not extensions can follow the same events as
oslo.messaging notifications (``pluginsd.run.start``, ``pluginsd.phase.end``
...), switched on by the standard ``[oslo_messaging_notifications]`` options.
"""

import dataclasses
import logging
import queue
import threading

import oslo_messaging as messaging

from pluginsd.extensions import events

LOG = logging.getLogger(__name__)


class Notifications:
    def __init__(self, conf, url=None):
        transport = messaging.get_notification_transport(conf, url=url)
        self.notifier = messaging.Notifier(
            transport, publisher_id=f'pluginsd.{conf.host}'
        )
        # is_enabled() is true for an empty driver list; only configured
        # drivers mean someone listens.
        self.enabled = (
            bool(conf.oslo_messaging_notifications.driver)
            and self.notifier.is_enabled()
        )

    def send(self, event_type, payload, error=False):
        if self.enabled:
            # Notifier never raises: it logs what it could not send.
            send = self.notifier.error if error else self.notifier.info
            send({}, f'pluginsd.{event_type}', dataclasses.asdict(payload))


class EventDispatcher:
    """Calls ``on_<event>`` on every extension; a failing one stops none.

    Off the hot paths: events go into a bounded queue that one thread
    empties in order, so a slow extension never delays storing results,
    acknowledgements or the next phase. ``stop()`` delivers what is queued.
    """

    QUEUE_SIZE = 10000

    def __init__(self, extensions=(), notifications=None):
        self.extensions = list(extensions)
        self.notifications = notifications
        self._queue = queue.Queue(self.QUEUE_SIZE)
        self._thread = None
        self._dropped = 0
        if self.extensions or (notifications and notifications.enabled):
            self._thread = threading.Thread(
                target=self._deliver_loop, daemon=True, name='extension-events'
            )
            self._thread.start()

    def stop(self, timeout=30):
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _deliver_loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._deliver(*item)

    def _fire(self, method, event_type, payload, error=False):
        if self._thread is None:
            return  # nobody listens
        try:
            self._queue.put_nowait((method, event_type, payload, error))
        except queue.Full:
            self._dropped += 1
            if self._dropped % 1000 == 1:
                LOG.warning(
                    'Extensions are too slow: %d events dropped so far',
                    self._dropped,
                )

    def _deliver(self, method, event_type, payload, error):
        for ext in self.extensions:
            try:
                getattr(ext, method)(payload)
            except Exception:
                LOG.exception(
                    'Extension %s failed in %s',
                    getattr(ext, 'name', type(ext).__name__),
                    method,
                )
        if self.notifications:
            self.notifications.send(event_type, payload, error)

    def node_register(self, node):
        self._fire('on_node_register', 'node.register', events.node(node))

    def node_update(self, node):
        self._fire('on_node_update', 'node.update', events.node(node))

    def node_lost(self, node):
        self._fire('on_node_lost', 'node.lost', events.node(node), error=True)

    def run_start(self, run):
        self._fire('on_run_start', 'run.start', events.run(run))

    def phase_start(self, run, phase, hosts):
        self._fire(
            'on_phase_start', 'phase.start', events.phase(run, phase, hosts)
        )

    def plugin_result(self, result):
        payload = events.result(result)
        self._fire(
            'on_plugin_result',
            'plugin.result',
            payload,
            error=payload.status not in ('ok', 'skipped'),
        )

    def phase_end(self, run, phase, hosts, failures):
        self._fire(
            'on_phase_end',
            'phase.end',
            events.phase(run, phase, hosts, failures),
            error=bool(failures),
        )

    def run_end(self, run):
        self._fire(
            'on_run_end',
            'run.end',
            events.run(run),
            error=run['state'] != 'completed',
        )

    def run_delete(self, run):
        self._fire('on_run_delete', 'run.delete', events.run(run))
