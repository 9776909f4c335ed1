"""ACL and ACLEntry semantics (gear-api.md §a.13), including the 0.16 fixes."""

from __future__ import annotations

import re
import threading

import pytest
from hypothesis import given, strategies as st

import gear
from gear.acl import ACL, ACLEntry, ACLError

names = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)


def test_facade_and_module_names() -> None:
    assert gear.ACL is ACL and gear.ACLEntry is ACLEntry and gear.ACLError is ACLError
    assert gear.acl.load_acl_file is not None
    for cls in (ACL, ACLEntry, ACLError):
        assert cls.__module__ == "gear"
    assert issubclass(ACLError, Exception)


_PATTERN = object()
_EMPTY: dict[str, object] = {"register": None, "invoke": None, "grant": False}
_OPS: dict[str, tuple[str, str, object]] = {
    "grant-invoke": ("grantInvoke", "invoke", _PATTERN),
    "grant-register": ("grantRegister", "register", _PATTERN),
    "grant-grant": ("grantGrant", "grant", True),
    "revoke-invoke": ("revokeInvoke", "invoke", None),
    "revoke-register": ("revokeRegister", "register", None),
    "revoke-grant": ("revokeGrant", "grant", False),
}


class TestACLEntry:
    def test_defaults_and_attributes(self) -> None:
        entry = ACLEntry("worker")
        assert (entry.subject, entry.register, entry.invoke, entry.grant) == (
            "worker",
            None,
            None,
            False,
        )
        entry = ACLEntry("c", register="r.*", invoke="i", grant=None)
        assert (entry.register, entry.invoke, entry.grant) == ("r.*", "i", None)

    def test_repr(self) -> None:
        assert repr(ACLEntry("worker", register=".*")) == (
            "<ACLEntry for worker register=.* invoke=None grant=False>"
        )
        assert repr(ACLEntry("c", invoke="f$", grant=True)) == (
            "<ACLEntry for c register=None invoke=f$ grant=True>"
        )

    def test_match_is_anchored_at_the_start_only(self) -> None:
        entry = ACLEntry("w", register="foo", invoke="foo.*")
        assert entry.canRegister("foo")
        assert entry.canRegister("foobar")
        assert not entry.canRegister("barfoo")
        assert entry.canInvoke("foo-bar")
        assert not entry.canInvoke("bar-foo")
        exact = ACLEntry("w", register="foo$")
        assert exact.canRegister("foo") and not exact.canRegister("foobar")

    def test_none_pattern_allows_nothing(self) -> None:
        entry = ACLEntry("w")
        assert not entry.canRegister("") and not entry.canInvoke("anything")

    def test_empty_pattern_allows_nothing(self) -> None:
        entry = ACLEntry("w", register="", invoke="")
        assert entry.register == "" and entry.invoke == ""
        assert not entry.canRegister("x") and not entry.canInvoke("")
        assert not entry.isEmpty()

    def test_bytes_names_are_decoded(self) -> None:
        """0.16 raised TypeError on bytes and dropped the connection."""
        entry = ACLEntry("w", register="fn-.*", invoke="caf\u00e9")
        assert entry.canRegister(b"fn-1")  # type: ignore[arg-type]
        assert not entry.canRegister(b"other")  # type: ignore[arg-type]
        assert entry.canInvoke("caf\u00e9".encode())  # type: ignore[arg-type]
        assert not entry.canInvoke(b"\xff\xfe")  # type: ignore[arg-type]

    @pytest.mark.parametrize("attr", ["register", "invoke"])
    def test_invalid_regex_raises_aclerror(self, attr: str) -> None:
        with pytest.raises(ACLError, match=r"Invalid regular expression '\('"):
            ACLEntry("w", **{attr: "("})  # type: ignore[arg-type]
        entry = ACLEntry("w", **{attr: "ok"})  # type: ignore[arg-type]
        setter = getattr(entry, "setRegister" if attr == "register" else "setInvoke")
        with pytest.raises(ACLError):
            setter("[")
        assert getattr(entry, attr) == "ok", "a failed change leaves the entry as it was"
        with pytest.raises(ACLError):
            setattr(entry, attr, "*")

    def test_setters(self) -> None:
        entry = ACLEntry("w")
        entry.setRegister("a")
        entry.setInvoke("b")
        entry.setGrant(True)
        assert (entry.register, entry.invoke, entry.grant) == ("a", "b", True)
        assert entry.canRegister("a1") and entry.canInvoke("b2")
        entry.setRegister(None)
        assert not entry.canRegister("a1")
        entry.invoke = "c"
        assert entry.canInvoke("c") and not entry.canInvoke("b")

    def test_is_empty(self) -> None:
        assert ACLEntry("w").isEmpty()
        assert not ACLEntry("w", grant=None).isEmpty()
        assert not ACLEntry("w", grant=True).isEmpty()
        assert not ACLEntry("w", register=".*").isEmpty()
        assert not ACLEntry("w", invoke=".*").isEmpty()

    @given(pattern=names, name=names)
    def test_agrees_with_re_match(self, pattern: str, name: str) -> None:
        try:
            compiled = re.compile(pattern)
        except re.error:
            with pytest.raises(ACLError):
                ACLEntry("w", register=pattern)
            return
        entry = ACLEntry("w", register=pattern, invoke=pattern)
        expected = bool(pattern) and compiled.match(name) is not None
        assert entry.canRegister(name) is expected
        assert entry.canInvoke(name) is expected


class TestACL:
    def test_deny_by_default(self) -> None:
        acl = ACL()
        assert acl.subjects == {}
        assert not acl.canRegister("w", "f")
        assert not acl.canInvoke("w", "f")
        assert not acl.canGrant("w")
        assert not acl.canRegister(None, "f") and not acl.canGrant(None)

    def test_add_remove(self) -> None:
        acl = ACL()
        entry = ACLEntry("w", register="f")
        acl.add(entry)
        assert acl.subjects == {"w": entry}
        assert acl.canRegister("w", "f1") and not acl.canRegister("other", "f1")
        with pytest.raises(ACLError, match="already exists"):
            acl.add(ACLEntry("w"))
        assert acl.subjects["w"] is entry
        acl.remove("w")
        assert acl.subjects == {}
        with pytest.raises(ACLError, match="no ACL entry for w"):
            acl.remove("w")

    def test_get_entries_sorted_by_subject(self) -> None:
        acl = ACL()
        for subject in ("zeta", "Alpha", "beta", "alpha"):
            acl.add(ACLEntry(subject))
        assert [e.subject for e in acl.getEntries()] == ["Alpha", "alpha", "beta", "zeta"]
        entries = acl.getEntries()
        acl.remove("beta")
        assert len(entries) == 4, "getEntries returns a new list"

    def test_can_grant_needs_truthy_grant(self) -> None:
        acl = ACL()
        acl.add(ACLEntry("none", grant=None))
        acl.add(ACLEntry("false", grant=False))
        acl.add(ACLEntry("true", grant=True))
        assert [acl.canGrant(s) for s in ("none", "false", "true")] == [False, False, True]

    def test_grants_create_entries(self) -> None:
        acl = ACL()
        acl.grantInvoke("c", "inv.*")
        acl.grantRegister("w", "reg")
        acl.grantGrant("admin")
        assert repr(acl.getEntries()) == (
            "[<ACLEntry for admin register=None invoke=None grant=True>, "
            "<ACLEntry for c register=None invoke=inv.* grant=False>, "
            "<ACLEntry for w register=reg invoke=None grant=False>]"
        )
        assert acl.canInvoke("c", "inv-1") and not acl.canRegister("c", "inv-1")
        assert acl.canRegister("w", "reg") and acl.canGrant("admin")

    def test_grants_update_existing_entries(self) -> None:
        acl = ACL()
        entry = ACLEntry("s", register="a", grant=None)
        acl.add(entry)
        acl.grantRegister("s", "b")
        acl.grantInvoke("s", "c")
        acl.grantGrant("s")
        assert acl.subjects["s"] is entry
        assert (entry.register, entry.invoke, entry.grant) == ("b", "c", True)

    def test_invalid_grant_pattern_changes_nothing(self) -> None:
        acl = ACL()
        with pytest.raises(ACLError):
            acl.grantInvoke("new", "(")
        with pytest.raises(ACLError):
            acl.grantRegister("new", "+")
        assert acl.subjects == {}
        acl.grantInvoke("c", "ok")
        with pytest.raises(ACLError):
            acl.grantInvoke("c", "(")
        assert acl.canInvoke("c", "ok")

    def test_revoke_deletes_entries_left_empty(self) -> None:
        acl = ACL()
        acl.add(ACLEntry("s", register="r", invoke="i", grant=True))
        acl.revokeRegister("s")
        assert not acl.canRegister("s", "r") and acl.canInvoke("s", "i")
        acl.revokeGrant("s")
        assert not acl.canGrant("s") and acl.subjects["s"].grant is False
        acl.revokeInvoke("s")
        assert "s" not in acl.subjects

    def test_revoke_keeps_grant_none_entries(self) -> None:
        acl = ACL()
        acl.add(ACLEntry("s", invoke="i", grant=None))
        acl.revokeInvoke("s")
        assert repr(acl.subjects["s"]) == "<ACLEntry for s register=None invoke=None grant=None>"
        acl.revokeGrant("s")
        assert "s" not in acl.subjects

    def test_revoke_unknown_subject_is_a_no_op(self) -> None:
        acl = ACL()
        acl.revokeInvoke("nobody")
        acl.revokeRegister("nobody")
        acl.revokeGrant("nobody")
        assert acl.subjects == {}

    def test_entries_changed_directly_take_effect(self) -> None:
        acl = ACL()
        entry = ACLEntry("w")
        acl.add(entry)
        entry.setRegister("f")
        assert acl.canRegister("w", "f")

    def test_concurrent_checks_and_changes(self) -> None:
        """The server loop checks while admin and user threads change entries."""
        acl = ACL()
        acl.grantGrant("admin")
        errors: list[BaseException] = []
        start = threading.Barrier(9)

        def changer(n: int) -> None:
            start.wait()
            for i in range(300):
                subject = "s%d-%d" % (n, i % 7)
                acl.grantInvoke(subject, "job-%d" % i)
                acl.grantRegister(subject, "fn.*")
                acl.revokeInvoke(subject)
                acl.revokeRegister(subject)
                if i % 3 == 0:
                    acl.grantGrant(subject)
                    acl.revokeGrant(subject)

        def checker() -> None:
            start.wait()
            for i in range(1000):
                acl.canInvoke("s0-%d" % (i % 7), "job-1")
                acl.canRegister("s1-1", "fn")
                assert acl.canGrant("admin")
                entries = acl.getEntries()
                assert [e.subject for e in entries] == sorted(e.subject for e in entries)

        def run(target: object, *args: object) -> threading.Thread:
            def wrapped() -> None:
                try:
                    target(*args)  # type: ignore[operator]
                except BaseException as e:
                    errors.append(e)

            thread = threading.Thread(target=wrapped)
            thread.start()
            return thread

        threads = [run(changer, n) for n in range(6)] + [run(checker) for _ in range(3)]
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert [e.subject for e in acl.getEntries()] == ["admin"]

    @given(
        ops=st.lists(
            st.tuples(st.sampled_from(sorted(_OPS)), st.sampled_from(["a", "b", "c"])),
            max_size=40,
        )
    )
    def test_matches_a_model(self, ops: list[tuple[str, str]]) -> None:
        """Grants and revokes act on three fields per subject; empty entries vanish."""
        acl = ACL()
        model: dict[str, dict[str, object]] = {}
        for op, subject in ops:
            method, field, value = _OPS[op]
            args = [subject + "$"] if value is _PATTERN else []
            getattr(acl, method)(subject, *args)
            if method.startswith("grant"):
                fields = model.setdefault(subject, dict(_EMPTY))
                fields[field] = subject + "$" if value is _PATTERN else value
            elif subject in model:
                model[subject][field] = value
                if model[subject] == _EMPTY:
                    del model[subject]
        assert {
            e.subject: {"register": e.register, "invoke": e.invoke, "grant": e.grant}
            for e in acl.getEntries()
        } == model
        for subject in "abc":
            fields = model.get(subject, _EMPTY)
            assert acl.canInvoke(subject, subject) is (fields["invoke"] is not None)
            assert acl.canRegister(subject, subject) is (fields["register"] is not None)
            assert acl.canGrant(subject) is (fields["grant"] is True)


class TestEndAnchor:
    """``$`` is the end of the name: Python's ``$`` also matches before a final newline."""

    @pytest.mark.parametrize(
        "pattern, name, allowed",
        [
            ("^a$", "a", True),
            ("^a$", "a\n", False),
            ("a$|b$", "b\n", False),
            ("foo", "foobar", True),  # still anchored at the start only, as in gear 0.16
            ("foo", "foo\n", True),
            (r"cost\$", "cost$", True),  # an escaped $ is a character
            ("[$]x", "$x", True),  # so is a $ in a class
            ("[^$]$", "a\n", False),
            ("[]$]", "]", True),
        ],
    )
    def test_dollar(self, pattern: str, name: str, allowed: bool) -> None:
        entry = ACLEntry("s", register=pattern, invoke=pattern)
        assert entry.canRegister(name) is allowed
        assert entry.canInvoke(name) is allowed
        assert entry.register == pattern  # the source is kept as written


class TestAdminPermission:
    def test_admin_grant_and_revoke(self) -> None:
        acl = ACL()
        assert not acl.canAdmin("ops")
        acl.grantAdmin("ops")
        assert acl.canAdmin("ops") and not acl.canGrant("ops")
        assert not acl.canAdmin(None) and not acl.canAdmin("other")
        acl.revokeAdmin("ops")
        assert "ops" not in acl.subjects  # an entry left empty is dropped

    def test_grant_implies_admin(self) -> None:
        acl = ACL()
        acl.add(ACLEntry("granter", grant=True))
        assert acl.canAdmin("granter")

    def test_admin_entry_is_not_empty(self) -> None:
        assert not ACLEntry("ops", admin=True).isEmpty()
        assert ACLEntry("nobody").isEmpty()
