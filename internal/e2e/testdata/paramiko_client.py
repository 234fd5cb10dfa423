"""Drive wharf with paramiko for the Go test TestParamiko (paramiko_test.go).

Usage: /usr/bin/python3 paramiko_client.py PLAN.json

The plan (written by the Go test) says how to connect and lists steps, each
{"name", "op", "args"}. This script runs every step in order on one SFTP
session and prints one JSON object on stdout:

  {"connect": OUTCOME, "transport": {...}, "steps": [OUTCOME, ...]}

where OUTCOME is {"name", "ok": true, "value": ...} or {"name", "ok": false,
"type": exception class name, "errno", "code": SSH_FX status code or null,
"msg"}. A failed step does not stop the run: the Go test decides which
failures were expected. The script exits 0 whenever it printed that object
(even when the connection was refused, which some plans expect) and non-zero
only when it could not run the plan at all.

A password comes from the environment variable WHARF_E2E_PASSWORD, never from
the command line or the plan file.
"""

import base64
import hashlib
import json
import os
import sys

import paramiko
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

TIMEOUT = 30  # seconds for the handshake, authentication and each SFTP reply


class CodedSFTPClient(paramiko.SFTPClient):
    """An SFTPClient whose errors remember the SSH_FX status code.

    paramiko's own mapping (NO_SUCH_FILE -> FileNotFoundError,
    PERMISSION_DENIED -> PermissionError, anything else -> OSError) is kept:
    it is what the test checks. The code only makes other statuses, such as
    OP_UNSUPPORTED, tellable apart from FAILURE.
    """

    def _convert_status(self, msg):
        pos = msg.packet.tell()
        code = msg.get_int()
        msg.packet.seek(pos)
        try:
            super()._convert_status(msg)
        except (OSError, EOFError) as e:
            e.sftp_code = code
            raise

    def statvfs(self, path):
        """statvfs@openssh.com, which paramiko has no method for."""
        t, msg = self._request(CMD_EXTENDED, "statvfs@openssh.com", path)
        if t != CMD_EXTENDED_REPLY:
            raise paramiko.SSHException("statvfs: unexpected reply type {}".format(t))
        names = ("bsize", "frsize", "blocks", "bfree", "bavail", "files",
                 "ffree", "favail", "fsid", "flag", "namemax")
        return {n: msg.get_int64() for n in names}


def attrs(a):
    return {
        "size": a.st_size,
        "mode": a.st_mode,
        "mtime": a.st_mtime,
        "atime": a.st_atime,
        "longname": getattr(a, "longname", None),
        "filename": getattr(a, "filename", None),
    }


def op_append(sftp, path, text):
    with sftp.open(path, "a") as f:
        f.write(text.encode())


def op_write_at(sftp, path, offset, text):
    with sftp.open(path, "r+") as f:
        f.seek(offset)
        f.write(text.encode())


def op_read(sftp, path):
    with sftp.open(path, "r") as f:
        data = f.read()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "head": data[:256].decode("latin-1")}


def op_exec(transport, command):
    chan = transport.open_session(timeout=TIMEOUT)
    chan.settimeout(TIMEOUT)
    try:
        chan.exec_command(command)
        out = chan.makefile("rb").read()
        err = chan.makefile_stderr("rb").read()
        status = chan.recv_exit_status()
    finally:
        chan.close()
    return {"exit": status, "stdout": out.decode("utf-8", "replace"),
            "stderr": err.decode("utf-8", "replace")}


def run_step(transport, sftp, op, args):
    if op == "exec":
        return op_exec(transport, *args)
    if op == "put":
        return attrs(sftp.put(*args))
    if op == "get":
        sftp.get(*args)
        return None
    if op in ("stat", "lstat"):
        return attrs(getattr(sftp, op)(*args))
    if op == "listdir_attr":
        return [attrs(a) for a in sftp.listdir_attr(*args)]
    if op == "listdir":
        return sorted(sftp.listdir(*args))
    if op == "utime":
        path, atime, mtime = args
        sftp.utime(path, (atime, mtime))
        return None
    if op in ("chmod", "truncate", "rename", "posix_rename", "mkdir",
              "rmdir", "remove", "symlink", "readlink", "normalize",
              "statvfs"):
        return getattr(sftp, op)(*args)
    if op == "append":
        return op_append(sftp, *args)
    if op == "write_at":
        return op_write_at(sftp, *args)
    if op == "read":
        return op_read(sftp, *args)
    raise ValueError("unknown op {!r}".format(op))


def failure(name, e):
    return {
        "name": name,
        "ok": False,
        "type": type(e).__name__,
        "errno": getattr(e, "errno", None),
        "code": getattr(e, "sftp_code", None),
        "msg": str(e),
    }


def connect(plan):
    hostkey = paramiko.Ed25519Key(data=base64.b64decode(plan["host_key"]))
    transport = paramiko.Transport((plan["host"], plan["port"]))
    transport.banner_timeout = TIMEOUT
    transport.auth_timeout = TIMEOUT
    kwargs = {"hostkey": hostkey, "username": plan["user"]}
    if plan["auth"] == "key":
        kwargs["pkey"] = paramiko.Ed25519Key.from_private_key_file(plan["key_file"])
    elif plan["auth"] == "password":
        kwargs["password"] = os.environ["WHARF_E2E_PASSWORD"]
    else:
        raise ValueError("unknown auth {!r}".format(plan["auth"]))
    try:
        # connect() refuses a server whose host key differs from hostkey.
        transport.connect(**kwargs)
    except Exception:
        transport.close()
        raise
    return transport


def main():
    if len(sys.argv) != 2:
        print("usage: paramiko_client.py PLAN.json", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    result = {"connect": None, "transport": None, "steps": []}
    try:
        transport = connect(plan)
    except Exception as e:
        result["connect"] = failure("connect", e)
        print(json.dumps(result))
        return 0
    try:
        result["connect"] = {"name": "connect", "ok": True}
        result["transport"] = {
            "cipher": transport.remote_cipher,
            "mac": transport.remote_mac,
            "host_key_type": transport.host_key_type,
            "host_key": transport.get_remote_server_key().get_base64(),
        }
        sftp = CodedSFTPClient.from_transport(transport)
        sftp.get_channel().settimeout(TIMEOUT)
        for step in plan["steps"]:
            try:
                value = run_step(transport, sftp, step["op"], step.get("args", []))
                result["steps"].append({"name": step["name"], "ok": True, "value": value})
            except (OSError, EOFError, paramiko.SSHException) as e:
                result["steps"].append(failure(step["name"], e))
        sftp.close()
    finally:
        transport.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
