"""Plugin package lists (``devstack/files/debs/<name>``) and installers.

Line format, as DevStack reads it: one package per line (spaces split it
into several), ``#`` starts a comment, ``# dist:a,b`` keeps the line only
on those distributions and ``# not:a,b`` drops it there (``not`` wins),
any line containing ``NOPRIME`` is dropped, ``# testonly`` means nothing.
Unlike DevStack, distributions are compared as whole names (DevStack's
substring test makes ``dist:noblest`` match ``noble``) and no pathname
expansion is done.
"""

import logging
import os
import re
import subprocess

from stevedore import driver

from pluginsd import exception
from pluginsd import process

LOG = logging.getLogger(__name__)
NAMESPACE = 'pluginsd.package_installers'


def parse_package_list(text, distro):
    packages = []
    distro = distro.lower()
    for line in text.splitlines():
        if 'NOPRIME' in line:
            continue
        words, _, comment = line.partition('#')
        if not words.strip():
            continue
        dists = re.search(r'dist:([\w.,-]+)', comment)
        nots = re.search(r'not:([\w.,-]+)', comment)
        if nots and distro in nots.group(1).lower().split(','):
            continue
        if dists and distro not in dists.group(1).lower().split(','):
            continue
        packages.extend(words.split())
    return packages


def package_dir(os_package):
    return {'deb': 'debs', 'rpm': 'rpms'}.get(os_package, 'debs')


def plugin_packages(plugin_dir, name, distro, os_package='deb'):
    path = os.path.join(
        plugin_dir, 'devstack', 'files', package_dir(os_package), name
    )
    if not os.path.isfile(path):
        return []
    with open(path, errors='replace') as f:
        return parse_package_list(f.read(), distro)


def os_facts(path='/etc/os-release'):
    """(distro codename, package type) of this machine."""
    facts = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition('=')
                facts[key] = value.strip('"')
    except OSError:
        pass
    like = (facts.get('ID', '') + ' ' + facts.get('ID_LIKE', '')).split()
    if 'debian' in like or 'ubuntu' in like:
        return facts.get('VERSION_CODENAME', ''), 'deb'
    major = facts.get('VERSION_ID', '').split('.')[0]
    if facts.get('ID') == 'fedora':
        return f'f{major}', 'rpm'  # DevStack's name: f40
    if {'rhel', 'fedora', 'centos'} & set(like):
        return f'rhel{major}', 'rpm'  # Rocky, Alma, CentOS: rhel9
    if 'suse' in ' '.join(like):
        return facts.get('ID', ''), 'rpm'
    return facts.get('VERSION_CODENAME', ''), 'deb'


class Installer:
    """A package installer driver (namespace pluginsd.package_installers).

    Drivers run their commands with :meth:`run`: in a process group of
    their own, killed at the phase deadline or when the run is cancelled
    (a driver that forks by other means escapes both).
    """

    name = None
    command = ()

    def install(self, packages, log):
        if not packages:
            return 0
        cmd = [*self.command, *packages]
        LOG.info('Installing packages: %s', ' '.join(cmd))
        return self.run(cmd, log)

    def run(self, cmd, log, env=None):
        """Run ``cmd`` with its output in ``log``; its exit status."""
        return process.call(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(
                os.environ, DEBIAN_FRONTEND='noninteractive', **(env or {})
            ),
        )


class AptInstaller(Installer):
    name = 'apt'
    command = ('apt-get', 'install', '-y', '--no-install-recommends')

    def __init__(self):
        self._updated = False

    def install(self, packages, log):
        # Refresh the package index once per agent, as DevStack does per run.
        if packages and not self._updated:
            self.run(['apt-get', 'update', '-qq'], log)
            self._updated = True
        return super().install(packages, log)


class DnfInstaller(Installer):
    name = 'dnf'
    command = ('dnf', 'install', '-y')


class ZypperInstaller(Installer):
    name = 'zypper'
    command = ('zypper', '--non-interactive', 'install')


class NoopInstaller(Installer):
    """Installs nothing; says what it would have installed (tests, demo)."""

    name = 'noop'

    def install(self, packages, log):
        if packages:
            log.write(
                f'pluginsd: would install: {" ".join(packages)}\n'.encode()
            )
            log.flush()
        return 0


DETECTED = {'deb': 'apt', 'rpm': 'dnf'}


def get_installer(name, os_package='deb'):
    """Load the installer driver ``name`` (or the distribution's default)."""
    name = name or DETECTED.get(os_package, 'apt')
    try:
        return driver.DriverManager(
            NAMESPACE, name, invoke_on_load=True
        ).driver
    except Exception as e:
        known = sorted(driver.ExtensionManager(NAMESPACE).names())
        raise exception.ConfigError(
            reason=f'[runner] package_installer = {name!r} cannot be loaded '
            f'({type(e).__name__}); known installers: '
            f'{", ".join(known) or "none (is pluginsd installed?)"}'
        ) from e
