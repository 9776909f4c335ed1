"""gear: clients, workers, the admin protocol and a server for Gearman.

This module is the facade of every gear distribution. The core names are
always here; ``gear.Client``, ``gear.Worker``, ``gear.Server`` and
``gear.ACL`` (and their relatives) come from gear-client, gear-worker,
gear-server and gear-acl, and name the package to install when it is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from types import ModuleType
from typing import TYPE_CHECKING, Any

__path__ = pkgutil.extend_path(__path__, __name__)

from gear import constants as constants
from gear._server_spec import (
    ServerOptions as ServerOptions,
)
from gear._version import (
    __version__ as __version__,
)
from gear.admin import (
    AdminRequest as AdminRequest,
    CancelJobAdminRequest as CancelJobAdminRequest,
    ServerAdminRequest as ServerAdminRequest,
    ShowJobsAdminRequest as ShowJobsAdminRequest,
    ShowUniqueJobsAdminRequest as ShowUniqueJobsAdminRequest,
    StatusAdminRequest as StatusAdminRequest,
    VersionAdminRequest as VersionAdminRequest,
    WorkersAdminRequest as WorkersAdminRequest,
)
from gear.connection import (
    Connection as Connection,
    NonBlockingConnection as NonBlockingConnection,
    ServerConnection as ServerConnection,
)
from gear.constants import (
    PRECEDENCE_HIGH as PRECEDENCE_HIGH,
    PRECEDENCE_LOW as PRECEDENCE_LOW,
    PRECEDENCE_NORMAL as PRECEDENCE_NORMAL,
)
from gear.errors import (
    ConfigurationError as ConfigurationError,
    ConnectionError as ConnectionError,
    DisconnectError as DisconnectError,
    GearmanError as GearmanError,
    InterruptedError as InterruptedError,
    InvalidDataError as InvalidDataError,
    JobExceptionError as JobExceptionError,
    JobFailedError as JobFailedError,
    NoConnectedServersError as NoConnectedServersError,
    RemoteError as RemoteError,
    RetryIOError as RetryIOError,
    TimeoutError as TimeoutError,
    UnknownJobError as UnknownJobError,
)
from gear.hooks import (
    Hooks as Hooks,
)
from gear.job import (
    BaseBinaryJob as BaseBinaryJob,
    BaseJob as BaseJob,
    TextJobArguments as TextJobArguments,
    TextJobUnique as TextJobUnique,
    TextList as TextList,
)
from gear.packet import (
    Packet as Packet,
)
from gear.payload import (
    Codec as Codec,
    JSONCodec as JSONCodec,
    MsgpackCodec as MsgpackCodec,
)
from gear.reconnect import (
    ReconnectPolicy as ReconnectPolicy,
)
from gear.tasks import (
    OptionReqTask as OptionReqTask,
    SubmitJobTask as SubmitJobTask,
    Task as Task,
)
from gear.tls import (
    best_tls_version as best_tls_version,
    create_ssl_context as create_ssl_context,
)
from gear.util import (
    convert_to_bytes as convert_to_bytes,
)

statsd: ModuleType | None
try:
    import statsd  # type: ignore[import-not-found, no-redef]
except ImportError:
    statsd = None

if TYPE_CHECKING:
    from gear import acl as acl, testing as testing
    from gear.acl import (
        ACL as ACL,
        ACLEntry as ACLEntry,
        ACLError as ACLError,
    )
    from gear.base import (
        BaseClient as BaseClient,
        BaseClientServer as BaseClientServer,
    )
    from gear.client import (
        AsyncClient as AsyncClient,
        BinaryJob as BinaryJob,
        Client as Client,
        Job as Job,
        TextJob as TextJob,
    )
    from gear.server import (
        Server as Server,
        ServerJob as ServerJob,
    )
    from gear.worker import (
        AsyncWorker as AsyncWorker,
        BinaryWorkerJob as BinaryWorkerJob,
        FunctionRecord as FunctionRecord,
        TextWorker as TextWorker,
        TextWorkerJob as TextWorkerJob,
        Worker as Worker,
        WorkerJob as WorkerJob,
    )

#: Names provided by other distributions: name -> (module, distribution).
_LAZY: dict[str, tuple[str, str]] = {
    "BaseClientServer": ("gear.base", "gear-core"),
    "BaseClient": ("gear.base", "gear-core"),
    "Client": ("gear.client", "gear-client"),
    "Job": ("gear.client", "gear-client"),
    "TextJob": ("gear.client", "gear-client"),
    "BinaryJob": ("gear.client", "gear-client"),
    "AsyncClient": ("gear.client", "gear-client"),
    "Worker": ("gear.worker", "gear-worker"),
    "TextWorker": ("gear.worker", "gear-worker"),
    "WorkerJob": ("gear.worker", "gear-worker"),
    "TextWorkerJob": ("gear.worker", "gear-worker"),
    "BinaryWorkerJob": ("gear.worker", "gear-worker"),
    "FunctionRecord": ("gear.worker", "gear-worker"),
    "AsyncWorker": ("gear.worker", "gear-worker"),
    "Server": ("gear.server", "gear-server"),
    "ServerJob": ("gear.server", "gear-server"),
    "ACL": ("gear.acl", "gear-acl"),
    "ACLEntry": ("gear.acl", "gear-acl"),
    "ACLError": ("gear.acl", "gear-acl"),
}
_LAZY_MODULES: dict[str, str] = {"acl": "gear-acl", "testing": "gear-server"}

_CORE_NAMES = [
    "AdminRequest",
    "BaseBinaryJob",
    "BaseJob",
    "CancelJobAdminRequest",
    "Codec",
    "ConfigurationError",
    "Connection",
    "ConnectionError",
    "DisconnectError",
    "GearmanError",
    "Hooks",
    "InterruptedError",
    "InvalidDataError",
    "JSONCodec",
    "JobExceptionError",
    "JobFailedError",
    "MsgpackCodec",
    "NoConnectedServersError",
    "NonBlockingConnection",
    "OptionReqTask",
    "PRECEDENCE_HIGH",
    "PRECEDENCE_LOW",
    "PRECEDENCE_NORMAL",
    "Packet",
    "ReconnectPolicy",
    "RemoteError",
    "RetryIOError",
    "ServerAdminRequest",
    "ServerConnection",
    "ServerOptions",
    "ShowJobsAdminRequest",
    "ShowUniqueJobsAdminRequest",
    "StatusAdminRequest",
    "SubmitJobTask",
    "Task",
    "TextJobArguments",
    "TextJobUnique",
    "TextList",
    "TimeoutError",
    "UnknownJobError",
    "VersionAdminRequest",
    "WorkersAdminRequest",
    "best_tls_version",
    "constants",
    "convert_to_bytes",
    "create_ssl_context",
    "statsd",
]

#: Every public name of the facade, whichever distributions are installed.
PUBLIC_NAMES = frozenset(_CORE_NAMES) | frozenset(_LAZY) | frozenset(_LAZY_MODULES)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


__all__ = sorted(
    _CORE_NAMES
    + [name for name, (module, _) in _LAZY.items() if _installed(module)]
    + [name for name in _LAZY_MODULES if _installed("gear." + name)]
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, distribution = _LAZY[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name not in (module_name, None) and not module_name.startswith(e.name + "."):
                raise
            raise ImportError(
                "gear.%s is provided by %s: pip install %s" % (name, distribution, distribution),
                name=name,
            ) from None
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        distribution = _LAZY_MODULES[name]
        try:
            return importlib.import_module("gear." + name)
        except ModuleNotFoundError as e:
            if e.name != "gear." + name:
                raise
            raise ImportError(
                "gear.%s is provided by %s: pip install %s" % (name, distribution, distribution),
                name=name,
            ) from None
    raise AttributeError("module 'gear' has no attribute %r" % (name,))


def __dir__() -> list[str]:
    return sorted(set(globals()) | PUBLIC_NAMES)


for _value in list(globals().values()):
    if (
        isinstance(_value, type)
        and _value.__module__.startswith("gear.")
        and _value.__name__ in PUBLIC_NAMES
    ):
        _value.__module__ = "gear"
del _value
