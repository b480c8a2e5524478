"""pluginsd.masking: secret-looking localrc values never leave a node."""

from pluginsd import masking

LOCALRC = '''
ADMIN_PASSWORD=s3cret-admin
export SERVICE_TOKEN="tok en"
DATABASE_PASSWORD='db-pw'   # a comment
SWIFT_HASH_KEY=hashy
MY_SECRET_THING=sh
SERVICE_PASSWORD=$ADMIN_PASSWORD
HOST_IP=10.0.0.1
KEYSTONE_REGION=RegionOne
'''


def test_secret_values_by_name():
    assert masking.secret_values(LOCALRC) == {
        's3cret-admin',
        'tok en',
        'db-pw',
        'hashy',
    }  # "sh" too short to mask; references are not values


def test_mask_longest_first():
    text = 'login s3cret-admin token tok en; ip 10.0.0.1'
    assert masking.mask(text, masking.secret_values(LOCALRC)) == (
        'login ****** token ******; ip 10.0.0.1'
    )
    assert masking.mask('', {'x'}) == ''
    assert masking.mask('abc', set()) == 'abc'
