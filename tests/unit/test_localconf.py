"""pluginsd.localconf: local.conf parsing (plugin contract, section 11)."""

import textwrap

import pytest

from pluginsd import exception
from pluginsd import localconf
from pluginsd.localconf import MetaSection
from pluginsd.localconf import Option


def _parse(text, path='local.conf'):
    return localconf.parse(textwrap.dedent(text).lstrip('\n'), path)


FULL = '''\
# before any header: ignored
FOO=ignored
[[local|localrc]]
ADMIN_PASSWORD=secret
enable_plugin alpha https://example.org/alpha
[[post-config|$NOVA_CONF]] trailing words are ignored
[DEFAULT]
debug = True
[[local|other]]
NOT_LOCALRC=1
[[install|/etc/x.conf]]
[s]
never = applied
[[extra|/etc/extra.conf]]
[a b]
key=value
[[local|localrc]]
SECOND=2
[[post-extra|/etc/pe.conf]]
[pe]
k = v
[[test-config|$TEMPEST_CONFIG]]
[auth]
use_dynamic_credentials = False
'''


class TestParse:
    def test_full_example_localrc_is_padded(self):
        conf = localconf.parse(FULL, '/etc/local.conf')
        lines = FULL.splitlines()
        assert conf.path == '/etc/local.conf'
        padded = conf.localrc.split('\n')
        # One line per local.conf line, plus the final newline.
        assert conf.localrc.endswith('\n')
        assert len(padded) == len(lines) + 1
        assert padded[-1] == ''
        expected = [''] * len(lines)
        for number in (4, 5, 18):
            expected[number - 1] = lines[number - 1]
        assert padded[:-1] == expected
        assert padded[3] == 'ADMIN_PASSWORD=secret'
        assert padded[4] == 'enable_plugin alpha https://example.org/alpha'
        assert padded[17] == 'SECOND=2'

    def test_full_example_sections(self):
        conf = localconf.parse(FULL, '/etc/local.conf')
        assert conf.sections == [
            MetaSection(
                'post-config',
                '$NOVA_CONF',
                6,
                [Option('DEFAULT', 'debug', 'True', 8)],
            ),
            MetaSection(
                'extra',
                '/etc/extra.conf',
                14,
                [Option('a', 'key', 'value', 16)],
            ),
            MetaSection(
                'post-extra', '/etc/pe.conf', 19, [Option('pe', 'k', 'v', 21)]
            ),
            MetaSection(
                'test-config',
                '$TEMPEST_CONFIG',
                22,
                [Option('auth', 'use_dynamic_credentials', 'False', 24)],
            ),
        ]

    def test_merge_sections_filters_by_group(self):
        conf = localconf.parse(FULL)
        assert [s.file_spec for s in conf.merge_sections('extra')] == [
            '/etc/extra.conf'
        ]
        assert conf.merge_sections('install') == []
        assert conf.merge_sections('local') == []

    def test_lines_before_first_header_ignored(self):
        conf = _parse('''
            A=1
            [DEFAULT]
            no equals sign here
            ''')
        assert conf.localrc == '\n\n\n'
        assert conf.sections == []

    def test_empty_text(self):
        conf = localconf.parse('')
        assert conf.localrc == '\n'
        assert conf.sections == []

    def test_only_first_word_of_header_counts(self):
        conf = _parse('''
            [[post-config|/etc/a.conf]] anything  here
            [x]
            k = v
            ''')
        assert conf.sections == [
            MetaSection(
                'post-config', '/etc/a.conf', 1, [Option('x', 'k', 'v', 3)]
            )
        ]

    def test_local_header_with_trailing_words(self):
        conf = _parse('''
            [[local|localrc]] # comment
            A=1
            ''')
        assert conf.localrc == '\nA=1\n'

    def test_spaces_inside_header_is_an_error(self):
        with pytest.raises(exception.LocalConfError) as err:
            _parse(
                '''
                [[local|localrc]]
                A=1
                [[post-config | $F]]
                [x]
                k = v
                ''',
                '/srv/local.conf',
            )
        assert str(err.value) == (
            "/srv/local.conf:3: malformed meta-section header "
            "'[[post-config | $F]]': expected [[group|file]] with no spaces "
            "inside"
        )
        assert err.value.kwargs['line'] == 3
        assert err.value.kwargs['path'] == '/srv/local.conf'

    def test_header_without_pipe_is_an_error(self):
        with pytest.raises(exception.LocalConfError) as err:
            _parse(
                '''
                [[post-config]]
                ''',
                'lc',
            )
        assert str(err.value) == (
            "lc:1: malformed meta-section header '[[post-config]]': expected "
            "[[group|file]] with no spaces inside"
        )

    def test_bash_test_line_in_localrc_is_shell_not_a_header(self):
        conf = _parse('''
            [[local|localrc]]
            A=1
            [[ -n "$A" ]] && B=2
            [[ "$A" == 1 ]] && enable_service foo
            ''')
        assert conf.localrc == (
            '\nA=1\n[[ -n "$A" ]] && B=2\n'
            '[[ "$A" == 1 ]] && enable_service foo\n'
        )

    def test_local_other_is_ignored(self):
        conf = _parse('''
            [[local|other]]
            A=1
            [[local|localrc]]
            B=2
            ''')
        assert conf.localrc == '\n\n\nB=2\n'
        assert conf.sections == []

    def test_unknown_group_ignored_even_if_not_ini(self):
        conf = _parse('''
            [[install|/etc/x.conf]]
            this is not ini at all
            key_before_section = 1
            [[local|localrc]]
            X=1
            ''')
        assert conf.sections == []
        assert conf.localrc == '\n\n\n\nX=1\n'

    def test_localrc_blocks_concatenated_in_order(self):
        conf = _parse('''
            [[local|localrc]]
            A=1
            [[post-config|/f]]
            [s]
            k = v
            [[local|localrc]]
            B=2
            ''')
        assert conf.localrc == '\nA=1\n\n\n\n\nB=2\n'

    def test_localrc_keeps_comments_indentation_and_blank_lines(self):
        conf = _parse('''
            [[local|localrc]]
            # comment
              INDENTED=1

            if true; then
                X=2
            fi
            ''')
        assert conf.localrc == (
            '\n# comment\n  INDENTED=1\n\nif true; then\n    X=2\nfi\n'
        )

    def test_section_first_word_and_comments_and_indented_ignored(self):
        conf = _parse('''
            [[post-config|/etc/f.conf]]
            [a b c]
            # a = comment
            \tindented = tab
               spaced = yes

            key = value
            ''')
        assert conf.sections[0].options == [Option('a', 'key', 'value', 7)]

    def test_key_value_split_at_first_equals_and_trimmed(self):
        conf = _parse('''
            [[post-config|/etc/f.conf]]
            [DEFAULT]
            transport_url   =   rabbit://u:p@h:5672/?a=b\x20\x20
            empty =
            k=v=w
            ''')
        assert conf.sections[0].options == [
            Option('DEFAULT', 'transport_url', 'rabbit://u:p@h:5672/?a=b', 3),
            Option('DEFAULT', 'empty', '', 4),
            Option('DEFAULT', 'k', 'v=w', 5),
        ]

    def test_repeated_keys_and_blocks_kept_in_order(self):
        conf = _parse('''
            [[post-config|/f]]
            [s]
            k = 1
            k = 2
            [[post-config|/f]]
            [s]
            k = 3
            ''')
        assert [
            (
                s.file_spec,
                s.line,
                [(o.key, o.value, o.line) for o in s.options],
            )
            for s in conf.sections
        ] == [
            ('/f', 1, [('k', '1', 3), ('k', '2', 4)]),
            ('/f', 5, [('k', '3', 7)]),
        ]

    def test_section_resets_at_each_header(self):
        with pytest.raises(exception.LocalConfError) as err:
            _parse(
                '''
                [[post-config|/a]]
                [s]
                k = v
                [[extra|/b]]
                k2 = v2
                ''',
                'lc',
            )
        assert str(err.value) == (
            "lc:5: option 'k2 = v2' comes before any [section] in [[extra|/b]]"
        )

    def test_line_without_equals_is_an_error(self):
        with pytest.raises(exception.LocalConfError) as err:
            _parse(
                '''
                [[local|localrc]]
                A=1
                [[post-config|$NOVA_CONF]]
                [DEFAULT]
                debug
                ''',
                '/opt/devstack/local.conf',
            )
        assert str(err.value) == (
            '/opt/devstack/local.conf:5: expected "key = value" in '
            "[[post-config|$NOVA_CONF]], got 'debug'"
        )
        assert err.value.kwargs['line'] == 5

    def test_option_before_section_is_an_error(self):
        with pytest.raises(exception.LocalConfError) as err:
            _parse(
                '''
                [[test-config|$TEMPEST_CONFIG]]
                # comment
                foo = bar
                ''',
                '/x/local.conf',
            )
        assert str(err.value) == (
            "/x/local.conf:3: option 'foo = bar' comes before any [section] "
            "in [[test-config|$TEMPEST_CONFIG]]"
        )


def read_and_parse(path):
    """A local.conf as a client reads it and the daemon parses it."""
    return localconf.from_input(localconf.read_input(path), path)


class TestReadInput:
    def test_reads_and_parses(self, tmp_path):
        path = tmp_path / 'local.conf'
        path.write_text('[[local|localrc]]\nA=1\n[[extra|/f]]\n[s]\nk = v\n')
        conf = read_and_parse(str(path))
        assert conf.path == str(path)
        assert conf.localrc == '\nA=1\n\n\n\n'
        assert conf.sections == [
            MetaSection('extra', '/f', 3, [Option('s', 'k', 'v', 5)])
        ]

    def test_missing_file(self, tmp_path):
        path = str(tmp_path / 'nope' / 'local.conf')
        with pytest.raises(exception.LocalConfError) as err:
            read_and_parse(path)
        assert str(err.value) == (
            f'{path}:0: cannot read: No such file or directory'
        )

    def test_not_utf8(self, tmp_path):
        path = tmp_path / 'local.conf'
        path.write_bytes(b'[[local|localrc]]\nA=\xff\xfe\n')
        with pytest.raises(exception.LocalConfError) as err:
            read_and_parse(str(path))
        assert str(err.value) == f'{path}:0: not a UTF-8 text file'

    def test_parse_error_names_the_file(self, tmp_path):
        path = tmp_path / 'local.conf'
        path.write_text('[[extra|/f]]\n[s]\noops\n')
        with pytest.raises(exception.LocalConfError) as err:
            read_and_parse(str(path))
        assert str(err.value) == (
            f'{path}:3: expected "key = value" in [[extra|/f]], got \'oops\''
        )

    def test_localrc_file_beside_replaces_blocks(self, tmp_path):
        path = tmp_path / 'local.conf'
        path.write_text(
            '[[local|localrc]]\nFROM_BLOCK=1\n[[post-config|/f]]\n[s]\nk = v\n'
        )
        (tmp_path / 'localrc').write_text('FROM_FILE=1\nOTHER=2\n')
        conf = read_and_parse(str(path))
        assert conf.localrc == 'FROM_FILE=1\nOTHER=2\n'
        # The meta-sections still come from local.conf.
        assert conf.sections == [
            MetaSection('post-config', '/f', 3, [Option('s', 'k', 'v', 5)])
        ]

    def test_localrc_file_beside_not_utf8(self, tmp_path):
        path = tmp_path / 'local.conf'
        path.write_text('[[local|localrc]]\nA=1\n')
        legacy = tmp_path / 'localrc'
        legacy.write_bytes(b'A=\xff\n')
        with pytest.raises(exception.LocalConfError) as err:
            read_and_parse(str(path))
        assert str(err.value) == f'{legacy}:0: not a UTF-8 text file'

    def test_localrc_directory_beside_is_not_a_localrc_file(self, tmp_path):
        path = tmp_path / 'local.conf'
        path.write_text('[[local|localrc]]\nFROM_BLOCK=1\n')
        (tmp_path / 'localrc').mkdir()
        assert read_and_parse(str(path)).localrc == '\nFROM_BLOCK=1\n'


class TestRoundTrip:
    def test_to_dict_from_dict(self):
        conf = localconf.parse(FULL, '/etc/local.conf')
        data = conf.to_dict()
        assert data['path'] == '/etc/local.conf'
        assert data['localrc'] == conf.localrc
        assert data['sections'][0] == {
            'group': 'post-config',
            'file_spec': '$NOVA_CONF',
            'line': 6,
            'options': [
                {
                    'section': 'DEFAULT',
                    'key': 'debug',
                    'value': 'True',
                    'line': 8,
                }
            ],
        }
        again = localconf.LocalConf.from_dict(data)
        assert again == conf
        assert isinstance(again.sections[0], MetaSection)
        assert isinstance(again.sections[0].options[0], Option)

    def test_round_trip_through_json(self):
        import json

        conf = localconf.parse(FULL)
        assert (
            localconf.LocalConf.from_dict(
                json.loads(json.dumps(conf.to_dict()))
            )
            == conf
        )
