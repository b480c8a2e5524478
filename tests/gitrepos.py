"""Real git repositories of real plugins, made in a temporary directory."""

import os
import subprocess
import textwrap

GIT_ENV = {
    'GIT_AUTHOR_NAME': 'test',
    'GIT_AUTHOR_EMAIL': 'test@pluginsd.invalid',
    'GIT_COMMITTER_NAME': 'test',
    'GIT_COMMITTER_EMAIL': 'test@pluginsd.invalid',
    'GIT_CONFIG_NOSYSTEM': '1',
}


def git(path, *args):
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(
        ['git', *args],
        cwd=path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def write_files(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(textwrap.dedent(text))


def make_repo(path, files, branch='master', message='initial'):
    """A git repo at ``path`` holding ``files`` ({relative path: text})."""
    os.makedirs(path, exist_ok=True)
    git(path, 'init', '-q', '-b', branch)
    write_files(path, files)
    git(path, 'add', '-A')
    git(path, 'commit', '-q', '-m', message)
    return path


def commit(path, files, message='change'):
    write_files(path, files)
    git(path, 'add', '-A')
    git(path, 'commit', '-q', '-m', message)
    return git(path, 'rev-parse', 'HEAD')


def tracing_plugin(
    name, settings='', plugin='', override_defaults=None, requires=()
):
    """Files of a plugin whose every call appends a line to $TEST_TRACE.

    A trace line is: plugin|kind|args|$#|$-|extra, where kind is settings,
    override-defaults or plugin.sh.
    """
    var = name.upper().replace('-', '_')
    req = ''.join(f'plugin_requires {name} {r}\n' for r in requires)
    files = {
        'devstack/settings': (
            f'define_plugin {name}\n{req}'
            f'[[ -n "${{PLUGINSD_PLANNING:-}}" ]] || '
            f'echo "{name}|settings||$#|$-|" >> "$TEST_TRACE"\n'
            f'{var}_SETTING=${{{var}_SETTING:-from-{name}-settings}}\n'
            f'{settings}\n'
        ),
        'devstack/plugin.sh': (
            f'echo "{name}|plugin.sh|$*|$#|$-|plugin=$plugin mode=$mode '
            f'phase=$phase" >> "$TEST_TRACE"\n'
            f'{plugin}\n'
        ),
    }
    if override_defaults is not None:
        files['devstack/override-defaults'] = (
            f'[[ -n "${{PLUGINSD_PLANNING:-}}" ]] || '
            f'echo "{name}|override-defaults||$#|$-|" >> "$TEST_TRACE"\n'
            f'{override_defaults}\n'
        )
    return files


def read_trace(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip('\n').split('|') for line in f]
