"""Gearman protocol constants: magic codes and packet types.

Every packet type is a module-level ``int``; :data:`types` maps each code to
its name. The newer protocol types that gear 0.16 lacked (37-42) are here too.
"""

from typing import Final

REQ: Final = b"\x00REQ"
RES: Final = b"\x00RES"

CAN_DO: Final = 1
CANT_DO: Final = 2
RESET_ABILITIES: Final = 3
PRE_SLEEP: Final = 4
NOOP: Final = 6
SUBMIT_JOB: Final = 7
JOB_CREATED: Final = 8
GRAB_JOB: Final = 9
NO_JOB: Final = 10
JOB_ASSIGN: Final = 11
WORK_STATUS: Final = 12
WORK_COMPLETE: Final = 13
WORK_FAIL: Final = 14
GET_STATUS: Final = 15
ECHO_REQ: Final = 16
ECHO_RES: Final = 17
SUBMIT_JOB_BG: Final = 18
ERROR: Final = 19
STATUS_RES: Final = 20
SUBMIT_JOB_HIGH: Final = 21
SET_CLIENT_ID: Final = 22
CAN_DO_TIMEOUT: Final = 23
ALL_YOURS: Final = 24
WORK_EXCEPTION: Final = 25
OPTION_REQ: Final = 26
OPTION_RES: Final = 27
WORK_DATA: Final = 28
WORK_WARNING: Final = 29
GRAB_JOB_UNIQ: Final = 30
JOB_ASSIGN_UNIQ: Final = 31
SUBMIT_JOB_HIGH_BG: Final = 32
SUBMIT_JOB_LOW: Final = 33
SUBMIT_JOB_LOW_BG: Final = 34
SUBMIT_JOB_SCHED: Final = 35
SUBMIT_JOB_EPOCH: Final = 36
SUBMIT_REDUCE_JOB: Final = 37
SUBMIT_REDUCE_JOB_BACKGROUND: Final = 38
GRAB_JOB_ALL: Final = 39
JOB_ASSIGN_ALL: Final = 40
GET_STATUS_UNIQUE: Final = 41
STATUS_RES_UNIQUE: Final = 42

types: dict[int, str] = {
    code: name for name, code in globals().items() if name.isupper() and type(code) is int
}
"""Packet type code -> name, for every packet type above."""

#: How many NUL-separated arguments each packet type carries (the last one
#: may itself contain NULs). Used to validate packets from peers.
ARGUMENT_COUNTS: dict[int, int] = {
    CAN_DO: 1,
    CANT_DO: 1,
    RESET_ABILITIES: 0,
    PRE_SLEEP: 0,
    NOOP: 0,
    SUBMIT_JOB: 3,
    JOB_CREATED: 1,
    GRAB_JOB: 0,
    NO_JOB: 0,
    JOB_ASSIGN: 3,
    WORK_STATUS: 3,
    WORK_COMPLETE: 2,
    WORK_FAIL: 1,
    GET_STATUS: 1,
    ECHO_REQ: 1,
    ECHO_RES: 1,
    SUBMIT_JOB_BG: 3,
    ERROR: 2,
    STATUS_RES: 5,
    SUBMIT_JOB_HIGH: 3,
    SET_CLIENT_ID: 1,
    CAN_DO_TIMEOUT: 2,
    ALL_YOURS: 0,
    WORK_EXCEPTION: 2,
    OPTION_REQ: 1,
    OPTION_RES: 1,
    WORK_DATA: 2,
    WORK_WARNING: 2,
    GRAB_JOB_UNIQ: 0,
    JOB_ASSIGN_UNIQ: 4,
    SUBMIT_JOB_HIGH_BG: 3,
    SUBMIT_JOB_LOW: 3,
    SUBMIT_JOB_LOW_BG: 3,
    SUBMIT_JOB_SCHED: 8,
    SUBMIT_JOB_EPOCH: 4,
    SUBMIT_REDUCE_JOB: 4,
    SUBMIT_REDUCE_JOB_BACKGROUND: 4,
    GRAB_JOB_ALL: 0,
    JOB_ASSIGN_ALL: 5,
    GET_STATUS_UNIQUE: 1,
    STATUS_RES_UNIQUE: 6,
}

PRECEDENCE_NORMAL: Final = 0
PRECEDENCE_LOW: Final = 1
PRECEDENCE_HIGH: Final = 2
