"""Turn what happens in the daemon into extension events."""

import logging

LOG = logging.getLogger(__name__)


class EventDispatcher:
    """Calls ``on_<event>`` on every extension; one failing never stops others."""

    def __init__(self, extensions=()):
        self.extensions = list(extensions)

    def _fire(self, method, *args):
        for ext in self.extensions:
            try:
                getattr(ext, method)(*args)
            except Exception:
                LOG.exception('Extension %s failed in %s',
                              getattr(ext, 'name', type(ext).__name__), method)

    def node_register(self, node):
        self._fire('on_node_register', node)

    def node_update(self, node):
        self._fire('on_node_update', node)

    def node_lost(self, node):
        self._fire('on_node_lost', node)

    def run_start(self, run):
        self._fire('on_run_start', run)

    def phase_start(self, run, phase, hosts):
        self._fire('on_phase_start', run, phase, hosts)

    def plugin_result(self, result):
        self._fire('on_plugin_result', result)

    def phase_end(self, run, phase, hosts, failures):
        self._fire('on_phase_end', run, phase, hosts, failures)

    def run_end(self, run):
        self._fire('on_run_end', run)
