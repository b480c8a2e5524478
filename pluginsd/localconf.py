"""Parse a DevStack ``local.conf`` the way DevStack reads it.

The file is a list of meta-sections, ``[[group|file]]``. The bodies of
``[[local|localrc]]`` are shell, sourced in file order; the bodies of the
merge groups (``post-config``, ``extra``, ``post-extra``, ``test-config``)
are INI fragments merged into ``file`` at fixed points of ``stack``.

The localrc shell is kept *padded*: every line that is not localrc becomes an
empty line, so line N of the padded text is line N of local.conf and bash's
own error messages point at the right line.
"""

import dataclasses
import os
import re

from pluginsd import exception

MERGE_GROUPS = ('post-config', 'extra', 'post-extra', 'test-config')
# Only the first word of a header line counts (DevStack reads awk's $1).
_HEADER = re.compile(r'^\[\[([^|\]]+)\|([^\]]+)\]\]$')


@dataclasses.dataclass
class Option:
    section: str
    key: str
    value: str
    line: int


@dataclasses.dataclass
class MetaSection:
    group: str
    file_spec: str  # may hold shell variables, expanded at merge time
    line: int
    options: list

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        options = [Option(**o) for o in data['options']]
        return cls(data['group'], data['file_spec'], data['line'], options)


@dataclasses.dataclass
class LocalConf:
    path: str
    localrc: str  # padded shell text, line N == local.conf line N
    sections: list  # MetaSection, merge groups only, in file order
    # A ``localrc`` file beside local.conf, used instead of the blocks (its
    # lines are its own); '' when the blocks are used.
    localrc_path: str = ''

    @property
    def localrc_source(self):
        """The file localrc errors are in."""
        return self.localrc_path or self.path

    def merge_sections(self, group):
        return [s for s in self.sections if s.group == group]

    def to_dict(self):
        return {
            'path': self.path,
            'localrc': self.localrc,
            'sections': [s.to_dict() for s in self.sections],
            'localrc_path': self.localrc_path,
        }

    @classmethod
    def from_dict(cls, data):
        return cls(
            data['path'],
            data['localrc'],
            [MetaSection.from_dict(s) for s in data['sections']],
            data.get('localrc_path', ''),
        )


def localrc_beside(path):
    """The ``localrc`` file next to local.conf, or None."""
    legacy = os.path.join(os.path.dirname(os.path.abspath(path)), 'localrc')
    return legacy if os.path.isfile(legacy) else None


def read_input(path):
    """What a client sends for the local.conf at ``path``: its text or, when
    a ``localrc`` file sits beside it, ``{'text', 'localrc',
    'localrc_path'}``: DevStack (stackrc) then sources that file instead of
    the ``[[local|localrc]]`` blocks.
    """
    text = _read(path)
    legacy = localrc_beside(path)
    if not legacy:
        return text
    return {'text': text, 'localrc': _read(legacy), 'localrc_path': legacy}


def from_input(value, path):
    """Parse what :func:`read_input` produced (a client's local.conf)."""
    if isinstance(value, str):
        return parse(value, path)
    keys = ('text', 'localrc', 'localrc_path')
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) for k in keys
    ):
        raise exception.LocalConfError(
            path=path,
            line=0,
            reason='expected the text of a local.conf, or '
            '{"text", "localrc", "localrc_path"}',
        )
    conf = parse(value['text'], path)
    conf.localrc = value['localrc']
    if not conf.localrc.endswith('\n'):
        conf.localrc += '\n'
    conf.localrc_path = value['localrc_path']
    return conf


def _read(path):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except OSError as e:
        raise exception.LocalConfError(
            path=path, line=0, reason=f'cannot read: {e.strerror}'
        ) from e
    except UnicodeDecodeError as e:
        raise exception.LocalConfError(
            path=path, line=0, reason='not a UTF-8 text file'
        ) from e


def parse(text, path='local.conf'):
    lines = text.splitlines()
    localrc = [''] * len(lines)
    sections = []
    current = None  # (group, file_spec, line, options) being read
    section = None  # current INI [section] inside a merge block

    for number, line in enumerate(lines, start=1):
        if line.startswith('[[') and line[2:3].strip():
            # A header attempt; `[[ -n $X ]] && ...` (bash) has a space.
            match = _HEADER.match(line.split()[0])
            if not match:
                raise exception.LocalConfError(
                    path=path,
                    line=number,
                    reason=f'malformed meta-section header {line.strip()!r}: '
                    'expected [[group|file]] with no spaces inside',
                )
            group, file_spec = match.groups()
            current = (group, file_spec)
            section = None
            if group in MERGE_GROUPS:
                sections.append(MetaSection(group, file_spec, number, []))
            continue
        if current is None:
            continue  # lines before the first header are ignored
        group, file_spec = current
        if group == 'local':
            if file_spec == 'localrc':
                localrc[number - 1] = line
            continue
        if group not in MERGE_GROUPS:
            continue  # DevStack never applies other groups
        stripped = line.strip()
        if not stripped or line[0].isspace() or stripped.startswith('#'):
            continue
        if stripped.startswith('['):
            if not re.match(r'^\[.+\]', stripped):
                raise exception.LocalConfError(
                    path=path,
                    line=number,
                    reason=f'malformed INI section header {stripped!r}',
                )
            # Like DevStack: the first word, brackets removed ([a b] is a).
            section = re.sub(r'[][]', '', stripped.split()[0])
            continue
        if '=' not in stripped:
            raise exception.LocalConfError(
                path=path,
                line=number,
                reason=f'expected "key = value" in [[{group}|{file_spec}]], '
                f'got {stripped!r}',
            )
        if section is None:
            raise exception.LocalConfError(
                path=path,
                line=number,
                reason=f'option {stripped!r} comes before any [section] in '
                f'[[{group}|{file_spec}]]',
            )
        key, value = stripped.split('=', 1)
        sections[-1].options.append(
            Option(section, key.strip(), value.strip(), number)
        )
    return LocalConf(path, '\n'.join(localrc) + '\n', sections)
