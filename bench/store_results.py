"""How long the daemon's database takes to store a phase's results.

N nodes x 5 phases, in batches of 50 nodes (the ingest thread stores what
has arrived in one transaction), each node reporting its plugin and its
own summary; every batch is then sent again, as agents resend what they
have not heard acknowledged, and must store nothing. SQLite in a temp dir.

Usage: .venv/bin/python bench/store_results.py [NODES]   (default 500)
"""

import os
import sys
import tempfile
import time

from pluginsd import results
from pluginsd.db import api

PHASES = results.STACK_PHASES
BATCH = 50
RUN = {
    'id': 'bench-run',
    'mode': 'stack',
    'state': 'running',
    'local_conf_path': '',
    'local_confs': {},
    'plans': {},
    'stages': [],
    'node_roles': {},
}


def result(node, plugin, phase):
    return {
        'run_id': RUN['id'],
        'node': node,
        'plugin': plugin,
        'mode': 'stack',
        'phase': phase,
        'attempt': 1,
        'status': 'ok',
        'exit_code': 0,
        'started_at': 1.0,
        'ended_at': 2.0,
        'log_path': f'/logs/{phase}/{plugin}.log',
        'tail': '',
        'message': '',
    }


def main():
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        db = api.Database('sqlite:///' + os.path.join(tmp, 'bench.sqlite'))
        db.upgrade()
        db.create_run(**RUN)
        stored = 0
        start = time.perf_counter()
        for phase in PHASES:
            for first in range(0, nodes, BATCH):
                batch = [
                    result(f'node{n}', plugin, phase)
                    for n in range(first, min(first + BATCH, nodes))
                    for plugin in ('noop', '')
                ]
                stored += len(db.store_results(batch))
                if db.store_results(batch):
                    raise SystemExit('a resend was stored again')
        took = time.perf_counter() - start
        db.engine.dispose()
    node_phases = nodes * len(PHASES)
    print('| nodes | results stored | seconds | ms per node-phase |')
    print('|---|---|---|---|')
    print(
        f'| {nodes} | {stored} | {took:.3f} | '
        f'{1000 * took / node_phases:.3f} |'
    )


if __name__ == '__main__':
    main()
