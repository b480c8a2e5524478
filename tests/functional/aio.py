"""The all-in-one daemon and agent, in the test process, for engine tests."""

import os
import time

from pluginsd import allinone
from pluginsd import conf as pluginsd_conf
from pluginsd.daemon import rpcapi
from pluginsd.rpc import signing

FINAL = ('completed', 'failed', 'cancelled')


def make_conf(state_path, **overrides):
    conf = pluginsd_conf.new_conf()
    conf(args=[], project='pluginsd', default_config_files=[])
    conf.set_override('state_path', str(state_path))
    conf.set_override('host', 'node-1')
    conf.set_override(
        'dest', os.path.join(str(state_path), 'dest'), group='agent'
    )
    conf.set_override('package_installer', 'noop', group='runner')
    for key, value in overrides.items():
        group, _, name = key.rpartition('.')
        conf.set_override(name, value, group=group or None)
    return conf


class AllInOne:
    def __init__(self, state_path, **overrides):
        self.conf = make_conf(state_path, **overrides)
        self.embedded = allinone.AllInOne(self.conf)
        self.embedded.start()
        self.api = rpcapi.DaemonAPI(
            self.conf,
            self.embedded.transport,
            timeout=30,
            signer=signing.Signer(self.embedded.operator_key, 'operator'),
        )

    def start(self, mode, local_conf, path='local.conf', roles=None):
        confs = {'*': local_conf, **(roles or {})}
        return self.api.start_run({}, mode, confs, path)

    def wait(self, run_id, timeout=60):
        return wait_final(self.api, run_id, timeout)

    def run(self, mode, local_conf, timeout=60, **kwargs):
        return self.wait(self.start(mode, local_conf, **kwargs)['id'], timeout)

    def close(self):
        self.embedded.stop()


def wait_final(api, run_id, timeout):
    """Follow a run through the daemon API until it ends; its full view."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        view = api.wait_run({}, run_id, seen, 5, results_since=0)
        seen = view['version']
        if view['state'] in FINAL:
            return api.get_run({}, run_id)
    raise AssertionError(f'run {run_id} did not finish in {timeout} s')


def results_by(view, **match):
    return [
        r for r in view['results'] if all(r[k] == v for k, v in match.items())
    ]
