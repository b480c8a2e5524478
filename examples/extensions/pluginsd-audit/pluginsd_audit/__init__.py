"""pluginsd-audit: keeps an audit trail of every pluginsd event."""

import dataclasses
import json
import os
import threading
import time

from oslo_config import cfg
import sqlalchemy as sa

from pluginsd.extensions import base

GROUP = 'audit'
OPTS = [
    cfg.StrOpt(
        'events_file',
        default='$state_path/audit-events.jsonl',
        help='Where the audit trail is appended, one JSON object a line.',
    ),
]
EVENTS = sa.table(
    'audit_events',
    sa.column('event'),
    sa.column('run_id'),
    sa.column('detail'),
    sa.column('created_at'),
)


class AuditExtension(base.Extension):
    name = 'audit'
    version = '1.0.0'
    description = 'Audit trail of every event, in a table and a file.'
    migrations = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'migrations'
    )

    @staticmethod
    def list_opts():
        return {GROUP: OPTS}

    def __init__(self, conf):
        super().__init__(conf)
        self.engine = sa.create_engine(conf.database.connection)
        self._lock = threading.Lock()

    def _record(self, event, data):
        detail = dataclasses.asdict(data)
        run_id = detail.get('run_id') or detail.get('id') or ''
        with self._lock:
            with open(self.conf.audit.events_file, 'a') as f:
                f.write(json.dumps({'event': event, **detail}) + '\n')
            with self.engine.begin() as connection:
                connection.execute(
                    sa.insert(EVENTS).values(
                        event=event,
                        run_id=run_id,
                        detail=json.dumps(detail),
                        created_at=time.time(),
                    )
                )

    def on_node_register(self, node):
        self._record('node_register', node)

    def on_node_update(self, node):
        self._record('node_update', node)

    def on_node_lost(self, node):
        self._record('node_lost', node)

    def on_run_start(self, run):
        self._record('run_start', run)

    def on_phase_start(self, phase):
        self._record('phase_start', phase)

    def on_plugin_result(self, result):
        self._record('plugin_result', result)

    def on_phase_end(self, phase):
        self._record('phase_end', phase)

    def on_run_end(self, run):
        self._record('run_end', run)

    def on_run_delete(self, run):
        self._record('run_delete', run)
