"""The ``gear`` facade exports exactly the public names of gear 0.16."""

from __future__ import annotations

import gear

# gear-api.md section a.0: the documented names plus the undocumented ones
# users rely on.
GEAR_016_NAMES = {
    "Client", "Job", "Worker", "FunctionRecord", "WorkerJob", "AdminRequest",
    "StatusAdminRequest", "ShowJobsAdminRequest", "ShowUniqueJobsAdminRequest",
    "CancelJobAdminRequest", "VersionAdminRequest", "Server", "ACL", "ACLEntry",
    "Connection", "Packet", "ConnectionError", "InvalidDataError", "ConfigurationError",
    "NoConnectedServersError", "UnknownJobError", "InterruptedError",
    "PRECEDENCE_NORMAL", "PRECEDENCE_LOW", "PRECEDENCE_HIGH", "constants",
    "WorkersAdminRequest", "TimeoutError", "GearmanError", "DisconnectError",
    "RetryIOError", "ACLError", "TextJob", "TextWorker", "TextWorkerJob",
    "TextJobArguments", "TextJobUnique", "TextList", "BaseBinaryJob", "BinaryJob",
    "BinaryWorkerJob", "BaseJob", "ServerJob", "ServerAdminRequest",
    "NonBlockingConnection", "ServerConnection", "BaseClientServer", "BaseClient",
    "Task", "SubmitJobTask", "OptionReqTask", "convert_to_bytes", "best_tls_version",
    "create_ssl_context", "acl", "statsd",
}  # fmt: skip

# Names gear adds on top of gear 0.16 (each documented as an extension).
EXTENSIONS = {
    "AsyncClient",
    "AsyncWorker",
    "Codec",
    "Hooks",
    "JSONCodec",
    "MsgpackCodec",
    "RemoteError",
    "testing",
    "JobFailedError",
    "JobExceptionError",
    "ReconnectPolicy",
    "ServerOptions",
}


def test_public_names_are_gear_016_plus_extensions() -> None:
    assert set(gear.PUBLIC_NAMES) - EXTENSIONS == GEAR_016_NAMES
    assert set(gear.PUBLIC_NAMES) >= GEAR_016_NAMES


def test_all_lists_every_name_when_every_package_is_installed() -> None:
    assert set(gear.__all__) == set(gear.PUBLIC_NAMES)


def test_every_name_resolves_in_the_workspace() -> None:
    for name in sorted(gear.PUBLIC_NAMES):
        assert getattr(gear, name) is not None or name == "statsd", name


def test_public_classes_report_the_facade_module() -> None:
    for name in sorted(gear.PUBLIC_NAMES):
        value = getattr(gear, name)
        if isinstance(value, type):
            assert value.__module__ == "gear", name
            assert repr(value) == "<class 'gear.%s'>" % name


def test_precedence_values() -> None:
    assert (gear.PRECEDENCE_NORMAL, gear.PRECEDENCE_LOW, gear.PRECEDENCE_HIGH) == (0, 1, 2)


def test_unknown_attribute() -> None:
    try:
        gear.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("expected AttributeError")
