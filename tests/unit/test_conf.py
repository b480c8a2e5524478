"""Configuration objects stay independent of each other."""

from pluginsd import conf as pluginsd_conf


def test_an_override_does_not_leak_into_another_config():
    # oslo.config keeps overrides on the OptGroup object; two configs built
    # from the same modules must not share one (the all-in-one tests make
    # several configs in one process).
    first, second = pluginsd_conf.new_conf(), pluginsd_conf.new_conf()
    for conf in (first, second):
        conf([], default_config_files=[])
    for group, name, value in [
        ('runner', 'extras_dir', '/tmp/extras'),
        ('agent', 'dest', '/srv/dest'),
        ('security', 'key_file', '/tmp/k.key'),
        ('daemon', 'phase_timeout', 7),
    ]:
        default = getattr(getattr(second, group), name)
        first.set_override(name, value, group=group)
        assert getattr(getattr(first, group), name) == value
        assert getattr(getattr(second, group), name) == default
