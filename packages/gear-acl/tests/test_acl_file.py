"""load_acl_file: the ini format of gear-api.md §e and its error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gear.acl import ACL, ACLError, load_acl_file


def write(tmp_path: Path, text: str, name: str = "acl.ini") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def table(acl: ACL) -> list[tuple[str, str | None, str | None, bool | None]]:
    return [(e.subject, e.register, e.invoke, e.grant) for e in acl.getEntries()]


def test_seed_docs_example(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[my_worker]\nregister=.*\n\n[my_client]\ninvoke=.*\n\n[my_node_manager]\ngrant=True\n",
    )
    acl = load_acl_file(path)
    assert isinstance(acl, ACL)
    assert table(acl) == [
        ("my_client", None, ".*", None),
        ("my_node_manager", None, None, True),
        ("my_worker", ".*", None, None),
    ]
    assert acl.canRegister("my_worker", "anything") and not acl.canInvoke("my_worker", "x")
    assert acl.canInvoke("my_client", "x") and acl.canGrant("my_node_manager")
    assert not acl.canGrant("my_client"), "an absent grant is None, which does not grant"


def test_str_path_and_pathlike(tmp_path: Path) -> None:
    path = write(tmp_path, "[a]\ninvoke=x\n")
    assert table(load_acl_file(str(path))) == table(load_acl_file(path))


def test_empty_file_denies_everything(tmp_path: Path) -> None:
    acl = load_acl_file(write(tmp_path, "# nobody yet\n"))
    assert acl.getEntries() == [] and not acl.canInvoke("x", "y")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(v, True) for v in ("1", "yes", "TRUE", "on")]
    + [(v, False) for v in ("0", "no", "False", "off")],
)
def test_grant_booleans(tmp_path: Path, value: str, expected: bool) -> None:
    acl = load_acl_file(write(tmp_path, "[s]\ngrant = %s\n" % value))
    assert acl.subjects["s"].grant is expected


def test_keys_are_case_insensitive_sections_are_not(tmp_path: Path) -> None:
    acl = load_acl_file(write(tmp_path, "[Worker]\nREGISTER=f\n[worker]\nInvoke=g\n"))
    assert table(acl) == [("Worker", "f", None, None), ("worker", None, "g", None)]


def test_default_section_applies_to_every_subject(tmp_path: Path) -> None:
    acl = load_acl_file(
        write(tmp_path, "[DEFAULT]\ninvoke=status-.*\n[a]\n[b]\ninvoke=b-.*\ngrant=no\n")
    )
    assert table(acl) == [("a", None, "status-.*", None), ("b", None, "b-.*", False)]
    assert not any(e.subject == "DEFAULT" for e in acl.getEntries())


def test_no_interpolation_and_spaces_in_patterns(tmp_path: Path) -> None:
    acl = load_acl_file(write(tmp_path, "[s]\ninvoke = 100%% (a|b) job$\n"))
    assert acl.subjects["s"].invoke == "100%% (a|b) job$"
    assert acl.canInvoke("s", "100%% b job")


def test_utf8_subjects_and_patterns(tmp_path: Path) -> None:
    acl = load_acl_file(write(tmp_path, "[J\u00fcrgen]\ninvoke=caf\u00e9\n"))
    assert acl.canInvoke("J\u00fcrgen", "caf\u00e9-au-lait")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    """gear 0.16 silently treated it as empty; an explicit path must exist."""
    path = tmp_path / "nope.ini"
    with pytest.raises(ACLError) as info:
        load_acl_file(path)
    assert str(info.value) == "Unable to read ACL file %s: No such file or directory" % path


def test_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ACLError, match="Unable to read ACL file %s: " % tmp_path):
        load_acl_file(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "acl.ini"
    path.write_bytes(b"[caf\xe9]\ninvoke=x\n")
    with pytest.raises(ACLError, match="ACL file %s is not valid UTF-8" % path):
        load_acl_file(path)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("invoke=.*\n", "File contains no section headers"),
        ("[a]\ninvoke=x\n[a]\n", "section 'a' already exists"),
        ("[a]\ninvoke=x\ninvoke=y\n", "option 'invoke' in section 'a' already exists"),
        ("[a]\njust a line\n", "Source contains parsing errors"),
        ("[a\ninvoke=x\n", "File contains no section headers"),
    ],
)
def test_ini_syntax_errors(tmp_path: Path, text: str, detail: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ACLError) as info:
        load_acl_file(path)
    message = str(info.value)
    assert message.startswith("ACL file %s is not a valid ini file: " % path)
    assert detail in message and "\n" not in message


@pytest.mark.parametrize("key", ["register", "invoke"])
def test_bad_regex_names_file_section_and_key(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, "[good]\ninvoke=.*\n[bad one]\n%s = fn-(\n" % key)
    with pytest.raises(ACLError) as info:
        load_acl_file(path)
    assert str(info.value) == (
        "ACL file %s, section [bad one], key %r: Invalid regular expression 'fn-(': "
        "missing ), unterminated subpattern at position 3" % (path, key)
    )


def test_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[w]\nregister=.*\nregsiter=foo\n")
    with pytest.raises(ACLError) as info:
        load_acl_file(path)
    assert str(info.value) == (
        "ACL file %s, section [w], key 'regsiter': unknown key "
        "(expected register, invoke, grant or admin)" % path
    )


def test_non_boolean_grant(tmp_path: Path) -> None:
    path = write(tmp_path, "[admin]\ngrant=sometimes\n")
    with pytest.raises(ACLError) as info:
        load_acl_file(path)
    assert str(info.value) == (
        "ACL file %s, section [admin], key 'grant': 'sometimes' is not a boolean "
        "(use true/false, yes/no, on/off or 1/0)" % path
    )


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("[DEFAULT]\nsubject=x\n[a]\n", "section [DEFAULT], key 'subject': unknown key"),
        ("[DEFAULT]\ngrant=maybe\n[a]\n", "section [DEFAULT], key 'grant': 'maybe'"),
        ("[DEFAULT]\ninvoke=)\n", "section [DEFAULT], key 'invoke': Invalid regular"),
    ],
)
def test_errors_in_default_section_name_it(tmp_path: Path, text: str, detail: str) -> None:
    with pytest.raises(ACLError, match=r"^ACL file .*acl\.ini, " + detail.replace("[", r"\[")):
        load_acl_file(write(tmp_path, text))


subjects = st.text(alphabet="abcXYZ019 _-.@", min_size=1, max_size=12).map(str.strip)
patterns = st.one_of(
    st.none(), st.text(alphabet="abc.*+?^$|(){}]0-9 \\", min_size=1, max_size=10).map(str.strip)
)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entries=st.dictionaries(
        subjects.filter(lambda s: s and s != "DEFAULT"),
        st.tuples(patterns, patterns, st.sampled_from([None, True, False])),
        max_size=5,
    )
)
def test_round_trip(
    tmp_path: Path, entries: dict[str, tuple[str | None, str | None, bool | None]]
) -> None:
    """A file written from entries loads back as the same ACL, or names the bad pattern."""
    lines: list[str] = []
    for subject, (register, invoke, grant) in entries.items():
        lines.append("[%s]" % subject)
        lines += ["register = %s" % register] if register is not None else []
        lines += ["invoke = %s" % invoke] if invoke is not None else []
        lines += ["grant = %s" % grant] if grant is not None else []
    path = write(tmp_path, "\n".join(lines) + "\n")
    bad = any(
        pattern and not _compiles(pattern) for values in entries.values() for pattern in values[:2]
    )
    if bad:
        with pytest.raises(ACLError, match=r"section \[.*\], key '(register|invoke)': Invalid"):
            load_acl_file(path)
        return
    assert table(load_acl_file(path)) == sorted(
        (subject, *values) for subject, values in entries.items()
    )


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def test_admin_key(tmp_path: Path) -> None:
    acl = load_acl_file(write(tmp_path, "[ops]\nadmin = yes\n[tenant]\ninvoke = x\n"))
    assert acl.subjects["ops"].admin is True and acl.canAdmin("ops")
    assert acl.subjects["tenant"].admin is False and not acl.canAdmin("tenant")
    with pytest.raises(ACLError, match=r"key 'admin'.*not a boolean"):
        load_acl_file(write(tmp_path, "[ops]\nadmin = maybe\n"))
