"""Versioned wire objects: what the daemon, the agents and the CLI send.

Every payload that crosses the bus is one of these classes, serialized as
``{'object': NAME, 'version': 'MAJOR.MINOR', 'data': {...}}`` and checked
field by field when it arrives. The rules:

- a receiver takes any minor version of a major it knows: a newer minor
  may only add optional fields, which an older receiver drops;
- a newer major, a missing required field, a wrong type or a value out of
  range is rejected with a one-line reason (:class:`InvalidObject`); in a
  batch only that item is rejected.

Small explicit classes rather than oslo.versionedobjects: these are plain
data with no remotable methods, no object registry or indirection API to
serve, and the receiver must say *why* one item of a batch was refused;
a declarative field list of our own does exactly that in one page. The
signed envelope (``pluginsd.rpc.signing``) wraps ``to_primitive()``
unchanged, so how messages are signed is independent of these objects.
"""

import uuid

from pluginsd import exception
from pluginsd import results

MODES = tuple(results.MODE_PHASES)
PHASES = tuple(sorted({p for ps in results.MODE_PHASES.values() for p in ps}))
STATUSES = (
    results.OK,
    results.FAILED,
    results.TIMEOUT,
    results.CANCELLED,
    results.SKIPPED,
    results.KILLED,
)
NODE_STATES = ('up', 'stopped')


class InvalidObject(exception.PluginsdException):
    msg_fmt = '%(name)s: %(reason)s'


_MISSING = object()


class Field:
    """One field: its type(s), whether it is required, allowed values."""

    def __init__(
        self, types, required=True, default=None, choices=None, nullable=False
    ):
        self.types = types if isinstance(types, tuple) else (types,)
        self.required = required
        self.default = default
        self.choices = choices
        self.nullable = nullable

    def check(self, owner, name, value):
        if value is None and self.nullable:
            return None
        # bool is an int in Python; a flag is never a number here.
        if isinstance(value, bool) and bool not in self.types:
            raise InvalidObject(
                name=owner, reason=f'field {name!r} is a boolean'
            )
        if not isinstance(value, self.types):
            wanted = ' or '.join(t.__name__ for t in self.types)
            got = 'null' if value is None else type(value).__name__
            raise InvalidObject(
                name=owner, reason=f'field {name!r} is {got}, not {wanted}'
            )
        if self.choices is not None and value not in self.choices:
            raise InvalidObject(
                name=owner,
                reason=f'field {name!r} is {value!r}, not one of '
                f'{", ".join(map(str, self.choices))}',
            )
        if float in self.types and isinstance(value, int):
            value = float(value)
        return value


def _strings(owner, name, value, kind=list):
    if not isinstance(value, kind) or not all(
        isinstance(v, str) for v in value
    ):
        raise InvalidObject(
            name=owner, reason=f'field {name!r} must be a list of strings'
        )
    return value


class WireObject:
    NAME = None
    VERSION = '1.0'
    FIELDS = {}

    def __init__(self, **values):
        for name, field in self.FIELDS.items():
            value = values.get(name, _MISSING)
            if value is _MISSING:
                if field.required:
                    raise InvalidObject(
                        name=self.NAME, reason=f'field {name!r} is missing'
                    )
                value = field.default
                if isinstance(value, (list, dict)):
                    value = type(value)(value)
            else:
                value = field.check(self.NAME, name, value)
            setattr(self, name, value)
        self.validate()

    def validate(self):
        """Checks across fields; subclasses raise InvalidObject."""

    def to_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_primitive(self):
        return {
            'object': self.NAME,
            'version': self.VERSION,
            'data': self.to_dict(),
        }

    @classmethod
    def from_primitive(cls, primitive):
        """The object in ``primitive``; InvalidObject says why not."""
        if not isinstance(primitive, dict):
            raise InvalidObject(name=cls.NAME, reason='not a versioned object')
        if primitive.get('object') != cls.NAME:
            raise InvalidObject(
                name=cls.NAME,
                reason=f'object is {primitive.get("object")!r}, '
                f'not {cls.NAME!r}',
            )
        version = str(primitive.get('version', ''))
        major, _, minor = version.partition('.')
        if not (major.isdigit() and minor.isdigit()):
            raise InvalidObject(
                name=cls.NAME, reason=f'bad version {version!r}'
            )
        ours = cls.VERSION.split('.')[0]
        if major != ours:
            raise InvalidObject(
                name=cls.NAME,
                reason=f'version {version} is not compatible with '
                f'{cls.VERSION} (major {ours} expected)',
            )
        data = primitive.get('data')
        if not isinstance(data, dict):
            raise InvalidObject(name=cls.NAME, reason='data is not a mapping')
        # Fields of a newer minor are dropped: they are optional by rule.
        return cls(**{k: v for k, v in data.items() if k in cls.FIELDS})

    @classmethod
    def from_wire(cls, item):
        """The object in a received item: a versioned primitive, or (from a
        sender older than the API version that wraps it) its bare fields.
        """
        if not isinstance(item, dict):
            raise InvalidObject(name=cls.NAME, reason='not a mapping')
        if 'object' in item:
            return cls.from_primitive(item)
        return cls(**{k: v for k, v in item.items() if k in cls.FIELDS})

    @classmethod
    def wrap(cls, data):
        """``data`` as this object's primitive, unchecked: a sender wraps
        what it has (one bad journal row must not stop the others from
        going out) and the receiver checks each item.
        """
        return {'object': cls.NAME, 'version': cls.VERSION, 'data': data}

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f'{self.NAME}({self.to_dict()!r})'


class Result(WireObject):
    """What a node reports for one plugin (or, plugin '', the node) in a phase.

    1.0 - initial version
    """

    NAME = 'Result'
    VERSION = '1.0'
    FIELDS = {
        'run_id': Field(str),
        'node': Field(str),
        'plugin': Field(str),
        'mode': Field(str, choices=MODES),
        'phase': Field(str, choices=PHASES),
        'attempt': Field(int),
        'status': Field(str, choices=STATUSES),
        'exit_code': Field(int, required=False, nullable=True),
        'started_at': Field(float, required=False, nullable=True),
        'ended_at': Field(float, required=False, nullable=True),
        'log_path': Field(str, required=False, default=''),
        'tail': Field(str, required=False, default=''),
        'message': Field(str, required=False, default=''),
    }

    def validate(self):
        if not self.run_id or not self.node:
            raise InvalidObject(
                name=self.NAME, reason='run_id and node must not be empty'
            )
        if self.phase not in results.MODE_PHASES[self.mode]:
            raise InvalidObject(
                name=self.NAME,
                reason=f'phase {self.phase!r} is not a {self.mode} phase',
            )
        if self.attempt < 1:
            raise InvalidObject(name=self.NAME, reason='attempt below 1')


class Heartbeat(WireObject):
    """A node saying it is there (state ``up``) or leaving (``stopped``).

    1.0 - initial version
    """

    NAME = 'Heartbeat'
    VERSION = '1.0'
    FIELDS = {
        'host': Field(str),
        'roles': Field(list),
        'version': Field(str, required=False, default=''),
        'activity': Field(str, required=False, default=''),
        'state': Field(str, required=False, default='up', choices=NODE_STATES),
        # [agent] allowed_sources; None: the node allows any source.
        'allowed_sources': Field((list, tuple), required=False, nullable=True),
        # [runner] devstack_dir; '': pluginsd's standalone library.
        'devstack_dir': Field(str, required=False, default=''),
    }

    def validate(self):
        _strings(self.NAME, 'roles', self.roles)
        if self.allowed_sources is not None:
            self.allowed_sources = list(self.allowed_sources)
            _strings(self.NAME, 'allowed_sources', self.allowed_sources)
        if not self.host:
            raise InvalidObject(name=self.NAME, reason='host is empty')


class PhaseEvent(WireObject):
    """The daemon asking the target nodes to run one phase of a run.

    1.0 - initial version
    1.1 - acks: results stored for its targets (see results.pack_acks)
    """

    NAME = 'PhaseEvent'
    VERSION = '1.1'
    FIELDS = {
        'run_id': Field(str),
        'mode': Field(str, choices=MODES),
        'phase': Field(str, choices=PHASES),
        'attempt': Field(int),
        'targets': Field(dict),  # {host: role key of its part}
        'parts': Field(dict),  # {role key: {'plugins': [...], 'localconf'}}
        'deadline': Field(int),
        'acks': Field(dict, required=False, default={}),
    }

    def validate(self):
        for host, role in self.targets.items():
            if not isinstance(role, str) or role not in self.parts:
                raise InvalidObject(
                    name=self.NAME,
                    reason=f'target {host} has no part {role!r}',
                )
        for role, part in self.parts.items():
            # The local.conf travels sealed to each node, named by digest.
            if (
                not isinstance(part, dict)
                or not isinstance(part.get('plugins'), list)
                or not ({'localconf', 'localconf_digest'} & set(part))
            ):
                raise InvalidObject(
                    name=self.NAME,
                    reason=f'part {role!r} lacks plugins or its local.conf',
                )


class RunSpec(WireObject):
    """What an operator asks for: a mode and the local.conf of each role.

    Checked where start_run arrives; each local.conf is then parsed on its
    own (pluginsd.localconf.from_input names the file and line).

    1.0 - initial version
    1.1 - run_id: the caller's id for the run (asking again is safe)
    """

    NAME = 'RunSpec'
    VERSION = '1.1'
    FIELDS = {
        'mode': Field(str, choices=MODES),
        # {role or '*': the text, or {'text', 'localrc', 'localrc_path'}}
        'local_confs': Field(dict),
        'local_conf_path': Field(str, required=False, default=''),
        # Only these hosts; None: every node that is up.
        'nodes': Field(list, required=False, nullable=True),
        # A UUID the caller chose; None: the daemon picks one.
        'run_id': Field(str, required=False, nullable=True),
    }

    def validate(self):
        if not self.local_confs:
            raise InvalidObject(name=self.NAME, reason='no local.conf given')
        _strings(self.NAME, 'local_confs', list(self.local_confs))
        for role, value in self.local_confs.items():
            if not isinstance(value, (str, dict)):
                raise InvalidObject(
                    name=self.NAME,
                    reason=f'the local.conf of role {role!r} is '
                    f'{type(value).__name__}, not text',
                )
        if self.nodes is not None:
            _strings(self.NAME, 'nodes', self.nodes)
        if self.run_id is not None and not is_uuid(self.run_id):
            raise InvalidObject(
                name=self.NAME,
                reason=f'run_id {self.run_id[:80]!r} is not a UUID in its '
                'usual lower-case form',
            )


def is_uuid(text):
    """True for a UUID as uuid.uuid4() prints it (and nothing else)."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def ack_key_of(raw):
    """The acknowledgement key of a raw result item, if it has one.

    A rejected result is acknowledged too (it will never become valid by
    being sent again), when its key fields can be read at all.
    """
    data = raw
    if isinstance(raw, dict) and 'object' in raw:
        data = raw.get('data')  # a versioned primitive; else bare fields
    if not isinstance(data, dict):
        return None
    try:
        return results.ack_key({k: data[k] for k in results.ACK_FIELDS})
    except (KeyError, TypeError):
        return None
