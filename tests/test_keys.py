import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from store import MemoryKey
from store.keys import NamespaceKeys, escape, memory_member, split_memory_member


def test_memory_key_keywords_and_positional_are_the_same_key():
    by_name = MemoryKey(scope="session", user_id="alice", component="context")
    assert MemoryKey("session", "alice", "context") == by_name
    assert hash(MemoryKey("session", "alice", "context")) == hash(by_name)


def test_memory_key_is_frozen():
    key = MemoryKey("session", "alice", "context")
    with pytest.raises(ValidationError):
        key.scope = "other"


@pytest.mark.parametrize("field", ["scope", "user_id", "component"])
@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("", "must not be empty"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("\x7f", "control"),
        ("x" * 257, "limit is 256"),
        (5, "must be a string"),
    ],
)
def test_bad_parts_raise_value_error_naming_the_field(field, bad, says):
    parts = {"scope": "s", "user_id": "u", "component": "c", field: bad}
    with pytest.raises(ValueError) as info:
        MemoryKey(**parts)
    assert field in str(info.value)
    assert says in str(info.value)


def test_parts_at_the_limit_and_unicode_are_fine():
    key = MemoryKey("s" * 256, "ünïcødé 🙂", "a:b{c}")
    assert key.user_id == "ünïcødé 🙂"


def test_session_keys_share_one_hash_tag_and_the_namespace_prefix():
    ns = NamespaceKeys("ns1")
    keys = ns.session("alice")
    names = [keys.meta, keys.memory_index, keys.memory("session", "context"), keys.key("budget")]
    for name in names:
        assert name.startswith("ns1:{ns1:alice}:")
    assert ns.sessions.startswith("ns1:") and ns.events.startswith("ns1:")


@given(st.text(min_size=1), st.text(min_size=1))
def test_escaping_keeps_distinct_sessions_apart(a, b):
    ns = NamespaceKeys("ns")
    if a != b:
        assert ns.session(a).prefix != ns.session(b).prefix
    tag = ns.session(a).prefix
    # exactly one hash tag, and it closes where the session part ends
    assert tag.index("}") == len(tag) - 2
    assert "{" not in escape(a) and "}" not in escape(a)


@given(st.text(min_size=1), st.text(min_size=1))
def test_memory_member_round_trips(scope, component):
    assert split_memory_member(memory_member(scope, component)) == (scope, component)


@pytest.mark.parametrize("bad", ["", "a b", "a:b", "x" * 65, "-x", "a{b}"])
def test_bad_namespace_is_refused(bad):
    with pytest.raises(ValueError, match="namespace"):
        NamespaceKeys(bad)
