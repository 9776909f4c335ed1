"""gear-acl: deny-by-default access control for geard.

:class:`gear.ACL` maps TLS certificate subjects (Common Names) to
:class:`ACLEntry` permissions; :func:`load_acl_file` reads the ini format
of ``geard --acl``. The classes are also ``gear.ACL``, ``gear.ACLEntry``
and ``gear.ACLError``.
"""

from gear.acl._acl import ACL, ACLEntry, ACLError
from gear.acl._file import load_acl_file
from gear.acl._version import __version__

__all__ = ["ACL", "ACLEntry", "ACLError", "__version__", "load_acl_file"]
