"""Plugin package lists (``devstack/files/debs/<name>``), bindep files and
installers.

Line format, as DevStack reads it: one package per line (spaces split it
into several), ``#`` starts a comment, ``# dist:a,b`` keeps the line only
on those distributions and ``# not:a,b`` drops it there (``not`` wins),
any line containing ``NOPRIME`` is dropped, ``# testonly`` means nothing.
Unlike DevStack, distributions are compared as whole names (DevStack's
substring test makes ``dist:noblest`` match ``noble``) and no pathname
expansion is done.

Where the lists are: ``files/debs`` on deb systems, ``files/rpms`` on rpm
systems and ``files/rpms-suse`` on SUSE (as DevStack read them while it
supported SUSE). ``devstack/files/bindep.txt`` is evaluated as DevStack's
``bindep -b`` does (default profile plus the platform's): its missing
packages are installed with the lists.
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


def package_dir(os_package, distro=''):
    if distro.startswith('opensuse-'):
        return 'rpms-suse'
    return {'deb': 'debs', 'rpm': 'rpms'}.get(os_package, 'debs')


def plugin_packages(plugin_dir, name, distro, os_package='deb'):
    path = os.path.join(
        plugin_dir, 'devstack', 'files', package_dir(os_package, distro), name
    )
    if not os.path.isfile(path):
        return []
    with open(path, errors='replace') as f:
        return parse_package_list(f.read(), distro)


def bindep_packages(plugin_dir, plugin=''):
    """What ``bindep -b --file devstack/files/bindep.txt`` lists: missing
    packages of the default profile on this platform.
    """
    path = os.path.join(plugin_dir, 'devstack', 'files', 'bindep.txt')
    if not os.path.isfile(path):
        return []
    from bindep import depends  # only agents with bindep files need it

    with open(path, errors='replace') as f:
        text = f.read()
    try:
        deps = depends.Depends(text)
        rules = deps.active_rules(['default', *deps.platform_profiles()])
        checked = deps.check_rules(rules)
    except Exception as e:  # bindep raises its own and parser errors
        detail = ' '.join(str(e).split())
        raise exception.PluginsdException(
            f'plugin {plugin}: {path}: bindep cannot read it: {detail}'
        ) from e
    return [p for kind, items in checked if kind == 'missing' for p in items]


def os_release_file():
    """The os-release file, chosen as the bash library chooses it."""
    path = os.environ.get('PLUGINSD_OS_RELEASE_FILE')
    if path:
        return path
    return (
        '/etc/os-release'
        if os.path.exists('/etc/os-release')
        else ('/usr/lib/os-release')
    )


def os_facts(path=None):
    """(DISTRO, os_PACKAGE) of this machine, as the bash library's
    GetDistro and GetOSVersion compute them (bookworm/deb, f40/rpm,
    rhel9/rpm, opensuse-15.5/rpm ...).
    """
    facts = {}
    try:
        with open(path or os_release_file()) as f:
            for line in f:
                key, _, value = line.strip().partition('=')
                facts[key] = value.strip('"\'')
    except OSError:
        return '', 'deb'  # nothing known: Debian's lists and apt
    ident = facts.get('ID', '')
    words = f' {ident} {facts.get("ID_LIKE", "")} '
    release = facts.get('VERSION_ID', '')
    codename = (
        facts.get('VERSION_CODENAME') or facts.get('UBUNTU_CODENAME') or 'n/a'
    )
    if ' debian ' in words or ' ubuntu ' in words:
        return codename, 'deb'
    if any(
        f' {w} ' in words for w in ('fedora', 'rhel', 'centos', 'openEuler')
    ):
        if ident == 'fedora':
            return f'f{release}', 'rpm'
        if ident == 'openEuler':
            return f'openEuler-{release}', 'rpm'
        return f'rhel{release.split(".")[0]}', 'rpm'
    if 'suse' in words:
        return f'opensuse-{release}', 'rpm'
    vendor = ''.join(facts.get('NAME', '').split())
    # bash leaves os_PACKAGE empty here; lists default to files/debs
    return f'{vendor}-{release}', 'deb'


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
