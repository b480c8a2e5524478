"""The plugin registry, what a plugin declares, and local.conf generation.

A registry is a file in the format of DevStack's
``doc/source/plugin-registry.rst``: an RST table whose rows are
``<project> `<git URL> <git URL>`__``; the plugin's name (its
``enable_plugin`` name) is the last part of the project. pluginsd ships one
(``pluginsd/data/plugin-registry.rst``); a user may give their own, as a
file or an ``http(s)://`` URL, or a plain ``NAME URL`` list.

``show`` clones a plugin into a scratch directory and reads what its
``settings`` declare by sourcing them in bash, as the daemon does when it
plans (``define_plugin``, ``plugin_requires``, ``enable_service``), so a
conditional or indented declaration counts exactly when it runs.

``generate`` writes a local.conf enabling the named plugins and everything
they require, transitively, in dependency order: pluginsd's stable
topological sort (``pluginsd.plugins.order``) keeps the user's order on
ties and says why each plugin was added or moved.
"""

import dataclasses
import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request

from pluginsd import exception
from pluginsd.plugins import fetch
from pluginsd.plugins import order
from pluginsd.plugins import plan as plan_mod

DEFAULT_REGISTRY = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'data', 'plugin-registry.rst'
)
# `openstack/aodh     `https://opendev.org/openstack/aodh <https://...>`__`
_RST_ROW = re.compile(r'^(\S+)\s+`(\S+)\s+<(\S+)>`__\s*$')
_PLAIN_ROW = re.compile(r'^([A-Za-z0-9._/-]+)\s+(\S+)\s*$')
_NAME = re.compile(r'^[A-Za-z0-9._-]+$')
PHASES = (
    'pre-install',
    'install',
    'post-config',
    'extra',
    'test-config',
    'unstack',
    'clean',
)


class RegistryError(exception.PluginsdException):
    pass


@dataclasses.dataclass
class Entry:
    name: str  # the enable_plugin name
    project: str  # as the registry lists it (openstack/aodh)
    url: str
    line: int

    @property
    def enable_line(self):
        return f'enable_plugin {self.name} {self.url}'


def read_registry(source=None, timeout=30):
    """The entries of a registry file or URL (default: pluginsd's own)."""
    source = source or DEFAULT_REGISTRY
    text = _read_source(source, timeout)
    entries, seen = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith(('=', ' ', '\t', '..')):
            continue
        match = _RST_ROW.match(line) or _PLAIN_ROW.match(line)
        if not match or line.startswith('Plugin Name'):
            continue
        project, url = match.group(1), match.groups()[-1]
        name = project.rstrip('/').rsplit('/', 1)[-1]
        if not _NAME.match(name):
            raise RegistryError(
                f'{source}:{number}: {name!r} is not a plugin name'
            )
        if name in seen:
            raise RegistryError(
                f'{source}:{number}: plugin {name} is listed twice (first '
                f'at line {seen[name]})'
            )
        seen[name] = number
        entries.append(Entry(name, project, url, number))
    if not entries:
        raise RegistryError(f'{source}: no plugins listed')
    return entries


def _read_source(source, timeout):
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme in ('http', 'https'):
        try:
            with urllib.request.urlopen(source, timeout=timeout) as r:
                return r.read().decode('utf-8', errors='replace')
        except OSError as e:
            raise RegistryError(
                f'registry {exception.redact_url(source)}: cannot fetch: '
                f'{getattr(e, "reason", e)}'
            ) from None
    if scheme:
        raise RegistryError(
            f'registry {source}: only files and http(s) URLs are read'
        )
    try:
        with open(source, encoding='utf-8') as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryError(
            f'registry {source}: cannot read: {getattr(e, "strerror", e)}'
        ) from None


def find(entries, name_or_url):
    """The entry for a name (``aodh`` or ``openstack/aodh``) or a URL."""
    for entry in entries:
        if name_or_url in (entry.name, entry.project, entry.url):
            return entry
    return None


# -- what a plugin declares ------------------------------------------------


@dataclasses.dataclass
class Declarations:
    name: str
    url: str
    ref: str
    sha: str
    path: str
    define_name: str = ''
    requires: list = dataclasses.field(default_factory=list)  # Requirement
    services: list = dataclasses.field(default_factory=list)
    packages: dict = dataclasses.field(default_factory=dict)  # file: text
    phases: list = dataclasses.field(default_factory=list)


def checkout(name, url, ref, scratch):
    """Clone ``url`` at ``ref`` into ``scratch/<name>`` (DevStack's rules,
    through pluginsd's git module); return (commit, path).
    """
    plugin = plan_mod.Plugin(name=name, url=url, ref=ref or 'master')
    path = os.path.join(scratch, name)
    sha = fetch.fetch(plugin, path, fetch.FetchOptions())
    return sha, path


def declarations(checkouts, scratch, bash='/bin/bash'):
    """Read every checkout's settings in one bash session, in order.

    ``checkouts`` is a list of (name, url, ref, sha, path). Settings are
    read without errexit (as unstack reads them), with
    ``PLUGINSD_PLANNING=True``.
    """
    found = {
        name: Declarations(name, url, ref, sha, path)
        for name, url, ref, sha, path in checkouts
    }
    plugins = [
        plan_mod.Plugin(name=n, url=d.url, ref=d.ref, sha=d.sha, path=d.path)
        for n, d in found.items()
    ]
    requirements, aliases = plan_mod.read_settings(
        plugins, os.path.join(scratch, 'settings-session'), bash
    )
    for plugin in plugins:
        found[plugin.name].define_name = plugin.define_name
        found[plugin.name].services = plugin.services
    for req in requirements:
        found[req.plugin].requires.append(req)
    for decl in found.values():
        decl.packages = _package_files(decl.path)
        decl.phases = handled_phases(decl.path)
    return found, aliases


def _package_files(path):
    files = {}
    base = os.path.join(path, 'devstack', 'files')
    for sub in ('debs', 'rpms', 'rpms-suse'):
        folder = os.path.join(base, sub)
        if os.path.isdir(folder):
            for entry in sorted(os.listdir(folder)):
                files[f'files/{sub}/{entry}'] = _text(
                    os.path.join(folder, entry)
                )
    if os.path.isfile(os.path.join(base, 'bindep.txt')):
        files['files/bindep.txt'] = _text(os.path.join(base, 'bindep.txt'))
    return files


def _text(path):
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def handled_phases(path):
    """The phases ``plugin.sh`` tests for, read from its text.

    A phase counts when its name is compared with something (``==``, ``=``,
    ``!=``) or is a ``case`` pattern; ``stack`` alone is not a phase. This
    reads the text, it does not run it.
    """
    text = _text(os.path.join(path, 'devstack', 'plugin.sh'))
    found = set()
    for line in text.splitlines():
        code = line.split('#', 1)[0]
        for phase in PHASES:
            word = re.escape(phase)
            quoted = rf'["\']?{word}["\']?'
            if re.search(
                rf'(==?|!=)\s*{quoted}(\s|\]|;|$)', code
            ) or re.search(rf'(^|[\s(|]){quoted}(\s*\|[^)]*)?\)', code):
                found.add(phase)
    return [p for p in PHASES if p in found]


def show(name_or_url, ref=None, registry=None, bash='/bin/bash'):
    """Declarations of one plugin, cloned into a scratch directory."""
    if '/' in name_or_url or ':' in name_or_url:
        entry = (
            find(read_registry(registry), name_or_url) if registry else None
        )
        url = entry.url if entry else name_or_url
        name = entry.name if entry else _name_from_url(url)
    else:
        entry = find(read_registry(registry), name_or_url)
        if entry is None:
            raise RegistryError(
                f'no plugin {name_or_url} in registry '
                f'{registry or DEFAULT_REGISTRY}'
            )
        name, url = entry.name, entry.url
    scratch = tempfile.mkdtemp(prefix='pluginsd-show-')
    try:
        sha, path = checkout(name, url, ref, scratch)
        found, _ = declarations(
            [(name, url, ref or 'master', sha, path)], scratch, bash
        )
        return found[name]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _name_from_url(url):
    name = url.rstrip('/').rsplit('/', 1)[-1]
    name = name[:-4] if name.endswith('.git') else name
    if not _NAME.match(name):
        raise RegistryError(f'{url}: cannot tell the plugin name from it')
    return name


# -- local.conf generation -------------------------------------------------


def generate(names, registry=None, bash='/bin/bash'):
    """The text of a local.conf enabling ``names`` and what they require.

    Dependencies are read from each plugin's ``settings`` (cloned into a
    scratch directory) and looked up in the registry, transitively.
    """
    entries = read_registry(registry)
    for name in names:
        if find(entries, name) is None:
            raise RegistryError(
                f'no plugin {name} in registry {registry or DEFAULT_REGISTRY}'
            )
    wanted = [find(entries, n).name for n in names]
    if len(set(wanted)) != len(wanted):
        raise RegistryError(f'a plugin is named twice: {" ".join(names)}')
    scratch = tempfile.mkdtemp(prefix='pluginsd-generate-')
    try:
        return _generate(wanted, entries, registry, scratch, bash)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _generate(wanted, entries, registry, scratch, bash):
    declared = list(wanted)  # the user's names, then what they pull in
    added = {}  # name -> why it was added
    checkouts, known = {}, {}
    pending = list(wanted)
    while pending:
        batch = []
        for name in pending:
            entry = find(entries, name)
            sha, path = checkout(entry.name, entry.url, None, scratch)
            checkouts[name] = (name, entry.url, 'master', sha, path)
            batch.append(name)
        # Read all settings known so far (each round adds the new ones).
        known, aliases = declarations(
            [checkouts[n] for n in declared], scratch, bash
        )
        pending = []
        for name in batch:
            for req in known[name].requires:
                target = req.requires
                if target in declared or target in aliases:
                    continue
                entry = find(entries, target)
                if entry is None:
                    raise RegistryError(
                        f'plugin {name} requires {target!r} '
                        f'(plugin_requires at {_short(req, scratch)}), which '
                        f'is not in registry {registry or DEFAULT_REGISTRY}'
                    )
                if entry.name not in declared:
                    declared.append(entry.name)
                    pending.append(entry.name)
                    added[entry.name] = (
                        f'{entry.name} added: {name} requires {target} '
                        f'(plugin_requires at {_short(req, scratch)})'
                    )
    requirements = [
        dataclasses.replace(r, path=_short_path(r.path, scratch))
        for d in known.values()
        for r in d.requires
    ]
    try:
        ordered, reasons = order.order(declared, requirements, aliases)
    except exception.OrderError as e:
        raise RegistryError(str(e)) from None
    lines = [
        '# local.conf written by pluginsctl localconf generate '
        + ' '.join(wanted),
        f'# registry: {registry or DEFAULT_REGISTRY}',
        '# Plugins run in the order of their enable_plugin lines; every',
        '# plugin the named ones require (plugin_requires) is enabled too,',
        '# before the first plugin that needs it.',
        '',
        '[[local|localrc]]',
    ]
    for name in ordered:
        notes = [added[name]] if name in added else []
        notes += [r for r in reasons if r.startswith(f'{name} moved before ')]
        lines += [f'# {note}' for note in notes]
        lines.append(find(entries, name).enable_line)
    return '\n'.join(lines) + '\n', ordered


def _short_path(path, scratch):
    """A settings path without the scratch directory it was read in."""
    prefix = scratch.rstrip('/') + '/'
    return path[len(prefix) :] if path.startswith(prefix) else path


def _short(req, scratch):
    return f'{_short_path(req.path, scratch)}:{req.line}'
