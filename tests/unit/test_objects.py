"""Wire objects (pluginsd.objects): what a receiver takes and refuses."""

import pytest

from pluginsd import objects

RESULT = dict(
    run_id='r1',
    node='cmp1',
    plugin='alpha',
    mode='stack',
    phase='install',
    attempt=1,
    status='ok',
)


class TestFromWire:
    def test_bare_fields_and_a_primitive_give_the_same_object(self):
        bare = objects.Result.from_wire(RESULT)
        wrapped = objects.Result.from_wire(objects.Result.wrap(RESULT))
        assert bare == wrapped
        assert wrapped.to_primitive() == {
            'object': 'Result',
            'version': objects.Result.VERSION,
            'data': dict(
                RESULT,
                exit_code=None,
                started_at=None,
                ended_at=None,
                log_path='',
                tail='',
                message='',
            ),
        }

    def test_a_newer_minor_drops_what_it_added(self):
        item = {'object': 'Result', 'version': '1.9', 'data': dict(RESULT)}
        item['data']['gpu_seconds'] = 3
        assert objects.Result.from_wire(item) == objects.Result(**RESULT)

    @pytest.mark.parametrize(
        'item, reason',
        [
            (
                {'object': 'Result', 'version': '2.0', 'data': RESULT},
                'Result: version 2.0 is not compatible with 1.0 (major 1 '
                'expected)',
            ),
            (
                {'object': 'Heartbeat', 'version': '1.0', 'data': RESULT},
                "Result: object is 'Heartbeat', not 'Result'",
            ),
            (
                {'object': 'Result', 'version': 'one', 'data': RESULT},
                "Result: bad version 'one'",
            ),
            (
                {'object': 'Result', 'version': '1.0', 'data': []},
                'Result: data is not a mapping',
            ),
            (['not', 'a', 'mapping'], 'Result: not a mapping'),
            (
                dict(RESULT, attempt=True),
                "Result: field 'attempt' is a boolean",
            ),
            (
                dict(RESULT, phase='deploy'),
                "Result: field 'phase' is 'deploy', not one of",
            ),
            (
                dict(RESULT, phase='unstack'),
                "Result: phase 'unstack' is not a stack phase",
            ),
        ],
    )
    def test_refused_with_the_reason(self, item, reason):
        with pytest.raises(objects.InvalidObject) as err:
            objects.Result.from_wire(item)
        assert str(err.value).startswith(reason)

    def test_ack_key_of_either_form(self):
        key = objects.ack_key_of(RESULT)
        assert key and key == objects.ack_key_of(objects.Result.wrap(RESULT))
        assert objects.ack_key_of({'object': 'Result', 'data': 'x'}) is None
        assert objects.ack_key_of(dict(RESULT, run_id=None)) is None


class TestRunSpec:
    def test_text_or_a_localrc_pair_per_role(self):
        spec = objects.RunSpec(
            mode='stack',
            local_confs={
                '*': '[[local|localrc]]\n',
                'compute': {'text': '', 'localrc': 'X=1', 'localrc_path': 'l'},
            },
        )
        assert spec.nodes is None and spec.local_conf_path == ''
        assert spec.run_id is None  # the daemon picks one

    @pytest.mark.parametrize(
        'fields, reason',
        [
            ({'mode': 'restack'}, "field 'mode' is 'restack', not one of"),
            ({'local_confs': {}}, 'no local.conf given'),
            (
                {'local_confs': {'*': 7}},
                "the local.conf of role '*' is int, not text",
            ),
            ({'nodes': ['cmp1', 2]}, "field 'nodes' must be a list of str"),
            (
                {'run_id': '--upload-pack=touch /tmp/x'},
                "run_id '--upload-pack=touch /tmp/x' is not a UUID",
            ),
            (
                {'run_id': 'E3B0C442-98FC-1C14-9AFB-F4C8996FB924'},
                'not a UUID in its usual lower-case form',
            ),
        ],
    )
    def test_refused_with_the_reason(self, fields, reason):
        values = dict(mode='stack', local_confs={'*': ''})
        values.update(fields)
        with pytest.raises(objects.InvalidObject) as err:
            objects.RunSpec(**values)
        assert reason in str(err.value)
