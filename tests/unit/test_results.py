"""pluginsd.results: acknowledgements packed for a fanout."""

from pluginsd import results


def key(run, node, plugin, phase='install', attempt=1):
    return results.ack_key(
        dict(
            run_id=run,
            node=node,
            plugin=plugin,
            mode='stack',
            phase=phase,
            attempt=attempt,
        )
    )


def test_packed_acks_give_each_node_back_its_own_keys():
    acks = {
        'n1': [key('r1', 'n1', 'alpha'), key('r1', 'n1', '')],
        'n2': [key('r1', 'n2', ''), key('r0', 'n2', '', 'clean', 2)],
    }
    packed, left = results.pack_acks(acks)
    assert left == {}
    # Each run, phase and attempt once: two groups for four keys.
    assert sorted(packed) == ['r0|stack|clean|2', 'r1|stack|install|1']
    for host, keys in acks.items():
        assert sorted(results.unpack_acks(packed, host)) == sorted(keys)
    assert results.unpack_acks(packed, 'n3') == []


def test_keys_that_are_not_the_nodes_own_are_left_out():
    odd = ['not-a-key', key('r1', 'n2', 'alpha')]  # n2's key under n1
    packed, left = results.pack_acks({'n1': odd + [key('r1', 'n1', '')]})
    assert left == {'n1': odd}
    assert results.unpack_acks(packed, 'n1') == [key('r1', 'n1', '')]


def test_unpacking_skips_what_is_not_in_shape():
    good = {'r1|stack|install|1': {'n1': ['alpha', 7]}}
    bad = {'r1|stack': {'n1': ['x']}, 'r2|stack|install|1': ['n1']}
    assert results.unpack_acks(dict(good, **bad), 'n1') == [
        key('r1', 'n1', 'alpha')
    ]
    assert results.unpack_acks(None, 'n1') == []
    assert results.unpack_acks({'r1|stack|install|1': None}, 'n1') == []
