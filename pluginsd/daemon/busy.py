"""Which nodes a run takes, and whether another run holds them already.

A node runs one run at a time (its agent has one worker): a second run
aimed at a busy node would wait behind the first without a word, and fail
at its phase deadline. The daemon refuses it instead, naming the nodes
and the run that holds them.
"""

from pluginsd import exception

DEFAULT_ROLE = '*'


def targets_for(node_roles, local_confs):
    """{host: role of the local.conf it runs} for the nodes a run takes."""
    targets = {}
    for host, roles in node_roles.items():
        role = next((r for r in roles if r in local_confs), None)
        if role is None and DEFAULT_ROLE in local_confs:
            role = DEFAULT_ROLE
        if role:
            targets[host] = role
    return targets


def held_by(run, alive):
    """The hosts an active run holds.

    Its targets once planned, else the nodes up now that it would take.
    """
    if run['node_roles']:
        return set(run['node_roles'])
    return set(targets_for(alive, run['local_confs']))


def refuse_if_busy(hosts, active_runs, alive, run_id=None):
    """Raise NodesBusy if one of ``hosts`` belongs to another active run.

    ``active_runs``: the runs to compare with (planning or running), in
    creation order; ``run_id``: the run asking (left out).
    """
    for other in active_runs:
        if other['id'] == run_id:
            continue
        clash = sorted(set(hosts) & held_by(other, alive))
        if clash:
            raise exception.NodesBusy(
                nodes=', '.join(clash),
                run=other['id'],
                mode=other['mode'],
                state=other['state'],
            )
