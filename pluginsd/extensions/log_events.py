"""The built-in ``logging`` extension: logs every event.

The minimal example of an extension.
"""

import logging

from pluginsd import results
from pluginsd.extensions import base

LOG = logging.getLogger(__name__)
QUIET = (results.OK, results.SKIPPED)


class LoggingExtension(base.Extension):
    name = 'logging'
    version = '1.0.0'
    description = (
        'Logs every run event at INFO level; plugin results that are ok '
        'or skipped at DEBUG.'
    )

    # Node events (registered, back, lost) are not logged here: the
    # daemon logs each of them itself, once.

    def on_run_start(self, run):
        LOG.info('run %s: %s starts on %s', run.id, run.mode, run.stages)

    def on_phase_start(self, phase):
        LOG.info(
            'run %s: %s starts on %s',
            phase.run_id,
            phase.phase,
            ', '.join(phase.hosts),
        )

    def on_plugin_result(self, result):
        # One line per node and plugin: at hundreds of nodes the ones that
        # went well would bury the rest (and cost the daemon a tenth of
        # its CPU). Failures, timeouts and cancels stay at INFO.
        level = logging.DEBUG if result.status in QUIET else logging.INFO
        LOG.log(
            level,
            'run %s: %s %s on %s: %s',
            result.run_id,
            result.plugin,
            result.phase,
            result.node,
            result.status,
        )

    def on_phase_end(self, phase):
        LOG.info(
            'run %s: %s ended (%d failures)',
            phase.run_id,
            phase.phase,
            len(phase.failures),
        )

    def on_run_end(self, run):
        LOG.info('run %s: %s', run.id, run.state)

    def on_run_delete(self, run):
        LOG.info('run %s deleted', run.id)
