"""The plain data objects extension handlers receive (read-only copies)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Node:
    host: str  # the node's name ([DEFAULT] host of its agent)
    roles: tuple  # e.g. ('compute',)
    version: str  # pluginsd version the agent runs
    activity: str  # what it was doing at its last heartbeat


@dataclasses.dataclass(frozen=True)
class Run:
    id: str
    mode: str  # stack, unstack or clean
    state: str  # planning, running, completed, failed, cancelled
    local_conf_path: str
    stages: tuple  # ((host, ...), ...) in the order they run
    plugins: dict  # {role: (plugin name, ...)} in run order
    error: str  # why it failed, '' otherwise


@dataclasses.dataclass(frozen=True)
class Phase:
    run_id: str
    mode: str
    phase: str  # pre-install ... test-config, unstack, clean
    hosts: tuple  # the nodes running it
    failures: tuple = ()  # on_phase_end: one message per failed node


@dataclasses.dataclass(frozen=True)
class Result:
    run_id: str
    node: str
    plugin: str
    mode: str
    phase: str
    status: str  # ok, failed, timeout, cancelled, skipped, killed
    exit_code: int  # None when the process was killed
    started_at: float  # seconds since the epoch
    ended_at: float
    log_path: str  # full log, on the node
    tail: str  # last lines of output


def node(row):
    return Node(
        row['host'], tuple(row['roles']), row['version'], row['activity']
    )


def run(row):
    plans = row.get('plans') or {}
    return Run(
        row['id'],
        row['mode'],
        row['state'],
        row['local_conf_path'],
        tuple(tuple(s) for s in row.get('stages') or ()),
        {
            role: tuple(p['name'] for p in plan['plugins'])
            for role, plan in plans.items()
        },
        row.get('error') or '',
    )


def phase(row, name, hosts, failures=()):
    return Phase(row['id'], row['mode'], name, tuple(hosts), tuple(failures))


def result(row):
    fields = {f.name for f in dataclasses.fields(Result)}
    return Result(**{k: row.get(k) for k in fields})
